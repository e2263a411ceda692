"""Engines and snapshots for the benchmarks (the same engines and cache code as production and tests)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.boards import KeySpace
from common.cache import LeaderboardCache, SnapshotHeader
from common.config import ValkeySettings
from common.lock import RefreshLock
from common.models import Entry
from common.runtime import run
from common.valkey import ValkeyConnection
from testkit.engines import SqsEngine, ValkeyServer

ROOT = Path(__file__).resolve().parent.parent
_EVENT = json.loads((ROOT / "events" / "http-api-v2.json").read_text())


def entries(n: int) -> list[Entry]:
    return [
        Entry(
            i + 1,
            str(uuid.UUID(int=i + 1)),
            f"player-{i + 1}",
            10 * (n - i),
            1 + i % 50,
            "2026-11-01T10:00:00.000Z",
        )
        for i in range(n)
    ]


def api_event(path: str = "/leaderboard", query: str = "count=10") -> dict[str, Any]:
    """An HTTP API (2.0) event as API Gateway sends it, with a realistic set of headers."""
    event: dict[str, Any] = copy.deepcopy(_EVENT)
    event.pop("body", None)
    event.update(rawPath=path, rawQueryString=query, isBase64Encoded=False, queryStringParameters=None)
    event["headers"] = {
        "accept": "application/json", "accept-encoding": "gzip, deflate, br", "content-length": "0",
        "host": "abc123.execute-api.eu-west-1.amazonaws.com", "user-agent": "Mozilla/5.0 bench",
        "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678", "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443", "x-forwarded-proto": "https",
    }  # fmt: skip
    event["requestContext"]["http"].update(method="GET", path=path)
    return event


class Context:
    function_name = "bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class Snapshots:
    """Writes snapshots the way the worker does (lock, fencing version, staged swap)."""

    def __init__(self, server: ValkeyServer) -> None:
        self.connection = ValkeyConnection(
            ValkeySettings(host=server.host, port=server.port, request_timeout_ms=10_000)
        )
        self.server = server

    def write(self, prefix: str, rows: list[Entry], board: str = "global") -> int:
        keys = KeySpace(prefix)
        cache = LeaderboardCache(self.connection, keys)
        lock = RefreshLock(self.connection, keys, holder="bench")

        async def go() -> int:
            lease = await lock.acquire(board, 60_000)
            assert lease is not None
            header = SnapshotHeader(
                board, lease.version, int(time.time() * 1000), len(rows), len(rows), "bench"
            )
            await cache.write_snapshot(header, rows, staging_ttl_ms=60_000)
            await lock.release(lease)
            return lease.version

        return run(go())

    def close(self) -> None:
        run(self.connection.close())


@contextmanager
def engines() -> Iterator[tuple[ValkeyServer, SqsEngine]]:
    server = ValkeyServer().start()
    sqs = SqsEngine().start()
    try:
        yield server, sqs
    finally:
        sqs.stop()
        server.stop()
