"""The read path's logic: serve from the snapshot, and ask for a refresh when it is stale or missing.

No driver is imported here: the cache and the queue arrive as objects that fit the two Protocols below.
Synchronous on purpose: a cache hit is one blocking call on glide-sync and no event loop at all.

- Near hit: this container read the same thing less than LEADERBOARD_NEAR_CACHE_MS ago, of the board's
  newest version, and the snapshot is still fresh: served again without a round trip (HIT).
- Fresh snapshot: serve it (HIT).
- Stale snapshot: serve it at once (STALE) and request a refresh; a closed one (docs/layout.md "Closed
  boards") is never stale: HIT, no request. The "refresh requested" marker (SET NX
  with an expiry) makes one caller per stale episode send the message, however many read at once. If
  the send fails, that caller removes its marker so the next stale read tries again.
- No snapshot (first deploy, flushed cache): a challenge or season board that the published set of
  known boards does not hold is a 404 at once (`common.known_boards`: no refresh request, no wait).
  Otherwise request a refresh, then wait a bounded time for the worker to fill the cache (MISS), else
  503 warming_up with Retry-After. Boards this container has never served wait only out of a budget
  of the container's time (`api_lambda.miss_budget`).
- Stale beyond LEADERBOARD_MAX_STALE_SECONDS (when set): 503 — the operator prefers no answer to an old one.
- Valkey fails or times out: what this container last read for the same request is served (STALE,
  `served_on_error`) while its snapshot is within LEADERBOARD_STALE_IF_ERROR_SECONDS of going stale;
  otherwise CacheUnavailable (503 cache_unavailable).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from api_lambda.miss_budget import MissWaitBudget
from api_lambda.near_cache import RecentReads
from common.boards import GLOBAL
from common.errors import CacheUnavailable
from common.known_boards import checked_against_catalog
from common.logs import get_logger
from common.messages import RefreshRequest
from common.queue import QueueUnavailable

if TYPE_CHECKING:
    from common.config import ApiSettings
    from common.snapshot import Page, SnapshotHeader, UserSet, UserWindow

__all__ = [
    "HIT",
    "MISS",
    "STALE",
    "BoardView",
    "LeaderboardService",
    "SnapshotTooOld",
    "UnknownBoard",
    "UserNotRanked",
    "WarmingUp",
    "cache_windows",
]

log = get_logger(__name__)

HIT = "HIT"
STALE = "STALE"
MISS = "MISS"
R = TypeVar("R", "Page", "UserWindow", "UserSet")


class SnapshotStore(Protocol):
    def read_page(self, board: str, offset: int, count: int) -> Page | None: ...

    def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None: ...

    def read_users(self, board: str, user_ids: Sequence[str]) -> UserSet | None: ...

    def is_absent(self, board: str) -> bool: ...

    def mark_refresh_requested(self, board: str, token: str, ttl_ms: int) -> bool: ...

    def clear_refresh_request(self, board: str, token: str) -> None: ...


class KnownBoards(Protocol):
    """The published set of the source's boards (`common.known_reader.KnownBoardsReader` fits)."""

    def lookup(self, board: str) -> bool | None: ...


class RefreshSender(Protocol):
    def send(self, request: RefreshRequest) -> None: ...


class MetricSink(Protocol):
    """What the service counts into (`common.metrics.Metrics` fits); the caller flushes it."""

    def add(self, name: str, value: float = ..., unit: str = ...) -> None: ...


def cache_windows(settings: ApiSettings) -> tuple[int, int]:
    """(stale-while-revalidate, stale-if-error) in seconds, as promised to HTTP caches and kept here:
    with LEADERBOARD_MAX_STALE_SECONDS set, neither may reach past it."""
    swr, sie = settings.stale_while_revalidate_seconds, settings.stale_if_error_seconds
    if settings.max_stale_seconds is not None:
        room = max(0, settings.max_stale_seconds - settings.boards.fresh_seconds)
        swr, sie = min(swr, room), min(sie, room)
    return swr, sie


class WarmingUp(Exception):
    """No snapshot yet and none arrived within LEADERBOARD_MISS_WAIT_MS."""


class SnapshotTooOld(Exception):
    """The snapshot is older than LEADERBOARD_MAX_STALE_SECONDS."""


class UnknownBoard(Exception):
    """The source has no such board (a challenge nobody has submitted to)."""


class UserNotRanked(Exception):
    """The snapshot does not contain this user."""


@dataclass(slots=True)
class BoardView:
    """What a response is built from: stored entry bytes, the header, and how fresh they were.
    (Not frozen: a frozen dataclass pays object.__setattr__ per field, ~4 µs a hit here.)"""

    header: SnapshotHeader
    offset: int
    entries: list[bytes]
    cache_status: str
    age_seconds: float
    user_position: int | None = None
    served_on_error: bool = False  # Valkey failed; this is the container's last copy (stale-if-error)
    missing: list[str] | None = None  # a users' read: the ids asked for that are not on the board


class LeaderboardService:
    def __init__(
        self,
        settings: ApiSettings,
        cache: SnapshotStore,
        queue: RefreshSender,
        metrics: MetricSink | None = None,
        *,
        known: KnownBoards | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._queue = queue
        self._metrics = metrics
        self._known = known
        self._sleep = sleep  # between polls of a cold miss (tests step a worker in here)
        self._clock = clock  # the cold miss's wait and its budget (monotonic, like `deadline`)
        self._registry = settings.boards.boards
        self._budget = MissWaitBudget(settings.miss_wait_ms / 1000, clock=clock)
        self._fresh_ms = settings.boards.fresh_seconds * 1000
        self._max_stale_ms = (settings.max_stale_seconds or 0) * 1000
        self._marker_ttl_ms = settings.boards.refresh_marker_seconds * 1000
        self._error_ms = self._fresh_ms + cache_windows(settings)[1] * 1000
        # Pages and user windows keep separate halves of the bounds: requests for invented user ids
        # (each one a different key) cannot push the pages everybody reads out of memory.
        keep = settings.near_cache_ms > 0 or settings.stale_if_error_seconds > 0
        entries = settings.near_cache_max_entries // 2 if keep else 0
        half_bytes = settings.near_cache_max_bytes // 2
        self._pages: RecentReads[Page] = RecentReads(settings.near_cache_ms, entries, half_bytes)
        self._users: RecentReads[UserWindow] = RecentReads(settings.near_cache_ms, entries, half_bytes)
        # Reads of several users share the users' half (the same store, keyed apart: one bound for every
        # read whose key a caller invents); the cast only names what this code puts under those keys.
        self._user_sets = cast("RecentReads[UserSet]", self._users)

    def page(self, board: str, offset: int, count: int, *, deadline: float | None = None) -> BoardView:
        """`deadline` (time.monotonic()) is when this invocation must have answered: a cold-miss wait
        ends there, so the answer is our 503 warming_up, never the function's timeout."""
        page, status, age_ms, on_error = self._read(
            self._pages,
            (board, offset, count),
            board,
            lambda: self._cache.read_page(board, offset, count),
            deadline,
        )
        return BoardView(page.header, page.offset, page.entries, status, age_ms / 1000, None, on_error)

    def user(self, board: str, user_id: str, around: int, *, deadline: float | None = None) -> BoardView:
        window, status, age_ms, on_error = self._read(
            self._users,
            (board, user_id, around),
            board,
            lambda: self._cache.read_user(board, user_id, around),
            deadline,
        )
        if window.position is None:
            raise UserNotRanked(user_id)
        age = age_ms / 1000
        return BoardView(window.header, window.offset, window.entries, status, age, window.position, on_error)

    def users(self, board: str, user_ids: tuple[str, ...], *, deadline: float | None = None) -> BoardView:
        """Some users' entries in rank order and the ids not on the board, from one snapshot state.
        Near-cached per board and id list (in the order asked: `missing` keeps that order)."""
        found, status, age_ms, on_error = self._read(
            self._user_sets,
            (board, user_ids),
            board,
            lambda: self._cache.read_users(board, user_ids),
            deadline,
        )
        age = age_ms / 1000
        return BoardView(found.header, 0, found.entries, status, age, None, on_error, found.missing)

    def _read(
        self,
        recent: RecentReads[R],
        key: Hashable,
        board: str,
        read: Callable[[], R | None],
        deadline: float | None,
    ) -> tuple[R, str, int, bool]:
        """(what to serve, its X-Cache status, its snapshot's age in ms, whether Valkey failed)."""
        near = recent.near(key)
        if near is not None:
            age_ms = time.time_ns() // 1_000_000 - near.header.generated_at_ms
            if age_ms < self._fresh_ms:
                return near, HIT, max(0, age_ms), False
        try:
            status = HIT
            found = read()
            if found is None:
                status = MISS
                found = self._wait_for_fill(board, read, deadline)
        except CacheUnavailable as exc:
            return self._served_on_error(recent.last(key), board, exc)
        recent.remember(key, found)
        age_ms = max(0, time.time_ns() // 1_000_000 - found.header.generated_at_ms)
        if age_ms >= self._fresh_ms and status != MISS:
            status = self._stale(found.header, age_ms)
        return found, status, age_ms, False

    def _served_on_error(self, last: R | None, board: str, exc: CacheUnavailable) -> tuple[R, str, int, bool]:
        """Stale-if-error: the container's last copy, if its snapshot is young enough; else re-raise."""
        if last is None:
            raise exc
        age_ms = max(0, time.time_ns() // 1_000_000 - last.header.generated_at_ms)
        if age_ms > self._error_ms:
            raise exc
        log.warning("served_stale_on_error", board=board, age_seconds=age_ms / 1000, error=str(exc))
        if self._metrics is not None:
            self._metrics.add("StaleOnError")
        return last, STALE, age_ms, True

    def _stale(self, header: SnapshotHeader, age_ms: int) -> str:
        """A stale snapshot: ask for a refresh (once per episode), then serve it unless it is too old.
        Kept out of line: the fresh hit path checks the age inline and never enters here. A closed
        snapshot (a period that ended, read after its grace) never changes again: fresh forever."""
        if header.closed:
            return HIT
        self._request_refresh(header.board, "stale")
        if self._max_stale_ms and age_ms > self._max_stale_ms:
            raise SnapshotTooOld(header.board)
        return STALE

    def _request_refresh(self, board: str, reason: str) -> bool:
        """Send one refresh request per episode. Never raises: a failed request must not fail a read."""
        import secrets  # not at import: a container that only serves hits never needs it (cold start)

        token = secrets.token_hex(8)
        try:
            if not self._cache.mark_refresh_requested(board, token, self._marker_ttl_ms):
                return True  # someone else asked already; the worker clears the marker when done
        except CacheUnavailable as exc:
            log.warning("refresh_request_skipped", board=board, reason=reason, error=str(exc))
            return False
        request = RefreshRequest(board=board, reason=reason, requested_at=datetime.now(UTC))
        try:
            self._queue.send(request)
        except QueueUnavailable as exc:
            log.error("refresh_request_failed", board=board, reason=reason, error=str(exc))
            # If this fails too, the marker expires on its own after LEADERBOARD_REFRESH_MARKER_SECONDS.
            with contextlib.suppress(CacheUnavailable):
                self._cache.clear_refresh_request(board, token)
            return False
        log.info("refresh_requested", board=board, reason=reason)
        if self._metrics is not None:
            self._metrics.add("RefreshRequests")
        return True

    def _familiar(self, board: str) -> bool:
        """Whether a cold miss of `board` may wait the full LEADERBOARD_MISS_WAIT_MS (miss_budget)."""
        return (
            board == GLOBAL
            or board in self._registry.names
            or self._pages.has_read(board)
            or self._users.has_read(board)
        )

    def _wait_for_fill(self, board: str, read: Callable[[], R | None], deadline: float | None) -> R:
        """No snapshot: ask for one and poll for it until LEADERBOARD_MISS_WAIT_MS (or `deadline`), or
        less for a board this container has never served (the budget's share)."""
        if (
            self._known is not None
            and checked_against_catalog(board, self._registry)
            and self._known.lookup(board) is False
        ):
            raise UnknownBoard(board)  # the source has no such board: no request, no wait
        if self._cache.is_absent(board):
            raise UnknownBoard(board)
        if not self._request_refresh(board, "miss"):
            raise WarmingUp(board)
        started = self._clock()
        wait = self._settings.miss_wait_ms / 1000
        if deadline is not None:  # answer warming_up ourselves rather than let the Lambda time out
            wait = min(wait, deadline - started)
        budgeted = not self._familiar(board)
        if budgeted:
            wanted, wait = wait, self._budget.take(wait)
            if wait < wanted and self._metrics is not None:
                self._metrics.add("MissWaitCut")  # the budget for never-served boards ran low
        try:
            return self._poll(board, read, started + wait)
        finally:
            if budgeted:
                self._budget.give_back(started + wait - self._clock())

    def _poll(self, board: str, read: Callable[[], R | None], until: float) -> R:
        delay = 0.02
        while (left := until - self._clock()) > 0:
            self._sleep(min(delay, left))
            delay = min(delay * 1.5, 0.2)
            found = read()
            if found is not None:
                return found
            if self._cache.is_absent(board):
                raise UnknownBoard(board)
        raise WarmingUp(board)
