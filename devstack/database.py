"""The stack's PostgreSQL work: migrating an external DATABASE_URL, seeding, and finding example ids.

The embedded PostgreSQL is migrated by the engine itself (testkit.engines.PostgresEngine). An external
database is never touched silently: `--migrate` migrates it, `--seed` seeds it (only when it is empty).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.errors import StartupError
from devstack.output import Output
from testkit.engines import EngineError, migrations
from testkit.seed import SeedReport, SeedSpec

__all__ = ["lookup_examples", "migrate", "seed"]


async def _connect(url: str) -> Any:
    import asyncpg

    try:
        return await asyncpg.connect(url, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise StartupError(f"cannot connect to DATABASE_URL ({type(exc).__name__}: {exc})") from None


async def migrate(url: str, out: Output) -> None:
    """Apply supabase/migrations to an external database, in order; the first failure is one line."""
    import asyncpg

    conn = await _connect(url)
    try:
        for path in migrations():
            try:
                await conn.execute(path.read_text())
            except asyncpg.PostgresError as exc:
                raise EngineError(
                    f"migration {path.name} failed on DATABASE_URL: {exc.sqlstate} {exc}".splitlines()[0]
                ) from None
            out.event("info", "migration_applied", migration=path.name)
    finally:
        await conn.close()


async def seed(
    url: str, spec: SeedSpec, out: Output, *, where: Path | str, migrated: bool
) -> SeedReport | None:
    """Load the generated sample unless the database has results already (then None)."""
    import asyncpg

    from testkit.seed import load

    conn = await _connect(url)
    try:
        existing = await conn.fetchval("select count(*) from public.challenge_results")
        if existing:
            out.event("info", "seed_skipped", reason=f"{where} already has {existing:,} results")
            return None
        out.event("info", "seeding", users=spec.users, challenges=spec.challenges, results=spec.results)
        report = await load(conn, spec)
        out.event("info", report.summary(), seconds=round(report.seconds, 2))
        return report
    except asyncpg.PostgresError as exc:
        hint = "" if migrated else " (--migrate creates the schema)"
        raise StartupError(f"seeding failed: {exc.sqlstate} {exc}{hint}") from None
    finally:
        await conn.close()


async def lookup_examples(url: str) -> dict[str, Any]:
    """A real user id and a busy challenge for the example requests (best effort: {} when unreadable)."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception:  # noqa: BLE001 - an unreachable source only costs the examples
        return {}
    try:
        user = await conn.fetchval(
            "select user_id::text from public.leaderboard_totals"
            " order by -score, last_solved_at, user_id"
            " offset least(41, greatest((select count(*) from public.leaderboard_totals) - 1, 0)) limit 1"
        )
        challenge = await conn.fetchval(
            "select challenge_id from public.challenge_best group by 1 order by count(*) desc, 1 limit 1"
        )
        results = await conn.fetchval("select count(*) from public.challenge_results")
        players = await conn.fetchval("select count(*) from public.leaderboard_totals")
        return {"user_id": user, "challenge": challenge, "results": results, "players": players}
    except Exception:  # noqa: BLE001 - best effort, as above
        return {}
    finally:
        await conn.close()
