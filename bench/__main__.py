"""`make bench`: run every benchmark, print one table, write bench/results.json.

python -m bench                 # everything (about 5-10 minutes on 2 cores)
python -m bench read cold       # some groups: clients, read, friends, outage, cold, stampede, refresh, http,
                                # periods
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.clients import run_clients
from bench.cold_start import run_cold_start
from bench.friends import run_friends
from bench.http import run_http
from bench.outage import run_outage
from bench.periods import run_periods
from bench.read_path import run_read_path
from bench.refresh import run_refresh
from bench.stampede import run_stampede

RESULTS = Path(__file__).resolve().parent / "results.json"
GROUPS: dict[str, Callable[[], dict[str, Any]]] = {
    "clients": run_clients,
    "read": run_read_path,
    "friends": run_friends,
    "outage": run_outage,
    "cold": run_cold_start,
    "stampede": run_stampede,
    "refresh": run_refresh,
    "http": run_http,
    "periods": run_periods,
}


def _figure(result: dict[str, Any]) -> str:
    if "ratio" in result and "target" in result:
        verdict = "met" if result["met"] else "NOT MET"
        target = result["target"]
        bound = target if isinstance(target, str) else f"<= {target}"
        return f"{result['ratio']:.3f}  (target {bound}: {verdict})"
    if "value" in result:
        return f"{result['value']} {result.get('unit', '')}".strip()
    return f"{result.get('ratio', '')}"


def main(argv: list[str]) -> int:
    from common.logs import configure_logging

    configure_logging("WARNING")  # the functions' info lines (one per refresh) would bury the table
    chosen = argv or list(GROUPS)
    unknown = [name for name in chosen if name not in GROUPS]
    if unknown:
        print(
            f"unknown benchmark group(s): {', '.join(unknown)}; choose from {', '.join(GROUPS)}",
            file=sys.stderr,
        )
        return 2
    results: dict[str, Any] = {}
    started = time.monotonic()
    for name in chosen:
        group_start = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.update(GROUPS[name]())
        print(f"  {name} took {time.monotonic() - group_start:.0f} s", file=sys.stderr, flush=True)
    results["_meta"] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "seconds": round(time.monotonic() - started, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() and argv else {}
    RESULTS.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    width = max(len(k) for k in results)
    print()
    print(f"{'key':{width}}  result")
    for key, value in results.items():
        if not key.startswith("_"):
            print(f"{key:{width}}  {_figure(value)}")
    print(
        f"\nraw figures: {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
