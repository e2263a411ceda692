"""Where rankings come from. One small interface (ranked pages, and a change feed), three
implementations:

- `supabase`: the `leaderboard_page` and `leaderboard_changes` RPCs through supabase-py (PostgREST).
- `postgres`: the same SQL functions over a direct connection (asyncpg), for the local stack and for
  teams that connect through Supabase's connection pooler.
- `http`: an upstream leaderboard API that serves ranked JSON (the seed's LEADERBOARD_API_URL); it has
  no change feed, so every refresh reads the board whole.

Ranks are computed by the source (in SQL, or upstream), never in Python. Each implementation is
imported only when configured: a worker that reads Postgres never pays for importing supabase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.sources.base import ChangePage, Cursor, Source, SourcePage

if TYPE_CHECKING:
    from common.config import SourceSettings

__all__ = ["ChangePage", "Cursor", "Source", "SourcePage", "create_source"]


def create_source(settings: SourceSettings) -> Source:
    if settings.kind == "supabase":
        from common.sources.supabase import SupabaseSource

        return SupabaseSource.from_settings(settings)
    if settings.kind == "postgres":
        from common.sources.postgres import PostgresSource

        return PostgresSource.from_settings(settings)
    if settings.kind == "http":
        from common.sources.http import HttpSource

        return HttpSource.from_settings(settings)
    raise ValueError(f"unknown source kind {settings.kind!r}")
