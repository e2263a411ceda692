"""The read path's logic on small fakes: near-cache hits, stale-if-error, and the invocation deadline."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from api_lambda.service import HIT, STALE, LeaderboardService, WarmingUp
from common.config import ApiSettings
from common.errors import CacheUnavailable
from common.messages import RefreshRequest
from common.snapshot import Page, SnapshotHeader, UserWindow

SETTINGS = ApiSettings.from_env({"VALKEY_HOST": "fake", "REFRESH_QUEUE_URL": "https://sqs.example/1/q"})


class FakeStore:
    """A snapshot store in memory that counts its reads and can be made to fail."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.reads = 0
        self.down = False

    def put(self, board: str, version: int, age_seconds: float = 0) -> Page:
        generated = int((time.time() - age_seconds) * 1000)
        page = Page(SnapshotHeader(board, version, generated, 3, 3, "fake"), 0, [b"{}", b"{}", b"{}"])
        self.pages[board] = page
        return page

    def read_page(self, board: str, offset: int, count: int) -> Page | None:
        self.reads += 1
        if self.down:
            raise CacheUnavailable("reading the leaderboard: no answer within VALKEY_REQUEST_TIMEOUT_MS")
        return self.pages.get(board)

    def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None:
        raise AssertionError("not used here")

    def is_absent(self, board: str) -> bool:
        return False

    def mark_refresh_requested(self, board: str, token: str, ttl_ms: int) -> bool:
        return True

    def clear_refresh_request(self, board: str, token: str) -> None:
        pass


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[RefreshRequest] = []

    def send(self, request: RefreshRequest) -> None:
        self.sent.append(request)


class FakeMetrics:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.values[name] = self.values.get(name, 0) + value


def service(store: FakeStore, **settings: int) -> tuple[LeaderboardService, FakeQueue, FakeMetrics]:
    queue, metrics = FakeQueue(), FakeMetrics()
    return LeaderboardService(replace(SETTINGS, **settings), store, queue, metrics), queue, metrics


def test_a_near_hit_costs_no_read_and_is_a_hit_by_the_snapshots_age() -> None:
    store = FakeStore()
    store.put("global", 1, age_seconds=10)
    reader, _, _ = service(store, near_cache_ms=60_000)
    reader.page("global", 0, 10)
    view = reader.page("global", 0, 10)
    assert store.reads == 1
    assert view.cache_status == HIT
    assert view.age_seconds >= 10


def test_with_the_near_cache_off_every_request_reads() -> None:
    store = FakeStore()
    store.put("global", 1)
    reader, _, _ = service(store, near_cache_ms=0)
    for _ in range(3):
        reader.page("global", 0, 10)
    assert store.reads == 3


def test_a_stale_snapshot_is_never_served_near_it_is_read_again() -> None:
    # Given a page remembered while fresh, whose snapshot has gone stale since
    store = FakeStore()
    store.put("global", 1, age_seconds=59.85)  # fresh for 60 s
    reader, queue, _ = service(store, near_cache_ms=60_000)
    assert reader.page("global", 0, 10).cache_status == HIT
    time.sleep(0.2)
    # When it is asked for again, Then Valkey is asked (it may have a newer one), and it is STALE
    view = reader.page("global", 0, 10)
    assert store.reads == 2
    assert view.cache_status == STALE
    assert [r.reason for r in queue.sent] == ["stale"]


def test_valkey_down_serves_the_last_copy_stale_and_counts_it() -> None:
    store = FakeStore()
    store.put("global", 7)
    reader, _, metrics = service(store, near_cache_ms=0)
    reader.page("global", 0, 10)
    store.down = True
    view = reader.page("global", 0, 10)
    assert (view.cache_status, view.served_on_error, view.header.version) == (STALE, True, 7)
    assert metrics.values["StaleOnError"] == 1
    # a page this container never served is still an error
    with pytest.raises(CacheUnavailable):
        reader.page("global", 0, 5)


def test_stale_if_error_stops_at_its_bound() -> None:
    # Given fresh for 60 s and stale-if-error 100 s: a copy may be served until it is 160 s old
    store = FakeStore()
    store.put("global", 1, age_seconds=150)
    reader, _, _ = service(store, near_cache_ms=0, stale_if_error_seconds=100)
    reader.page("global", 0, 10)
    store.down = True
    assert reader.page("global", 0, 10).served_on_error
    store.down = False
    store.put("global", 1, age_seconds=170)
    reader.page("global", 0, 10)
    store.down = True
    with pytest.raises(CacheUnavailable):
        reader.page("global", 0, 10)


def test_stale_if_error_respects_max_stale() -> None:
    store = FakeStore()
    store.put("global", 1, age_seconds=100)
    reader, _, _ = service(store, near_cache_ms=0, max_stale_seconds=90)
    with pytest.raises(Exception, match="global"):  # SnapshotTooOld: not even served while Valkey is up
        reader.page("global", 0, 10)
    store.down = True
    with pytest.raises(CacheUnavailable):
        reader.page("global", 0, 10)


def test_the_deadline_is_this_invocations_only() -> None:
    # Given no snapshot, a miss wait of 300 ms
    store = FakeStore()
    reader, _, _ = service(store, miss_wait_ms=300)
    # When one invocation has only 50 ms left
    started = time.monotonic()
    with pytest.raises(WarmingUp):
        reader.page("global", 0, 10, deadline=time.monotonic() + 0.05)
    short = time.monotonic() - started
    # And the next has no deadline at all (no Lambda context)
    started = time.monotonic()
    with pytest.raises(WarmingUp):
        reader.page("global", 0, 10)
    full = time.monotonic() - started
    # Then the first gave up at its deadline, and the second waited the whole miss wait
    assert short < 0.2
    assert full >= 0.3
