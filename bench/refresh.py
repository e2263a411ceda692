"""P5 (and the full-board figures of issue 8): a refresh at scale, and what keeps it cheap.

A refresh is measured as the worker runs it — skip check, lock + fencing version, the source query
(`leaderboard_page`), the staged write and the atomic swap, the lock release — on two databases in one
PostgreSQL, interleaved: 10,000 results over 1,000 players, and 1,000,000 results over 100,000 players
(loaded with one COPY; the load time is reported too). Then a 100,000-player board is refreshed whole
(LEADERBOARD_SIZE=0) from PostgreSQL and through supabase-py's paged RPC, and the single-writer cost of
the triggers is measured as concurrent single-row inserts per second.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.stats import percentile, summary
from common.boards import KeySpace
from common.cache import LeaderboardCache
from common.config import WorkerSettings
from common.lock import RefreshLock
from common.runtime import run
from common.sources import Source
from common.sources.postgres import PostgresSource
from common.sources.supabase import SupabaseSource
from common.valkey import ValkeyConnection
from refresh_worker.refresher import Outcome, Refresher
from testkit.engines import MIGRATIONS, PostgresEngine, ValkeyServer
from testkit.postgrest import PostgrestEmulator
from testkit.seed import SeedSpec, load

SMALL = SeedSpec(users=1_000, results=10_000, challenges=50)
BIG = SeedSpec(users=100_000, results=1_000_000, challenges=50)


async def _database(postgres: PostgresEngine, name: str, spec: SeedSpec) -> tuple[str, float]:
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
        started = time.monotonic()
        await load(conn, spec)
        seconds = time.monotonic() - started
        await conn.execute("analyze")
    finally:
        await conn.close()
    return dsn, seconds


class Bench:
    def __init__(self, server: ValkeyServer) -> None:
        self.base = WorkerSettings.from_env(
            {
                "VALKEY_HOST": server.host,
                "VALKEY_PORT": str(server.port),
                "LEADERBOARD_API_URL": "http://unused/",
                "LOG_LEVEL": "WARNING",
            }
        )
        self.connection = ValkeyConnection(self.base.valkey)

    def refresher(self, prefix: str, source: Source, size: int, page: int = 1000) -> Refresher:
        settings = replace(
            self.base,
            leaderboard_size=size,
            source=replace(self.base.source, page_size=page),
            lock_ttl_ms=300_000,
            min_remaining_ms=0,
        )
        keys = KeySpace(prefix)
        return Refresher(
            settings,
            LeaderboardCache(self.connection, keys),
            RefreshLock(self.connection, keys, holder="bench"),
            source,
        )

    entries = 0

    @classmethod
    async def once(cls, refresher: Refresher) -> float:
        started = time.perf_counter()
        result = await refresher.refresh("global", "bench", 2**62, 900_000)
        assert result.outcome is Outcome.REFRESHED, result
        cls.entries = result.entries
        return (time.perf_counter() - started) * 1000


async def _insert_rate(dsn: str, writers: int = 8, seconds: float = 3.0) -> float:
    """Single-row autocommit inserts per second from `writers` connections (the triggers serialise them)."""
    conns = [await asyncpg.connect(dsn) for _ in range(writers)]
    count = 0
    deadline = time.monotonic() + seconds

    async def writer(conn: Any) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await conn.execute(
                "insert into challenge_results (user_id, username, challenge_id, score, submitted_at) "
                "values ($1, 'bench', 'two-sum', 50, $2)",
                uuid.uuid4(),
                datetime.now(UTC),
            )
            count += 1

    try:
        await asyncio.gather(*(writer(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    return count / seconds


def run_refresh(runs: int = 15) -> dict[str, Any]:
    postgres = PostgresEngine().start()
    server = ValkeyServer().start()
    try:
        small_dsn, small_load = run(_database(postgres, "small", SMALL))
        big_dsn, big_load = run(_database(postgres, "big", BIG))
        bench = Bench(server)
        small_source, big_source = PostgresSource(small_dsn), PostgresSource(big_dsn)
        small = bench.refresher("p5-small", small_source, 1000)
        big = bench.refresher("p5-big", big_source, 1000)
        for refresher in (small, big):  # warm-up: connect, fill caches
            run(bench.once(refresher))
        small_ms: list[float] = []
        big_ms: list[float] = []
        for _ in range(runs):
            small_ms.append(run(bench.once(small)))
            big_ms.append(run(bench.once(big)))

        full_pg = bench.refresher("full-pg", big_source, 0)
        emulator = PostgrestEmulator(big_dsn, pooled=True)

        async def key() -> str:
            return "bench-service-role-key"

        supabase = SupabaseSource("https://bench.supabase.co", key, transport=emulator.transport())
        full_sb = bench.refresher("full-sb", supabase, 0)
        full_pg_ms = [run(bench.once(full_pg)) for _ in range(3)]
        full_entries = Bench.entries
        full_sb_ms = [run(bench.once(full_sb)) for _ in range(3)]
        inserts = run(_insert_rate(small_dsn))
        for source in (small_source, big_source, supabase):
            run(source.close())
        run(emulator.close())
        run(bench.connection.close())
    finally:
        server.stop()
        postgres.stop()
    med_small, med_big = statistics.median(small_ms), statistics.median(big_ms)
    spread = {"p50_ms": None, "p99_ms": None}
    return {
        "P5_refresh_scaling": summary(
            med_big / med_small,
            3.0,
            small={
                **spread,
                "p50_ms": round(med_small, 1),
                "p99_ms": round(percentile(small_ms, 99), 1),
                "results": SMALL.results,
                "players": SMALL.users,
                "load_seconds": round(small_load, 1),
            },
            big={
                **spread,
                "p50_ms": round(med_big, 1),
                "p99_ms": round(percentile(big_ms, 99), 1),
                "results": BIG.results,
                "players": BIG.users,
                "load_seconds": round(big_load, 1),
            },
            top=1000,
            runs=runs,
        ),
        "P5_refresh_ms_1m": {"value": round(med_big, 1), "unit": "ms (p50, top 1000 of 1M results)"},
        "P5_load_1m_rows_s": {
            "value": round(big_load, 1),
            "unit": "s (one COPY of 1,000,000 rows, triggers included)",
        },
        "P8_full_board_100k_postgres_ms": {
            "value": round(statistics.median(full_pg_ms), 1),
            "unit": f"ms ({full_entries:,} entries: every ranked player of 100,000; pages of 1000)",
            "runs_ms": [round(v, 1) for v in full_pg_ms],
        },
        "P8_full_board_100k_supabase_ms": {
            "value": round(statistics.median(full_sb_ms), 1),
            "unit": f"ms ({full_entries:,} entries, RPC pages of 1000 via supabase-py, emulated PostgREST)",
            "runs_ms": [round(v, 1) for v in full_sb_ms],
        },
        "S1_single_row_inserts_per_s": {
            "value": round(inserts),
            "unit": "inserts/s (8 concurrent writers, one writer lock in the triggers)",
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_refresh(), indent=2))
