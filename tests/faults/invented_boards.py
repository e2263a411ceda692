"""An API container that asks for invented challenge boards as fast as it can (R8_invented_boards;
`python -m tests.faults.invented_boards ENV_JSON COUNT [invented|global]`; `global`: the same container
reading the global board instead, the control that shows what sharing the machine's cores costs).

It runs at the lowest CPU priority: in production an attacker's requests run in other Lambda containers,
on other hosts, so its own Python must not take the measured reader's core on a 2-core test machine; what
it may load is what containers share (Valkey, SQS, the worker and the database). Prints one JSON line:
the statuses it got and how long it took.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter

from api_lambda.app import ApiApp, build_app
from common.runtime import run
from tests.support import FakeContext, http_event


def main(env: dict[str, str], count: int, mode: str = "invented") -> dict[str, object]:
    os.nice(19)
    app = build_app(env)
    assert isinstance(app, ApiApp), app
    context = FakeContext()
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    try:
        for n in range(count):
            board = f"challenge:invented-{os.getpid()}-{n}" if mode == "invented" else "global"
            event = http_event("/leaderboard", {"board": board})
            statuses[app.invoke(event, context, cold_start=False)["statusCode"]] += 1
    finally:
        run(app.close())
    return {"statuses": dict(statuses), "seconds": time.monotonic() - started}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:4])), flush=True)
