"""The read path's logic: serve from the snapshot, and ask for a refresh when it is stale or missing.

No driver is imported here: the cache and the queue arrive as objects that fit the two Protocols below.

- Fresh snapshot: serve it (HIT).
- Stale snapshot: serve it at once (STALE) and request a refresh. The "refresh requested" marker (SET NX
  with an expiry) makes one caller per stale episode send the message, however many read at once. If
  the send fails, that caller removes its marker so the next stale read tries again.
- No snapshot (first deploy, flushed cache): request a refresh, then wait a bounded time for the worker
  to fill the cache (MISS), else 503 warming_up with Retry-After.
- Stale beyond LEADERBOARD_MAX_STALE_SECONDS (when set): 503 — the operator prefers no answer to an old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from common.errors import CacheUnavailable
from common.logs import get_logger
from common.messages import RefreshRequest
from common.queue import QueueUnavailable

if TYPE_CHECKING:
    from common.cache import Page, SnapshotHeader, UserWindow
    from common.config import ApiSettings

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
]

log = get_logger(__name__)

# When the current invocation must have answered (time.monotonic()), set by the handler from the
# Lambda context: a cold-miss wait never runs into the function timeout (that would be API Gateway's
# non-JSON 5xx instead of our documented 503 warming_up).
invocation_deadline: ContextVar[float | None] = ContextVar("invocation_deadline", default=None)
T = TypeVar("T")

HIT = "HIT"
STALE = "STALE"
MISS = "MISS"


class SnapshotReader(Protocol):
    async def read_page(self, board: str, offset: int, count: int) -> Page | None: ...

    async def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None: ...

    async def is_absent(self, board: str) -> bool: ...

    async def mark_refresh_requested(self, board: str, token: str, ttl_ms: int) -> bool: ...

    async def clear_refresh_request(self, board: str, token: str) -> None: ...


class RefreshSender(Protocol):
    async def send(self, request: RefreshRequest) -> None: ...


class MetricSink(Protocol):
    """What the service counts into (`common.metrics.Metrics` fits); the caller flushes it."""

    def add(self, name: str, value: float = ..., unit: str = ...) -> None: ...


class WarmingUp(Exception):
    """No snapshot yet and none arrived within LEADERBOARD_MISS_WAIT_MS."""


class SnapshotTooOld(Exception):
    """The snapshot is older than LEADERBOARD_MAX_STALE_SECONDS."""


class UnknownBoard(Exception):
    """The source has no such board (a challenge nobody has submitted to)."""


class UserNotRanked(Exception):
    """The snapshot does not contain this user."""


@dataclass(frozen=True, slots=True)
class BoardView:
    """What a response is built from: stored entry bytes, the header, and how fresh they were."""

    header: SnapshotHeader
    offset: int
    entries: list[bytes]
    cache_status: str
    age_seconds: float
    user_position: int | None = None


class LeaderboardService:
    def __init__(
        self,
        settings: ApiSettings,
        cache: SnapshotReader,
        queue: RefreshSender,
        metrics: MetricSink | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._queue = queue
        self._metrics = metrics
        self._fresh_ms = settings.boards.fresh_seconds * 1000
        self._max_stale_ms = (settings.max_stale_seconds or 0) * 1000
        self._marker_ttl_ms = settings.boards.refresh_marker_seconds * 1000

    async def page(self, board: str, offset: int, count: int) -> BoardView:
        status = HIT
        page = await self._cache.read_page(board, offset, count)
        if page is None:
            status = MISS
            page = await self._wait_for_fill(board, lambda: self._cache.read_page(board, offset, count))
        age_ms = max(0, time.time_ns() // 1_000_000 - page.header.generated_at_ms)
        if age_ms >= self._fresh_ms and status != MISS:
            status = await self._stale(page.header, age_ms)
        return BoardView(page.header, page.offset, page.entries, status, age_ms / 1000)

    async def user(self, board: str, user_id: str, around: int) -> BoardView:
        status = HIT
        window = await self._cache.read_user(board, user_id, around)
        if window is None:
            status = MISS
            window = await self._wait_for_fill(board, lambda: self._cache.read_user(board, user_id, around))
        age_ms = max(0, time.time_ns() // 1_000_000 - window.header.generated_at_ms)
        if age_ms >= self._fresh_ms and status != MISS:
            status = await self._stale(window.header, age_ms)
        age = age_ms / 1000
        if window.position is None:
            raise UserNotRanked(user_id)
        return BoardView(window.header, window.offset, window.entries, status, age, window.position)

    async def _stale(self, header: SnapshotHeader, age_ms: int) -> str:
        """A stale snapshot: ask for a refresh (once per episode), then serve it unless it is too old.
        Kept out of line: the fresh hit path checks the age inline and never enters here."""
        await self._request_refresh(header.board, "stale")
        if self._max_stale_ms and age_ms > self._max_stale_ms:
            raise SnapshotTooOld(header.board)
        return STALE

    async def _request_refresh(self, board: str, reason: str) -> bool:
        """Send one refresh request per episode. Never raises: a failed request must not fail a read."""
        token = secrets.token_hex(8)
        try:
            if not await self._cache.mark_refresh_requested(board, token, self._marker_ttl_ms):
                return True  # someone else asked already; the worker clears the marker when done
        except CacheUnavailable as exc:
            log.warning("refresh_request_skipped", board=board, reason=reason, error=str(exc))
            return False
        request = RefreshRequest(board=board, reason=reason, requested_at=datetime.now(UTC))
        try:
            await self._queue.send(request)
        except QueueUnavailable as exc:
            log.error("refresh_request_failed", board=board, reason=reason, error=str(exc))
            # If this fails too, the marker expires on its own after LEADERBOARD_REFRESH_MARKER_SECONDS.
            with contextlib.suppress(CacheUnavailable):
                await self._cache.clear_refresh_request(board, token)
            return False
        log.info("refresh_requested", board=board, reason=reason)
        if self._metrics is not None:
            self._metrics.add("RefreshRequests")
        return True

    async def _wait_for_fill(self, board: str, read: Callable[[], Awaitable[T | None]]) -> T:
        """No snapshot: ask for one and poll for it until LEADERBOARD_MISS_WAIT_MS runs out."""
        if await self._cache.is_absent(board):
            raise UnknownBoard(board)
        if not await self._request_refresh(board, "miss"):
            raise WarmingUp(board)
        deadline = time.monotonic() + self._settings.miss_wait_ms / 1000
        cutoff = invocation_deadline.get()
        if cutoff is not None:  # answer warming_up ourselves rather than let the Lambda time out
            deadline = min(deadline, cutoff)
        delay = 0.02
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 1.5, 0.2)
            found = await read()
            if found is not None:
                return found
            if await self._cache.is_absent(board):
                raise UnknownBoard(board)
        raise WarmingUp(board)
