"""What this container read from Valkey lately: the near-cache, and the memory behind stale-if-error.

One bounded LRU of reads, keyed by everything a response depends on (board, kind of read and its
parameters: offset and count, or user id and around). Two uses:

- `near(key)`: a read younger than LEADERBOARD_NEAR_CACHE_MS is served again without a round trip, but
  only while its version is the newest this container has seen for the board. So a reader who got
  version 8 on one page is never handed version 7 on the next, and when Valkey's version goes backwards
  (a failover to a lagging replica, a restored backup) every near entry of that board is dropped at once.
  The service adds the freshness rule: a near entry is served only while its snapshot is fresh, so it
  is always a HIT; a stale snapshot is read from Valkey, which may have a newer one.
- `last(key)`: whatever was read last for the key, however old, for stale-if-error (the service
  checks LEADERBOARD_STALE_IF_ERROR_SECONDS against the snapshot's age).

Memory is bounded twice: LEADERBOARD_NEAR_CACHE_MAX_ENTRIES reads and LEADERBOARD_NEAR_CACHE_MAX_BYTES
of entry bytes (the stored bytes dominate: a page of 100 entries is ~15 KB). No driver, no clock of its
own beyond `time.monotonic`: tests drive it directly.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from common.logs import get_logger

__all__ = ["RecentReads"]

log = get_logger(__name__)

_ENTRY_OVERHEAD = 120  # bytes object header plus list slot, per stored entry; ~the size of an entry


class _Header(Protocol):
    @property
    def board(self) -> str: ...

    @property
    def version(self) -> int: ...


class _Read(Protocol):
    @property
    def header(self) -> _Header: ...

    @property
    def entries(self) -> list[bytes]: ...


R = TypeVar("R", bound=_Read)


class _Slot(Generic[R]):
    __slots__ = ("read", "size", "stored_at")

    def __init__(self, read: R, stored_at: float, size: int) -> None:
        self.read = read
        self.stored_at = stored_at
        self.size = size


class RecentReads(Generic[R]):
    def __init__(
        self,
        near_ms: int,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._near_s = near_ms / 1000
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._slots: OrderedDict[Hashable, _Slot[R]] = OrderedDict()
        self._bytes = 0
        self._newest: dict[str, int] = {}  # board -> the newest version read from Valkey

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def near(self, key: Hashable) -> R | None:
        """A read of `key` younger than the near-cache window, of the board's newest version; else None."""
        slot = self._slots.get(key)
        if slot is None or self._clock() - slot.stored_at >= self._near_s:
            return None
        header = slot.read.header
        if self._newest.get(header.board) != header.version:
            return None
        self._slots.move_to_end(key)
        return slot.read

    def has_read(self, board: str) -> bool:
        """Whether this container has read a snapshot of `board` (as long as it remembers the board)."""
        return board in self._newest

    def last(self, key: Hashable) -> R | None:
        """The last read of `key` this container made, however old (for stale-if-error)."""
        slot = self._slots.get(key)
        return None if slot is None else slot.read

    def remember(self, key: Hashable, read: R) -> None:
        """Keep a read that just came from Valkey (evicting the least recently used beyond the bounds)."""
        if self._max_entries <= 0:
            return
        header = read.header
        slot = self._slots.get(key)
        if (
            slot is not None
            and slot.read.header is header
            and self._newest.get(header.board) == header.version
            and slot.read.entries == read.entries
        ):
            # The common case, a page read again and unchanged (the reader hands out one header object
            # per snapshot): the same bytes of the newest version, so only the time it was read changes.
            slot.read, slot.stored_at = read, self._clock()
            self._slots.move_to_end(key)
            return
        newest = self._newest.get(header.board)
        if newest is not None and header.version < newest:
            self._forget_board(header.board)
            slot = None  # forgotten with the rest of the board
            log.warning(
                "near_cache_version_went_back", board=header.board, version=header.version, newest=newest
            )
        if newest is None or header.version != newest:
            self._newest[header.board] = header.version
        entries = read.entries
        size = sum(map(len, entries)) + _ENTRY_OVERHEAD * (len(entries) + 1)
        if size > self._max_bytes:
            return
        if slot is not None:  # a page read again, changed: update it in place
            self._bytes += size - slot.size
            slot.read, slot.stored_at, slot.size = read, self._clock(), size
            self._slots.move_to_end(key)
        else:
            self._slots[key] = _Slot(read, self._clock(), size)
            self._bytes += size
        while len(self._slots) > self._max_entries or self._bytes > self._max_bytes:
            _, evicted = self._slots.popitem(last=False)
            self._bytes -= evicted.size
        if len(self._newest) > 4 * self._max_entries:  # boards nobody reads any more
            self._newest = {
                s.read.header.board: self._newest[s.read.header.board] for s in self._slots.values()
            }

    def _forget_board(self, board: str) -> None:
        for key in [k for k, s in self._slots.items() if s.read.header.board == board]:
            self._bytes -= self._slots.pop(key).size
