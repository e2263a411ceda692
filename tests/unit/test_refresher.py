"""The refresher's decisions on fakes: the time budget, the lease (TTL, loss before the write), delta or
rebuild and why, paging, retries inside the deadline. The scripts that do the writing are tested on real
Valkey (tests/integration/test_delta_refresh.py, test_leases.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from common.cache import Applied
from common.config import WorkerSettings
from common.errors import SourceUnavailable
from common.snapshot import SnapshotHeader
from common.timeutil import now_ms
from refresh_worker.refresher import Mode, NotEnoughTime, Outcome, Refresher, RefreshResult
from tests.fakes import FakeBoardStore, FakeLock, FakeSource, ranked

SETTINGS = WorkerSettings.from_env({"VALKEY_HOST": "fake", "DATABASE_URL": "postgresql://db/x"})
LONG = 60_000  # ms left in the invocation


def settings(**changes: Any) -> WorkerSettings:
    source = replace(SETTINGS.source, page_size=changes.pop("page_size", SETTINGS.source.page_size))
    fast = {"retry_base_ms": 1, "retry_max_ms": 2}
    return replace(SETTINGS, source=source, **(fast | changes))


class World:
    def __init__(self, **changes: Any) -> None:
        self.store = FakeBoardStore()
        self.lock = FakeLock()
        self.source = FakeSource()
        self.settings = settings(**changes)

    def refresher(self) -> Refresher:
        return Refresher(self.settings, self.store, self.lock, self.source)

    def refresh(
        self, board: str = "global", *, requested_at_ms: int | None = None, remaining_ms: int = LONG
    ) -> RefreshResult:
        asked = now_ms() if requested_at_ms is None else requested_at_ms
        return asyncio.run(self.refresher().refresh(board, "stale", asked, remaining_ms))

    def stored(
        self, position: int | None = 0, *, rebuilt_ago_ms: int = 0, source: str = "fake", version: int = 1
    ) -> None:
        """A snapshot from a minute ago, at feed `position`."""
        now = now_ms()
        header = SnapshotHeader("global", version, now - 60_000, 3, 3, source, position, now - rebuilt_ago_ms)
        self.store.put(header, ranked(3))


# ---- the time budget and the lease -------------------------------------------------------------------


def test_too_little_time_left_is_refused_before_taking_the_lock() -> None:
    world = World(min_remaining_ms=5_000)
    with pytest.raises(NotEnoughTime):
        world.refresh(remaining_ms=5_500)  # 1 s safety margin leaves 4.5 s
    assert world.lock.acquired == []


def test_the_lease_is_no_longer_than_the_invocation_has_left() -> None:
    world = World(lock_ttl_ms=10_000, min_remaining_ms=1_000)
    world.source.boards["global"] = ranked(3)
    world.refresh(remaining_ms=4_000)
    # (asked after that snapshot was made: otherwise it already satisfies the request)
    world.refresh(requested_at_ms=now_ms() + 1_000, remaining_ms=LONG)
    assert [ttl for _, ttl in world.lock.acquired] == [3_000, 10_000]


def test_a_locked_board_is_left_to_its_holder() -> None:
    world = World()
    world.lock.steal("global")
    assert world.refresh().outcome is Outcome.LOCKED
    assert world.source.calls == []


def test_a_snapshot_newer_than_the_request_needs_no_refresh_and_no_lock() -> None:
    world = World()
    world.stored()
    result = world.refresh(requested_at_ms=now_ms() - 120_000)
    assert result.outcome is Outcome.ALREADY_FRESH
    assert world.lock.acquired == []


def test_a_lease_lost_during_the_fetch_ends_the_refresh_before_the_write() -> None:
    # Given a 90 ms lease (renewed every 30 ms) and a slow source
    world = World(lock_ttl_ms=90)
    world.source.boards["global"] = ranked(3)
    world.source.delay = 0.1
    # When another worker takes the lock meanwhile

    async def steal_soon() -> RefreshResult:
        task = asyncio.ensure_future(world.refresher().refresh("global", "stale", now_ms(), LONG))
        await asyncio.sleep(0.01)
        world.lock.steal("global")
        return await task

    result = asyncio.run(steal_soon())
    # Then nothing was written (staged keys expire by themselves), and the lock is not released (not ours)
    assert result.outcome is Outcome.LEASE_LOST
    assert world.store.commits == 0
    assert world.lock.held["global"] == "another-worker"


def test_the_lock_is_released_after_the_refresh_and_after_a_failure() -> None:
    world = World(retry_attempts=1)
    world.source.boards["global"] = ranked(3)
    world.refresh()
    assert world.lock.held == {}
    world = World(retry_attempts=1)
    world.source.fail_next = 1
    with pytest.raises(SourceUnavailable):
        world.refresh()
    assert world.lock.held == {}
    assert world.store.discarded  # the failed rebuild's staging is dropped


# ---- delta or rebuild ----------------------------------------------------------------------------


def test_the_first_fill_is_a_rebuild_paged_through_the_source() -> None:
    world = World(page_size=4)
    world.source.boards["global"] = ranked(10)
    result = world.refresh()
    assert (result.outcome, result.mode, result.rebuild_reason) == (
        Outcome.REFRESHED,
        Mode.REBUILD,
        "no_snapshot",
    )
    assert result.entries == 10
    assert world.source.calls.count("page") == 3  # 4 + 4 + 2, the last one says it is the end
    assert len(world.store.boards["global"].players) == 10


def test_a_snapshot_with_a_usable_position_gets_a_delta() -> None:
    # Given a snapshot at feed position 0 and two changes since
    world = World()
    world.stored(position=0)
    world.source.boards["global"] = ranked(3)
    world.source.change("global", ranked(4)[3])
    world.source.change("global", None, user_id="u00001")
    # When refreshed
    result = world.refresh()
    # Then only the changes were read and applied
    assert (result.mode, result.changes, result.rows_read) == (Mode.DELTA, 2, 2)
    assert sorted(world.store.boards["global"].players) == ["u00002", "u00003", "u00004"]
    assert world.store.boards["global"].header.position == 2
    assert world.source.calls.count("page") == 0


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (lambda w: w.stored(position=None), "position_unknown"),
        (lambda w: w.stored(source="other"), "source_changed"),
        (lambda w: w.stored(rebuilt_ago_ms=7_200_000), "periodic"),
        (lambda w: (w.stored(), setattr(w.source, "has_feed", False)), "no_feed"),
    ],
)
def test_a_rebuild_says_why(arrange: Any, reason: str) -> None:
    world = World()
    world.source.boards["global"] = ranked(3)
    arrange(world)
    result = world.refresh()
    assert (result.mode, result.rebuild_reason) == (Mode.REBUILD, reason)


def test_too_many_changes_for_a_delta_is_a_rebuild() -> None:
    world = World(delta_max_rows=2)
    world.stored()
    world.source.boards["global"] = ranked(3)
    for entry in ranked(3):
        world.source.change("global", entry)
    assert world.refresh().rebuild_reason == "too_many_changes"


def test_a_position_the_feed_no_longer_covers_forces_a_rebuild() -> None:
    # Given the feed pruned past the stored position
    world = World()
    world.stored(position=1)
    world.source.boards["global"] = ranked(3)
    world.source.horizon = 5
    # Then the rebuild may replace even a snapshot at a later position (a restored database)
    result = world.refresh()
    assert (result.outcome, result.rebuild_reason) == (Outcome.REFRESHED, "position_lost")


@pytest.mark.parametrize(
    ("applied", "reason"), [(Applied.NO_SNAPSHOT, "no_snapshot"), (Applied.MOVED, "position_moved")]
)
def test_a_delta_the_store_cannot_apply_turns_into_a_rebuild(applied: Applied, reason: str) -> None:
    world = World()
    world.stored()
    world.source.boards["global"] = ranked(3)
    world.store.apply_result = applied
    result = world.refresh()
    assert (result.mode, result.rebuild_reason, result.outcome) == (Mode.REBUILD, reason, Outcome.REFRESHED)


def test_a_newer_snapshot_stored_meanwhile_supersedes_the_write() -> None:
    world = World()
    world.stored(position=None, version=10**9)  # a later worker's fencing version
    world.source.boards["global"] = ranked(3)
    assert world.refresh().outcome is Outcome.SUPERSEDED


def test_a_challenge_nobody_submitted_to_is_recorded_absent() -> None:
    world = World()
    result = world.refresh("challenge:nobody")
    assert result.outcome is Outcome.ABSENT
    assert world.store.absent == {"challenge:nobody": SETTINGS.boards.fresh_seconds * 1000}
    assert world.store.commits == 0


# ---- retries inside the deadline ---------------------------------------------------------------------


def test_transient_source_failures_are_retried_and_counted() -> None:
    world = World(retry_attempts=5)
    world.source.boards["global"] = ranked(3)
    world.source.fail_next = 2
    result = world.refresh()
    assert result.outcome is Outcome.REFRESHED
    # the feed head (fails twice, then answers), one page, the catch-up from the head
    assert result.attempts == 5
    assert world.source.calls == ["changes", "changes", "changes", "page", "changes"]


def test_retries_stop_at_the_attempt_limit() -> None:
    world = World(retry_attempts=3)
    world.source.fail_next = 10
    with pytest.raises(SourceUnavailable):
        world.refresh()
    assert len(world.source.calls) == 3


def test_retries_stop_before_a_wait_would_cross_the_deadline() -> None:
    # Given 1 s of work (a quarter kept for the write) and waits of up to 2 s between attempts
    world = World(deadline_ms=1_000, retry_attempts=50, retry_base_ms=2_000, retry_max_ms=2_000)
    world.source.fail_next = 50
    # Then the refresh gives up well before 50 attempts, within its deadline
    with pytest.raises(SourceUnavailable):
        world.refresh()
    assert len(world.source.calls) < 5


def test_a_source_call_is_cut_off_at_the_deadline() -> None:
    world = World(deadline_ms=1_000, retry_attempts=1)
    world.source.delay = 5
    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        with pytest.raises(SourceUnavailable, match="deadline"):
            loop.run_until_complete(world.refresher().refresh("global", "stale", now_ms(), LONG))
        assert loop.time() - started < 1.5
    finally:
        loop.close()
