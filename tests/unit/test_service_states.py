"""The read path's states on fakes: HIT, STALE with one refresh request, MISS (wait, fill, timeout), an
unknown board, warming up, a snapshot too old, and stale-on-error."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from api_lambda.service import (
    HIT,
    MISS,
    STALE,
    LeaderboardService,
    SnapshotTooOld,
    UnknownBoard,
    UserNotRanked,
    WarmingUp,
)
from common.config import ApiSettings
from common.errors import CacheUnavailable
from tests.fakes import FakeMetrics, FakeRefreshSender, FakeSnapshotStore, ranked

SETTINGS = ApiSettings.from_env({"VALKEY_HOST": "fake", "REFRESH_QUEUE_URL": "https://sqs.example/1/q"})


class Steps:
    """A `sleep` for the miss wait that records its steps instead of waiting them all."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        time.sleep(min(seconds, 0.001))


def given(
    store: FakeSnapshotStore, **settings: Any
) -> tuple[LeaderboardService, FakeRefreshSender, FakeMetrics, Steps]:
    queue, metrics, steps = FakeRefreshSender(), FakeMetrics(), Steps()
    defaults: dict[str, Any] = {"near_cache_ms": 0}
    service = LeaderboardService(
        replace(SETTINGS, **(defaults | settings)), store, queue, metrics, sleep=steps
    )
    return service, queue, metrics, steps


def test_a_fresh_snapshot_is_a_hit_and_asks_for_nothing() -> None:
    # Given a snapshot 10 s old (fresh for 60 s)
    store = FakeSnapshotStore()
    store.put("global", ranked(30), age_seconds=10)
    service, queue, _, _ = given(store)
    # When the second page of 10 is asked for
    view = service.page("global", 10, 10)
    # Then it is served from the snapshot, as a HIT, with its age
    assert view.cache_status == HIT
    assert (view.offset, len(view.entries)) == (10, 10)
    assert 10 <= view.age_seconds < 12
    assert queue.sent == []
    assert store.markers == {}


def test_a_stale_snapshot_is_served_at_once_and_one_refresh_is_requested() -> None:
    # Given a snapshot 90 s old
    store = FakeSnapshotStore()
    store.put("global", ranked(5), age_seconds=90)
    service, queue, metrics, _ = given(store)
    # When many readers see it stale
    views = [service.page("global", 0, 5) for _ in range(5)]
    # Then every one is served STALE, and only the first sends a refresh request (the marker holds)
    assert {v.cache_status for v in views} == {STALE}
    assert [(r.board, r.reason) for r in queue.sent] == [("global", "stale")]
    assert metrics.values["RefreshRequests"] == 1


def test_a_failed_refresh_request_clears_its_marker_so_the_next_reader_tries_again() -> None:
    store = FakeSnapshotStore()
    store.put("global", ranked(5), age_seconds=90)
    service, queue, _, _ = given(store)
    # Given SQS down: the reader is still served, and its marker is removed
    queue.down = True
    assert service.page("global", 0, 5).cache_status == STALE
    assert store.markers == {}
    # When SQS is back, Then the next stale read sends the request
    queue.down = False
    service.page("global", 0, 5)
    assert [r.reason for r in queue.sent] == ["stale"]


def test_a_miss_requests_a_refresh_and_serves_what_the_worker_fills() -> None:
    # Given no snapshot, and a worker that fills the board by the third read
    store = FakeSnapshotStore()
    store.fill_after_reads["global"] = (3, ranked(4))
    service, queue, _, steps = given(store, miss_wait_ms=2_000)
    # When a reader asks
    view = service.page("global", 0, 10)
    # Then it waited (polling, growing steps), and is served the new snapshot as a MISS
    assert view.cache_status == MISS
    assert len(view.entries) == 4
    assert [r.reason for r in queue.sent] == ["miss"]
    assert steps.slept[0] == pytest.approx(0.02)
    assert steps.slept == sorted(steps.slept)


def test_a_miss_that_is_not_filled_in_time_is_warming_up() -> None:
    store = FakeSnapshotStore()
    service, queue, _, _ = given(store, miss_wait_ms=50)
    started = time.monotonic()
    with pytest.raises(WarmingUp):
        service.page("global", 0, 10)
    # the wait ended at LEADERBOARD_MISS_WAIT_MS (the fake sleep returns early; the clock decides)
    assert time.monotonic() - started >= 0.05
    assert [r.reason for r in queue.sent] == ["miss"]


def test_a_miss_wait_of_zero_answers_warming_up_without_polling() -> None:
    store = FakeSnapshotStore()
    service, queue, _, steps = given(store, miss_wait_ms=0)
    with pytest.raises(WarmingUp):
        service.page("global", 0, 10)
    assert steps.slept == []
    assert len(queue.sent) == 1


def test_a_miss_whose_request_cannot_be_sent_is_warming_up_at_once() -> None:
    store = FakeSnapshotStore()
    service, queue, _, steps = given(store, miss_wait_ms=2_000)
    queue.down = True
    with pytest.raises(WarmingUp):
        service.page("global", 0, 10)
    assert steps.slept == []


def test_a_board_the_source_does_not_have_is_unknown_without_a_request() -> None:
    # Given the worker recorded "no such board"
    store = FakeSnapshotStore()
    store.absent.add("challenge:nobody")
    service, queue, _, _ = given(store)
    with pytest.raises(UnknownBoard):
        service.page("challenge:nobody", 0, 10)
    assert queue.sent == []


def test_a_board_found_absent_during_the_wait_is_unknown() -> None:
    store = FakeSnapshotStore()
    service, _, _, _ = given(store, miss_wait_ms=2_000)

    def worker_says_absent(seconds: float) -> None:
        store.absent.add("challenge:nobody")

    service._sleep = worker_says_absent
    with pytest.raises(UnknownBoard):
        service.page("challenge:nobody", 0, 10)


def test_a_snapshot_past_max_stale_is_refused_but_still_refreshed() -> None:
    store = FakeSnapshotStore()
    store.put("global", ranked(3), age_seconds=200)
    service, queue, _, _ = given(store, max_stale_seconds=100)
    with pytest.raises(SnapshotTooOld):
        service.page("global", 0, 3)
    assert [r.reason for r in queue.sent] == ["stale"]


def test_valkey_down_with_no_copy_is_cache_unavailable() -> None:
    store = FakeSnapshotStore()
    store.down = True
    service, _, metrics, _ = given(store)
    with pytest.raises(CacheUnavailable):
        service.page("global", 0, 3)
    assert "StaleOnError" not in metrics.values


def test_valkey_down_serves_the_last_copy_of_a_user_window() -> None:
    store = FakeSnapshotStore()
    store.put("global", ranked(20), version=4)
    service, _, metrics, _ = given(store)
    before = service.user("global", "u00010", 2)
    store.down = True
    after = service.user("global", "u00010", 2)
    assert (after.cache_status, after.served_on_error) == (STALE, True)
    assert after.entries == before.entries
    assert after.user_position == 9
    assert metrics.values["StaleOnError"] == 1


def test_a_user_not_on_the_board_is_not_ranked() -> None:
    store = FakeSnapshotStore()
    store.put("global", ranked(3))
    service, _, _, _ = given(store)
    with pytest.raises(UserNotRanked):
        service.user("global", "nobody", 0)


def test_a_refresh_marker_that_cannot_be_set_does_not_fail_the_read() -> None:
    # Given a stale snapshot and a Valkey that fails only the marker write
    store = FakeSnapshotStore()
    store.put("global", ranked(3), age_seconds=90)
    service, queue, _, _ = given(store)

    def refuse(board: str, token: str, ttl_ms: int) -> bool:
        raise CacheUnavailable("setting the refresh marker: timeout")

    store.mark_refresh_requested = refuse  # type: ignore[method-assign]
    # Then the stale copy is still served, and no request is sent without a marker
    assert service.page("global", 0, 3).cache_status == STALE
    assert queue.sent == []
