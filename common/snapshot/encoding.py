"""The bytes of the v2 layout: rank keys, sorted-set members, stored entry values and the header.

Nothing here talks to Valkey (no glide import): the worker's async store, the API's readers (async and,
for the near-cache, synchronous) and tests share these functions, so they cannot disagree.

Rank key (16 bytes): big-endian uint64 of 2^63 - 1 - score, then big-endian uint64 of last_solved_at in
microseconds since 1970-01-01 UTC (clamped at 0), 0xffffffffffffffff when the player has solved nothing.
Byte order of `rank key + user_id` = score desc, last_solved_at asc (NULL last), user_id asc: the SQL
order exactly, with no float anywhere. Binary rather than hex: measured 32 bytes per player less in
Valkey (docs/layout.md).

Stored value of one entry (the HASH field is the user id):
    rank key (16) + username as a JSON string + NUL + score + NUL + solved + NUL + last_solved_at as JSON
JSON strings never contain a raw NUL (json.dumps escapes control characters), so NUL separates safely.
The read scripts turn a value into the served entry by concatenation; the API never decodes an entry.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any, Protocol

from common.timeutil import iso_from_micros, iso_from_ms

__all__ = [
    "FORMAT",
    "MAX_SCORE",
    "RANKKEY_BYTES",
    "TOP_ENTRIES",
    "Ranked",
    "SnapshotHeader",
    "encode_value",
    "member",
    "micros",
    "pack_pairs",
    "rankkey",
    "served_entry",
]

FORMAT = 2
RANKKEY_BYTES = 16
# The top list holds the header and the first TOP_ENTRIES served entries: a first page of up to that
# many is one LRANGE (measured: a script costs ~20 µs of server time more than a plain LRANGE).
TOP_ENTRIES = 100
MAX_SCORE = 2**63 - 1  # PostgreSQL bigint; the rank key holds any non-negative bigint exactly
_NEVER = 2**64 - 1
_MAX_MICROS = 2**64 - 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PACK = struct.Struct(">QQ").pack
_LENGTH = struct.Struct(">I").pack
_SEPARATOR = b"\x00"
_CANONICAL_LENGTH = len("2026-11-30T12:00:00.123456Z")


class Ranked(Protocol):
    """What a stored entry is made of (`common.models.Entry` fits; its rank is not stored)."""

    @property
    def user_id(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def score(self) -> int: ...
    @property
    def solved(self) -> int: ...
    @property
    def last_solved_at(self) -> str | None: ...


def micros(last_solved_at: str | None) -> int | None:
    """Microseconds since the epoch of an ISO-8601 timestamp with an offset; None stays None."""
    if last_solved_at is None:
        return None
    value = datetime.fromisoformat(last_solved_at)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def rankkey(score: int, solved_at_us: int | None) -> bytes:
    """The 16-byte rank key; ValueError for a score outside 0..2^63-1."""
    if not 0 <= score <= MAX_SCORE:
        raise ValueError("score must be between 0 and 2^63-1")
    when = _NEVER if solved_at_us is None else min(max(solved_at_us, 0), _MAX_MICROS)
    return _PACK(MAX_SCORE - score, when)


def member(key: bytes, user_id: str) -> bytes:
    """The sorted-set member of a player: rank key + user id (all members have score 0)."""
    return key + user_id.encode()


def encode_value(entry: Ranked) -> bytes:
    """The HASH value stored for one player. `last_solved_at` is stored (and served) with microseconds,
    the precision players are ranked at."""
    text = entry.last_solved_at
    us = micros(text)
    if text is None or us is None:
        solved_at = b"null"
    else:
        if len(text) != _CANONICAL_LENGTH or text[-1] != "Z":  # not yet `2026-11-30T12:00:00.123456Z`
            text = iso_from_micros(us)
        solved_at = b'"' + text.encode() + b'"'
    return b"".join(
        (
            rankkey(entry.score, us),
            # json.dumps(name, ensure_ascii=False) without building an encoder per call
            encode_basestring(entry.username).encode(),
            _SEPARATOR,
            str(entry.score).encode(),
            _SEPARATOR,
            str(entry.solved).encode(),
            _SEPARATOR,
            solved_at,
        )
    )


def pack_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """(user id, value) pairs as the write scripts take them: ONE argument, each item a 4-byte
    big-endian length and its bytes. Measured: the client's per-argument cost (two arguments per
    player) was a quarter of a full rebuild's CPU; one packed argument per page makes it negligible."""
    parts: list[bytes] = []
    for user_id, value in pairs:
        parts += (_LENGTH(len(user_id)), user_id, _LENGTH(len(value)), value)
    return b"".join(parts)


def served_entry(rank: int, user_id: str, value: bytes) -> bytes:
    """What the read scripts build from a stored value, in Python (tests and tools)."""
    name, score, solved, solved_at = value[RANKKEY_BYTES:].split(_SEPARATOR)
    uid = json.dumps(user_id, ensure_ascii=False).encode()
    return b'{"rank":%d,"user_id":%s,"username":%s,"score":%s,"solved":%s,"last_solved_at":%s}' % (
        rank,
        uid,
        name,
        score,
        solved,
        solved_at,
    )


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    """The board's `meta` key (format 2).

    `position` is the change-feed position the snapshot reflects (None when the source has no feed);
    `rebuilt_at_ms` when it was last read whole; `boundary` (LEADERBOARD_SIZE in effect and the board
    held more players than that) is the member of the last player kept: the snapshot holds every player
    whose member sorts at or before it, so a delta can tell who belongs on a capped board.

    `ends_at_ms` is the end of a week, month or season board's period (None for global and challenge
    boards); `closed` says the snapshot was generated at least FINAL_GRACE_MS after it (common.periods):
    the board no longer changes, so the API serves it as fresh forever and the periodic reconciliation
    skips it (docs/layout.md, "Closed boards").
    """

    board: str
    version: int
    generated_at_ms: int
    total: int
    size: int
    source: str
    position: int | None = None
    rebuilt_at_ms: int = 0
    boundary: bytes | None = None
    ends_at_ms: int | None = None
    closed: bool = False
    # Formatted once per snapshot, not once per request (the decoded header is reused across reads).
    generated_at: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "generated_at", iso_from_ms(self.generated_at_ms))

    def meta_prefix(self) -> bytes:
        """The header up to the fields a write script computes itself (total, size, boundary).

        `format`, `version` and `position` come first and are plain digits: the scripts read them with a
        pattern match, exactly (no float conversion of a JSON number)."""
        position = "null" if self.position is None else str(int(self.position))
        head = f'{{"format":{FORMAT},"version":{int(self.version)},"position":{position},'
        rest = json.dumps(
            {
                "board": self.board,
                "generated_at_ms": self.generated_at_ms,
                "rebuilt_at_ms": self.rebuilt_at_ms,
                "source": self.source,
                "ends_at_ms": self.ends_at_ms,
                "closed": self.closed,
            },
            separators=(",", ":"),
        )
        return (head + rest[1:-1]).encode()

    def encode(self) -> bytes:
        boundary = "null" if self.boundary is None else f'"{self.boundary.hex()}"'
        return self.meta_prefix() + b',"total":%d,"size":%d,"boundary":%s}' % (
            self.total,
            self.size,
            boundary.encode(),
        )

    @classmethod
    def decode(cls, raw: bytes) -> SnapshotHeader | None:
        """None when the header is unreadable or of another format (the next refresh replaces it)."""
        try:
            data: Any = json.loads(raw)
            if data["format"] != FORMAT:
                return None
            position = data.get("position")
            boundary = data.get("boundary")
            ends_at_ms = data.get("ends_at_ms")
            return cls(
                board=str(data["board"]),
                version=int(data["version"]),
                generated_at_ms=int(data["generated_at_ms"]),
                total=int(data["total"]),
                size=int(data["size"]),
                source=str(data.get("source", "")),
                position=None if position is None else int(position),
                rebuilt_at_ms=int(data.get("rebuilt_at_ms") or 0),
                boundary=None if boundary is None else bytes.fromhex(boundary),
                ends_at_ms=None if ends_at_ms is None else int(ends_at_ms),
                closed=data.get("closed") is True,
            )
        except (ValueError, KeyError, TypeError):
            return None
