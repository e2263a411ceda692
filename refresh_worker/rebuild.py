"""A full rebuild, streamed: the board is read page by page into staging keys, so the worker's memory
stays O(page) whatever the board's size, and the fetch of the next page overlaps the Valkey write of
the previous one.

With a change feed the result is one committed database state (docs/layout.md):
1. read the feed's head P0;
2. page through the ranked board (keyset) into the staging keys. Every player who did not change
   during the paging is on exactly one page; anyone who did has a change after P0;
3. catch up: apply every change after P0 to the staging keys (it replaces whatever the pages saw);
4. one fenced script swaps the staging keys in, at the position the catch-up ended at.
Without a feed (HTTP) steps 1 and 3 are skipped: the pages are separate reads, position stays null.

LEADERBOARD_SIZE (cap) > 0: the paging stops at the cap; the last staged member then becomes the
boundary (the snapshot holds exactly the players at or before it), so the catch-up and later deltas
know who belongs on the board.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from common.boards import empty_means_absent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from common.models import Change
    from common.snapshot import Ranked
    from common.sources import Cursor
    from refresh_worker.fetching import SourceCalls

__all__ = ["Plan", "Rebuilt", "Stager", "read_into_staging"]


class Stager(Protocol):
    async def stage_entries(
        self, board: str, version: int, entries: Sequence[Ranked], *, ttl_ms: int
    ) -> tuple[int, bytes | None]: ...

    async def stage_changes(
        self, board: str, version: int, changes: Sequence[Change], *, ttl_ms: int, boundary: bytes | None
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """One rebuild: where it stages and how (the one object that travels through the steps)."""

    calls: SourceCalls
    store: Stager
    board: str
    version: int
    cap: int  # LEADERBOARD_SIZE (0 = everyone)
    page_size: int  # SOURCE_PAGE_SIZE
    chunk: int  # CACHE_WRITE_CHUNK
    has_feed: bool
    ttl_ms: Callable[[], int]  # staging keys' expiry, from the lease's remaining time


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What was staged: `staged` players, at feed `position` (None without a feed)."""

    staged: int
    position: int | None
    total: int | None  # None: the board holds everyone, total = size
    boundary: bytes | None
    first_page_empty: bool


async def read_into_staging(plan: Plan) -> Rebuilt:
    calls, cap = plan.calls, plan.cap
    start = (await calls.changes(None, 0)).head if plan.has_feed else None
    staged, last, total, ended, first_empty = await _pages(plan)
    if first_empty and empty_means_absent(plan.board):
        return Rebuilt(0, start, 0, None, True)
    boundary = last if cap and not ended and staged >= cap else None
    if start is None:  # no feed: the pages are all there is
        return Rebuilt(staged, None, total if cap else None, boundary, first_empty)
    feed = await calls.changes_since(start, max_rows=None, with_total=cap > 0)
    assert feed is not None  # no max_rows: always caught up
    for begin in range(0, len(feed.changes), plan.chunk):
        staged = await plan.store.stage_changes(
            plan.board,
            plan.version,
            feed.changes[begin : begin + plan.chunk],
            ttl_ms=plan.ttl_ms(),
            boundary=boundary,
        )
    return Rebuilt(staged, feed.head, feed.total if cap else None, boundary, first_empty)


async def _stage(plan: Plan, entries: Sequence[Ranked]) -> tuple[int, bytes | None]:
    """One page into the staging keys, CACHE_WRITE_CHUNK players per script (a script blocks Valkey
    while it runs: smaller chunks keep other clients' commands waiting less)."""
    result: tuple[int, bytes | None] = (0, None)
    for start in range(0, len(entries), plan.chunk):
        result = await plan.store.stage_entries(
            plan.board, plan.version, entries[start : start + plan.chunk], ttl_ms=plan.ttl_ms()
        )
    return result


async def _pages(plan: Plan) -> tuple[int, bytes | None, int | None, bool, bool]:
    """Page through the ranked board. Returns (staged, last staged member, first page's total,
    whether the board's end was reached, whether the first page was empty)."""
    calls, cap, page_size, has_feed = plan.calls, plan.cap, plan.page_size, plan.has_feed
    cursor: Cursor | None = None
    read = staged = 0
    last: bytes | None = None
    total: int | None = None
    first = True
    first_empty = False
    pending: asyncio.Future[tuple[int, bytes | None]] | None = None
    try:
        while True:
            limit = page_size if not cap else min(page_size, cap - read)
            if limit <= 0:
                # Read up to the cap, but a player seen twice (they moved between pages) counts once:
                # top up from where the paging stopped.
                if pending is not None:
                    staged, last = await pending
                    pending = None
                if staged >= cap:
                    return staged, last, total, False, first_empty
                read = staged
                continue
            page = await calls.page(limit, cursor)  # meanwhile Valkey stores the previous page
            if first:
                first = False
                first_empty = not page.entries
                total = page.total if page.total is not None else len(page.entries)
            if pending is not None:
                staged, last = await pending
                pending = None
            if page.entries:
                pending = asyncio.ensure_future(_stage(plan, page.entries))
            read += len(page.entries)
            cursor = page.cursor
            # Without a feed there is no catch-up: the upstream's own total ends the paging, as before.
            counted_out = (
                not has_feed and total is not None and cursor is not None and cursor.position >= total
            )
            if cursor is None or page.end or counted_out:
                if pending is not None:
                    staged, last = await pending
                    pending = None
                return staged, last, total, True, first_empty
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
