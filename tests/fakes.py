"""Small in-memory fakes of our Protocols, for unit tests that run with no engine.

One fake per Protocol, each as simple as the behaviour the logic relies on and no simpler:
- `FakeSnapshotStore`: the API's `SnapshotStore` (api_lambda.service), synchronous;
- `FakeRefreshSender` / `FakeRefreshQueue`: a `RefreshSender` and the async `RefreshQueue` (common.queue);
- `FakeMetrics`: a `MetricSink` that only sums;
- `FakeBoardStore`: the worker's `SnapshotStore` (refresh_worker.refresher): headers, staging, the version
  fence of `commit` and `apply_changes` (superseded, no snapshot, moved) as docs/layout.md describes it;
- `FakeDelayedSender`: the redelivery's `DelayedSender` (refresh_worker.redelivery);
- `FakeLock`: the `Locker` (acquire/renew/release by token, a lease another worker can take);
- `FakeSource`: a `Source` with ranked pages (keyset cursor), a change feed with a horizon, and
  transient failures or a delay to inject.

The fakes do not rank, cap or encode like Valkey does; what the layout does is proven on real engines
(tests/integration). Here only the decisions around it are tested.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from common.cache import Applied, Delta, Swap
from common.errors import CacheUnavailable, PositionLost, SourceUnavailable
from common.lock import Lease
from common.messages import RefreshRequest
from common.models import Change, Entry
from common.queue import QueueUnavailable
from common.snapshot import Page, Ranked, SnapshotHeader, UserSet, UserWindow, encode_value, served_entry
from common.sources import ChangePage, Cursor, SourcePage

DOWN = "reading the leaderboard: no answer within VALKEY_REQUEST_TIMEOUT_MS"


def ranked(n: int, *, prefix: str = "u") -> list[Entry]:
    """n players with distinct scores, best first (ranks 1..n)."""
    return [Entry(i + 1, f"{prefix}{i + 1:05d}", f"player {i + 1}", 10 * (n - i), 1, None) for i in range(n)]


# ---- the API side ---------------------------------------------------------------------------------


class FakeSnapshotStore:
    """Snapshots held as served entries; `down` makes every call fail as a Valkey timeout would."""

    def __init__(self) -> None:
        self.boards: dict[str, tuple[SnapshotHeader, list[Entry]]] = {}
        self.absent: set[str] = set()
        self.markers: dict[str, str] = {}
        self.reads = 0
        self.down = False
        self.fill_after_reads: dict[str, tuple[int, list[Entry]]] = {}  # a worker filling the board later

    def put(self, board: str, entries: Sequence[Entry], *, version: int = 1, age_seconds: float = 0) -> None:
        generated = int((time.time() - age_seconds) * 1000)
        header = SnapshotHeader(board, version, generated, len(entries), len(entries), "fake")
        self.boards[board] = (header, list(entries))

    def _snapshot(self, board: str) -> tuple[SnapshotHeader, list[Entry]] | None:
        self.reads += 1
        if self.down:
            raise CacheUnavailable(DOWN)
        fill = self.fill_after_reads.get(board)
        if fill is not None and self.reads >= fill[0]:
            del self.fill_after_reads[board]
            self.put(board, fill[1])
        return self.boards.get(board)

    def read_page(self, board: str, offset: int, count: int) -> Page | None:
        found = self._snapshot(board)
        if found is None:
            return None
        header, entries = found
        return Page(header, offset, [_served(e) for e in entries[offset : offset + count]])

    def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None:
        found = self._snapshot(board)
        if found is None:
            return None
        header, entries = found
        at = next((i for i, e in enumerate(entries) if e.user_id == user_id), None)
        if at is None:
            return UserWindow(header, 0, None, [])
        first = max(0, at - around)
        window = [_served(e) for e in entries[first : at + around + 1]]
        return UserWindow(header, first, at, window)

    def read_users(self, board: str, user_ids: Sequence[str]) -> UserSet | None:
        found = self._snapshot(board)
        if found is None:
            return None
        header, entries = found
        wanted = set(user_ids)
        on_board = [e for e in entries if e.user_id in wanted]
        present = {e.user_id for e in on_board}
        return UserSet(header, [_served(e) for e in on_board], [u for u in user_ids if u not in present])

    def is_absent(self, board: str) -> bool:
        if self.down:
            raise CacheUnavailable(DOWN)
        return board in self.absent

    def mark_refresh_requested(self, board: str, token: str, ttl_ms: int) -> bool:
        if self.down:
            raise CacheUnavailable(DOWN)
        if board in self.markers:
            return False
        self.markers[board] = token
        return True

    def clear_refresh_request(self, board: str, token: str) -> None:
        if self.markers.get(board) == token:
            del self.markers[board]


def _served(entry: Entry) -> bytes:
    return served_entry(entry.rank, entry.user_id, encode_value(entry))


class FakeRefreshSender:
    """A RefreshSender that keeps what it was sent; `down` makes it fail as SQS would."""

    def __init__(self) -> None:
        self.sent: list[RefreshRequest] = []
        self.down = False

    def send(self, request: RefreshRequest) -> None:
        if self.down:
            raise QueueUnavailable("sending the refresh request: SQS did not answer")
        self.sent.append(request)


class FakeRefreshQueue:
    """The async RefreshQueue the API container holds (wrapped in BlockingRefreshQueue by ApiApp)."""

    def __init__(self) -> None:
        self.sent: list[RefreshRequest] = []
        self.closed = False

    async def send(self, request: RefreshRequest) -> None:
        self.sent.append(request)

    async def close(self) -> None:
        self.closed = True


class FakeConnection:
    """What ApiApp closes at the end; the fakes above never connect anywhere."""

    def close(self) -> None:
        pass


class FakeMetrics:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.values[name] = self.values.get(name, 0) + value


# ---- the worker side ------------------------------------------------------------------------------


@dataclass
class Stored:
    header: SnapshotHeader
    players: dict[str, Ranked]


@dataclass
class FakeBoardStore:
    """The worker's snapshot store: a header and players per board, staging per (board, version)."""

    boards: dict[str, Stored] = field(default_factory=dict)
    staging: dict[tuple[str, int], dict[str, Ranked]] = field(default_factory=dict)
    absent: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    deltas: int = 0
    discarded: list[tuple[str, int]] = field(default_factory=list)
    apply_result: Applied | None = None  # force what apply_changes answers (MOVED, NO_SNAPSHOT)

    def put(self, header: SnapshotHeader, players: Sequence[Ranked] = ()) -> None:
        self.boards[header.board] = Stored(header, {p.user_id: p for p in players})

    async def read_header(self, board: str) -> SnapshotHeader | None:
        stored = self.boards.get(board)
        return None if stored is None else stored.header

    async def stage_entries(
        self, board: str, version: int, entries: Sequence[Ranked], *, ttl_ms: int
    ) -> tuple[int, bytes | None]:
        staged = self.staging.setdefault((board, version), {})
        staged.update((e.user_id, e) for e in entries)
        return len(staged), (entries[-1].user_id.encode() if entries else None)

    async def stage_changes(
        self, board: str, version: int, changes: Sequence[Change], *, ttl_ms: int, boundary: bytes | None
    ) -> int:
        staged = self.staging.setdefault((board, version), {})
        _apply(staged, changes)
        return len(staged)

    async def apply_changes(self, header: SnapshotHeader, delta: Delta) -> tuple[Applied, int]:
        stored = self.boards.get(header.board)
        if self.apply_result is not None:
            return self.apply_result, 0
        if stored is None:
            return Applied.NO_SNAPSHOT, 0
        if stored.header.version >= header.version:
            return Applied.SUPERSEDED, len(stored.players)
        if stored.header.position != delta.expected_position:
            return Applied.MOVED, len(stored.players)
        _apply(stored.players, delta.changes)
        size = len(stored.players)
        stored.header = _sized(header, size, delta.total)
        self.deltas += 1
        return Applied.APPLIED, size

    async def commit(self, header: SnapshotHeader, swap: Swap) -> bool:
        stored = self.boards.get(header.board)
        players = self.staging.pop((header.board, header.version), {})
        if stored is not None and (
            stored.header.version >= header.version
            or (
                swap.newest_replaceable is not None
                and stored.header.position is not None
                and stored.header.position > swap.newest_replaceable
            )
        ):
            return False
        self.boards[header.board] = Stored(_sized(header, len(players), swap.total), players)
        self.commits += 1
        return True

    async def discard_staging(self, board: str, version: int) -> None:
        self.discarded.append((board, version))
        self.staging.pop((board, version), None)

    async def mark_absent(self, board: str, version: int, ttl_ms: int) -> bool:
        self.absent[board] = ttl_ms
        self.boards.pop(board, None)
        return True


def _apply(players: dict[str, Ranked], changes: Sequence[Change]) -> None:
    for change in changes:
        if change.entry is None:
            players.pop(change.user_id, None)
        else:
            players[change.user_id] = change.entry


def _sized(header: SnapshotHeader, size: int, total: int | None) -> SnapshotHeader:
    return SnapshotHeader(
        header.board,
        header.version,
        header.generated_at_ms,
        size if total is None else total,
        size,
        header.source,
        header.position,
        header.rebuilt_at_ms,
    )


class FakeDelayedSender:
    """The redelivery's DelayedSender: records each delayed re-send (body, delay, attributes)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, dict[str, str]]] = []

    async def send_later(self, body: str, *, delay_seconds: int, attributes: dict[str, str]) -> None:
        self.sent.append((body, delay_seconds, attributes))

    async def close(self) -> None:
        pass


class FakeLock:
    """One lease per board, fenced by an increasing version; `steal(board)` is another worker taking it."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.version = 1_000
        self.renewals = 0
        self.acquired: list[tuple[str, int]] = []  # (board, ttl_ms) asked for

    async def acquire(self, board: str, ttl_ms: int) -> Lease | None:
        self.acquired.append((board, ttl_ms))
        if board in self.held:
            return None
        self.version += 1
        token = f"fake/{self.version}"
        self.held[board] = token
        return Lease(board, token, self.version, ttl_ms)

    async def renew(self, lease: Lease, staging_ttl_ms: int) -> bool:
        self.renewals += 1
        return self.held.get(lease.board) == lease.token

    async def release(self, lease: Lease) -> bool:
        if self.held.get(lease.board) != lease.token:
            return False
        del self.held[lease.board]
        return True

    def steal(self, board: str) -> None:
        self.held[board] = "another-worker"


class FakeSource:
    """Ranked boards and a change feed in memory.

    `fail_next` transient failures (SourceUnavailable) come before any answer; `delay` is spent in every
    call; `horizon` is the oldest feed position still covered (older ones raise PositionLost).
    """

    def __init__(self, *, name: str = "fake", has_feed: bool = True) -> None:
        self.name = name
        self.has_feed = has_feed
        self.boards: dict[str, list[Entry]] = {}
        self.feed: dict[str, list[Change]] = {}
        self.horizon = 0
        self.fail_next = 0
        self.delay = 0.0
        self.calls: list[str] = []

    def change(self, board: str, entry: Entry | None, user_id: str | None = None) -> int:
        """Append a change to the board's feed; returns its position."""
        feed = self.feed.setdefault(board, [])
        seq = self.head(board) + 1
        feed.append(Change(user_id or (entry.user_id if entry else ""), entry, seq))
        return seq

    def head(self, board: str) -> int:
        feed = self.feed.get(board) or []
        return max(feed[-1].seq if feed else 0, self.horizon)

    async def _enter(self, what: str) -> None:
        self.calls.append(what)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise SourceUnavailable(f"{what}: connection refused")

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        await self._enter("page")
        entries = self.boards.get(board, [])
        start = 0 if after is None else after.position
        page = entries[start : start + limit]
        end = start + len(page) >= len(entries)
        if not page:
            return SourcePage([], len(entries) if after is None else None, None, end=True)
        last = page[-1]
        cursor = Cursor(last.score, last.last_solved_at, last.user_id, last.rank, start + len(page))
        return SourcePage(page, len(entries) if after is None else None, cursor, end=end)

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        await self._enter("changes")
        total = len(self.boards.get(board, [])) if with_total else None
        head = self.head(board)
        if after is None:
            return ChangePage(head, self.horizon, [], total)
        if after < self.horizon:
            raise PositionLost(f"position {after} is older than the feed's horizon {self.horizon}")
        changes = [c for c in self.feed.get(board, []) if c.seq > after][:limit]
        return ChangePage(head, self.horizon, changes, total)

    async def close(self) -> None:
        pass
