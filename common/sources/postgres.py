"""The `leaderboard_page` SQL function over a direct PostgreSQL connection (asyncpg).

Used by the local stack, and by teams that reach Supabase's database through its connection pooler
(transaction mode, port 6543): prepared statements are therefore switched off (statement_cache_size=0),
which pgbouncer-style poolers need. One small pool per container, connected lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.errors import SourceError, SourceUnavailable
from common.runtime import Lazy
from common.sources.base import Cursor, SourcePage, page_from_rows

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
        self._timeout = timeout_ms / 1000
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
            timeout=self._timeout,
            command_timeout=self._timeout,
            server_settings={"application_name": "leaderboard-worker"},
        )

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        import asyncpg

        try:
            pool = await self._pool.get()
            async with pool.acquire(timeout=self._timeout) as conn:
                if after is None:
                    rows = await conn.fetch(_FIRST, board, limit, timeout=self._timeout)
                else:
                    rows = await conn.fetch(
                        _NEXT,
                        board,
                        limit,
                        after.score,
                        after.last_solved_at,
                        after.user_id,
                        after.rank,
                        after.position,
                        timeout=self._timeout,
                    )
        except (OSError, TimeoutError, asyncpg.InterfaceError, *_transient(asyncpg)) as exc:
            raise SourceUnavailable(f"postgres: {type(exc).__name__}") from None
        except asyncpg.exceptions.PostgresError as exc:
            raise SourceError(f"postgres: {exc.sqlstate} {type(exc).__name__}") from None
        return page_from_rows([dict(row) for row in rows], limit)

    async def close(self) -> None:
        pool = self._pool.take()
        if pool is not None:
            await pool.close()
