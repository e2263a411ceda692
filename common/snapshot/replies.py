"""What the read scripts return, turned into Page / UserWindow / UserSet without any client library.

The async store (`common.cache`) and a synchronous reader pass the raw script reply (a list of bytes)
to these functions, so both read the same layout the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.snapshot.encoding import SnapshotHeader

__all__ = [
    "HeaderCache",
    "Page",
    "UserSet",
    "UserWindow",
    "page_from_reply",
    "user_from_reply",
    "users_from_reply",
]


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


@dataclass(frozen=True, slots=True)
class UserSet:
    """Some users' entries in rank order, and the ids asked for that the snapshot does not contain, in
    the order they were asked."""

    header: SnapshotHeader
    entries: list[bytes]
    missing: list[str]


class HeaderCache:
    """Decode a header, reusing the last one when the bytes are the same (the common case: one snapshot
    serves thousands of reads; comparing ~200 bytes beats parsing JSON)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[bytes, SnapshotHeader] | None = None

    def __call__(self, raw: bytes) -> SnapshotHeader | None:
        last = self._last
        if last is not None and last[0] == raw:
            return last[1]
        header = SnapshotHeader.decode(raw)
        if header is not None:
            self._last = (raw, header)
        return header


def page_from_reply(reply: Sequence[bytes] | None, offset: int, header: HeaderCache) -> Page | None:
    """READ_PAGE's reply: {} → None (no snapshot), {meta, entry...} → the page."""
    if not reply or (decoded := header(reply[0])) is None:
        return None
    return Page(header=decoded, offset=offset, entries=list(reply[1:]))


def user_from_reply(reply: Sequence[bytes] | None, header: HeaderCache) -> UserWindow | None:
    """READ_USER's reply: {} → None, {meta} → not ranked, {meta, first, position, entry...} → the window."""
    if not reply or (decoded := header(reply[0])) is None:
        return None
    if len(reply) == 1:
        return UserWindow(header=decoded, offset=0, position=None, entries=[])
    return UserWindow(header=decoded, offset=int(reply[1]), position=int(reply[2]), entries=list(reply[3:]))


def users_from_reply(reply: Sequence[bytes] | None, header: HeaderCache) -> UserSet | None:
    """READ_USERS' reply: {} → None, {meta, n, n entries, missing id...} → the set."""
    if not reply or (decoded := header(reply[0])) is None:
        return None
    end = 2 + int(reply[1])
    return UserSet(
        header=decoded, entries=list(reply[2:end]), missing=[bytes(m).decode() for m in reply[end:]]
    )
