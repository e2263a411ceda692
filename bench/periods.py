"""P10: reading the current week's whole board does not grow with the results outside the week.

Two databases in one PostgreSQL, the same 20,000 results in the current ISO week in both: "small" holds
only those; "big" holds 980,000 more from the 50 weeks before (1,000,000 in all, 100,000 players). Both
are loaded with streamed COPYs (testkit.seed: memory bounded by its chunk), through every trigger.
Measured, interleaved: the source side of a full refresh of the week board (`leaderboard_page` pages of
1000 through PostgresSource until the board's total, as the worker reads it). For scale: the first page
alone (a default refresh), the naive GROUP BY over challenge_results for the same week (ranking only,
no rows sent), and a season spanning all 1M results (building it when the season row is inserted, and
reading its top 1000).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.refresh_data import migrated_database
from bench.stats import percentile, summary
from common.periods import WEEK, containing
from common.runtime import run
from common.sources import Cursor
from common.sources.postgres import PostgresSource
from testkit.engines import PostgresEngine
from testkit.seed import SeedSpec, load

PAST_RESULTS = 980_000
WEEK_RESULTS = 20_000
PLAYERS = 100_000

NAIVE_WEEK = """
with r as (select * from challenge_results where submitted_at >= $1 and submitted_at < $2),
top as (select user_id, challenge_id, max(score) as best from r group by user_id, challenge_id),
best as (select t.user_id, t.best, min(r.submitted_at) as reached from top t
           join r on r.user_id = t.user_id and r.challenge_id = t.challenge_id and r.score = t.best
          group by t.user_id, t.challenge_id, t.best),
totals as (select user_id, sum(best) as score, max(reached) filter (where best > 0) as at
             from best group by user_id)
select count(*) from (select rank() over (order by score desc, at nulls last) from totals) ranked
"""


async def _database(postgres: PostgresEngine, name: str, spec: SeedSpec) -> tuple[str, float]:
    """A migrated database loaded with `spec` through every trigger; returns (DSN, load seconds)."""
    dsn = await migrated_database(postgres, name)
    conn = await asyncpg.connect(dsn)
    try:
        started = time.monotonic()
        await load(conn, spec)
        seconds = time.monotonic() - started
        await conn.execute("analyze")
    finally:
        await conn.close()
    return dsn, seconds


async def _read_board(source: PostgresSource, board: str) -> int:
    """Every entry of `board`, page by page, the way the worker pages (keyset cursor, until total)."""
    cursor: Cursor | None = None
    total: int | None = None
    read = 0
    while True:
        page = await source.fetch_page(board, 1000, cursor)
        if cursor is None:
            total = page.total or 0
        read += len(page.entries)
        cursor = page.cursor
        if cursor is None or (total is not None and cursor.position >= total):
            return read


async def _add(dsn: str, spec: SeedSpec) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        report = await load(conn, spec)
    finally:
        await conn.close()
    return report.seconds


async def _vacuum(dsn: str) -> None:
    """What autovacuum does after a bulk load, done before measuring rather than during it (it took
    the CPU from the big database's reads: a ratio of 1.58 then, 1.1 once it had finished)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("vacuum analyze")
    finally:
        await conn.close()


async def _timed(dsn: str, sql: str, *args: Any) -> float:
    """Milliseconds one statement takes on a fresh connection."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.fetch(sql, *args)
        return (time.perf_counter() - started) * 1000
    finally:
        await conn.close()


def run_periods(runs: int = 15) -> dict[str, Any]:
    week = containing(WEEK, datetime.now(UTC))
    # The same players (same random seed) in both samples; the week's results fill all seven days.
    in_week = SeedSpec(users=PLAYERS, results=WEEK_RESULTS, start=week.start, days=7, seed=42)
    past = SeedSpec(
        users=PLAYERS, results=PAST_RESULTS, start=week.start - timedelta(weeks=50), days=50 * 7, seed=42
    )
    postgres = PostgresEngine().start()
    try:
        small_dsn, small_load = run(_database(postgres, "p10_small", in_week))
        big_dsn, past_load = run(_database(postgres, "p10_big", past))
        week_load = run(_add(big_dsn, in_week))
        for dsn in (small_dsn, big_dsn):
            run(_vacuum(dsn))
        small, big = PostgresSource(small_dsn), PostgresSource(big_dsn)
        sizes = {run(_read_board(s, week.name)) for s in (small, big)}  # warm-up: connect, fill caches
        assert len(sizes) == 1, sizes  # the same board in both databases
        small_ms: list[float] = []
        big_ms: list[float] = []
        for _ in range(runs):
            for source, out in ((small, small_ms), (big, big_ms)):
                started = time.perf_counter()
                run(_read_board(source, week.name))
                out.append((time.perf_counter() - started) * 1000)
        top_ms = []
        for _ in range(runs):  # the default refresh (LEADERBOARD_SIZE=1000) reads one page
            started = time.perf_counter()
            run(big.fetch_page(week.name, 1000, None))
            top_ms.append((time.perf_counter() - started) * 1000)
        naive_ms = [run(_timed(big_dsn, NAIVE_WEEK, week.start, week.end)) for _ in range(3)]
        season_start = past.start
        rebuild_ms = run(
            _timed(
                big_dsn,
                "insert into leaderboard_seasons (id, starts_at, ends_at) values ('bench', $1, $2)",
                season_start,
                week.end,
            )
        )
        top = "select * from leaderboard_page('season:bench', 1000)"
        season_ms = [run(_timed(big_dsn, top)) for _ in range(5)]
        for source in (small, big):
            run(source.close())
    finally:
        postgres.stop()
    med_small, med_big = statistics.median(small_ms), statistics.median(big_ms)
    entries = sizes.pop()

    def raw(samples: list[float], results: int, load_seconds: float) -> dict[str, Any]:
        return {
            "p50_ms": round(statistics.median(samples), 1),
            "p99_ms": round(percentile(samples, 99), 1),
            "results": results,
            "load_seconds": round(load_seconds, 1),
        }

    return {
        "P10_week_refresh_1m": summary(
            med_big / med_small,
            1.5,
            board=week.name,
            entries=entries,
            small=raw(small_ms, WEEK_RESULTS, small_load),
            big=raw(big_ms, PAST_RESULTS + WEEK_RESULTS, past_load + week_load),
            runs=runs,
        ),
        "P10_week_top1000_1m_ms": {
            "value": round(statistics.median(top_ms), 1),
            "unit": "ms (p50, the week's first page of 1000 from the 1M-result database)",
        },
        "P10_week_naive_group_by_1m_ms": {
            "value": round(statistics.median(naive_ms), 1),
            "unit": f"ms (the same week by GROUP BY over challenge_results, 1M rows; {entries:,} players)",
        },
        "P10_season_build_1m_s": {
            "value": round(rebuild_ms / 1000, 1),
            "unit": "s (inserting a season that spans all 1M results builds its aggregates)",
        },
        "P10_season_top1000_1m_ms": {
            "value": round(statistics.median(season_ms), 1),
            "unit": "ms (first page of 1000 of that season's board)",
        },
        "P10_load_1m_rows_s": {
            "value": round(past_load + week_load, 1),
            "unit": "s (COPY of 980k + 20k results, global and period triggers included)",
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_periods(), indent=2))
