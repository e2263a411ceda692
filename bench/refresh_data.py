"""Databases for the refresh benchmarks: N ranked players loaded fast, and changes made the slow, real way.

Loading: one COPY of the results with the triggers off (`session_replication_role = replica`), then the
derived tables `challenge_best` and `leaderboard_totals` filled straight from it in two set-based
statements, exactly as the triggers would compute them (one result per player: best = the result,
total = best), numbered 1..2N on the change feed. A million players load in about a minute instead of
the ~3 minutes a COPY through the triggers takes.

Changes: through real INSERT / UPDATE / DELETE statements on `challenge_results`, one statement per
player, so the statement triggers run, stamp change_seq and write tombstones as in production.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from testkit.engines import MIGRATIONS, PostgresEngine
from testkit.seed import username

__all__ = ["BenchDatabase", "create_database"]

T0 = datetime(2026, 10, 1, tzinfo=UTC)
MONTH_US = 30 * 24 * 3600 * 1_000_000


def user_id(seed: int, i: int) -> uuid.UUID:
    """The i-th player's id: a fixed 128-bit mix of (seed, i), so it never has to be stored."""
    x = (i + 1) * 0x9E3779B97F4A7C15 + seed * 0xBF58476D1CE4E5B9
    x = (x ^ (x >> 31)) * 0x94D049BB133111EB % 2**128
    return uuid.UUID(int=(x ^ (x >> 29) ^ (x << 64)) % 2**128, version=4)


def _players(n: int, seed: int) -> Iterator[tuple[uuid.UUID, str, str, int, datetime]]:
    rng = random.Random(seed)
    for i in range(n):
        score = 0 if rng.random() < 0.08 else rng.randint(1, 500) * 10  # many equal totals
        at = T0 + timedelta(microseconds=rng.randrange(MONTH_US))
        yield user_id(seed, i), username(rng, i), f"c{i % 50}", score, at


@dataclass
class BenchDatabase:
    dsn: str
    players: int
    seed: int
    load_seconds: float
    removed: set[int] = field(default_factory=set)
    bumps: int = 0

    async def change(self, conn: asyncpg.Connection, count: int, rng: random.Random) -> int:
        """Change `count` distinct players' totals: 60% gain a new result, 30% have their result
        regraded, 10% have every result deleted. Returns how many players changed."""
        chosen: list[int] = []
        picked: set[int] = set()
        while len(chosen) < count:
            i = rng.randrange(self.players)
            if i not in picked and i not in self.removed:
                picked.add(i)
                chosen.append(i)
        inserts, updates, deletes = (
            chosen[: count * 6 // 10],
            chosen[count * 6 // 10 : count * 9 // 10],
            chosen[count * 9 // 10 :],
        )
        self.bumps += 1
        now = datetime.now(UTC)
        await conn.executemany(
            "insert into challenge_results (user_id, username, challenge_id, score, submitted_at) "
            "values ($1, $2, $3, $4, $5)",
            [(user_id(self.seed, i), f"bench-{i}", f"x{self.bumps % 7}", 7, now) for i in inserts],
        )
        await conn.executemany(
            "update challenge_results set score = score + 3 where user_id = $1",
            [(user_id(self.seed, i),) for i in updates],
        )
        await conn.executemany(
            "delete from challenge_results where user_id = $1", [(user_id(self.seed, i),) for i in deletes]
        )
        self.removed.update(deletes)
        return len(chosen)


async def migrated_database(postgres: PostgresEngine, name: str) -> str:
    """A new, empty database `name` with every migration applied; returns its DSN."""
    admin = await asyncpg.connect(postgres.uri)
    try:
        await admin.execute(f'drop database if exists "{name}"')
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    dsn = postgres.uri.replace("/postgres?", f"/{name}?")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("set client_min_messages = warning")
        for path in sorted(MIGRATIONS.glob("*.sql")):
            await conn.execute(path.read_text())
    finally:
        await conn.close()
    return dsn


async def create_database(postgres: PostgresEngine, name: str, players: int, seed: int) -> BenchDatabase:
    dsn = await migrated_database(postgres, name)
    conn = await asyncpg.connect(dsn)
    try:
        started = time.monotonic()
        await _load(conn, players, seed)
        seconds = time.monotonic() - started
    finally:
        await conn.close()
    return BenchDatabase(dsn, players, seed, seconds)


_TABLES = ["challenge_results", "challenge_best", "leaderboard_totals"]


async def _load(conn: asyncpg.Connection, players: int, seed: int) -> None:
    # Secondary indexes are built once after the load (a sort) instead of row by row during it.
    indexes = await conn.fetch(
        "select indexname, indexdef from pg_indexes where schemaname = 'public' and tablename = any($1) "
        "and indexname not in (select conname from pg_constraint)",
        _TABLES,
    )
    for index in indexes:
        await conn.execute(f'drop index public."{index["indexname"]}"')
    await conn.execute("set session_replication_role = replica")  # no triggers: rows computed here
    await conn.copy_records_to_table(
        "challenge_results",
        records=_players(players, seed),
        columns=["user_id", "username", "challenge_id", "score", "submitted_at"],
    )
    # One result per player: the best is that result and the total is that best (as the triggers
    # would compute them), numbered 1..N and N+1..2N on the change feed.
    await conn.execute(
        "insert into challenge_best (user_id, challenge_id, best_score, best_at, change_seq) "
        "select user_id, challenge_id, score, "
        "       case when score > 0 then submitted_at else 'infinity'::timestamptz end, id "
        "  from challenge_results"
    )
    await conn.execute(
        "insert into leaderboard_totals (user_id, username, score, solved, last_solved_at, change_seq) "
        "select user_id, username, score, (score > 0)::int, "
        "       case when score > 0 then submitted_at else 'infinity'::timestamptz end, $1::bigint + id "
        "  from challenge_results",
        players,
    )
    await conn.execute("set session_replication_role = origin")
    for index in indexes:
        await conn.execute(index["indexdef"])
    await conn.execute("select setval('public.leaderboard_change_seq', $1)", 2 * players)
    await conn.execute("vacuum analyze")
