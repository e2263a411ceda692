"""P1, P2, P7: the API handler's cache-hit cost against a raw GLIDE GET on the same server and client.

The handler is measured event → response (parsing, the Valkey read, freshness, body, headers, the EMF
line written to stdout), in-process, as Lambda calls it. Its stdout goes to /dev/null meanwhile.

On a machine with two or more CPUs, valkey-server is pinned to one and this process (with GLIDE's I/O
threads) to another, for both sides of every ratio: on a small VM that halves the run-to-run spread.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from api_lambda.app import ApiApp, build_app
from bench.fixtures import Context, Snapshots, api_event, engines, entries
from bench.stats import compare, summary
from common.runtime import run


def _app(server: Any, queue_url: str, prefix: str) -> ApiApp:
    env = {"VALKEY_HOST": server.host, "VALKEY_PORT": str(server.port), "REFRESH_QUEUE_URL": queue_url}
    app = build_app({**env, "LEADERBOARD_KEY": prefix, "LEADERBOARD_FRESH_SECONDS": "3600"})
    assert isinstance(app, ApiApp)
    return app


def _pin(server_pid: int | None) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or server_pid is None:
        return {"pinned": False}
    os.sched_setaffinity(server_pid, {cpus[0]})
    os.sched_setaffinity(0, {cpus[1]})
    return {"pinned": True, "valkey_cpu": cpus[0], "bench_cpu": cpus[1]}


def run_read_path() -> dict[str, Any]:
    everything = os.sched_getaffinity(0)
    with engines() as (server, sqs):
        pinning = _pin(server.pid)
        queue = sqs.create_queues("bench-read").queue_url
        snapshots = Snapshots(server)
        snapshots.write("b10k", entries(10_000))
        snapshots.write("b100k", entries(100_000))
        snapshots.write("b100", entries(100))
        apps = {name: _app(server, queue, name) for name in ("b10k", "b100k", "b100")}
        context = Context()
        hit = api_event(query="count=10")
        user = api_event(path=f"/leaderboard/users/{entries(5000)[4999].user_id}", query="around=2")
        for app in apps.values():  # connect every container before measuring
            app.invoke(hit, context, True)
        client = run(apps["b10k"].connection.client())
        run(client.set("bench:raw100", "x" * 100))

        def raw() -> object:
            return run(client.get("bench:raw100"))

        devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
        try:
            with contextlib.redirect_stdout(devnull):
                p1 = compare({"raw_get": raw, "hit": lambda: apps["b10k"].invoke(hit, context, False)})
                p2 = compare({"board_100": lambda: apps["b100"].invoke(hit, context, False),
                              "board_100k": lambda: apps["b100k"].invoke(hit, context, False)})  # fmt: skip
                p7 = compare({"raw_get": raw, "user_rank": lambda: apps["b10k"].invoke(user, context, False)})
        finally:
            devnull.close()
            for app in apps.values():
                run(app.close())
            snapshots.close()
            os.sched_setaffinity(0, everything)
    return {
        "P1_hit_vs_raw_get": summary(
            p1["hit"].p50 / p1["raw_get"].p50,
            1.2,
            hit=p1["hit"].as_dict(),
            raw_get=p1["raw_get"].as_dict(),
            board_entries=10_000,
            count=10,
            **pinning,
        ),
        "P2_board_size_independence": summary(
            p2["board_100k"].p50 / p2["board_100"].p50,
            1.1,
            board_100k=p2["board_100k"].as_dict(),
            board_100=p2["board_100"].as_dict(),
            count=10,
        ),
        "P7_user_rank_vs_raw_get": summary(
            p7["user_rank"].p50 / p7["raw_get"].p50,
            1.3,
            user_rank=p7["user_rank"].as_dict(),
            raw_get=p7["raw_get"].as_dict(),
            around=2,
            board_entries=10_000,
        ),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_read_path(), indent=2), file=sys.stderr)
