"""The snapshot format in Valkey, and every read and write of it. The API and the worker both use this
module, so they cannot disagree about the layout.

Layout of one board (keys from `common.boards.BoardKeys`):

- `active_leaderboard` — a LIST. Element 0 is the header (JSON: format, board, version, generated_at_ms,
  total, size, source); elements 1..size are the entries in rank order, each a pre-serialized JSON
  object. `LRANGE key 0 N` returns the header and the top N in one command and one round trip, and its
  cost depends on N, not on the board's size. The response is assembled from the stored bytes without
  decoding them.
- `{active_leaderboard}:positions` — HASH user_id → list index, for "my rank" lookups in O(1).
- `{active_leaderboard}:version` — the fencing counter: max(INCR, server time in ms), so versions keep
  increasing across a cache flush.
- `{active_leaderboard}:lock` — the worker's lock (see `common.lock`).
- `{active_leaderboard}:refresh` — "a refresh was requested": SET NX PX by the API, cleared by the swap.
- `{active_leaderboard}:absent` — the source has no such board (short-lived, so unknown challenges 404).

A worker fills two staging keys (which expire by themselves if it dies), then one script swaps them in
with RENAME if and only if its version is newer than the stored one. Readers see the old snapshot or
the new one, never a mix, and a worker whose lock expired cannot overwrite a newer snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from glide import ConditionalChange, ExpirySet, ExpiryType, GlideError

from common.errors import CacheUnavailable
from common.timeutil import iso_from_ms
from common.valkey import DELETE_IF_EQUAL, describe_error, lua

if TYPE_CHECKING:
    from common.boards import KeySpace
    from common.models import Entry
    from common.valkey import ValkeyConnection

__all__ = [
    "FORMAT",
    "LeaderboardCache",
    "Page",
    "SnapshotHeader",
    "UserWindow",
    "encode_entry",
]

FORMAT = 1

# A stored snapshot's version is read from its header, so there is one source of truth for it. A key of
# the wrong type (e.g. an older release's JSON string) or an unreadable header counts as "no snapshot".
_STORED_VERSION_LUA = """
local function stored_version(key)
  if redis.call('TYPE', key)['ok'] ~= 'list' then return 0 end
  local head = redis.call('LINDEX', key, 0)
  if not head then return 0 end
  local ok, decoded = pcall(cjson.decode, head)
  if not ok or type(decoded) ~= 'table' then return 0 end
  return tonumber(decoded['version']) or 0
end
"""

# KEYS: snapshot, positions, refresh marker, absent marker, staging list, staging positions
# ARGV: version, entries (a non-empty snapshot must come with its positions hash, or "my rank" breaks)
# Returns 1 = swapped in, 0 = refused (a newer or equal snapshot is stored), -1 = staging data missing
# (expired, or evicted by a volatile-* maxmemory policy).
_COMMIT = lua(
    _STORED_VERSION_LUA
    + """
local version = tonumber(ARGV[1])
if stored_version(KEYS[1]) >= version then
  redis.call('DEL', KEYS[5], KEYS[6])
  return 0
end
if redis.call('EXISTS', KEYS[5]) == 0 or (tonumber(ARGV[2]) > 0 and redis.call('EXISTS', KEYS[6]) == 0) then
  redis.call('DEL', KEYS[5], KEYS[6])
  return -1
end
redis.call('RENAME', KEYS[5], KEYS[1])
redis.call('PERSIST', KEYS[1])
if redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('RENAME', KEYS[6], KEYS[2])
  redis.call('PERSIST', KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
redis.call('DEL', KEYS[3], KEYS[4])
return 1
"""
)

# KEYS: snapshot, positions, refresh marker, absent marker, version counter   ARGV: version, absent ttl ms
# The source says the board does not exist: drop any snapshot (fenced like a commit) and remember that
# for a while. The version counter goes too: a probed, non-existent board leaves only keys that expire.
# (Versions stay monotonic without it: they are max(counter + 1, server time).)
_MARK_ABSENT = lua(
    _STORED_VERSION_LUA
    + """
if stored_version(KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
return 1
"""
)

# KEYS: staging key   ARGV: ttl ms, values...   (RPUSH and its expiry in one step: nothing can leak)
_STAGE_LIST = lua(
    """
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: staging hash   ARGV: ttl ms, field, value, field, value...
_STAGE_HASH = lua(
    """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: snapshot   ARGV: first index, last index (both inclusive, list indexes, header is 0)
# Header and a page from the same snapshot, atomically (a swap cannot fall between the two reads).
_READ_PAGE = lua(
    """
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return {} end
local page = redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])
table.insert(page, 1, head)
return page
"""
)

# KEYS: snapshot, positions   ARGV: user_id, around
# Returns {} (no snapshot), {header} (user not on the board), or {header, first, index, entries...}
# where first is the list index of the first entry returned and index the user's.
# The window keeps its size 2*around+1 at the edges of the board, as Steam's "around me" does.
_READ_USER = lua(
    """
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return {} end
local index = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
if not index then return {head} end
local around = tonumber(ARGV[2])
local last = redis.call('LLEN', KEYS[1]) - 1
local first = index - around
if first < 1 then first = 1 end
local stop = first + 2 * around
if stop > last then
  stop = last
  first = stop - 2 * around
  if first < 1 then first = 1 end
end
local page = redis.call('LRANGE', KEYS[1], first, stop)
table.insert(page, 1, tostring(index))
table.insert(page, 1, tostring(first))
table.insert(page, 1, head)
return page
"""
)


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    board: str
    version: int
    generated_at_ms: int
    total: int
    size: int
    source: str
    # Formatted once per snapshot, not once per request (the decoded header is reused across reads).
    generated_at: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "generated_at", iso_from_ms(self.generated_at_ms))

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "board": self.board,
                "version": self.version,
                "generated_at_ms": self.generated_at_ms,
                "total": self.total,
                "size": self.size,
                "source": self.source,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> SnapshotHeader | None:
        """None when the header is unreadable (the next refresh replaces such a snapshot)."""
        try:
            data = json.loads(raw)
            return cls(
                board=str(data["board"]),
                version=int(data["version"]),
                generated_at_ms=int(data["generated_at_ms"]),
                total=int(data["total"]),
                size=int(data["size"]),
                source=str(data.get("source", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Page:
    header: SnapshotHeader
    offset: int
    entries: list[bytes]


@dataclass(frozen=True, slots=True)
class UserWindow:
    """`entries` start at board position `offset` (0-based); the user is at `position`, which is None
    (and `entries` empty) when the snapshot does not contain the user."""

    header: SnapshotHeader
    offset: int
    position: int | None
    entries: list[bytes]


def encode_entry(entry: Entry) -> bytes:
    """The stored (and served) form of one entry; the API copies these bytes into responses as they are."""
    return json.dumps(
        {
            "rank": entry.rank,
            "user_id": entry.user_id,
            "username": entry.username,
            "score": entry.score,
            "solved": entry.solved,
            "last_solved_at": entry.last_solved_at,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def _unavailable(exc: GlideError, what: str) -> CacheUnavailable:
    return CacheUnavailable(f"{what}: {describe_error(exc)}")


class LeaderboardCache:
    """Reads and writes snapshots. Every Valkey failure surfaces as CacheUnavailable."""

    def __init__(self, connection: ValkeyConnection, keys: KeySpace) -> None:
        self._connection = connection
        self.keys = keys
        self._last_header: tuple[bytes, SnapshotHeader] | None = None

    def _header(self, raw: bytes) -> SnapshotHeader | None:
        """Decode a header, reusing the last one when the bytes are the same (the common case: one
        snapshot serves thousands of reads; comparing ~150 bytes beats parsing JSON)."""
        last = self._last_header
        if last is not None and last[0] == raw:
            return last[1]
        header = SnapshotHeader.decode(raw)
        if header is not None:
            self._last_header = (raw, header)
        return header

    # ---- reads (the API's hot path) -------------------------------------------------------------

    async def read_page(self, board: str, offset: int, count: int) -> Page | None:
        """The header and entries [offset, offset+count) of the current snapshot; None if there is none.

        offset 0 (the common case) is a single LRANGE; deeper pages use a script so that the header and
        the page come from the same snapshot.
        """
        key = self.keys(board).snapshot
        client = self._connection.ready or await self._connection.client()
        try:
            if offset == 0:
                raw: list[bytes] = await client.lrange(key, 0, count)
            else:
                raw = await client.invoke_script(
                    _READ_PAGE, keys=[key], args=[str(offset + 1), str(offset + count)]
                )
        except GlideError as exc:
            if "WRONGTYPE" in str(exc):
                return None
            raise _unavailable(exc, "reading the leaderboard") from None
        if not raw:
            return None
        header = self._header(raw[0])
        if header is None:
            return None
        return Page(header=header, offset=offset, entries=raw[1:])

    async def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None:
        """The window around a user in the current snapshot; None when there is no snapshot."""
        keys = self.keys(board)
        client = self._connection.ready or await self._connection.client()
        try:
            raw: list[bytes] = await client.invoke_script(
                _READ_USER, keys=[keys.snapshot, keys.positions], args=[user_id, str(around)]
            )
        except GlideError as exc:
            if "WRONGTYPE" in str(exc):
                return None
            raise _unavailable(exc, "reading a user's rank") from None
        if not raw:
            return None
        header = self._header(raw[0])
        if header is None:
            return None
        if len(raw) == 1:
            return UserWindow(header=header, offset=0, position=None, entries=[])
        # List indexes count the header as 0; board positions start at 0 with the leader.
        return UserWindow(header=header, offset=int(raw[1]) - 1, position=int(raw[2]) - 1, entries=raw[3:])

    async def is_absent(self, board: str) -> bool:
        client = await self._connection.client()
        try:
            return bool(await client.exists([self.keys(board).absent]))
        except GlideError as exc:
            raise _unavailable(exc, "checking for an unknown board") from None

    async def read_header(self, board: str) -> SnapshotHeader | None:
        client = await self._connection.client()
        try:
            raw = await client.lindex(self.keys(board).snapshot, 0)
        except GlideError as exc:
            if "WRONGTYPE" in str(exc):
                return None
            raise _unavailable(exc, "reading the snapshot header") from None
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
            raise _unavailable(exc, "marking a refresh as requested") from None
        return result is not None

    async def clear_refresh_request(self, board: str, token: str) -> None:
        """Undo our own marker (the send failed), so that the next stale read tries again."""
        client = await self._connection.client()
        try:
            await client.invoke_script(DELETE_IF_EQUAL, keys=[self.keys(board).refresh_marker], args=[token])
        except GlideError as exc:
            raise _unavailable(exc, "clearing the refresh marker") from None

    # ---- writes (the worker) --------------------------------------------------------------------

    async def write_snapshot(
        self, header: SnapshotHeader, entries: Sequence[Entry], *, staging_ttl_ms: int, chunk: int = 1000
    ) -> bool:
        """Stage the entries, then swap them in if `header.version` is newer than the stored version.

        Returns False when a newer (or equal) snapshot is already stored: the caller's data is older.
        """
        keys = self.keys(header.board)
        staging, staging_positions = keys.staging(header.version)
        client = await self._connection.client()
        ttl = str(staging_ttl_ms)
        try:
            values: list[str | bytes] = [header.encode()]
            for start in range(0, max(len(entries), 1), chunk):
                part = entries[start : start + chunk]
                values.extend(encode_entry(e) for e in part)
                await client.invoke_script(_STAGE_LIST, keys=[staging], args=[ttl, *values])
                values = []
                if part:
                    pairs: list[str] = []
                    for i, e in enumerate(part, start=start + 1):
                        pairs.append(e.user_id)
                        pairs.append(str(i))
                    await client.invoke_script(_STAGE_HASH, keys=[staging_positions], args=[ttl, *pairs])
            result = await client.invoke_script(
                _COMMIT,
                keys=[
                    keys.snapshot,
                    keys.positions,
                    keys.refresh_marker,
                    keys.absent,
                    staging,
                    staging_positions,
                ],
                args=[str(header.version), str(len(entries))],
            )
        except GlideError as exc:
            await self._discard(staging, staging_positions)
            raise _unavailable(exc, "writing the snapshot") from None
        if result == -1:
            raise CacheUnavailable("the staged snapshot was gone at the swap (expired or evicted)")
        return bool(result == 1)

    async def mark_absent(self, board: str, version: int, ttl_ms: int) -> bool:
        keys = self.keys(board)
        client = await self._connection.client()
        try:
            result = await client.invoke_script(
                _MARK_ABSENT,
                keys=[keys.snapshot, keys.positions, keys.refresh_marker, keys.absent, keys.version],
                args=[str(version), str(ttl_ms)],
            )
        except GlideError as exc:
            raise _unavailable(exc, "recording an unknown board") from None
        return bool(result == 1)

    async def _discard(self, *keys: str) -> None:
        try:
            client = await self._connection.client()
            await client.delete(list(keys))
        except (GlideError, CacheUnavailable):
            pass  # they expire by themselves
