"""One board's refresh: skip if already done, lock, fetch with retries inside a deadline, fenced swap.

No driver is imported here; the cache, the lock and the source arrive as objects.

Time budget. The work should finish before the Lambda times out and before the lock expires:
    budget      = remaining invocation time - a safety margin for reporting the batch result
    lock TTL    = min(REFRESH_LOCK_TTL_MS, budget)
    fetch until = lock start + TTL - write reserve      (tenacity stops before a sleep would cross it,
                                                        and each attempt is cut off at it)
The write itself has no deadline of its own (each Valkey command has VALKEY_REQUEST_TIMEOUT_MS). If it
runs past the lock's expiry anyway, nothing breaks: its staged keys expire by themselves, and the
fenced swap refuses it if a later worker has stored a newer snapshot meanwhile.
If even the minimum budget is not there, the refresh is not started: the message goes back to the queue.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base

from common.cache import SnapshotHeader
from common.errors import LeaderboardError, SourceUnavailable
from common.logs import get_logger
from common.timeutil import now_ms

if TYPE_CHECKING:
    from collections.abc import Sequence

    from common.config import WorkerSettings
    from common.lock import Lease
    from common.models import Entry
    from common.sources import Cursor, Source, SourcePage

__all__ = ["NotEnoughTime", "Outcome", "RefreshResult", "Refresher"]

log = get_logger(__name__)

SAFETY_MARGIN_MS = 1_000


class NotEnoughTime(LeaderboardError):
    """The invocation has too little time left to refresh safely; the message is retried later."""


class Outcome(StrEnum):
    REFRESHED = "refreshed"
    ALREADY_FRESH = "already_fresh"  # a snapshot newer than the request exists: nothing to do
    LOCKED = "locked"  # another worker is refreshing; its own message carries the refresh
    SUPERSEDED = "superseded"  # fetched, but a newer snapshot was stored meanwhile (fencing refused)
    ABSENT = "absent"  # the source has no such board


@dataclass(frozen=True, slots=True)
class RefreshResult:
    board: str
    outcome: Outcome
    version: int | None = None
    entries: int = 0
    source_ms: float = 0.0
    write_ms: float = 0.0
    attempts: int = 0


class SnapshotStore(Protocol):
    async def read_header(self, board: str) -> SnapshotHeader | None: ...

    async def write_snapshot(
        self, header: SnapshotHeader, entries: Sequence[Entry], *, staging_ttl_ms: int, chunk: int = 1000
    ) -> bool: ...

    async def mark_absent(self, board: str, version: int, ttl_ms: int) -> bool: ...


class Locker(Protocol):
    async def acquire(self, board: str, ttl_ms: int) -> Lease | None: ...

    async def release(self, lease: Lease) -> bool: ...


class _stop_at(stop_base):
    """Stop when the next sleep would end past a monotonic deadline (tenacity computes the wait first)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: Any) -> bool:
        return time.monotonic() + float(retry_state.upcoming_sleep) >= self.deadline


class Refresher:
    def __init__(self, settings: WorkerSettings, cache: SnapshotStore, lock: Locker, source: Source) -> None:
        self._settings = settings
        self._cache = cache
        self._lock = lock
        self._source = source

    async def refresh(
        self, board: str, reason: str, requested_at_ms: int, remaining_ms: int
    ) -> RefreshResult:
        header = await self._cache.read_header(board)
        if header is not None and header.generated_at_ms >= requested_at_ms:
            return RefreshResult(board, Outcome.ALREADY_FRESH, header.version)
        budget = remaining_ms - SAFETY_MARGIN_MS
        if budget < max(self._settings.min_remaining_ms, 1):
            raise NotEnoughTime(
                f"{remaining_ms} ms left; a refresh needs at least {self._settings.min_remaining_ms}"
            )
        ttl = min(self._settings.lock_ttl_ms, budget)
        lease = await self._lock.acquire(board, ttl)
        if lease is None:
            return RefreshResult(board, Outcome.LOCKED)
        started = time.monotonic()
        try:
            return await self._refresh_locked(board, reason, lease, started)
        finally:
            try:
                if not await self._lock.release(lease):
                    log.warning("lock_expired_before_release", board=board, version=lease.version)
            except LeaderboardError as exc:
                log.warning("lock_release_failed", board=board, error=str(exc))  # it expires by itself

    async def _refresh_locked(self, board: str, reason: str, lease: Lease, started: float) -> RefreshResult:
        # Keep a quarter of the lease (at least 1 s, at most half) for writing the snapshot.
        write_reserve_ms = min(max(1_000, lease.ttl_ms // 4), lease.ttl_ms // 2)
        deadline = started + (lease.ttl_ms - write_reserve_ms) / 1000
        generated_at_ms = now_ms()  # before the fetch: the data is at least this fresh
        entries, total, attempts = await self._fetch(board, deadline)
        source_ms = (time.monotonic() - started) * 1000
        if total is None:
            await self._cache.mark_absent(board, lease.version, self._settings.boards.fresh_seconds * 1000)
            return RefreshResult(board, Outcome.ABSENT, lease.version, 0, source_ms, 0.0, attempts)
        if not entries and board == "global":
            stored = await self._cache.read_header(board)
            if stored is not None and stored.size > 0:
                # Legitimate after a season reset; otherwise a sign that the source reads nothing (a
                # database role without access, the wrong database). Say so loudly; the source rules.
                log.error("empty_board_replaces_snapshot", board=board, stored_entries=stored.size)
        header = SnapshotHeader(
            board=board,
            version=lease.version,
            generated_at_ms=generated_at_ms,
            total=max(total, len(entries)),
            size=len(entries),
            source=self._source.name,
        )
        write_started = time.monotonic()
        staging_ttl = max(1_000, int(lease.ttl_ms - (write_started - started) * 1000) + SAFETY_MARGIN_MS)
        written = await self._cache.write_snapshot(
            header, entries, staging_ttl_ms=staging_ttl, chunk=self._settings.write_chunk
        )
        write_ms = (time.monotonic() - write_started) * 1000
        outcome = Outcome.REFRESHED if written else Outcome.SUPERSEDED
        result = RefreshResult(board, outcome, lease.version, len(entries), source_ms, write_ms, attempts)
        log.info(
            "refresh_done",
            board=board,
            reason=reason,
            outcome=str(outcome),
            version=lease.version,
            entries=len(entries),
            total=header.total,
            source_ms=round(source_ms, 1),
            write_ms=round(write_ms, 1),
            attempts=attempts,
        )
        return result

    async def _fetch(self, board: str, deadline: float) -> tuple[list[Entry], int | None, int]:
        """Page through the source up to LEADERBOARD_SIZE entries (0: all). Returns (entries, total,
        attempts); total is None when the source has no such board."""
        s = self._settings
        wanted = s.leaderboard_size or None
        entries: list[Entry] = []
        seen: set[str] = set()
        total: int | None = None
        cursor: Cursor | None = None
        attempts = 0
        while True:
            limit = s.source.page_size if wanted is None else min(s.source.page_size, wanted - len(entries))
            page, used = await self._fetch_page(board, limit, cursor, deadline)
            attempts += used
            if cursor is None:
                if not page.entries and board != "global":
                    return [], None, attempts
                total = page.total if page.total is not None else len(page.entries)
            # Pages are separate reads: a player whose score changed between two of them can show up
            # twice (keep the first, higher-ranked occurrence) or, having moved above the cursor, be
            # missed. The next refresh sets either right.
            for entry in page.entries:
                if entry.user_id not in seen:
                    seen.add(entry.user_id)
                    entries.append(entry)
            cursor = page.cursor
            if (
                cursor is None  # an empty page: the end
                or (wanted is not None and len(entries) >= wanted)
                or (total is not None and cursor.position >= total)
            ):
                return entries[:wanted] if wanted is not None else entries, total, attempts

    async def _fetch_page(
        self, board: str, limit: int, cursor: Cursor | None, deadline: float
    ) -> tuple[SourcePage, int]:
        s = self._settings
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(SourceUnavailable),
            stop=stop_after_attempt(s.retry_attempts) | _stop_at(deadline),
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
        attempt_number = 0
        async for attempt in retrying:
            with attempt:
                attempt_number = attempt.retry_state.attempt_number
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SourceUnavailable("the refresh deadline passed")
                try:
                    async with asyncio.timeout(left):
                        page = await self._source.fetch_page(board, limit, cursor)
                except TimeoutError:
                    raise SourceUnavailable("the refresh deadline passed during a source call") from None
                if attempt_number > 1:
                    log.info("source_recovered", board=board, attempt=attempt_number)
                return page, attempt_number
        raise AssertionError("unreachable: tenacity either returns or reraises")
