"""Harnesses for integration tests: the API app on real engines, and direct access to the cache."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from api_lambda.app import ApiApp, build_app
from common.boards import KeySpace
from common.cache import LeaderboardCache, SnapshotHeader
from common.config import ValkeySettings
from common.lock import RefreshLock
from common.models import Entry
from common.runtime import run
from common.valkey import ValkeyConnection
from devstack.engines import Queues, SqsEngine
from tests.conftest import ValkeyTarget, drain
from tests.support import FakeContext, http_event


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


@pytest.fixture
def cache_tools(valkey_engine: ValkeyTarget, key_prefix: str) -> Iterator[CacheTools]:
    tools = CacheTools(valkey_engine, key_prefix)
    yield tools
    tools.close()


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
        **extra,
    }


@pytest.fixture
def api_factory(
    valkey_engine: ValkeyTarget, key_prefix: str, queues: Queues, sqs: SqsEngine
) -> Iterator[Any]:
    """Build API apps with extra environment; every app built is closed afterwards."""
    built: list[ApiApp] = []

    def make(**extra: str) -> ApiHarness:
        env = api_env(valkey_engine, key_prefix, queues, **extra)
        app = build_app(env)
        assert isinstance(app, ApiApp), app
        built.append(app)
        return ApiHarness(app, env, queues, sqs)

    yield make
    for app in built:
        run(app.close())


@pytest.fixture
def api(api_factory: Any) -> ApiHarness:
    harness: ApiHarness = api_factory()
    return harness
