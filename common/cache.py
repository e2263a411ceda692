"""The snapshot store in Valkey through GLIDE (async): the worker's writes, and the reads of the worker,
`leaderboard-ops` and the tests. (The API reads through the sync `common.snapshot_reader`, which also
owns the read path's "refresh requested" marker.)

The layout — a sorted set ranked by exact byte keys, a hash of stored entries, a header — and every
script live in `common.snapshot`, which imports no client library; docs/layout.md explains them. This
module only sends those scripts and maps GLIDE's errors:

- reads: one script per request (READ_PAGE, READ_USER), one round trip, O(log N + count);
- a delta refresh: one fenced script per batch (APPLY_CHANGES), all of it or none;
- a full rebuild: pages into expiring staging keys (STAGE_ENTRIES), the changes committed meanwhile
  (STAGE_CHANGES), then one fenced swap (COMMIT).

Every Valkey failure surfaces as CacheUnavailable; a key of the wrong type reads as no snapshot
(`common.snapshot.failures`, shared with the sync reader).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from glide import GlideError

from common.errors import CacheUnavailable
from common.snapshot import (
    TOP_ENTRIES,
    HeaderCache,
    Page,
    Ranked,
    SnapshotHeader,
    UserWindow,
    encode_value,
    pack_pairs,
    page_from_reply,
    scripts,
    user_from_reply,
)
from common.snapshot.failures import read_failure
from common.valkey import lua
from common.valkey_setup import unavailable

if TYPE_CHECKING:
    from common.boards import KeySpace
    from common.models import Change
    from common.valkey import ValkeyConnection

__all__ = ["Applied", "Delta", "LeaderboardCache", "Page", "SnapshotHeader", "Swap", "UserWindow"]

_READ_PAGE = lua(scripts.READ_PAGE.source)
_READ_USER = lua(scripts.READ_USER.source)
_APPLY_CHANGES = lua(scripts.APPLY_CHANGES.source)
_STAGE_ENTRIES = lua(scripts.STAGE_ENTRIES.source)
_STAGE_CHANGES = lua(scripts.STAGE_CHANGES.source)
_COMMIT = lua(scripts.COMMIT.source)
_MARK_ABSENT = lua(scripts.MARK_ABSENT.source)


class Applied(IntEnum):
    """What APPLY_CHANGES did with a batch."""

    APPLIED = 1
    SUPERSEDED = 0  # a newer (or the same) version is stored: this batch is old
    NO_SNAPSHOT = -1  # nothing usable to apply to (flushed, evicted): rebuild
    MOVED = -2  # the stored position is not where this batch starts


@dataclass(frozen=True, slots=True)
class Delta:
    """A delta refresh's batch: `changes` on top of the snapshot at `expected_position`."""

    expected_position: int
    changes: Sequence[Change]
    cap: int = 0  # LEADERBOARD_SIZE in effect
    total: int | None = None  # players on the board; None: total = size


@dataclass(frozen=True, slots=True)
class Swap:
    """What a full rebuild's commit swaps in: `staged` players, capped at `cap` below `boundary`."""

    staged: int
    cap: int = 0
    boundary: bytes | None = None
    total: int | None = None
    # Refuse to replace a snapshot whose position is past this one (None: the feed said it is unusable).
    newest_replaceable: int | None = None


def _changes(changes: Sequence[Change]) -> bytes:
    return pack_pairs(
        (c.user_id.encode(), b"" if c.entry is None else encode_value(c.entry)) for c in changes
    )


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


class LeaderboardCache:
    def __init__(self, connection: ValkeyConnection, keys: KeySpace) -> None:
        self._connection = connection
        self.keys = keys
        self._header = HeaderCache()

    # ---- reads (the API's hot path) -------------------------------------------------------------

    async def read_page(self, board: str, offset: int, count: int) -> Page | None:
        """The header and entries [offset, offset+count) of the current snapshot; None if there is none.

        A first page of up to TOP_ENTRIES is one LRANGE of the top list (header + served entries, written
        by the same script as every change); other pages, or a missing top list, take READ_PAGE."""
        keys = self.keys(board)
        client = self._connection.ready or await self._connection.client()
        try:
            if offset == 0 and count <= TOP_ENTRIES:
                top: list[bytes] = await client.lrange(keys.top, 0, count)
                if top:
                    return page_from_reply(top, 0, self._header)
            raw: Any = await client.invoke_script(
                _READ_PAGE, keys=scripts.READ_PAGE.key_list(keys), args=[str(offset), str(count)]
            )
        except GlideError as exc:
            read_failure(exc, "reading the leaderboard")
            return None
        return page_from_reply(raw, offset, self._header)

    async def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None:
        """The window around a user in the current snapshot; None when there is no snapshot."""
        keys = self.keys(board)
        client = self._connection.ready or await self._connection.client()
        try:
            raw: Any = await client.invoke_script(
                _READ_USER, keys=scripts.READ_USER.key_list(keys), args=[user_id, str(around)]
            )
        except GlideError as exc:
            read_failure(exc, "reading a user's rank")
            return None
        return user_from_reply(raw, self._header)

    async def read_header(self, board: str) -> SnapshotHeader | None:
        client = await self._connection.client()
        try:
            raw = await client.get(self.keys(board).meta)
        except GlideError as exc:
            read_failure(exc, "reading the snapshot header")
            return None
        return SnapshotHeader.decode(raw) if raw else None

    # ---- writes (the worker) --------------------------------------------------------------------

    async def apply_changes(self, header: SnapshotHeader, delta: Delta) -> tuple[Applied, int]:
        """A delta refresh in one script: applied only on top of `delta.expected_position` and an older
        version. `header` carries the new version, position and times; the script computes size
        (and, without `total`, total = size) itself. Returns what happened and the new size."""
        keys = self.keys(header.board)
        client = await self._connection.client()
        args: list[str | bytes] = [
            str(header.version),
            str(delta.expected_position),
            header.meta_prefix(),
            _text(delta.total),
            str(delta.cap),
            _changes(delta.changes),
        ]
        try:
            reply: Any = await client.invoke_script(
                _APPLY_CHANGES,
                keys=scripts.APPLY_CHANGES.key_list(keys),
                args=[*args, str(TOP_ENTRIES)],
            )
        except GlideError as exc:
            raise unavailable(exc, "applying changes to the snapshot") from None
        return Applied(int(reply[0])), int(reply[1]) if len(reply) > 1 else 0

    async def stage_entries(
        self, board: str, version: int, entries: Sequence[Ranked], *, ttl_ms: int
    ) -> tuple[int, bytes | None]:
        """Add one page of a full rebuild to the staging keys; returns how many players are staged and
        the last one's member (the boundary, when the paging stops at LEADERBOARD_SIZE)."""
        staging = scripts.STAGE_ENTRIES.key_list(self.keys(board), version)
        packed = pack_pairs((e.user_id.encode(), encode_value(e)) for e in entries)
        client = await self._connection.client()
        try:
            reply: Any = await client.invoke_script(_STAGE_ENTRIES, keys=staging, args=[str(ttl_ms), packed])
        except GlideError as exc:
            raise unavailable(exc, "staging the snapshot") from None
        return int(reply[0]), (bytes(reply[1]) or None)

    async def stage_changes(
        self, board: str, version: int, changes: Sequence[Change], *, ttl_ms: int, boundary: bytes | None
    ) -> int:
        """Apply changes to the staging keys (a rebuild's catch-up); returns how many are staged."""
        staging = scripts.STAGE_CHANGES.key_list(self.keys(board), version)
        edge = "" if boundary is None else boundary.hex()
        client = await self._connection.client()
        try:
            reply: Any = await client.invoke_script(
                _STAGE_CHANGES, keys=staging, args=[str(ttl_ms), edge, _changes(changes)]
            )
            return int(reply)
        except GlideError as exc:
            raise unavailable(exc, "staging the snapshot") from None

    async def commit(self, header: SnapshotHeader, swap: Swap) -> bool:
        """Swap the staged rebuild in if `header.version` is newer than the stored one (and, with
        `swap.newest_replaceable`, the stored position is not past it). False: refused, the caller's data is
        older. CacheUnavailable when the staged data is no longer all there."""
        keys = scripts.COMMIT.key_list(self.keys(header.board), header.version)
        client = await self._connection.client()
        try:
            result = await client.invoke_script(
                _COMMIT,
                keys=keys,
                args=[
                    str(header.version),
                    _text(swap.newest_replaceable),
                    header.meta_prefix(),
                    _text(swap.total),
                    str(swap.cap),
                    "" if swap.boundary is None else swap.boundary.hex(),
                    str(swap.staged),
                    str(TOP_ENTRIES),
                ],
            )
        except GlideError as exc:
            await self.discard_staging(header.board, header.version)
            raise unavailable(exc, "writing the snapshot") from None
        if result == -1:
            raise CacheUnavailable("the staged snapshot was gone at the swap (expired or evicted)")
        return bool(result == 1)

    async def discard_staging(self, board: str, version: int) -> None:
        """Best effort: staging keys expire by themselves anyway."""
        try:
            client = await self._connection.client()
            await client.delete(list(self.keys(board).staging(version)))
        except (GlideError, CacheUnavailable):
            pass

    async def write_snapshot(
        self, header: SnapshotHeader, entries: Sequence[Ranked], *, staging_ttl_ms: int, chunk: int = 1000
    ) -> bool:
        """Stage a whole board and swap it in (tools, tests and benchmarks; the worker streams pages
        through stage_entries and commit). Entries' ranks are not stored: they follow from the order."""
        staged = 0
        try:
            for start in range(0, len(entries), chunk):
                staged, _ = await self.stage_entries(
                    header.board, header.version, entries[start : start + chunk], ttl_ms=staging_ttl_ms
                )
        except CacheUnavailable:
            await self.discard_staging(header.board, header.version)
            raise
        total = header.total if header.total != len(entries) else None
        return await self.commit(header, Swap(staged, total=total))

    async def mark_absent(self, board: str, version: int, ttl_ms: int) -> bool:
        client = await self._connection.client()
        try:
            result = await client.invoke_script(
                _MARK_ABSENT,
                keys=scripts.MARK_ABSENT.key_list(self.keys(board)),
                args=[str(version), str(ttl_ms)],
            )
        except GlideError as exc:
            raise unavailable(exc, "recording an unknown board") from None
        return bool(result == 1)
