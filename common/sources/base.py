"""The source interface, and the validation every source applies to what it receives.

Two ways to read a board:
- `fetch_page`: ranked pages in board order (keyset), for a full rebuild;
- `fetch_changes` (sources with `has_feed`): what changed after a feed position, for a delta refresh
  and for a rebuild's catch-up. A position the feed no longer covers raises PositionLost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from common.errors import SourceError, SourceUnavailable
from common.models import USER_ID, Change, Entry
from common.snapshot import MAX_SCORE
from common.timeutil import iso_micros_from_datetime, parse_iso

__all__ = [
    "BoardCatalog",
    "BoardPeriod",
    "ChangePage",
    "Cursor",
    "Source",
    "SourcePage",
    "catalog_of",
    "change_page_from_reply",
    "entry_from_row",
    "known_boards_from_reply",
    "one_attempt",
    "period_from_reply",
]

FEED_MAX_ROWS = 1000  # leaderboard_changes returns at most this many changes per call (Supabase's max rows)

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
    # pages on until `end` or an empty page.
    cursor: Cursor | None
    # True when the source knows that no row followed this page when it answered (a direct SQL query
    # that returned fewer rows than asked for). A full rebuild stops there or at an empty page.
    end: bool = False


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One answer of the change feed: changes after the asked position in feed order, and `head` (the
    latest position of the board in the same database snapshot). Fewer changes than asked for means
    the caller is caught up at `head`; otherwise it continues after `changes[-1].seq`."""

    head: int
    horizon: int
    changes: list[Change]
    total: int | None = None  # players on the board, when asked for


class Source(Protocol):
    name: str
    has_feed: bool

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        """Up to `limit` entries after `after` (None: from the top); possibly fewer even when more
        follow. A challenge board nobody has submitted to yields an empty first page. Raises
        SourceUnavailable (transient) or SourceError (permanent)."""
        ...

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        """Up to `limit` (<= 1000) changes after position `after`; `after=None` returns no changes,
        only the head (where a full rebuild starts). Raises PositionLost when `after` is not covered
        any more, SourceError when the source has no feed (`has_feed` False)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class BoardCatalog(Protocol):
    """A source that can list its boards (SQL `leaderboard_known_boards`). The HTTP upstream cannot:
    with it, nothing is published and the API keeps asking the source about every name (README)."""

    async def known_boards(self) -> frozenset[str]:
        """Every `challenge:<id>` with a result and every `season:<id>` in the table (one call, uncut by
        PostgREST's max rows). Raises SourceUnavailable (transient) or SourceError (permanent)."""
        ...

    async def board_period(self, board: str) -> BoardPeriod:
        """`leaderboard_board_period(board)`: whether a week, month or season board exists, and its range."""
        ...


@dataclass(frozen=True, slots=True)
class BoardPeriod:
    board: str
    known: bool
    starts_at_ms: int | None
    ends_at_ms: int | None


def period_from_reply(reply: Any) -> BoardPeriod:
    """Validate `leaderboard_board_period`'s JSON object."""
    if not isinstance(reply, Mapping) or not isinstance(reply.get("board"), str):
        raise SourceError("malformed board-period reply: expected a JSON object with a board")
    known = reply.get("known")
    if not isinstance(known, bool):
        raise SourceError("malformed board-period reply: known must be true or false")
    times: list[int | None] = []
    for name in ("starts_at", "ends_at"):
        value = reply.get(name)
        if value is None and not known:
            times.append(None)
            continue
        try:
            times.append(int(parse_iso(str(value)).timestamp() * 1000))
        except ValueError:
            raise SourceError(f"malformed board-period reply: {name} must be ISO-8601") from None
    return BoardPeriod(str(reply["board"]), known, times[0], times[1])


def catalog_of(source: object) -> BoardCatalog | None:
    """`source` itself if it can list its boards, else None."""
    return source if isinstance(source, BoardCatalog) else None


def known_boards_from_reply(reply: Any) -> frozenset[str]:
    """Validate `leaderboard_known_boards`' JSON array: only challenge and season names, well-formed
    (they become members of a Valkey set and are compared with request names)."""
    from common.boards import BoardSyntaxError, validate_board

    if not isinstance(reply, list):
        raise SourceError("malformed known-boards reply: expected a JSON array")
    boards: set[str] = set()
    for name in reply:
        if not isinstance(name, str) or not name.startswith(("challenge:", "season:")):
            raise SourceError("malformed known-boards reply: expected challenge:<id> and season:<id> names")
        try:
            validate_board(name)
        except BoardSyntaxError:
            raise SourceError("malformed known-boards reply: a board name is not valid") from None
        boards.add(name)
    return frozenset(boards)


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


def _int(row: Any, name: str, minimum: int) -> int:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SourceError(f"malformed row: {name} must be an integer >= {minimum}")
    return value


def entry_from_row(row: Any, *, ranked: bool = True) -> Entry:
    """Validate one ranked row (a dict from JSON, or an asyncpg Record) into an Entry; SourceError says
    what is wrong. `ranked=False` (change-feed rows): no rank to check, the Entry gets rank 0.

    This runs once per player of a full rebuild (a million times for a million players): the common
    shapes (a UUID object, a UTC datetime) take the shortest path."""
    get = getattr(row, "get", None)
    if get is None or isinstance(row, str | bytes):
        raise SourceError("malformed row: not an object")
    user_id = get("user_id")
    if isinstance(user_id, UUID):
        user_id = str(user_id)  # always a valid id
    elif not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise SourceError("malformed row: user_id must be a string of 1..128 visible characters")
    username = get("username")
    if not isinstance(username, str) or not username or len(username) > MAX_USERNAME:
        raise SourceError(f"malformed row: username must be a string of 1..{MAX_USERNAME} characters")
    solved_at = get("last_solved_at")
    if isinstance(solved_at, datetime):
        last_solved_at: str | None = iso_micros_from_datetime(solved_at)
    elif isinstance(solved_at, str):
        try:
            last_solved_at = iso_micros_from_datetime(parse_iso(solved_at))
        except ValueError:
            raise SourceError("malformed row: last_solved_at must be ISO-8601 with an offset") from None
    elif solved_at is None:
        last_solved_at = None
    else:
        raise SourceError("malformed row: last_solved_at must be a timestamp or null")
    score, solved = get("score"), get("solved")
    if type(score) is not int or not 0 <= score <= MAX_SCORE:
        raise SourceError("malformed row: score must be an integer between 0 and 2^63-1")
    if type(solved) is not int or solved < 0:
        raise SourceError("malformed row: solved must be an integer >= 0")
    return Entry(
        rank=_int(row, "rank", 1) if ranked else 0,
        user_id=user_id,
        username=username,
        score=score,
        solved=solved,
        last_solved_at=last_solved_at,
    )


def page_from_rows(rows: Any, limit: int, *, short_is_end: bool = False) -> SourcePage:
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
    end = not rows or (short_is_end and len(rows) < limit)
    return SourcePage(entries=entries, total=total, cursor=cursor, end=end)


def change_page_from_reply(reply: Any) -> ChangePage:
    """Validate `leaderboard_changes`' JSON object (a dict from either source) into a ChangePage."""
    if not isinstance(reply, Mapping):
        raise SourceError("malformed feed reply: expected a JSON object")
    head, horizon = _int(reply, "head", 0), _int(reply, "horizon", 0)
    rows = reply.get("changes")
    if not isinstance(rows, list) or len(rows) > FEED_MAX_ROWS:
        raise SourceError(f"malformed feed reply: changes must be an array of at most {FEED_MAX_ROWS}")
    changes: list[Change] = []
    previous = -1
    for row in rows:
        if not isinstance(row, Mapping):
            raise SourceError("malformed feed reply: a change is not an object")
        seq = _int(row, "change_seq", 0)
        if seq <= previous or seq > head:
            raise SourceError("malformed feed reply: changes must be in increasing order, up to head")
        previous = seq
        removed = row.get("removed")
        if removed is True:
            user_id = row.get("user_id")
            if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
                raise SourceError("malformed feed reply: user_id must be 1..128 visible characters")
            changes.append(Change(user_id, None, seq))
        elif removed is False:
            entry = entry_from_row(row, ranked=False)
            changes.append(Change(entry.user_id, entry, seq))
        else:
            raise SourceError("malformed feed reply: removed must be true or false")
    total = reply.get("total")
    if total is not None:
        total = _int(reply, "total", 0)
    return ChangePage(head=head, horizon=horizon, changes=changes, total=total)
