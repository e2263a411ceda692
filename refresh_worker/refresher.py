"""One board's refresh: skip if already done, lock, then a delta (what changed since the snapshot's
feed position, in one fenced script) or a full rebuild (streamed, see `refresh_worker.rebuild`).

No driver is imported here; the cache, the lock and the source arrive as objects.

Which one. A delta when the source has a change feed and the stored snapshot has a usable position.
A full rebuild for: the first fill, a flushed or evicted board, a source without a feed (HTTP), a
position the feed no longer covers (SQLSTATE LB001), more than LEADERBOARD_DELTA_MAX_ROWS changes, a
snapshot older than LEADERBOARD_REBUILD_SECONDS since its last rebuild (periodic reconciliation), a
changed LEADERBOARD_SIZE or source, and a capped board that has lost players below its cap.

Time budget. The work should finish before the Lambda times out:
    budget      = remaining invocation time - a safety margin for reporting the batch result
    work        = min(REFRESH_DEADLINE_MS, budget)
    fetch until = start + work - write reserve      (tenacity stops before a sleep would cross it,
                                                    and each attempt is cut off at it)
    lease       = min(REFRESH_LOCK_TTL_MS, budget), renewed every third of it (`heartbeat`)
Every source call (pages and feed) keeps to that deadline; the final script (delta or swap) has only
VALKEY_REQUEST_TIMEOUT_MS. Just before it the worker checks its lease (`Heartbeat.check`): a lease known
lost ends the refresh as LEASE_LOST (the request is retried shortly). If the write runs past a lapse
anyway, nothing breaks: staged keys expire by themselves, and the fencing refuses it if a later worker
has stored a newer snapshot meanwhile.
If even the minimum budget is not there, the refresh is not started: the message goes back to the queue.

Period boards (docs/layout.md, "Time boards" and "Closed boards"). The header carries the period's end
(`ends_at_ms`: from the name for weeks and months, from `leaderboard_board_period` for seasons) and
`closed` once the snapshot was generated FINAL_GRACE_MS after it; a closed board is not rebuilt by the
periodic reconciliation. A season the source knows but with no results yet is an empty board, not an
absent one (only a source that can say so: `BoardCatalog`; others treat an empty season as absent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from common.boards import empty_means_absent
from common.cache import Applied, Delta, Swap
from common.errors import LeaderboardError, PositionLost
from common.logs import get_logger
from common.snapshot import SnapshotHeader
from common.sources.base import catalog_of
from common.timeutil import now_ms
from refresh_worker.fetching import SourceCalls
from refresh_worker.heartbeat import Heartbeat, LeaseLost
from refresh_worker.period_state import period_state
from refresh_worker.rebuild import Plan, Stager, read_into_staging

if TYPE_CHECKING:
    from common.config import WorkerSettings
    from common.lock import Lease
    from common.sources import Source
    from common.sources.base import BoardCatalog

__all__ = ["Mode", "NotEnoughTime", "Outcome", "RefreshResult", "Refresher", "SnapshotStore"]

log = get_logger(__name__)

SAFETY_MARGIN_MS = 1_000


class NotEnoughTime(LeaderboardError):
    """The invocation has too little time left to refresh safely; the message is retried later."""


class Outcome(StrEnum):
    REFRESHED = "refreshed"
    ALREADY_FRESH = "already_fresh"  # a snapshot newer than the request exists: nothing to do
    LOCKED = "locked"  # another worker is refreshing: retry the request shortly (it may die)
    LEASE_LOST = "lease_lost"  # our lease lapsed before the write: retry the request shortly
    SUPERSEDED = "superseded"  # fetched, but a newer snapshot was stored meanwhile (fencing refused)
    ABSENT = "absent"  # the source has no such board


class Mode(StrEnum):
    DELTA = "delta"
    REBUILD = "rebuild"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    board: str
    outcome: Outcome
    version: int | None = None
    entries: int = 0
    source_ms: float = 0.0
    write_ms: float = 0.0
    attempts: int = 0
    mode: Mode | None = None
    rows_read: int = 0  # entries and changes read from the source
    changes: int = 0  # changes applied (delta, or a rebuild's catch-up)
    rebuild_reason: str | None = None


class SnapshotStore(Stager, Protocol):
    async def read_header(self, board: str) -> SnapshotHeader | None: ...

    async def apply_changes(self, header: SnapshotHeader, delta: Delta) -> tuple[Applied, int]: ...

    async def commit(self, header: SnapshotHeader, swap: Swap) -> bool: ...

    async def discard_staging(self, board: str, version: int) -> None: ...

    async def mark_absent(self, board: str, version: int, ttl_ms: int) -> bool: ...


class Locker(Protocol):
    async def acquire(self, board: str, ttl_ms: int) -> Lease | None: ...

    async def renew(self, lease: Lease, staging_ttl_ms: int) -> bool: ...

    async def release(self, lease: Lease) -> bool: ...


@dataclass(slots=True)
class _Run:
    """One locked refresh: the lease, its deadline and its source calls."""

    board: str
    reason: str
    lease: Lease
    started: float
    calls: SourceCalls
    heartbeat: Heartbeat

    def staging_ttl_ms(self) -> int:
        """Staged keys live as long as the lease (plus a margin); each renewal extends them, so a dead
        worker's staged copies expire by themselves shortly after its lease."""
        return self.heartbeat.staging_ttl_ms


class Refresher:
    def __init__(
        self,
        settings: WorkerSettings,
        cache: SnapshotStore,
        lock: Locker,
        source: Source,
        catalog: BoardCatalog | None = None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._lock = lock
        self._source = source
        self._catalog = catalog or catalog_of(source)

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
        work_ms = min(self._settings.deadline_ms, budget)
        # Keep a quarter of the work budget (at least 1 s, at most half) for the final write.
        write_reserve_ms = min(max(1_000, work_ms // 4), work_ms // 2)
        deadline = started + (work_ms - write_reserve_ms) / 1000
        calls = SourceCalls(self._source, self._settings, board, deadline)
        try:
            async with Heartbeat(self._lock, lease) as heartbeat:
                run = _Run(board, reason, lease, started, calls, heartbeat)
                result = await self._refresh_locked(run, requested_at_ms)
        except LeaseLost as exc:
            log.warning(
                "refresh_abandoned", board=board, reason=reason, version=lease.version, error=str(exc)
            )
            result = RefreshResult(board, Outcome.LEASE_LOST, lease.version, attempts=calls.attempts)
        finally:
            try:
                if not await self._lock.release(lease):
                    log.warning("lock_expired_before_release", board=board, version=lease.version)
            except LeaderboardError as exc:
                log.warning("lock_release_failed", board=board, error=str(exc))  # it expires by itself
        if result.outcome in (Outcome.REFRESHED, Outcome.SUPERSEDED):
            log.info(
                "refresh_done",
                board=board,
                reason=reason,
                outcome=str(result.outcome),
                mode=str(result.mode) if result.mode else None,
                rebuild_reason=result.rebuild_reason,
                version=lease.version,
                entries=result.entries,
                changes=result.changes,
                rows_read=result.rows_read,
                source_ms=round(result.source_ms, 1),
                write_ms=round(result.write_ms, 1),
                attempts=result.attempts,
            )
        return result

    async def _refresh_locked(self, run: _Run, requested_at_ms: int) -> RefreshResult:
        # Read again under the lock: the position to continue from, and whether another worker just
        # refreshed (then there is nothing left to do).
        header = await self._cache.read_header(run.board)
        if header is not None and header.generated_at_ms >= requested_at_ms:
            return RefreshResult(run.board, Outcome.ALREADY_FRESH, header.version)
        why = self._rebuild_reason(header)
        if why is not None or header is None or header.position is None:
            return await self._rebuild(run, why or "no_snapshot", forced=False)
        try:
            return await self._delta(run, header)
        except _Rebuild as rebuild:
            return await self._rebuild(run, rebuild.reason, forced=rebuild.forced)

    def _rebuild_reason(self, header: SnapshotHeader | None) -> str | None:
        """Why this refresh must read the board whole, or None for a delta."""
        s = self._settings
        cap = s.leaderboard_size
        if not self._source.has_feed:
            return "no_feed"
        if header is None or header.position is None:
            return "no_snapshot" if header is None else "position_unknown"
        capped = header.boundary is not None
        age_ms = now_ms() - header.rebuilt_at_ms
        reasons = (
            ("source_changed", header.source != self._source.name),
            # a closed board no longer changes: nothing to reconcile
            ("periodic", s.rebuild_seconds > 0 and not header.closed and age_ms >= s.rebuild_seconds * 1000),
            ("size_changed", (cap == 0 and capped) or (cap > 0 and header.size > cap)),
            # players left a capped board: who comes next is not stored
            ("board_not_full", cap > 0 and capped and header.size < min(cap, header.total)),
        )
        return next((reason for reason, applies in reasons if applies), None)

    async def _delta(self, run: _Run, stored: SnapshotHeader) -> RefreshResult:
        assert stored.position is not None
        s = self._settings
        cap = s.leaderboard_size
        generated_at_ms = now_ms()  # before the fetch: the data is at least this fresh
        try:
            feed = await run.calls.changes_since(
                stored.position, max_rows=s.delta_max_rows, with_total=cap > 0
            )
        except PositionLost:
            raise _Rebuild("position_lost", forced=True) from None
        if feed is None:
            raise _Rebuild("too_many_changes")
        ends_at_ms, closed = (await period_state(run.board, run.calls, self._catalog)).header_fields(
            generated_at_ms
        )
        source_ms = (time.monotonic() - run.started) * 1000
        header = SnapshotHeader(
            board=run.board,
            version=run.lease.version,
            generated_at_ms=generated_at_ms,
            total=0,
            size=0,  # the script counts
            source=self._source.name,
            position=feed.head,
            rebuilt_at_ms=stored.rebuilt_at_ms,
            ends_at_ms=ends_at_ms,
            closed=closed,
        )
        run.heartbeat.check()
        write_started = time.monotonic()
        applied, size = await self._cache.apply_changes(
            header, Delta(stored.position, feed.changes, cap, feed.total)
        )
        write_ms = (time.monotonic() - write_started) * 1000
        if applied is Applied.NO_SNAPSHOT:
            raise _Rebuild("no_snapshot")
        if applied is Applied.MOVED:
            raise _Rebuild("position_moved")
        outcome = Outcome.REFRESHED if applied is Applied.APPLIED else Outcome.SUPERSEDED
        return RefreshResult(
            run.board,
            outcome,
            run.lease.version,
            size,
            source_ms,
            write_ms,
            run.calls.attempts,
            Mode.DELTA,
            run.calls.rows,
            len(feed.changes),
        )

    async def _rebuild(self, run: _Run, why: str, *, forced: bool) -> RefreshResult:
        s = self._settings
        board, version = run.board, run.lease.version
        generated_at_ms = now_ms()  # before the fetch: the data is at least this fresh
        try:
            staged = await read_into_staging(
                Plan(
                    calls=run.calls,
                    store=self._cache,
                    board=board,
                    version=version,
                    cap=s.leaderboard_size,
                    page_size=s.source.page_size,
                    chunk=s.write_chunk,
                    has_feed=self._source.has_feed,
                    ttl_ms=run.staging_ttl_ms,
                )
            )
        except BaseException:
            await self._cache.discard_staging(board, version)
            raise
        period = await period_state(board, run.calls, self._catalog)
        source_ms = (time.monotonic() - run.started) * 1000
        if staged.first_page_empty and empty_means_absent(board) and period.known is not True:
            await self._cache.discard_staging(board, version)
            await self._cache.mark_absent(board, version, s.boards.fresh_seconds * 1000)
            return RefreshResult(board, Outcome.ABSENT, version, 0, source_ms, 0.0, run.calls.attempts)
        if staged.staged == 0:
            stored = await self._cache.read_header(board)
            if stored is not None and stored.size > 0:
                # Legitimate after a season reset; otherwise a sign that the source reads nothing (a
                # database role without access, the wrong database). Say so loudly; the source rules.
                log.error("empty_board_replaces_snapshot", board=board, stored_entries=stored.size)
        header = SnapshotHeader(
            board=board,
            version=version,
            generated_at_ms=generated_at_ms,
            total=0,
            size=0,  # the script counts
            source=self._source.name,
            position=staged.position,
            rebuilt_at_ms=generated_at_ms,
            ends_at_ms=period.header_fields(generated_at_ms)[0],
            closed=period.header_fields(generated_at_ms)[1],
        )
        run.heartbeat.check()
        write_started = time.monotonic()
        written = await self._cache.commit(
            header,
            Swap(
                staged.staged,
                s.leaderboard_size,
                staged.boundary,
                staged.total,
                # Never replace a snapshot that reflects a later position, unless the feed itself said
                # the stored position is unusable (a restored database may legitimately go back).
                newest_replaceable=None if forced else staged.position,
            ),
        )
        write_ms = (time.monotonic() - write_started) * 1000
        outcome = Outcome.REFRESHED if written else Outcome.SUPERSEDED
        size = staged.staged if not s.leaderboard_size else min(staged.staged, s.leaderboard_size)
        return RefreshResult(
            board,
            outcome,
            version,
            size,
            source_ms,
            write_ms,
            run.calls.attempts,
            Mode.REBUILD,
            run.calls.rows,
            0,
            why,
        )


class _Rebuild(Exception):
    """A delta is not possible: read the board whole instead."""

    def __init__(self, reason: str, *, forced: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.forced = forced
