"""M2 and P8 (PostgreSQL): one full rebuild by the production worker, in a process of its own, so that
its peak RSS is the worker's and nothing else's.

python -m bench.refresh_child '<environment as JSON>' <remaining ms>

Builds the worker exactly as Lambda does (`refresh_worker.app.build_app` from the environment), runs one
refresh of `global` with the given remaining invocation time and prints one JSON line: the refresh's
duration and outcome, and the process's peak RSS before and after it (VmHWM).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _high_water_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str]) -> int:
    env, remaining_ms = json.loads(argv[0]), int(argv[1])
    import os

    os.environ.update(env)
    from common.logs import configure_logging
    from common.runtime import run
    from refresh_worker.app import WorkerApp, build_app

    configure_logging("WARNING")
    app = build_app()
    assert isinstance(app, WorkerApp)
    before = _high_water_mb()
    started = time.perf_counter()
    result = run(app.refresher.refresh("global", "bench", 2**62, remaining_ms))
    refresh_ms = (time.perf_counter() - started) * 1000
    peak = _high_water_mb()
    run(app.close())
    print(
        json.dumps(
            {
                "refresh_ms": round(refresh_ms, 1),
                "outcome": str(result.outcome),
                "mode": str(result.mode),
                "entries": result.entries,
                "rows_read": result.rows_read,
                "source_ms": round(result.source_ms, 1),
                "rss_peak_before_mb": round(before, 1),
                "rss_peak_mb": round(peak, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
