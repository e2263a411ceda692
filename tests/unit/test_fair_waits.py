"""Fair waits and known boards on the read path's logic, with small fakes and a fake clock (#14)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from api_lambda.miss_budget import SHARE, MissWaitBudget
from api_lambda.service import LeaderboardService, UnknownBoard, WarmingUp
from common.boards import BoardRegistry, validate_board
from common.config import ApiSettings
from tests.fakes import FakeRefreshSender, FakeSnapshotStore

SETTINGS = ApiSettings.from_env({"VALKEY_HOST": "fake", "REFRESH_QUEUE_URL": "https://sqs.example/1/q"})
WAIT_S = SETTINGS.miss_wait_ms / 1000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Known:
    def __init__(self, boards: set[str] | None) -> None:
        self.boards = boards
        self.lookups = 0

    def lookup(self, board: str) -> bool | None:
        self.lookups += 1
        return None if self.boards is None else board in self.boards


class Queue(FakeRefreshSender):
    @property
    def boards(self) -> list[str]:
        return [request.board for request in self.sent]


def service(
    known: Known | None = None, boards: str = "global,challenge:*,season:*"
) -> tuple[LeaderboardService, FakeSnapshotStore, Queue, Clock]:
    registry = BoardRegistry.parse(boards)
    settings = replace(SETTINGS, near_cache_ms=0, boards=replace(SETTINGS.boards, boards=registry))
    store, queue, clock = FakeSnapshotStore(), Queue(), Clock()
    svc = LeaderboardService(settings, store, queue, known=known, sleep=clock.sleep, clock=clock)
    return svc, store, queue, clock


def waited(svc: LeaderboardService, clock: Clock, board: str) -> float:
    """How long a cold miss of `board` held the caller (it always ends in warming_up here)."""
    start = clock.now
    with pytest.raises(WarmingUp):
        svc.page(board, 0, 10)
    return clock.now - start


def test_the_budget_never_grants_more_than_a_burst_plus_its_share_of_time() -> None:
    clock = Clock()
    budget = MissWaitBudget(2.0, clock=clock)
    granted = 0.0
    for _ in range(1000):  # demand without pause for 100 s of clock
        granted += budget.take(2.0)
        clock.sleep(0.1)
    assert granted <= 2.0 + SHARE * 100 + 1e-9
    assert granted >= SHARE * 100 - 0.2  # and the share really is available
    budget.give_back(5.0)
    assert budget.available_s <= 2.0  # never above one burst


def test_never_served_boards_wait_only_out_of_the_budget_and_still_ask_for_a_refresh() -> None:
    svc, _, queue, clock = service()
    # The first invented name waits the full LEADERBOARD_MISS_WAIT_MS (the bucket starts full)
    assert waited(svc, clock, "challenge:x0") == pytest.approx(WAIT_S)
    # Then a stream of others at once: only what the share refilled meanwhile (10 % of the first
    # wait, then 10 % of that...), then no wait at all: 503 warming_up at once, the refresh still asked
    held = [waited(svc, clock, f"challenge:x{n}") for n in range(1, 200)]
    assert sum(held) == pytest.approx(SHARE * WAIT_S / (1 - SHARE), rel=0.01)
    assert held[-1] < 1e-9
    assert len(queue.sent) == 200
    # After 10 s without misses, the share has refilled one second of waiting
    clock.sleep(10)
    assert waited(svc, clock, "challenge:later") == pytest.approx(SHARE * 10)


def test_over_any_stretch_unfamiliar_misses_hold_a_bounded_share_of_the_container() -> None:
    svc, _, _, clock = service()
    start = clock.now
    held = 0.0
    for n in range(500):  # a hostile client, plus 50 ms of other work between requests
        held += waited(svc, clock, f"challenge:h{n}")
        clock.sleep(0.05)
    elapsed = clock.now - start
    assert held <= WAIT_S + SHARE * elapsed + 1e-6
    assert held / elapsed < 0.2


def test_global_listed_and_already_served_boards_always_wait_in_full() -> None:
    svc, store, _, clock = service(boards="global,challenge:listed,challenge:*")
    for n in range(50):  # the budget is spent by invented names
        waited(svc, clock, f"challenge:h{n}")
    assert waited(svc, clock, "global") == pytest.approx(WAIT_S)
    assert waited(svc, clock, "challenge:listed") == pytest.approx(WAIT_S)
    # A board this container served before (its snapshot then flushed) waits in full too
    store.put("challenge:seen", [])
    svc.page("challenge:seen", 0, 10)
    del store.boards["challenge:seen"]
    assert waited(svc, clock, "challenge:seen") == pytest.approx(WAIT_S)


def test_a_board_missing_from_the_published_set_is_unknown_at_once() -> None:
    known = Known({"challenge:a", "season:cup"})
    svc, _, queue, clock = service(known)
    for board in ("challenge:invented", "season:nope"):
        start = clock.now
        with pytest.raises(UnknownBoard):
            svc.page(board, 0, 10)
        assert clock.now == start  # no wait
    assert queue.boards == []  # no refresh request
    # A published board is requested and waited for
    waited(svc, clock, "challenge:a")
    assert queue.boards == ["challenge:a"]


def test_boards_outside_the_catalog_are_never_looked_up() -> None:
    known = Known(set())
    svc, _, queue, clock = service(known, boards="global,challenge:listed,challenge:*,week:*")
    for board in ("global", "challenge:listed", "week:current"):
        waited(svc, clock, validate_board(board))
    assert known.lookups == 0
    assert len(queue.sent) == 3


def test_with_no_publication_the_miss_asks_the_source_as_before() -> None:
    known = Known(None)  # never published, expired or evicted
    svc, store, queue, clock = service(known)
    waited(svc, clock, "challenge:maybe")
    assert queue.boards == ["challenge:maybe"] and known.lookups == 1
    store.absent.add("challenge:maybe")  # the worker found nothing
    with pytest.raises(UnknownBoard):
        svc.page("challenge:maybe", 0, 10)
