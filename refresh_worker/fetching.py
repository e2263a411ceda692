"""One refresh's calls to its source: each one retried by tenacity, all of them inside the refresh's
deadline, counted (attempts, rows read) for the log line and the metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from common.errors import SourceUnavailable
from common.logs import get_logger
from common.sources.base import FEED_MAX_ROWS

if TYPE_CHECKING:
    from common.config import WorkerSettings
    from common.models import Change
    from common.sources import ChangePage, Cursor, Source, SourcePage
    from common.sources.base import BoardCatalog, BoardPeriod

__all__ = ["Feed", "SourceCalls"]

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Feed:
    """Every change after a position, up to `head` (the board's position in the last snapshot read)."""

    changes: list[Change]
    head: int
    total: int | None


class SourceCalls:
    def __init__(self, source: Source, settings: WorkerSettings, board: str, deadline: float) -> None:
        self._source = source
        self._settings = settings
        self._board = board
        self._deadline = deadline
        self.attempts = 0
        self.rows = 0  # entries and changes received: what the refresh cost the database

    async def page(self, limit: int, cursor: Cursor | None) -> SourcePage:
        page = await self._call(lambda: self._source.fetch_page(self._board, limit, cursor))
        self.rows += len(page.entries)
        return page

    async def changes(self, after: int | None, limit: int, *, with_total: bool = False) -> ChangePage:
        page = await self._call(
            lambda: self._source.fetch_changes(self._board, after, limit, with_total=with_total)
        )
        self.rows += len(page.changes)
        return page

    async def period(self, catalog: BoardCatalog) -> BoardPeriod:
        """Whether the board's period exists and when it ends (`leaderboard_board_period`)."""
        return await self._call(lambda: catalog.board_period(self._board))

    async def changes_since(self, after: int, *, max_rows: int | None, with_total: bool) -> Feed | None:
        """Page through the feed until caught up; None as soon as there are more than `max_rows`
        changes (a full rebuild is cheaper then). PositionLost when `after` is not covered."""
        limit = min(self._settings.source.page_size, FEED_MAX_ROWS)
        changes: list[Change] = []
        while True:
            page = await self.changes(after, limit, with_total=with_total)
            changes.extend(page.changes)
            if max_rows is not None and len(changes) > max_rows:
                return None
            if len(page.changes) < limit:
                return Feed(changes, page.head, page.total)
            after = page.changes[-1].seq

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call` retried by tenacity's own policy: at most SOURCE_RETRY_ATTEMPTS attempts, and none whose
        wait would end past the refresh's fetch deadline (`stop_before_delay` counts from this call's
        first attempt, so the deadline is turned into the time left now)."""
        s = self._settings
        board = self._board
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(SourceUnavailable),
            stop=stop_after_attempt(s.retry_attempts)
            | stop_before_delay(max(0.0, self._deadline - time.monotonic())),
            wait=wait_random_exponential(multiplier=s.retry_base_ms / 1000, max=s.retry_max_ms / 1000),
            before_sleep=lambda state: log.warning(
                "source_attempt_failed",
                board=board,
                attempt=state.attempt_number,
                retry_in_ms=round(state.upcoming_sleep * 1000),
                error=str(state.outcome.exception()) if state.outcome else None,
            ),
            reraise=True,
        )
        try:
            result: T = await retrying(self._attempt, call)
        finally:
            attempts = int(retrying.statistics.get("attempt_number", 0))
            self.attempts += attempts
        if attempts > 1:
            log.info("source_recovered", board=board, attempt=attempts)
        return result

    async def _attempt(self, call: Callable[[], Awaitable[T]]) -> T:
        """One attempt, cut off at the deadline: a source that hangs must not use the write's reserve."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise SourceUnavailable("the refresh deadline passed")
        try:
            async with asyncio.timeout(left):
                return await call()
        except TimeoutError:
            raise SourceUnavailable("the refresh deadline passed during a source call") from None
