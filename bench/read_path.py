"""P1, P1s, P1x, P2, P6, P7: the API handler's cache-hit cost against raw glide-sync GETs on the same
server, against the previous (async) handler, and with the near-cache.

The handler is measured event → response (parsing, the Valkey read, freshness, body, headers, the EMF
line written to stdout), in-process, as Lambda calls it. Its stdout goes to /dev/null meanwhile. The
near-cache is off (LEADERBOARD_NEAR_CACHE_MS=0) except for P6.

On a machine with two or more CPUs, valkey-server is pinned to one and this process (with GLIDE's I/O
threads) to another, for both sides of every ratio: on a small VM that halves the run-to-run spread.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable
from typing import Any

from api_lambda.app import ApiApp, build_app
from bench.fixtures import Context, Snapshots, api_event, engines, entries
from bench.previous import PREVIOUS, previous_handler
from bench.stats import Sample, compare, summary, time_calls
from common.config import ValkeySettings
from common.valkey_sync import SyncValkeyConnection


def _env(server: Any, queue_url: str, prefix: str, near_cache_ms: int = 0) -> dict[str, str]:
    return {
        "VALKEY_HOST": server.host,
        "VALKEY_PORT": str(server.port),
        "REFRESH_QUEUE_URL": queue_url,
        "LEADERBOARD_KEY": prefix,
        "LEADERBOARD_FRESH_SECONDS": "3600",
        "LEADERBOARD_NEAR_CACHE_MS": str(near_cache_ms),
    }


def _app(env: dict[str, str]) -> ApiApp:
    app = build_app(env)
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
        apps = {name: _app(_env(server, queue, name)) for name in ("b10k", "b100k", "b100")}
        near = _app(_env(server, queue, "b10k", near_cache_ms=60_000))
        replayed = _app(_env(server, queue, "b10k"))
        context = Context()
        hit = api_event(query="count=10")
        user = api_event(path=f"/leaderboard/users/{entries(5000)[4999].user_id}", query="around=2")
        with contextlib.redirect_stdout(io.StringIO()):  # their EMF lines, not into the table
            for app in (*apps.values(), near):  # connect every container before measuring
                app.invoke(hit, context, True)
        client = apps["b10k"].connection.client()
        client.set("bench:raw100", "x" * 100)
        # A client of its own: the client-independent limit is one glide-sync GET, whoever sends it.
        other = SyncValkeyConnection(ValkeySettings(host=server.host, port=server.port))

        devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
        try:
            with (
                contextlib.redirect_stdout(devnull),
                previous_handler(
                    _env(server, queue, "b10k"), "count=10", pinning.get("bench_cpu"), entries=10_000
                ) as old,
            ):
                subjects: dict[str, Callable[[], object]] = {
                    "raw_get": lambda: client.get("bench:raw100"),
                    "raw_lrange": lambda: client.lrange("{b10k}:top", 0, 10),
                    "sync_get": lambda: other.client().get("bench:raw100"),
                    "hit": lambda: apps["b10k"].invoke(hit, context, False),
                    "near_hit": lambda: near.invoke(hit, context, False),
                    "user_rank": lambda: apps["b10k"].invoke(user, context, False),
                }
                p1 = compare(subjects)
                previous = _interleaved_with_previous(old, lambda: apps["b10k"].invoke(hit, context, False))
                p2 = compare({"board_100": lambda: apps["b100"].invoke(hit, context, False),
                              "board_100k": lambda: apps["b100k"].invoke(hit, context, False)})  # fmt: skip
                # The hit's Python alone: a container whose reads replay the very reply the hit gets.
                replayed.connection.ready = _Replay(client.lrange("{b10k}:top", 0, 10))  # type: ignore[assignment]
                pp = compare({
                    "python_only": lambda: replayed.invoke(hit, context, False),
                    "raw_lrange": lambda: client.lrange("{b10k}:top", 0, 10),
                    "lrange_then_python": lambda: (client.lrange("{b10k}:top", 0, 10),
                                                   replayed.invoke(hit, context, False)),
                    "hit": lambda: apps["b10k"].invoke(hit, context, False),
                })  # fmt: skip
                replayed.connection.ready = None
        finally:
            devnull.close()
            for app in (*apps.values(), near, replayed):
                app.connection.close()
            other.close()
            snapshots.close()
            os.sched_setaffinity(0, everything)
    results = {
        "P1_hit_vs_raw_get": summary(
            p1["hit"].p50 / p1["raw_get"].p50,
            1.3,
            hit=p1["hit"].as_dict(),
            raw_get=p1["raw_get"].as_dict(),
            client="glide-sync (the handler's own connection)",
            board_entries=10_000,
            count=10,
            **pinning,
        ),
        # Not a target: the same read the hit makes (header + 10 entries, ~1.7 KB), sent raw. What is
        # left between it and the hit is the handler's own work.
        "P1r_hit_vs_raw_lrange": summary(
            p1["hit"].p50 / p1["raw_lrange"].p50,
            None,
            hit=p1["hit"].as_dict(),
            raw_lrange=p1["raw_lrange"].as_dict(),
            raw_lrange_vs_raw_get=round(p1["raw_lrange"].p50 / p1["raw_get"].p50, 3),
        ),
        "P1s_hit_vs_sync_get": summary(
            p1["hit"].p50 / p1["sync_get"].p50,
            1.3,
            hit=p1["hit"].as_dict(),
            sync_get=p1["sync_get"].as_dict(),
        ),
        "P2_board_size_independence": summary(
            p2["board_100k"].p50 / p2["board_100"].p50,
            1.1,
            board_100k=p2["board_100k"].as_dict(),
            board_100=p2["board_100"].as_dict(),
            count=10,
        ),
        "P6_near_hit_vs_raw_get": summary(
            p1["near_hit"].p50 / p1["sync_get"].p50,
            0.2,
            near_hit=p1["near_hit"].as_dict(),
            sync_get=p1["sync_get"].as_dict(),
        ),
        "P7_user_rank_vs_raw_get": summary(
            p1["user_rank"].p50 / p1["sync_get"].p50,
            1.5,
            user_rank=p1["user_rank"].as_dict(),
            sync_get=p1["sync_get"].as_dict(),
            around=2,
            board_entries=10_000,
        ),
    }
    python_us = pp["python_only"].p50
    after_us = pp["lrange_then_python"].p50 - pp["raw_lrange"].p50
    # Not a target: where the hit's time goes. The handler's Python with the reply replayed (no round
    # trip), and the same Python run right after a real LRANGE, as a hit runs it.
    results["P1p_hit_python_us"] = {
        "value": round(python_us, 1),
        "unit": f"us alone; {after_us:.0f} us right after the round trip ({after_us / python_us:.1f}x)",
        "python_only": pp["python_only"].as_dict(),
        "raw_lrange": pp["raw_lrange"].as_dict(),
        "lrange_then_python": pp["lrange_then_python"].as_dict(),
        "hit": pp["hit"].as_dict(),
        "hit_minus_raw_lrange_us": round(pp["hit"].p50 - pp["raw_lrange"].p50, 1),
    }
    if previous is not None:
        assert old is not None
        old_hit, new_hit = previous
        # Higher is better here: how many times faster the new handler is.
        results["P1x_vs_previous"] = {
            "ratio": round(old_hit.p50 / new_hit.p50, 3),
            "target": ">= 1.5",
            "met": old_hit.p50 / new_hit.p50 >= 1.5,
            "previous_hit": old_hit.as_dict(),
            "hit": new_hit.as_dict(),
            "previous": f"git worktree of {PREVIOUS[:12]} (main before the sync reads), in a child",
            "previous_board": old.board,
        }
    return results


class _Replay:
    """Stands in for the glide-sync client: every LRANGE answers `reply` at once."""

    def __init__(self, reply: list[bytes]) -> None:
        self._reply = reply

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        return self._reply


def _interleaved_with_previous(
    old: Any, new: Any, rounds: int = 10, per_round: int = 1000
) -> tuple[Sample, Sample] | None:
    if old is None:
        print("P1x skipped: this is not a git checkout that has the previous commit", file=sys.stderr)
        return None
    old.time(500)
    time_calls(new, 500)
    old_sample, new_sample = Sample(), Sample()
    for _ in range(rounds):
        old_sample.values.extend(old.time(per_round))
        new_sample.values.extend(time_calls(new, per_round))
    return old_sample, new_sample


if __name__ == "__main__":
    import json

    print(json.dumps(run_read_path(), indent=2), file=sys.stderr)
