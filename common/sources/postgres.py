"""The `leaderboard_page` SQL function over a direct PostgreSQL connection (asyncpg).

Used by the local stack, and by teams that reach Supabase's database through its connection pooler
(transaction mode, port 6543): prepared statements are therefore switched off (statement_cache_size=0),
which pgbouncer-style poolers need. One small pool per container, connected lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.errors import SourceError, SourceUnavailable
from common.runtime import Lazy
from common.sources.base import Cursor, SourcePage, one_attempt, page_from_rows

if TYPE_CHECKING:
    from common.config import SourceSettings

__all__ = ["PostgresSource"]

_FIRST = "select * from public.leaderboard_page($1, $2)"
_NEXT = "select * from public.leaderboard_page($1, $2, $3, $4, $5::uuid, $6, $7)"


def _transient(asyncpg: Any) -> tuple[type[Exception], ...]:
    """SQLSTATE classes worth retrying: connection (08), resources (53), operator intervention (57:
    statement timeout, shutdown), transaction rollback (40: serialization failure, deadlock)."""
    e = asyncpg.exceptions
    return (e.PostgresConnectionError, e.InsufficientResourcesError, e.OperatorInterventionError,
            e.TransactionRollbackError)  # fmt: skip


class PostgresSource:
    name = "postgres"

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

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        """One attempt: getting a connection (connecting if need be) and the query share one deadline."""
        return await one_attempt("postgres", self._timeout_ms, self._fetch_page(board, limit, after))

    async def _fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        import asyncpg

        try:
            pool = await self._pool.get()
            # The acquire timeout is also the budget of the release (asyncpg's rule), which resets the
            # connection with one more round trip: bounded, and after the deadline it runs in background.
            conn = await pool.acquire(timeout=self._timeout_ms / 1000)
            try:
                rows = await self._query(conn, board, limit, after)
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
            raise SourceError(f"postgres: {exc.sqlstate} {type(exc).__name__}") from None
        return page_from_rows([dict(row) for row in rows], limit)

    @staticmethod
    async def _query(conn: Any, board: str, limit: int, after: Cursor | None) -> Any:
        if after is None:
            return await conn.fetch(_FIRST, board, limit)
        return await conn.fetch(
            _NEXT, board, limit, after.score, after.last_solved_at, after.user_id, after.rank, after.position
        )

    async def close(self) -> None:
        pool = self._pool.take()
        if pool is not None:
            await pool.close()
