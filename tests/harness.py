"""Harnesses shared by the integration, fault and e2e tests: the API app on real engines, and direct
access to the cache with the same code the worker uses."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api_lambda.app import ApiApp
from common.boards import KeySpace
from common.cache import LeaderboardCache, SnapshotHeader
from common.config import ValkeySettings
from common.lock import RefreshLock
from common.models import Entry
from common.runtime import run
from common.valkey import ValkeyConnection
from testkit.engines import Queues, SqsEngine
from tests.support import FakeContext, http_event


@dataclass(frozen=True)
class ValkeyTarget:
    """Where a test's cache lives: host, port, topology."""

    host: str
    port: int
    cluster: bool

    @property
    def name(self) -> str:
        return "cluster" if self.cluster else "standalone"

    def env(self) -> dict[str, str]:
        return {
            "VALKEY_HOST": self.host,
            "VALKEY_PORT": str(self.port),
            "VALKEY_CLUSTER_MODE": "true" if self.cluster else "false",
        }


def drain(sqs_engine: SqsEngine, queue_url: str, *, wait: int = 0) -> list[dict[str, Any]]:
    """Receive (and delete) every message now in a queue."""
    client = sqs_engine.client()
    messages: list[dict[str, Any]] = []
    while True:
        reply = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, AttributeNames=["All"]
        )
        batch = reply.get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)


class CacheTools:
    """Write and inspect snapshots directly, with the same code the worker uses."""

    def __init__(self, target: ValkeyTarget, prefix: str) -> None:
        self.target = target
        self.prefix = prefix
        self.connection = ValkeyConnection(
            ValkeySettings(
                host=target.host, port=target.port, cluster_mode=target.cluster, request_timeout_ms=5000
            )
        )
        self.keys = KeySpace(prefix)
        self.cache = LeaderboardCache(self.connection, self.keys)
        self.lock = RefreshLock(self.connection, self.keys, holder="test")

    def write(
        self,
        entries: Sequence[Entry],
        *,
        board: str = "global",
        age_seconds: float = 0,
        total: int | None = None,
    ) -> int:
        """Store a snapshot as a worker would (lock, fenced swap); returns its version."""
        return run(self.write_async(entries, board=board, age_seconds=age_seconds, total=total))

    async def write_async(
        self,
        entries: Sequence[Entry],
        *,
        board: str = "global",
        age_seconds: float = 0,
        total: int | None = None,
    ) -> int:
        lease = await self.lock.acquire(board, 10_000)
        assert lease is not None, "the lock is held"
        header = SnapshotHeader(
            board=board,
            version=lease.version,
            generated_at_ms=int((time.time() - age_seconds) * 1000),
            total=len(entries) if total is None else total,
            size=len(entries),
            source="test",
        )
        try:
            assert await self.cache.write_snapshot(header, entries, staging_ttl_ms=10_000)
        finally:
            await self.lock.release(lease)
        return lease.version

    def command(self, *args: str) -> Any:
        async def go() -> Any:
            client = await self.connection.client()
            return await client.custom_command(list(args))

        return run(go())

    def exists(self, key: str) -> bool:
        return bool(self.command("EXISTS", key))

    def close(self) -> None:
        run(self.connection.close())


@dataclass
class ApiHarness:
    app: ApiApp
    env: dict[str, str]
    queues: Queues
    sqs: SqsEngine
    context: FakeContext = field(default_factory=FakeContext)

    def get(
        self,
        path: str = "/leaderboard",
        query: Mapping[str, str | list[str]] | str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return self.app.invoke(http_event(path, query, **kwargs), self.context, cold_start=False)

    def messages(self, wait: int = 0) -> list[dict[str, Any]]:
        """The refresh requests sent so far (consumed)."""
        return [json.loads(m["Body"]) for m in drain(self.sqs, self.queues.queue_url, wait=wait)]


def api_env(target: ValkeyTarget, prefix: str, queues: Queues, **extra: str) -> dict[str, str]:
    return {
        **target.env(),
        "LEADERBOARD_KEY": prefix,
        "REFRESH_QUEUE_URL": queues.queue_url,
        "LEADERBOARD_MISS_WAIT_MS": "500",
        # Read-path tests see every write at once; tests of the near-cache turn it on themselves.
        "LEADERBOARD_NEAR_CACHE_MS": "0",
        **extra,
    }
