"""P3, P3b: what a cold start pays for imports, in fresh interpreters, against the libraries we cannot avoid
(the API: valkey-glide-sync; the worker: valkey-glide and supabase).

Each figure is the median of N fresh `python -c "import X"` processes, timed inside the interpreter
(from just before the import to just after), alternating the subjects so that noise hits them alike.
Every module is imported from byte-code, as the Lambda artifact ships it (deploy/package.py compiles
it): a first round writes the byte-code of both sides into a temporary PYTHONPYCACHEPREFIX, so neither
the source tree nor the environment (PYTHONDONTWRITEBYTECODE) decides whether our modules are compiled
from source on every run while the libraries' are not (which made our share look ~2x what it is).
`python -X importtime` shows where the time goes (printed for the API handler's biggest imports).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.previous import PREVIOUS, previous_checkout
from bench.stats import summary

_TIMER = "import time; t = time.perf_counter(); {imports}; print(time.perf_counter() - t)"


def _cold(imports: str, path: Path | None, pycache: str, *, write: bool = False) -> float:
    env = {**os.environ, "PYTHONPYCACHEPREFIX": pycache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if path is not None:  # another checkout of our code, first on sys.path (the previous handler)
        env["PYTHONPATH"] = str(path)
        imports = f"import sys; sys.path.insert(0, {str(path)!r}); {imports}"
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
        "glide_sync": "import glide_sync",
        "worker_handler": "import refresh_worker.handler",
        "glide_supabase": "import glide, supabase",
    }
    with previous_checkout() as previous, tempfile.TemporaryDirectory(prefix="bench-pyc-") as pycache:
        where: dict[str, Path | None] = dict.fromkeys(subjects)
        if previous is not None:
            subjects["previous_api_handler"] = "import api_lambda.handler"
            where["previous_api_handler"] = previous
        for name, imports in subjects.items():  # byte-code into `pycache`, and the OS page cache filled
            _cold(imports, where[name], pycache, write=True)
        times: dict[str, list[float]] = {name: [] for name in subjects}
        for _ in range(runs):
            for name, imports in subjects.items():
                times[name].append(_cold(imports, where[name], pycache))
    med = {name: statistics.median(values) for name, values in times.items()}
    results: dict[str, Any] = {
        "P3_cold_import_api": summary(
            med["api_handler"] / med["glide_sync"],
            1.15,
            api_handler_ms=round(med["api_handler"], 1),
            glide_sync_ms=round(med["glide_sync"], 1),
            runs=runs,
            # The least disturbed run of each (other work on a small VM stretches the medians alike).
            ratio_of_fastest=round(min(times["api_handler"]) / min(times["glide_sync"]), 3),
            api_handler_fastest_ms=round(min(times["api_handler"]), 1),
            glide_sync_fastest_ms=round(min(times["glide_sync"]), 1),
            heaviest_imports_ms=_importtime("api_lambda.handler"),
            bytecode="every module from byte-code (a temporary PYTHONPYCACHEPREFIX), as the artifact ships",
        ),
        "P3b_cold_import_worker": summary(
            med["worker_handler"] / med["glide_supabase"],
            1.15,
            worker_handler_ms=round(med["worker_handler"], 1),
            glide_supabase_ms=round(med["glide_supabase"], 1),
            runs=runs,
        ),
    }
    if "previous_api_handler" in med:
        results["P3x_cold_import_api_vs_previous"] = summary(
            med["api_handler"] / med["previous_api_handler"],
            None,
            api_handler_ms=round(med["api_handler"], 1),
            previous_api_handler_ms=round(med["previous_api_handler"], 1),
            previous=f"git worktree of {PREVIOUS[:12]}",
        )
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run_cold_start(), indent=2))
