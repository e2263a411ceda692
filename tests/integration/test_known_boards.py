"""Known boards (#14) on real engines: the SQL list, its publication by the worker, and the API's miss
path that answers an unknown challenge or season with 404 at once (no message, no source query)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from common.known_boards import PUBLISHED, KnownBoardKeys
from common.known_store import KnownBoardsStore
from common.runtime import run
from common.sources.postgres import PostgresSource
from common.sources.supabase import SupabaseSource
from refresh_worker.app import WorkerApp
from refresh_worker.known import KnownBoardsPublisher
from testkit.engines import PostgresEngine, migrations
from testkit.postgrest import PostgrestEmulator
from tests.harness import ApiHarness, CacheTools
from tests.integration.test_worker import FaultySource, WorkerHarness, clean_db, request, seed, workers
from tests.support import FakeContext, body_of, sqs_event

__all__ = ["clean_db", "workers"]  # fixtures used here

pytestmark = pytest.mark.usefixtures("sqs")
BOARDS = "global,challenge:*,season:*"


@pytest.fixture
def db(clean_db: PostgresEngine) -> PostgresEngine:
    clean_db.psql("truncate leaderboard_seasons;")
    return clean_db


def known_boards(postgres: PostgresEngine) -> list[str]:
    async def go() -> list[str]:
        source = PostgresSource(postgres.uri)
        try:
            return sorted(await source.known_boards())
        finally:
            await source.close()

    return run(go())


async def fetch(postgres: PostgresEngine, sql: str) -> list[Any]:
    conn = await asyncpg.connect(postgres.uri)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def add_season(postgres: PostgresEngine, season: str) -> None:
    now = datetime.now(UTC)
    postgres.psql(
        "insert into leaderboard_seasons (id, starts_at, ends_at) values "
        f"('{season}', '{(now - timedelta(days=1)).isoformat()}', '{(now + timedelta(days=1)).isoformat()}')"
    )


def with_publisher(workers: WorkerHarness, **extra: str) -> tuple[WorkerApp, FaultySource]:
    """The worker as build_app wires it for a source that lists its boards: the catalog is the real
    PostgreSQL source behind the counting wrapper."""
    app, source = workers.app(LEADERBOARD_BOARDS=BOARDS, **extra)
    inner = source.inner
    assert isinstance(inner, PostgresSource)
    app.known = KnownBoardsPublisher(inner, KnownBoardsStore(app.connection, workers.prefix))
    return app, source


def schedule(app: WorkerApp) -> None:
    assert app.invoke(sqs_event(request("*", "schedule")), FakeContext(), True) == {"batchItemFailures": []}


def published(
    workers: WorkerHarness, api_factory: Any, db: PostgresEngine
) -> tuple[WorkerApp, FaultySource, ApiHarness]:
    """Challenge "a" with three players, published by one schedule run, and an API."""
    seed(db, 3, challenge="a")
    worker, source = with_publisher(workers)
    schedule(worker)
    return worker, source, api_factory(LEADERBOARD_BOARDS=BOARDS)


def test_the_source_lists_challenges_with_results_and_every_season(db: PostgresEngine) -> None:
    # Given random results over 40 challenges, of which some are then deleted again, and two seasons
    rng = random.Random(14)
    rows = [(uuid.UUID(int=rng.randrange(1, 300)), f"c{rng.randrange(40):02d}", rng.randrange(0, 100))
            for _ in range(3000)]  # fmt: skip

    async def load() -> None:
        conn = await asyncpg.connect(db.uri)
        try:
            await conn.copy_records_to_table(
                "challenge_results",
                records=[(u, "name", c, s) for u, c, s in rows],
                columns=["user_id", "username", "challenge_id", "score"],
            )
            await conn.execute("delete from challenge_results where challenge_id in ('c03', 'c17')")
        finally:
            await conn.close()

    run(load())
    add_season(db, "cup")
    add_season(db, "empty-season")
    # When the worker's source lists its boards
    listed = known_boards(db)
    # Then it is exactly the challenges that still have results (the naive query) and both seasons
    naive = run(fetch(db, "select distinct challenge_id from challenge_results"))
    seasons = ["season:cup", "season:empty-season"]
    assert listed == sorted([f"challenge:{row[0]}" for row in naive] + seasons)
    assert "challenge:c03" not in listed and len(listed) == 40


def test_supabase_lists_more_boards_than_max_rows(db: PostgresEngine) -> None:
    # Given 1,200 challenges with a result each, and PostgREST's max rows of 1,000
    async def go() -> tuple[list[str], list[str]]:
        conn = await asyncpg.connect(db.uri)
        try:
            await conn.copy_records_to_table(
                "challenge_results",
                records=[(uuid.UUID(int=1), "name", f"k{n:04d}", 1) for n in range(1200)],
                columns=["user_id", "username", "challenge_id", "score"],
            )
        finally:
            await conn.close()

        async def key() -> str:
            return "service-role-key"

        emulator = PostgrestEmulator(db.uri, max_rows=1000)
        source = SupabaseSource("https://project.supabase.co", key, transport=emulator.transport())
        direct = PostgresSource(db.uri)
        try:
            return sorted(await source.known_boards()), sorted(await direct.known_boards())
        finally:
            await source.close()
            await direct.close()
            await emulator.close()

    # When both SQL sources list them, Then both get all 1,200 (one JSON value, never cut)
    over_rest, direct = run(go())
    assert len(over_rest) == 1200 and over_rest == direct


def test_an_unknown_challenge_costs_no_message_no_query_and_no_wait(
    workers: WorkerHarness, api_factory: Any, cache_tools: CacheTools, db: PostgresEngine
) -> None:
    # Given challenge "a" and season "cup" in the database, and the schedule has run once
    seed(db, 5, challenge="a")
    add_season(db, "cup")
    worker, source = with_publisher(workers)
    schedule(worker)
    keys = KnownBoardKeys.for_prefix(workers.prefix)
    members = {m.decode() for m in cache_tools.command("SMEMBERS", keys.known)}
    assert members == {"challenge:a", "season:cup", PUBLISHED}
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS=BOARDS, LEADERBOARD_MISS_WAIT_MS="300")
    api.messages()
    calls_before = dict(source.calls)
    # When readers ask for invented challenges and seasons (pages and ranks)
    for board in ("challenge:invented", "challenge:zz-1", "season:nope"):
        for path in ("/leaderboard", f"/leaderboard/users/{uuid.UUID(int=1)}"):
            response = api.get(path, {"board": board})
            # Then each is a 404 unknown_board, with no refresh request and no trace in Valkey
            assert response["statusCode"] == 404, response
            assert body_of(response)["error"]["code"] == "unknown_board"
            assert not cache_tools.exists(cache_tools.keys(board).refresh_marker)
    assert api.messages() == []
    assert source.calls == calls_before
    # And a known challenge that is not cached yet is requested and waited for as before
    response = api.get("/leaderboard", {"board": "challenge:a"})
    assert response["statusCode"] == 503  # nobody runs the worker here: the wait ends in warming_up
    assert [m["board"] for m in api.messages()] == ["challenge:a"]


def test_a_new_challenge_is_readable_after_the_next_publication(
    workers: WorkerHarness, api_factory: Any, cache_tools: CacheTools, db: PostgresEngine
) -> None:
    worker, _, api = published(workers, api_factory, db)
    # Given a challenge created after the publication: unknown until the next one
    seed(db, 3, challenge="fresh", base=100)
    assert api.get("/leaderboard", {"board": "challenge:fresh"})["statusCode"] == 404
    assert api.messages() == []
    # When the schedule runs again (or an operator runs `leaderboard-ops boards publish`)
    schedule(worker)
    # Then a cold read asks for it, and once refreshed it is served
    assert api.get("/leaderboard", {"board": "challenge:fresh"})["statusCode"] == 503
    assert [m["board"] for m in api.messages()] == ["challenge:fresh"]
    assert worker.invoke(sqs_event(request("challenge:fresh", "miss")), FakeContext(), True) == {
        "batchItemFailures": []
    }
    response = api.get("/leaderboard", {"board": "challenge:fresh"})
    assert response["statusCode"] == 200 and len(body_of(response)["entries"]) == 3


def test_without_a_publication_the_api_asks_the_source_as_before(
    workers: WorkerHarness, api_factory: Any, cache_tools: CacheTools, db: PostgresEngine
) -> None:
    worker, source, api = published(workers, api_factory, db)
    # Given the set was evicted (or never published: a source that cannot list its boards)
    cache_tools.command("DEL", KnownBoardKeys.for_prefix(workers.prefix).known)
    # When a reader asks for an invented challenge
    assert api.get("/leaderboard", {"board": "challenge:invented"})["statusCode"] == 503
    # Then one refresh request is sent, and the worker's answer (absent) makes it a 404
    messages = api.messages()
    assert [m["board"] for m in messages] == ["challenge:invented"]
    assert worker.invoke(sqs_event(json.dumps(messages[0])), FakeContext(), True) == {"batchItemFailures": []}
    assert source.calls.get("challenge:invented") == 1
    assert api.get("/leaderboard", {"board": "challenge:invented"})["statusCode"] == 404


def test_refreshes_keep_the_published_set_in_step_and_listed_boards_are_never_checked(
    workers: WorkerHarness, api_factory: Any, cache_tools: CacheTools, db: PostgresEngine
) -> None:
    seed(db, 3, challenge="a")
    boards = "global,challenge:*,challenge:listed"
    worker, _ = with_publisher(workers)
    worker.settings = type(worker.settings).from_env(workers.env(LEADERBOARD_BOARDS=boards))
    schedule(worker)
    known = KnownBoardKeys.for_prefix(workers.prefix).known
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS=boards)
    # Given a challenge listed by name that has no result yet: it is not checked against the set
    assert api.get("/leaderboard", {"board": "challenge:listed"})["statusCode"] == 503
    assert [m["board"] for m in api.messages()] == ["challenge:listed"]
    # When it gets results and is refreshed, Then the refresh adds it to the published set
    seed(db, 2, challenge="listed", base=50)
    assert worker.invoke(sqs_event(request("challenge:listed")), FakeContext(), True) == {
        "batchItemFailures": []
    }
    assert cache_tools.command("SISMEMBER", known, "challenge:listed") == 1
    # And when a known challenge loses its results, its next refresh removes it
    db.psql("delete from challenge_results where challenge_id = 'a'")
    assert worker.invoke(sqs_event(request("challenge:a", "manual")), FakeContext(), True) == {
        "batchItemFailures": []
    }
    assert cache_tools.command("SISMEMBER", known, "challenge:a") == 0
    assert api.get("/leaderboard", {"board": "challenge:a"})["statusCode"] == 404


def test_only_privileged_roles_may_list_the_boards(db: PostgresEngine) -> None:
    async def go() -> dict[str, bool]:
        conn = await asyncpg.connect(db.uri)
        try:
            for role in ("anon", "authenticated", "service_role"):
                await conn.execute(
                    f"do $$ begin if not exists (select 1 from pg_roles where rolname = '{role}') then "
                    f"create role {role} nologin; end if; end $$"
                )
            # the grants are made for roles that exist when the migration runs (as on Supabase)
            await conn.execute("set client_min_messages = warning")
            known = next(path for path in migrations() if path.name.endswith("_known_boards.sql"))
            await conn.execute(known.read_text())
            allowed: dict[str, bool] = {}
            for role in ("anon", "authenticated", "service_role"):
                try:
                    async with conn.transaction():
                        await conn.execute(f"set local role {role}")
                        await conn.fetchval("select public.leaderboard_known_boards()")
                    allowed[role] = True
                except asyncpg.InsufficientPrivilegeError:
                    allowed[role] = False
            return allowed
        finally:
            await conn.close()

    assert run(go()) == {"anon": False, "authenticated": False, "service_role": True}
