"""The snapshot store in Valkey through GLIDE (async): the API's reads and the worker's writes.

The layout — a sorted set ranked by exact byte keys, a hash of stored entries, a header — and every
script live in `common.snapshot`, which imports no client library; docs/layout.md explains them. This
module only sends those scripts and maps GLIDE's errors:

- reads: one script per request (READ_PAGE, READ_USER), one round trip, O(log N + count);
- a delta refresh: one fenced script per batch (APPLY_CHANGES), all of it or none;
- a full rebuild: pages into expiring staging keys (STAGE_ENTRIES), the changes committed meanwhile
  (STAGE_CHANGES), then one fenced swap (COMMIT).

Every Valkey failure surfaces as CacheUnavailable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from glide import ConditionalChange, ExpirySet, ExpiryType, GlideError

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
from common.valkey import DELETE_IF_EQUAL, lua
from common.valkey_setup import unavailable

if TYPE_CHECKING:
    from common.boards import KeySpace
    from common.models import Change
    from common.valkey import ValkeyConnection

__all__ = ["Applied", "Delta", "LeaderboardCache", "Page", "SnapshotHeader", "Swap", "UserWindow"]

_READ_PAGE = lua(scripts.READ_PAGE)
_READ_USER = lua(scripts.READ_USER)
_APPLY_CHANGES = lua(scripts.APPLY_CHANGES)
_STAGE_ENTRIES = lua(scripts.STAGE_ENTRIES)
_STAGE_CHANGES = lua(scripts.STAGE_CHANGES)
_COMMIT = lua(scripts.COMMIT)
_MARK_ABSENT = lua(scripts.MARK_ABSENT)


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
                _READ_PAGE, keys=[keys.snapshot, keys.entries, keys.meta], args=[str(offset), str(count)]
            )
        except GlideError as exc:
            if "WRONGTYPE" in str(exc):
                return None
            raise unavailable(exc, "reading the leaderboard") from None
        return page_from_reply(raw, offset, self._header)

    async def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None:
        """The window around a user in the current snapshot; None when there is no snapshot."""
        keys = self.keys(board)
        client = self._connection.ready or await self._connection.client()
        try:
            raw: Any = await client.invoke_script(
                _READ_USER, keys=[keys.snapshot, keys.entries, keys.meta], args=[user_id, str(around)]
            )
        except GlideError as exc:
            if "WRONGTYPE" in str(exc):
                return None
            raise unavailable(exc, "reading a user's rank") from None
        return user_from_reply(raw, self._header)

    async def is_absent(self, board: str) -> bool:
        client = await self._connection.client()
        try:
            return bool(await client.exists([self.keys(board).absent]))
        except GlideError as exc:
            raise unavailable(exc, "checking for an unknown board") from None

    async def read_header(self, board: str) -> SnapshotHeader | None:
        client = await self._connection.client()
        try:
            raw = await client.get(self.keys(board).meta)
        except GlideError as exc:
            if "WRONGTYPE" in str(exc):
                return None
            raise unavailable(exc, "reading the snapshot header") from None
        return SnapshotHeader.decode(raw) if raw else None

    # ---- the "refresh requested" marker ---------------------------------------------------------

    async def mark_refresh_requested(self, board: str, token: str, ttl_ms: int) -> bool:
        """True for exactly one caller per stale episode (SET NX PX): that caller sends the message."""
        client = await self._connection.client()
        try:
            result = await client.set(
                self.keys(board).refresh_marker,
                token,
                conditional_set=ConditionalChange.ONLY_IF_DOES_NOT_EXIST,
                expiry=ExpirySet(ExpiryType.MILLSEC, ttl_ms),
            )
        except GlideError as exc:
            raise unavailable(exc, "marking a refresh as requested") from None
        return result is not None

    async def clear_refresh_request(self, board: str, token: str) -> None:
        """Undo our own marker (the send failed), so that the next stale read tries again."""
        client = await self._connection.client()
        try:
            await client.invoke_script(DELETE_IF_EQUAL, keys=[self.keys(board).refresh_marker], args=[token])
        except GlideError as exc:
            raise unavailable(exc, "clearing the refresh marker") from None

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
                keys=[keys.snapshot, keys.entries, keys.meta, keys.refresh_marker, keys.absent, keys.top],
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
        staging = self.keys(board).staging(version)
        packed = pack_pairs((e.user_id.encode(), encode_value(e)) for e in entries)
        client = await self._connection.client()
        try:
            reply: Any = await client.invoke_script(
                _STAGE_ENTRIES, keys=list(staging), args=[str(ttl_ms), packed]
            )
        except GlideError as exc:
            raise unavailable(exc, "staging the snapshot") from None
        return int(reply[0]), (bytes(reply[1]) or None)

    async def stage_changes(
        self, board: str, version: int, changes: Sequence[Change], *, ttl_ms: int, boundary: bytes | None
    ) -> int:
        """Apply changes to the staging keys (a rebuild's catch-up); returns how many are staged."""
        staging = self.keys(board).staging(version)
        edge = "" if boundary is None else boundary.hex()
        client = await self._connection.client()
        try:
            reply: Any = await client.invoke_script(
                _STAGE_CHANGES, keys=list(staging), args=[str(ttl_ms), edge, _changes(changes)]
            )
            return int(reply)
        except GlideError as exc:
            raise unavailable(exc, "staging the snapshot") from None

    async def commit(self, header: SnapshotHeader, swap: Swap) -> bool:
        """Swap the staged rebuild in if `header.version` is newer than the stored one (and, with
        `swap.newest_replaceable`, the stored position is not past it). False: refused, the caller's data is
        older. CacheUnavailable when the staged data is no longer all there."""
        keys = self.keys(header.board)
        staging, staging_entries = keys.staging(header.version)
        client = await self._connection.client()
        try:
            result = await client.invoke_script(
                _COMMIT,
                keys=[
                    keys.snapshot,
                    keys.entries,
                    keys.meta,
                    keys.refresh_marker,
                    keys.absent,
                    staging,
                    staging_entries,
                    keys.legacy_positions,
                    keys.top,
                ],
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
        keys = self.keys(board)
        client = await self._connection.client()
        try:
            result = await client.invoke_script(
                _MARK_ABSENT,
                keys=[
                    keys.snapshot,
                    keys.entries,
                    keys.meta,
                    keys.refresh_marker,
                    keys.absent,
                    keys.version,
                    keys.legacy_positions,
                    keys.top,
                ],
                args=[str(version), str(ttl_ms)],
            )
        except GlideError as exc:
            raise unavailable(exc, "recording an unknown board") from None
        return bool(result == 1)
