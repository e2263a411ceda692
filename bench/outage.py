"""R1b: Valkey hangs (SIGSTOP) for 15 s while one warm API container keeps serving pages it served just
before: the share answered 200 (the near-cache first, then each page's last copy: stale-if-error).

Default settings of the API (near-cache 1000 ms, request timeout 250 ms, stale-if-error one day); the
loop asks for 10 pages in turn, as fast as they are answered.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from typing import Any

from bench.fixtures import Context, Snapshots, api_event, engines, entries
from bench.read_path import _app
from bench.stats import Sample

OUTAGE_SECONDS = 15.0


def run_outage() -> dict[str, Any]:
    with engines() as (server, sqs):
        queue = sqs.create_queues("bench-outage").queue_url
        snapshots = Snapshots(server)
        snapshots.write("outage", entries(10_000))
        snapshots.close()
        app = _app({"VALKEY_HOST": server.host, "VALKEY_PORT": str(server.port), "REFRESH_QUEUE_URL": queue,
                    "LEADERBOARD_KEY": "outage"})  # fmt: skip
        context = Context()
        pages = [api_event(query=f"count=10&offset={10 * i}") for i in range(10)]
        statuses: Counter[str] = Counter()
        latency = Sample()
        devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
        try:
            with contextlib.redirect_stdout(devnull):
                for event in pages:  # recently served
                    assert app.invoke(event, context, True)["statusCode"] == 200
                server.pause()
                try:
                    until = time.monotonic() + OUTAGE_SECONDS
                    i = 0
                    while time.monotonic() < until:
                        started = time.perf_counter_ns()
                        response = app.invoke(pages[i % len(pages)], context, False)
                        latency.values.append((time.perf_counter_ns() - started) / 1000)
                        statuses[f"{response['statusCode']} {response['headers'].get('X-Cache', '-')}"] += 1
                        i += 1
                finally:
                    server.resume()
        finally:
            devnull.close()
            app.connection.close()
    answered = sum(n for status, n in statuses.items() if status.startswith("200"))
    share = answered / max(1, sum(statuses.values()))
    return {
        "R1b_outage_served": {
            "ratio": round(share, 4),
            "target": ">= 0.99",
            "met": share >= 0.99,
            "requests": sum(statuses.values()),
            "statuses": dict(statuses),
            "latency": {**latency.as_dict(), "max_us": round(max(latency.values), 1)},
            "outage_seconds": OUTAGE_SECONDS,
        }
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_outage(), indent=2))
