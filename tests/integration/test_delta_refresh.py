"""Delta refreshes and full rebuilds on real Valkey (standalone and cluster) and real PostgreSQL.

Every board the worker stores is compared with an independent ranking of one committed database state
(tests/naive.py: plain SQL over `challenge_results`, not our functions), run in the same REPEATABLE READ
snapshot as the change-feed call whose head became the snapshot's position (`RecordingSource`).
Boards are read back the way the API reads them, page by page, and the pages must join up.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from common.cache import Applied, Delta, LeaderboardCache, SnapshotHeader, Swap
from common.config import WorkerSettings
from common.errors import CacheUnavailable
from common.models import Change, Entry
from common.runtime import run
from common.sources import ChangePage, Cursor, SourcePage
from common.sources.base import change_page_from_reply
from common.sources.postgres import PostgresSource
from common.sources.supabase import SupabaseSource
from refresh_worker.refresher import Mode, Outcome, Refresher, RefreshResult
from testkit.engines import PostgresEngine
from testkit.postgrest import PostgrestEmulator
from tests import naive
from tests.harness import CacheTools, ValkeyTarget

T0 = datetime(2026, 11, 1, tzinfo=UTC)
COLUMNS = ["user_id", "username", "challenge_id", "score", "submitted_at"]


def user(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def served(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """The naive rows as the API serves entries."""
    return [
        {"rank": r["rank"], "user_id": r["user_id"], "username": r["username"], "score": r["score"],
         "solved": r["solved"], "last_solved_at": iso(r["at"])}
        for r in rows
    ]  # fmt: skip


class RecordingSource:
    """The production PostgreSQL source for pages; change-feed calls run `leaderboard_changes` and the
    independent ranking in one REPEATABLE READ transaction, so `states[board][head]` is the board of
    exactly the committed state that head stands for."""

    name = "postgres"
    has_feed = True

    def __init__(self, dsn: str) -> None:
        self.pages = PostgresSource(dsn)
        self.dsn = dsn
        self.states: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self.feed_rows = 0
        self._conn: Any = None

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        return await self.pages.fetch_page(board, limit, after)

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        conn = self._conn = self._conn or await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                raw = await conn.fetchval(
                    "select leaderboard_changes($1, $2, $3, $4)::text", board, after, limit, with_total
                )
                query, args = naive.for_board(board)
                rows = served(await conn.fetch(naive.ranked(query), *args))
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == "LB001":
                from common.errors import PositionLost

                raise PositionLost(str(exc)) from None
            raise
        page = change_page_from_reply(json.loads(raw))
        self.states.setdefault(board, {})[page.head] = rows
        self.feed_rows += len(page.changes)
        return page

    async def close(self) -> None:
        await self.pages.close()
        if self._conn is not None:
            await self._conn.close()


async def read_board(
    cache: LeaderboardCache, board: str, count: int = 37
) -> tuple[SnapshotHeader, list[Any]]:
    """Page through the stored board as a client would; the pages must join up."""
    entries: list[dict[str, Any]] = []
    header: SnapshotHeader | None = None
    offset = 0
    while True:
        page = await cache.read_page(board, offset, count)
        assert page is not None
        assert header is None or page.header.version == header.version, "the board changed mid-read"
        header = page.header
        entries.extend(json.loads(e) for e in page.entries)
        offset += count
        if offset >= header.size:
            break
    ids = [e["user_id"] for e in entries]
    assert len(ids) == len(set(ids)) == header.size, "a player is duplicated or missing"
    return header, entries


class Harness:
    def __init__(self, target: ValkeyTarget, tools: CacheTools, postgres: PostgresEngine) -> None:
        self.tools = tools
        self.settings = WorkerSettings.from_env(
            {**target.env(), "LEADERBOARD_KEY": tools.prefix, "DATABASE_URL": postgres.uri,
             "SOURCE_PAGE_SIZE": "16", "LEADERBOARD_REBUILD_SECONDS": "0", "SOURCE_RETRY_BASE_MS": "10"}
        )  # fmt: skip
        self.source = RecordingSource(postgres.uri)
        self.dsn = postgres.uri
        self._sql: asyncpg.Connection | None = None

    async def sql(self) -> asyncpg.Connection:
        """A connection for the test's own writes (on the loop the scenario runs on)."""
        if self._sql is None:
            self._sql = await asyncpg.connect(self.dsn)
        return self._sql

    async def close(self) -> None:
        await self.source.close()
        if self._sql is not None:
            await self._sql.close()

    def refresher(self, **changes: Any) -> Refresher:
        settings = replace(self.settings, **changes)
        return Refresher(settings, self.tools.cache, self.tools.lock, self.source)  # type: ignore[arg-type]

    async def refresh(self, board: str = "global", **changes: Any) -> RefreshResult:
        return await self.refresher(**changes).refresh(board, "test", 2**62, 60_000)

    async def check(self, board: str = "global") -> SnapshotHeader:
        """The stored board equals the independent ranking of the state its position stands for."""
        header, entries = await read_board(self.tools.cache, board)
        assert header.position is not None
        expected = self.source.states[board][header.position]
        cap = self.settings.leaderboard_size
        assert entries == (expected[:cap] if cap else expected)
        assert header.total == len(expected)
        return header


@pytest.fixture
def db_clean(postgres: PostgresEngine) -> PostgresEngine:
    postgres.psql(
        "truncate challenge_results, challenge_best, leaderboard_totals, leaderboard_removed, "
        "leaderboard_feed_horizon restart identity;"
    )
    return postgres


@pytest.fixture
def harness(
    valkey_engine: ValkeyTarget, cache_tools: CacheTools, db_clean: PostgresEngine
) -> Iterator[Harness]:
    h = Harness(valkey_engine, cache_tools, db_clean)
    yield h
    run(h.close())


async def command(tools: CacheTools, *args: str) -> Any:
    client = await tools.connection.client()
    return await client.custom_command(list(args))


async def insert(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "insert into challenge_results (user_id, username, challenge_id, score, submitted_at) "
        "values ($1, $2, $3, $4, $5)",
        rows,
    )


async def seed(conn: asyncpg.Connection, players: int, rng: random.Random) -> None:
    rows = [
        (user(rng.randint(1, players)), f"p{rng.randint(1, 3)}", f"c{rng.randint(1, 3)}",
         rng.choice([0, 10, 20, 30, 50]), T0 + timedelta(microseconds=rng.randint(0, 400)))
        for _ in range(players * 3)
    ]  # fmt: skip
    await conn.copy_records_to_table("challenge_results", records=rows, columns=COLUMNS)


async def random_writes(dsn: str, seed_: int, stop: asyncio.Event, players: int, counter: list[int]) -> None:
    """Inserts, regrades (down) and deletions in small transactions until `stop`."""
    rng = random.Random(seed_)
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            who = user(rng.randint(1, players + 20))  # some new players too
            op = rng.random()
            async with conn.transaction():
                if op < 0.55:
                    at = T0 + timedelta(microseconds=rng.randint(0, 400))
                    await insert(conn, [(who, f"n{rng.randint(1, 3)}", f"c{rng.randint(1, 3)}",
                                         rng.choice([0, 10, 20, 40, 60]), at)])  # fmt: skip
                elif op < 0.8:
                    await conn.execute(
                        "update challenge_results set score = score / 2 where user_id = $1", who
                    )
                else:
                    await conn.execute("delete from challenge_results where user_id = $1", who)
            counter[0] += 1
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


@pytest.mark.parametrize("board", ["global", "challenge:c1"])
def test_under_concurrent_writers_every_refresh_stores_one_committed_state(
    harness: Harness, db_clean: PostgresEngine, board: str
) -> None:
    async def scenario() -> list[RefreshResult]:
        conn = await asyncpg.connect(db_clean.uri)
        await seed(conn, 120, random.Random(1))
        await conn.close()
        # Given three connections inserting, regrading and deleting results all the time
        stop, writes = asyncio.Event(), [0]
        writers = [asyncio.ensure_future(random_writes(harness.dsn, s, stop, 120, writes)) for s in range(3)]
        results = []
        try:
            for i in range(10):
                if i in (4, 7):  # the cache is flushed: the next refresh rebuilds, writers still busy
                    keys = harness.tools.keys(board)
                    await command(harness.tools, "DEL", keys.meta, keys.snapshot, keys.entries)
                before = writes[0]
                result = await harness.refresh(board)
                assert result.outcome is Outcome.REFRESHED, result
                # Then the stored board is exactly the ranking of one committed state
                await harness.check(board)
                results.append(result)
                while writes[0] < before + 5:  # noqa: ASYNC110 - let the writers change a few players
                    await asyncio.sleep(0.005)
        finally:
            stop.set()
            await asyncio.gather(*writers)
        return results

    results = run(scenario())
    modes = [(r.mode, r.rebuild_reason) for r in results]
    assert modes[0] == (Mode.REBUILD, "no_snapshot")
    assert modes[4] == modes[7] == (Mode.REBUILD, "no_snapshot")
    assert sum(1 for m, _ in modes if m is Mode.DELTA) == 7, modes
    assert sum(r.changes for r in results if r.mode is Mode.DELTA) > 0


def test_deltas_and_a_full_rebuild_of_the_same_database_store_identical_boards(
    harness: Harness, valkey_engine: ValkeyTarget
) -> None:
    rng = random.Random(7)

    async def scenario() -> None:
        sql = await harness.sql()
        await seed(sql, 80, rng)
        assert (await harness.refresh()).mode is Mode.REBUILD
        for round_ in range(5):
            # regrades up and down, removals, newcomers, sub-millisecond ties
            rows = [(user(rng.randint(1, 100)), "z", f"c{rng.randint(1, 3)}", rng.choice([5, 70]),
                     T0 + timedelta(microseconds=rng.randint(0, 3))) for _ in range(15)]  # fmt: skip
            await insert(sql, rows)
            await sql.execute("update challenge_results set score = score / 3 where id % 7 = $1", round_)
            await sql.execute("delete from challenge_results where id % 17 = $1", round_)
            assert (await harness.refresh()).mode is Mode.DELTA
        delta_header, delta_board = await read_board(harness.tools.cache, "global")
        # When another prefix reads the same database whole
        other = CacheTools(valkey_engine, harness.tools.prefix + "-full")
        try:
            full = Refresher(harness.settings, other.cache, other.lock, harness.source)  # type: ignore[arg-type]
            result = await full.refresh("global", "test", 2**62, 60_000)
            assert (result.mode, result.rebuild_reason) == (Mode.REBUILD, "no_snapshot")
            full_header, full_board = await read_board(other.cache, "global")
        finally:
            await other.connection.close()
        # Then both boards are the same, entry for entry, at the same position
        assert full_board == delta_board
        assert (full_header.position, full_header.size, full_header.total) == (
            delta_header.position,
            delta_header.size,
            delta_header.total,
        )
        await harness.check()

    run(scenario())


def test_score_decreases_removals_and_sub_millisecond_ties_are_reflected(harness: Harness) -> None:
    async def scenario() -> None:
        sql = await harness.sql()
        # Given four players; two reach 50 one microsecond apart, two at the very same microsecond
        await insert(sql, [
            (user(1), "ana", "c1", 50, T0 + timedelta(microseconds=1)),
            (user(2), "bo", "c1", 50, T0 + timedelta(microseconds=2)),
            (user(3), "cy", "c1", 50, T0 + timedelta(microseconds=2)),
            (user(4), "di", "c1", 10, T0),
        ])  # fmt: skip
        await harness.refresh()
        _, board = await read_board(harness.tools.cache, "global")
        # Then they are ranked at microsecond precision, and shown at it: 1, 2, 2, 4
        assert [(e["rank"], e["username"]) for e in board] == [(1, "ana"), (2, "bo"), (2, "cy"), (4, "di")]
        assert [e["last_solved_at"] for e in board[:2]] == [
            "2026-11-01T00:00:00.000001Z",
            "2026-11-01T00:00:00.000002Z",
        ]
        # When ana is regraded down and cy's results are deleted
        await sql.execute("update challenge_results set score = 5 where user_id = $1", user(1))
        await sql.execute("delete from challenge_results where user_id = $1", user(3))
        result = await harness.refresh()
        # Then one delta of two changes moves ana down and removes cy
        assert (result.mode, result.changes, result.rows_read) == (Mode.DELTA, 2, 2)
        _, board = await read_board(harness.tools.cache, "global")
        assert [(e["rank"], e["username"], e["score"]) for e in board] == [(1, "bo", 50), (2, "di", 10),
                                                                           (3, "ana", 5)]  # fmt: skip
        await harness.check()
        window = await harness.tools.cache.read_user("global", str(user(3)), 1)
        assert window is not None and window.position is None  # not ranked any more

    run(scenario())


def test_lost_positions_too_many_changes_and_old_snapshots_rebuild(harness: Harness) -> None:
    async def scenario() -> None:
        sql = await harness.sql()
        await seed(sql, 30, random.Random(3))
        await harness.refresh()
        # When a removal's tombstone is pruned before the worker saw it
        await sql.execute("delete from challenge_results where user_id = $1", user(5))
        await sql.execute("select leaderboard_prune_removed('0 seconds')")
        result = await harness.refresh()
        # Then the feed refuses the position (LB001) and the worker rebuilds
        assert (result.mode, result.rebuild_reason) == (Mode.REBUILD, "position_lost")
        await harness.check()
        # When more players changed than LEADERBOARD_DELTA_MAX_ROWS allows
        await sql.execute("update challenge_results set score = score + 1 where id % 2 = 0")
        result = await harness.refresh(delta_max_rows=3)
        assert (result.mode, result.rebuild_reason) == (Mode.REBUILD, "too_many_changes")
        await harness.check()
        # When the last rebuild is older than LEADERBOARD_REBUILD_SECONDS
        await asyncio.sleep(1.05)
        result = await harness.refresh(rebuild_seconds=1)
        assert (result.mode, result.rebuild_reason) == (Mode.REBUILD, "periodic")
        # and otherwise a refresh with nothing changed is an empty delta that only renews the header
        before = await harness.tools.cache.read_header("global")
        result = await harness.refresh()
        after = await harness.tools.cache.read_header("global")
        assert (result.mode, result.changes, result.rows_read) == (Mode.DELTA, 0, 0)
        assert before is not None and after is not None
        assert after.version > before.version and after.position == before.position
        assert after.generated_at_ms >= before.generated_at_ms
        await harness.check()

    run(scenario())


def test_a_capped_board_keeps_the_top_n_of_the_database(harness: Harness) -> None:
    async def scenario() -> None:
        sql = await harness.sql()
        # Given 30 players with distinct totals and LEADERBOARD_SIZE=10
        await insert(sql, [(user(i), f"p{i}", "c1", 100 - i, T0) for i in range(1, 31)])
        harness.settings = replace(harness.settings, leaderboard_size=10)
        first = await harness.refresh()
        assert first.entries == 10
        header = await harness.check()
        assert header.boundary is not None and header.total == 30
        # When a player from below the cut climbs into it, and one inside drops far below it
        await sql.execute("update challenge_results set score = 99 where user_id = $1", user(25))
        await sql.execute("update challenge_results set score = 1 where user_id = $1", user(3))
        result = await harness.refresh()
        # Then a delta keeps exactly the top 10 of the database
        assert result.mode is Mode.DELTA
        await harness.check()
        # When a player leaves the top 10 and nobody below is known to the snapshot
        await sql.execute("delete from challenge_results where user_id = $1", user(1))
        assert (await harness.refresh()).mode is Mode.DELTA
        header, board = await read_board(harness.tools.cache, "global")
        assert header.size == 9  # the 11th player of the database is not stored
        assert [e["rank"] for e in board] == list(range(1, 10))
        # Then the next refresh reads the board again and the cap is full once more
        result = await harness.refresh()
        assert (result.mode, result.rebuild_reason) == (Mode.REBUILD, "board_not_full")
        await harness.check()
        # and lifting the cap rebuilds with everyone
        harness.settings = replace(harness.settings, leaderboard_size=0)
        result = await harness.refresh()
        assert (result.mode, result.rebuild_reason, result.entries) == (Mode.REBUILD, "size_changed", 29)

    run(scenario())


def test_flushes_mid_refresh_end_in_a_correct_board(harness: Harness) -> None:
    cache = harness.tools.cache
    keys = harness.tools.keys("global")

    async def scenario() -> None:
        sql = await harness.sql()
        await seed(sql, 40, random.Random(11))
        await harness.refresh()
        # When the cache is flushed between the worker's header read and its delta
        await insert(sql, [(user(2), "x", "c1", 90, T0)])
        original = cache.apply_changes

        async def flush_then_apply(*args: Any, **kwargs: Any) -> Any:
            await command(harness.tools, "DEL", keys.meta, keys.snapshot, keys.entries)
            return await original(*args, **kwargs)

        cache.apply_changes = flush_then_apply  # type: ignore[method-assign]
        try:
            result = await harness.refresh()
        finally:
            del cache.apply_changes
        # Then the delta finds no snapshot to apply to and the worker rebuilds instead
        assert (result.mode, result.rebuild_reason) == (Mode.REBUILD, "no_snapshot")
        await harness.check()
        # When the staged copy of a rebuild is evicted before the swap
        await insert(sql, [(user(3), "y", "c1", 95, T0)])
        stored = await cache.read_header("global")
        original_commit = cache.commit

        async def evict_then_commit(header: SnapshotHeader, swap: Swap) -> bool:
            await command(harness.tools, "DEL", *keys.staging(header.version))
            return await original_commit(header, swap)

        cache.commit = evict_then_commit  # type: ignore[method-assign]
        try:
            with pytest.raises(CacheUnavailable, match="gone at the swap"):
                await harness.refresh(delta_max_rows=0)  # a rebuild: one change is too many
        finally:
            del cache.commit
        # Then the refresh fails (its message is retried), the old board is still served whole
        assert await cache.read_header("global") == stored
        await harness.check()
        # and the next refresh brings the board up to date
        assert (await harness.refresh()).mode is Mode.DELTA
        await harness.check()

    run(scenario())


def test_a_batch_never_applies_twice_out_of_order_or_over_a_newer_state(harness: Harness) -> None:
    cache = harness.tools.cache

    async def board() -> list[bytes]:
        page = await cache.read_page("global", 0, 100)
        assert page is not None
        return page.entries

    async def scenario() -> None:
        sql = await harness.sql()
        await insert(sql, [(user(i), f"p{i}", "c1", 10 * i, T0) for i in range(1, 6)])
        await harness.refresh()
        stored = await cache.read_header("global")
        assert stored is not None and stored.position is not None
        p0 = stored.position
        moved = Change(
            str(user(1)), Entry(0, str(user(1)), "p1", 1000, 1, "2026-11-01T00:00:00.000000Z"), p0 + 1
        )

        def header(version: int, position: int) -> SnapshotHeader:
            return SnapshotHeader("global", version, int(time.time() * 1000), 0, 0, "postgres", position)

        # Given a batch applied once
        assert (await cache.apply_changes(header(stored.version + 10, p0 + 1), Delta(p0, [moved])))[
            0
        ] is Applied.APPLIED
        after_once = await board()
        # When the same batch arrives again (same version), Then it is refused
        assert (await cache.apply_changes(header(stored.version + 10, p0 + 1), Delta(p0, [moved])))[
            0
        ] is Applied.SUPERSEDED
        # When it arrives with a newer version, Then it is refused: the board is past its start
        assert (await cache.apply_changes(header(stored.version + 20, p0 + 1), Delta(p0, [moved])))[
            0
        ] is Applied.MOVED
        # When an older batch (from an earlier position) arrives, Then it is refused too
        assert (await cache.apply_changes(header(stored.version + 30, p0), Delta(p0 - 1, [moved])))[
            0
        ] is Applied.MOVED
        # When a batch from a worker with an older lease arrives, Then it is refused
        assert (await cache.apply_changes(header(stored.version + 5, p0 + 2), Delta(p0 + 1, [])))[
            0
        ] is Applied.SUPERSEDED
        # And a full rebuild that read an older position cannot replace the newer board either
        staging_version = stored.version + 40
        staged, _ = await cache.stage_entries("global", staging_version, [moved.entry], ttl_ms=5_000)  # type: ignore[list-item]
        assert not await cache.commit(header(staging_version, p0), Swap(staged, newest_replaceable=p0))
        assert await board() == after_once
        assert await command(harness.tools, "KEYS", harness.tools.keys("global").tag + ":staging*") == []

    run(scenario())


def test_the_supabase_source_refreshes_by_delta_too(harness: Harness, db_clean: PostgresEngine) -> None:
    async def key() -> str:
        return "service-role-key"

    emulator = PostgrestEmulator(db_clean.uri, max_rows=7)
    supabase = SupabaseSource("https://project.supabase.co", key, transport=emulator.transport())
    refresher = Refresher(harness.settings, harness.tools.cache, harness.tools.lock, supabase)

    async def scenario() -> None:
        sql = await harness.sql()
        await insert(sql, [(user(i), f"p{i}", "c1", i, T0) for i in range(1, 41)])
        first = await refresher.refresh("global", "test", 2**62, 60_000)
        assert first.mode is Mode.REBUILD and first.entries == 40
        # When 12 players change (more than one 7-row page: the feed's jsonb is not cut by max rows)
        await sql.execute("update challenge_results set score = score + 100 where user_id = any($1::uuid[])",
                          [user(i) for i in range(1, 13)])  # fmt: skip
        emulator.requests.clear()
        result = await refresher.refresh("global", "test", 2**62, 60_000)
        # Then one delta read exactly those 12 rows, in one request of up to 16 (SOURCE_PAGE_SIZE)
        assert (result.mode, result.changes, result.rows_read) == (Mode.DELTA, 12, 12)
        assert [r.url.path.rpartition("/")[2] for r in emulator.requests] == ["leaderboard_changes"]
        _, board = await read_board(harness.tools.cache, "global")
        assert [e["user_id"] for e in board[:12]] == [str(user(i)) for i in range(12, 0, -1)]
        # When the position is lost, Then LB001 arrives through PostgREST and the worker rebuilds
        await sql.execute("delete from challenge_results where user_id = $1", user(40))
        await sql.execute("select leaderboard_prune_removed('0 seconds')")
        result = await refresher.refresh("global", "test", 2**62, 60_000)
        assert (result.mode, result.rebuild_reason, result.entries) == (Mode.REBUILD, "position_lost", 39)
        await supabase.close()

    run(scenario())


def test_an_http_upstream_without_a_feed_is_read_whole_every_time(harness: Harness) -> None:
    import httpx

    from common.sources.http import HttpSource

    requests: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        rows = [{"rank": i, "user_id": f"u{i}", "username": f"n{i}", "score": 10 - i, "solved": 1,
                 "last_solved_at": "2026-11-01T00:00:00.5+00:00"} for i in range(1, 6)]  # fmt: skip
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json={"total": 5, "entries": rows[offset:]}, request=request)

    source = HttpSource("https://upstream.example/board", transport=httpx.MockTransport(upstream))
    refresher = Refresher(harness.settings, harness.tools.cache, harness.tools.lock, source)

    async def scenario() -> None:
        for _ in range(2):
            result = await refresher.refresh("global", "test", 2**62, 60_000)
            assert (result.mode, result.rebuild_reason, result.entries) == (Mode.REBUILD, "no_feed", 5)
        header, board = await read_board(harness.tools.cache, "global")
        assert header.position is None and header.total == 5
        assert board[0]["last_solved_at"] == "2026-11-01T00:00:00.500000Z"
        assert len(requests) == 2  # one page per refresh: the upstream's total ends the paging
        await source.close()

    run(scenario())
