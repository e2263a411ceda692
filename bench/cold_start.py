"""P3, P3b: what a cold start pays for imports, in fresh interpreters, against the libraries we cannot avoid.

Each figure is the median of N fresh `python -c "import X"` processes, timed inside the interpreter
(from just before the import to just after), alternating the subjects so that noise hits them alike.
`python -X importtime` shows where the time goes (printed for the API handler's biggest imports).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any

from bench.stats import summary

_TIMER = "import time; t = time.perf_counter(); {imports}; print(time.perf_counter() - t)"


def _cold(imports: str) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _TIMER.format(imports=imports)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return float(out.strip().splitlines()[-1]) * 1000


def _importtime(module: str, top: int = 8) -> list[tuple[str, float]]:
    """The heaviest imports (cumulative ms) under `module`, from -X importtime."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if cumulative.isdigit() and name.count(".") == 0 and not name.startswith(" "):
            rows.append((name, int(cumulative) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:top]


def run_cold_start(runs: int = 9) -> dict[str, Any]:
    subjects = {
        "api_handler": "import api_lambda.handler",
        "glide": "import glide",
        "worker_handler": "import refresh_worker.handler",
        "glide_supabase": "import glide, supabase",
    }
    for imports in subjects.values():  # fill the OS page cache; byte-code is not written
        _cold(imports)
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(runs):
        for name, imports in subjects.items():
            times[name].append(_cold(imports))
    med = {name: statistics.median(values) for name, values in times.items()}
    return {
        "P3_cold_import_api": summary(
            med["api_handler"] / med["glide"],
            1.15,
            api_handler_ms=round(med["api_handler"], 1),
            glide_ms=round(med["glide"], 1),
            runs=runs,
            heaviest_imports_ms=_importtime("api_lambda.handler"),
        ),
        "P3b_cold_import_worker": summary(
            med["worker_handler"] / med["glide_supabase"],
            1.15,
            worker_handler_ms=round(med["worker_handler"], 1),
            glide_supabase_ms=round(med["glide_supabase"], 1),
            runs=runs,
        ),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_cold_start(), indent=2))
