"""`leaderboard_page` and `leaderboard_changes` over a direct PostgreSQL connection (asyncpg).

Used by the local stack, and by teams that reach Supabase's database through its connection pooler
(transaction mode, port 6543): prepared statements are therefore switched off (statement_cache_size=0),
which pgbouncer-style poolers need. One small pool per container, connected lazily.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from common.errors import PositionLost, SourceError, SourceUnavailable
from common.runtime import Lazy
from common.sources.base import (
    BoardPeriod,
    ChangePage,
    Cursor,
    SourcePage,
    change_page_from_reply,
    known_boards_from_reply,
    one_attempt,
    page_from_rows,
    period_from_reply,
)

if TYPE_CHECKING:
    from common.config import SourceSettings

__all__ = ["PostgresSource"]

_FIRST = "select * from public.leaderboard_page($1, $2)"
_NEXT = "select * from public.leaderboard_page($1, $2, $3, $4, $5::uuid, $6, $7)"
_CHANGES = "select public.leaderboard_changes($1, $2, $3, $4)::text"
_KNOWN = "select public.leaderboard_known_boards()::text"
_PERIOD = "select public.leaderboard_board_period($1)::text"
T = TypeVar("T")


def _transient(asyncpg: Any) -> tuple[type[Exception], ...]:
    """SQLSTATE classes worth retrying: connection (08), resources (53), operator intervention (57:
    statement timeout, shutdown), transaction rollback (40: serialization failure, deadlock)."""
    e = asyncpg.exceptions
    return (e.PostgresConnectionError, e.InsufficientResourcesError, e.OperatorInterventionError,
            e.TransactionRollbackError)  # fmt: skip


class PostgresSource:
    name = "postgres"
    has_feed = True

    def __init__(self, dsn: str, *, timeout_ms: int = 5000) -> None:
        self._dsn = dsn
        self._timeout_ms = timeout_ms
        self._pool: Lazy[Any] = Lazy(self._create_pool)

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> PostgresSource:
        assert settings.database_url is not None
        return cls(settings.database_url, timeout_ms=settings.timeout_ms)

    async def _create_pool(self) -> Any:
        """Once per container. The pool replaces a broken connection by itself, so a failed query
        never needs to tear it down (boards refreshed concurrently share it)."""
        import asyncpg

        return await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=4,
            statement_cache_size=0,
            timeout=self._timeout_ms / 1000,  # connecting; the attempt's deadline bounds it anyway
            server_settings={"application_name": "leaderboard-worker"},
        )

    async def _run(self, query: Callable[[Any], Awaitable[T]]) -> T:
        """One query on a pooled connection; asyncpg's errors mapped to ours (LB001: PositionLost)."""
        import asyncpg

        try:
            pool = await self._pool.get()
            # The acquire timeout is also the budget of the release (asyncpg's rule), which resets the
            # connection with one more round trip: bounded, and after the deadline it runs in background.
            conn = await pool.acquire(timeout=self._timeout_ms / 1000)
            try:
                return await query(conn)
            except asyncpg.PostgresError:
                raise  # the server answered: the connection is in sync and goes back to the pool
            except BaseException:
                # Cut short (the deadline, a lost connection): asyncpg would make the release wait for
                # a graceful cancel that a hung server never acknowledges, holding the caller for a
                # second timeout. Closing the connection frees its pool slot at once.
                conn.terminate()
                raise
            finally:
                await pool.release(conn)
        except (OSError, asyncpg.InterfaceError, *_transient(asyncpg)) as exc:
            raise SourceUnavailable(f"postgres: {type(exc).__name__}") from None
        except asyncpg.exceptions.PostgresError as exc:
            if exc.sqlstate == "LB001":
                raise PositionLost(f"postgres: {exc.sqlstate} {exc}"[:300]) from None
            raise SourceError(f"postgres: {exc.sqlstate} {type(exc).__name__}") from None

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        """One attempt: getting a connection (connecting if need be) and the query share one deadline."""
        return await one_attempt("postgres", self._timeout_ms, self._fetch_page(board, limit, after))

    async def _fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        async def query(conn: Any) -> Any:
            if after is None:
                return await conn.fetch(_FIRST, board, limit)
            return await conn.fetch(
                _NEXT,
                board,
                limit,
                after.score,
                after.last_solved_at,
                after.user_id,
                after.rank,
                after.position,
            )

        rows = await self._run(query)
        # A direct query is not capped: fewer rows than asked for means nothing followed. Records read
        # like dicts: no copies.
        return page_from_rows(rows, limit, short_is_end=True)

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        """One attempt, under one deadline like a page."""
        return await one_attempt(
            "postgres", self._timeout_ms, self._fetch_changes(board, after, limit, with_total)
        )

    async def _fetch_changes(self, board: str, after: int | None, limit: int, with_total: bool) -> ChangePage:
        return change_page_from_reply(
            await self._json("leaderboard_changes", _CHANGES, board, after, limit, with_total)
        )

    async def known_boards(self) -> frozenset[str]:
        """One attempt, under one deadline like a page."""
        return await one_attempt("postgres", self._timeout_ms, self._known_boards())

    async def _known_boards(self) -> frozenset[str]:
        return known_boards_from_reply(await self._json("leaderboard_known_boards", _KNOWN))

    async def board_period(self, board: str) -> BoardPeriod:
        return await one_attempt("postgres", self._timeout_ms, self._board_period(board))

    async def _board_period(self, board: str) -> BoardPeriod:
        return period_from_reply(await self._json("leaderboard_board_period", _PERIOD, board))

    async def _json(self, function: str, sql: str, *args: Any) -> Any:
        """One of our functions that return a single jsonb value (sent as text, parsed here)."""

        async def query(conn: Any) -> Any:
            return await conn.fetchval(sql, *args)

        raw = await self._run(query)
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            raise SourceError(f"postgres: {function} did not return JSON") from None

    async def close(self) -> None:
        pool = self._pool.take()
        if pool is not None:
            await pool.close()
