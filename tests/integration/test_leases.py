"""The refresh lock as a renewed lease, on real Valkey: compare-and-renew by token, staged keys renewed
with it, and a heartbeat that keeps a live worker's lease while a dead one's lapses."""

from __future__ import annotations

import asyncio
import time

from common.runtime import run
from refresh_worker.heartbeat import Heartbeat, LeaseLost
from tests.harness import CacheTools


def test_a_renewal_extends_only_our_own_lease_and_its_staging_keys(cache_tools: CacheTools) -> None:
    # Given a lease of 1 s and its staged keys
    lease = run(cache_tools.lock.acquire("global", 1_000))
    assert lease is not None
    keys = cache_tools.keys("global")
    staging, staging_entries = keys.staging(lease.version)
    cache_tools.command("SET", staging, "x", "PX", "500")
    cache_tools.command("SET", staging_entries, "x", "PX", "500")
    # When its holder renews it
    assert run(cache_tools.lock.renew(lease, 5_000)) is True
    # Then the lock has its whole TTL again, and the staged keys the staging TTL
    assert 900 <= int(cache_tools.command("PTTL", keys.lock)) <= 1_000
    assert int(cache_tools.command("PTTL", staging)) > 4_000
    assert int(cache_tools.command("PTTL", staging_entries)) > 4_000
    # and once another worker holds the lock, the old lease cannot renew it
    cache_tools.command("DEL", keys.lock)
    other = run(cache_tools.lock.acquire("global", 1_000))
    assert other is not None
    assert run(cache_tools.lock.renew(lease, 5_000)) is False
    assert cache_tools.command("GET", keys.lock).decode() == other.token


def test_a_heartbeat_keeps_a_short_lease_alive_for_many_ttls(cache_tools: CacheTools) -> None:
    lease = run(cache_tools.lock.acquire("global", 1_000))
    assert lease is not None

    async def work() -> int:
        async with Heartbeat(cache_tools.lock, lease) as heartbeat:
            await asyncio.sleep(2.5)  # 2.5 TTLs
            heartbeat.check()  # does not raise
            return heartbeat.renewals

    assert run(work()) >= 5
    assert cache_tools.command("GET", cache_tools.keys("global").lock).decode() == lease.token


def test_a_lease_taken_by_another_worker_is_known_lost_before_the_write(cache_tools: CacheTools) -> None:
    lease = run(cache_tools.lock.acquire("global", 1_000))
    assert lease is not None
    # (its lock lapsed and another worker took it)
    cache_tools.command("SET", cache_tools.keys("global").lock, "someone-else", "PX", "5000")

    async def work() -> str:
        async with Heartbeat(cache_tools.lock, lease) as heartbeat:
            await asyncio.sleep(0.5)  # one renewal (every 333 ms) finds the other token
            try:
                heartbeat.check()
            except LeaseLost as exc:
                return str(exc)
            return "not lost"

    assert "lost" in run(work())


def test_an_unconfirmed_lease_counts_as_lost_after_one_ttl(cache_tools: CacheTools) -> None:
    # A worker whose event loop was blocked (a frozen container) cannot know whether its lease lapsed
    lease = run(cache_tools.lock.acquire("global", 1_000))
    assert lease is not None

    async def work() -> bool:
        async with Heartbeat(cache_tools.lock, lease) as heartbeat:
            time.sleep(1.1)  # noqa: ASYNC251 - blocking the loop is the point: no renewal can run
            try:
                heartbeat.check()
            except LeaseLost:
                return True
            return False

    assert run(work()) is True
