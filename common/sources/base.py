"""The source interface, and the validation every source applies to what it receives."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from common.errors import SourceError, SourceUnavailable
from common.models import USER_ID, Entry
from common.timeutil import iso_from_datetime, parse_iso

__all__ = ["Cursor", "Source", "SourcePage", "entry_from_row", "one_attempt"]

MAX_USERNAME = 200
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the last row's ranking key, rank and position.

    `last_solved_at` is kept exactly as the source sent it (a string from PostgREST, a datetime from
    asyncpg): the keyset comparison needs the full microsecond value, not the display form.
    """

    score: int
    last_solved_at: Any
    user_id: str
    rank: int
    position: int


@dataclass(frozen=True, slots=True)
class SourcePage:
    entries: list[Entry]
    total: int | None  # players on the board; sources report it on the first page
    # The last row's cursor; None only for an empty page. A page shorter than asked for is NOT the end:
    # PostgREST caps the rows of every response (Supabase's "max rows", 1000 by default), so a caller
    # pages on until it has `total` rows or gets an empty page.
    cursor: Cursor | None


class Source(Protocol):
    name: str

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        """Up to `limit` entries after `after` (None: from the top); possibly fewer even when more
        follow. A challenge board nobody has submitted to yields an empty first page. Raises
        SourceUnavailable (transient) or SourceError (permanent)."""
        ...

    async def close(self) -> None: ...


async def one_attempt(what: str, timeout_ms: int, attempt: Awaitable[T]) -> T:
    """Run one source call under one deadline: SOURCE_TIMEOUT_MS, whatever the call waits for.

    The drivers' own timeouts are per step (httpx: per connect and per read; asyncpg: per acquire, per
    query, and again per release), so a source that hangs at the wrong moment, or drips its reply a byte
    at a time, cost a multiple of the timeout per attempt, or never ended. This deadline covers the
    whole call: a first connection (and, for Supabase, reading its key), the request and the complete
    reply. Running out is a transient failure, retried by the worker's policy.
    """
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            return await attempt
    except TimeoutError:
        raise SourceUnavailable(f"{what}: no complete answer within {timeout_ms} ms") from None


def _int(row: Mapping[str, Any], name: str, minimum: int) -> int:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SourceError(f"malformed row: {name} must be an integer >= {minimum}")
    return value


def entry_from_row(row: Any) -> Entry:
    """Validate one ranked row (from SQL or JSON) into an Entry; SourceError says what is wrong."""
    if not isinstance(row, Mapping):
        raise SourceError("malformed row: not an object")
    user_id = row.get("user_id")
    user_id = str(user_id) if user_id is not None and not isinstance(user_id, str | int | float) else user_id
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise SourceError("malformed row: user_id must be a string of 1..128 visible characters")
    username = row.get("username")
    if not isinstance(username, str) or not username or len(username) > MAX_USERNAME:
        raise SourceError(f"malformed row: username must be a string of 1..{MAX_USERNAME} characters")
    solved_at = row.get("last_solved_at")
    if isinstance(solved_at, datetime):
        last_solved_at: str | None = iso_from_datetime(solved_at)
    elif isinstance(solved_at, str):
        try:
            last_solved_at = iso_from_datetime(parse_iso(solved_at))
        except ValueError:
            raise SourceError("malformed row: last_solved_at must be ISO-8601 with an offset") from None
    elif solved_at is None:
        last_solved_at = None
    else:
        raise SourceError("malformed row: last_solved_at must be a timestamp or null")
    return Entry(
        rank=_int(row, "rank", 1),
        user_id=user_id,
        username=username,
        score=_int(row, "score", 0),
        solved=_int(row, "solved", 0),
        last_solved_at=last_solved_at,
    )


def page_from_rows(rows: Any, limit: int) -> SourcePage:
    """Build a page from `leaderboard_page` rows (dicts or records with the function's columns)."""
    if not isinstance(rows, list):
        raise SourceError("malformed reply: expected a JSON array of rows")
    entries = [entry_from_row(row) for row in rows]
    total = None
    if rows:
        first_total = rows[0].get("total")
        if first_total is not None:
            if isinstance(first_total, bool) or not isinstance(first_total, int) or first_total < 0:
                raise SourceError("malformed reply: total must be a non-negative integer")
            total = first_total
    cursor = None
    if rows:
        last = rows[-1]
        cursor = Cursor(
            score=entries[-1].score,
            last_solved_at=last.get("last_solved_at"),
            user_id=entries[-1].user_id,
            rank=entries[-1].rank,
            position=_int(last, "position", 1),
        )
    return SourcePage(entries=entries, total=total, cursor=cursor)
