"""P9: friends' ranks, `GET /leaderboard/users?ids=<100 ids>`, against a raw glide-sync GET.

Measured as bench/read_path.py measures P1 and P7: the handler event → response, in-process, near-cache
off, stdout to /dev/null, valkey-server and this process pinned to separate CPUs, interleaved with the
raw GET of 100 bytes on the handler's own connection (the same client, the same run). The 100 ids are
spread over a 10,000-player board in tie groups of 3 and asked for in a scrambled order, so the script
sorts them and computes a rank per tie group, as for any real friend list.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

from bench.fixtures import Context, Snapshots, api_event, engines, entries
from bench.read_path import _app, _env, _pin
from bench.stats import compare, summary
from common.snapshot import scripts
from common.valkey_sync import sync_lua

BOARD = 10_000
FRIENDS = 100


def _friend_ids() -> list[str]:
    # 3737 is coprime to BOARD: 100 distinct players from the top to the bottom of the board
    return [str(uuid.UUID(int=(n * 3737) % BOARD + 1)) for n in range(FRIENDS)]


def run_friends() -> dict[str, Any]:
    everything = os.sched_getaffinity(0)
    with engines() as (server, sqs):
        pinning = _pin(server.pid)
        queue = sqs.create_queues("bench-friends").queue_url
        snapshots = Snapshots(server)
        rows = entries(BOARD)
        rows = [e._replace(score=10 * (BOARD - i // 3 * 3)) for i, e in enumerate(rows)]  # ties of 3
        snapshots.write("f10k", rows)
        app = _app(_env(server, queue, "f10k"))
        context = Context()
        friends = api_event(path="/leaderboard/users", query="ids=" + ",".join(_friend_ids()))
        response = app.invoke(friends, context, True)  # connect before measuring, and check the answer
        assert response["statusCode"] == 200 and response["body"].count('"rank"') == FRIENDS, response
        client = app.connection.client()
        client.set("bench:raw100", "x" * 100)
        script = sync_lua(scripts.READ_USERS.source)
        keys, joined = scripts.READ_USERS.key_list(app.cache.keys("global")), "\n".join(_friend_ids())
        devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
        try:
            with contextlib.redirect_stdout(devnull):
                subjects: dict[str, Callable[[], object]] = {
                    "raw_get": lambda: client.get("bench:raw100"),
                    "friends_100": lambda: app.invoke(friends, context, False),
                    "script_100": lambda: client.invoke_script(script, keys, [joined]),
                }
                p9 = compare(subjects)
        finally:
            devnull.close()
            app.connection.close()
            snapshots.close()
            os.sched_setaffinity(0, everything)
    return {
        "P9_friends_100_vs_raw_get": summary(
            p9["friends_100"].p50 / p9["raw_get"].p50,
            2.5,
            friends_100=p9["friends_100"].as_dict(),
            raw_get=p9["raw_get"].as_dict(),
            # Not a target: READ_USERS alone on the same client; what is left is the handler's work.
            script_100=p9["script_100"].as_dict(),
            script_vs_raw_get=round(p9["script_100"].p50 / p9["raw_get"].p50, 3),
            client="glide-sync (the handler's own connection)",
            board_entries=BOARD,
            ids=FRIENDS,
            body_bytes=len(response["body"]),
            **pinning,
        ),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_friends(), indent=2), file=sys.stderr)
