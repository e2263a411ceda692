"""R3 and R4: workers that die mid-refresh, and races between slow and fast workers.

Fencing is what makes these safe: the snapshot swap accepts a write only if its version (taken with the
lock) is newer than the stored one, and readers only ever see a whole snapshot (a RENAME of staged keys).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from common.cache import SnapshotHeader, Swap
from common.config import WorkerSettings
from common.errors import SourceError
from common.models import Entry
from common.runtime import run
from common.sources import ChangePage, Cursor, SourcePage
from refresh_worker.refresher import Outcome, Refresher
from testkit.engines import PostgresEngine
from tests.harness import CacheTools, ValkeyTarget
from tests.integration.test_worker import FrozenRenewals
from tests.support import make_entries

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def seed(postgres: PostgresEngine, players: int) -> None:
    postgres.psql("truncate challenge_results, challenge_best, leaderboard_totals restart identity;")
    postgres.psql(
        "insert into challenge_results (user_id, username, challenge_id, score, submitted_at) "
        "select ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 'p' || g, 'a', "
        "100000 - g, now() "
        f"from generate_series(1, {players}) g;"
    )


def start_worker(env: dict[str, str], mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.worker_process", json.dumps(env), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def worker_env(target: ValkeyTarget, prefix: str, postgres: PostgresEngine, **extra: str) -> dict[str, str]:
    return {**target.env(), "LEADERBOARD_KEY": prefix, "DATABASE_URL": postgres.uri, **extra}


@pytest.mark.parametrize("when", ["before-write", "during-write"])
def test_a_worker_killed_mid_refresh_leaves_the_old_snapshot_whole(
    valkey_engine: ValkeyTarget, key_prefix: str, postgres: PostgresEngine, cache_tools: CacheTools, when: str
) -> None:
    # Given an old snapshot, and a worker with a 3 s lock refreshing a 20,000-player board in small chunks
    seed(postgres, 20_000)
    old_version = cache_tools.write(make_entries(10), age_seconds=300)
    env = worker_env(valkey_engine, key_prefix, postgres, LEADERBOARD_SIZE="0", CACHE_WRITE_CHUNK="100",
                     REFRESH_LOCK_TTL_MS="3000", REFRESH_MIN_REMAINING_MS="0")  # fmt: skip
    keys = cache_tools.keys("global")
    process = start_worker(env, "before-write" if when == "before-write" else "normal")
    try:
        # When it is killed just before the swap (everything staged), or while it stages the new snapshot
        if when == "during-write":
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not cache_tools.command("KEYS", keys.tag + ":staging:*"):
                time.sleep(0.005)
            assert cache_tools.command("KEYS", keys.tag + ":staging:*"), "the worker never started staging"
            process.kill()
        process.wait(30)
        output = process.stdout.read() if process.stdout else ""
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -9, output
    # Then readers still see the old snapshot, whole
    page = run(cache_tools.cache.read_page("global", 0, 100))
    assert page is not None
    assert page.header.version == old_version
    assert len(page.entries) == page.header.size == 10
    # and the dead worker's lock and staged data expire by themselves
    assert cache_tools.exists(keys.lock)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and (
        cache_tools.exists(keys.lock) or cache_tools.command("KEYS", keys.tag + ":staging*")
    ):
        time.sleep(0.1)
    assert not cache_tools.exists(keys.lock)
    assert cache_tools.command("KEYS", keys.tag + ":staging*") == []
    # and the next worker refreshes
    process = start_worker({**env, "CACHE_WRITE_CHUNK": "1000"}, "normal")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert '"batchItemFailures": []' in output
    header = run(cache_tools.cache.read_header("global"))
    assert header is not None
    assert header.version > old_version
    assert header.size == 20_000


class TaggedSource:
    """An in-memory source (a small fake behind our Source interface): each fetch returns a board whose
    every entry carries the fetch's number, after a random delay."""

    name = "race"
    has_feed = False  # every refresh is a full rebuild: many fenced swaps

    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.size = size
        self.fetches = 0

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        self.fetches += 1
        tag = self.fetches
        await asyncio.sleep(self.rng.choice([0, 0, 0, 0.001, 0.004, 0.015]))
        entries = [e._replace(username=f"f{tag}") for e in make_entries(self.size)]
        return SourcePage(entries=entries[:limit], total=self.size, cursor=None)

    async def fetch_changes(self, board: str, after: int | None, limit: int, **_: Any) -> ChangePage:
        raise SourceError("no change feed")

    async def close(self) -> None:
        return None


class SlowWrites:
    """The real cache, with a random pause before each write: some writes land after their lock expired."""

    def __init__(self, inner: Any, rng: random.Random) -> None:
        self.inner = inner
        self.rng = rng

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def stage_entries(self, board: str, version: int, entries: Sequence[Entry], **_: Any) -> Any:
        await asyncio.sleep(self.rng.choice([0, 0, 0, 0.001, 0.01, 0.03]))
        return await self.inner.stage_entries(board, version, entries, ttl_ms=5000)

    async def commit(self, header: SnapshotHeader, swap: Swap) -> bool:
        await asyncio.sleep(self.rng.choice([0, 0, 0, 0.001, 0.01, 0.03]))
        return await self.inner.commit(header, swap)  # type: ignore[no-any-return]


def test_fencing_under_1000_random_interleavings(
    valkey_engine: ValkeyTarget, key_prefix: str, cache_tools: CacheTools
) -> None:
    rng = random.Random(20261129)
    base = WorkerSettings.from_env({**valkey_engine.env(), "LEADERBOARD_KEY": key_prefix,
                                    "LEADERBOARD_API_URL": "http://unused.invalid/"})  # fmt: skip
    source = TaggedSource(rng, size=40)
    store = SlowWrites(cache_tools.cache, rng)
    outcomes: dict[str, int] = {}
    observed: list[int] = []
    stop = asyncio.Event()

    async def worker() -> None:
        # Until 1000 refreshes have held the lock (attempts that find it taken don't count)
        while sum(v for k, v in outcomes.items() if k != str(Outcome.LOCKED)) < 1000:
            # lock TTLs from "shorter than the slowest write" to "comfortable", never renewed (stalled
            # workers), so that leases really lapse mid-refresh
            settings = replace(base, lock_ttl_ms=rng.choice([10, 20, 40, 200]), min_remaining_ms=0)
            refresher = Refresher(settings, store, FrozenRenewals(cache_tools.lock), source)
            try:
                result = await refresher.refresh("global", "stale", 2**62, 60_000)
                outcome = str(result.outcome)
            except Exception as exc:
                outcome = type(exc).__name__
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            await asyncio.sleep(rng.random() * (0.01 if outcome == str(Outcome.LOCKED) else 0.002))

    async def observer() -> None:
        while not stop.is_set():
            page = await cache_tools.cache.read_page("global", 0, 40)
            if page is not None:
                # every stored snapshot is internally consistent: one fetch's entries, all of them
                tags = {json.loads(e)["username"] for e in page.entries}
                assert len(tags) == 1, tags
                assert len(page.entries) == page.header.size == 40
                assert not observed or page.header.version >= observed[-1], "the version went backwards"
                observed.append(page.header.version)
            await asyncio.sleep(0.001)

    async def scenario() -> None:
        watcher = asyncio.ensure_future(observer())
        await asyncio.gather(*(worker() for _ in range(20)))
        stop.set()
        await watcher

    run(scenario())
    leased = sum(v for k, v in outcomes.items() if k != str(Outcome.LOCKED))
    assert leased >= 1000
    assert outcomes.get(str(Outcome.REFRESHED), 0) > 100, outcomes
    assert outcomes.get(str(Outcome.SUPERSEDED), 0) > 0, outcomes  # late writers really were refused
    assert outcomes.get(str(Outcome.LOCKED), 0) > 0, outcomes
    assert len(set(observed)) > 20
