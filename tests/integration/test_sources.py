"""The three sources against real PostgreSQL (directly, and through supabase-py's wire contract) and an
upstream HTTP API, including every failure shape the worker must classify."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from common.errors import PositionLost, SourceError, SourceUnavailable
from common.models import Entry
from common.sources.base import Cursor, Source
from common.sources.http import HttpSource
from common.sources.postgres import PostgresSource
from common.sources.supabase import SupabaseSource
from testkit.engines import PostgresEngine, free_port
from testkit.postgrest import (
    PostgrestEmulator,
    connect_refused,
    html_error,
    malformed_json,
    postgrest_error,
    read_timeout,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KEY = "service-role-key-for-tests"


@pytest.fixture
async def seeded(postgres: PostgresEngine) -> str:
    """25 players on challenge a (pairs tied), the last 3 also on b; returns the DSN."""
    conn = await asyncpg.connect(postgres.uri)
    await conn.execute(
        "truncate challenge_results, challenge_best, leaderboard_totals, leaderboard_removed, "
        "leaderboard_feed_horizon restart identity"
    )
    rows = [
        (uuid.UUID(int=i), f"player-{i}", "a", 10 * (26 - i - (i % 2)), T0 + timedelta(minutes=(i + 1) // 2))
        for i in range(1, 26)
    ] + [(uuid.UUID(int=i), f"player-{i}", "b", 5, T0 + timedelta(hours=1)) for i in (23, 24, 25)]
    await conn.copy_records_to_table(
        "challenge_results",
        records=rows,
        columns=["user_id", "username", "challenge_id", "score", "submitted_at"],
    )
    await conn.close()
    return postgres.uri


async def read_all(source: Source, board: str, page: int) -> tuple[list[Entry], int | None, int]:
    entries: list[Entry] = []
    first = await source.fetch_page(board, page, None)
    entries.extend(first.entries)
    cursor: Cursor | None = first.cursor
    pages = 1
    # As the worker does: page on until `total` rows (a short page is not the end) or an empty page.
    while cursor is not None and (first.total is None or cursor.position < first.total):
        nxt = await source.fetch_page(board, page, cursor)
        entries.extend(nxt.entries)
        cursor = nxt.cursor
        pages += 1
    return entries, first.total, pages


def supabase(emulator: PostgrestEmulator, **kwargs: Any) -> SupabaseSource:
    async def key() -> str:
        return KEY

    return SupabaseSource("https://project.supabase.co", key, transport=emulator.transport(), **kwargs)


async def test_postgres_and_supabase_sources_return_the_same_ranking(seeded: str) -> None:
    direct = PostgresSource(seeded)
    emulator = PostgrestEmulator(seeded)
    rest = supabase(emulator)
    try:
        a_entries, a_total, a_pages = await read_all(direct, "global", 4)
        b_entries, b_total, b_pages = await read_all(rest, "global", 4)
    finally:
        await direct.close()
        await rest.close()
    assert a_entries == b_entries
    assert a_total == b_total == 25
    assert a_pages == b_pages == 7  # 25 rows in pages of 4: the 7th is short
    assert [e.rank for e in a_entries[:6]] == [1, 1, 3, 3, 5, 5]
    assert a_entries[0].last_solved_at is not None and a_entries[0].last_solved_at.endswith("Z")


async def test_supabase_wire_contract(seeded: str) -> None:
    # Given the PostgREST-shaped transport
    emulator = PostgrestEmulator(seeded)
    source = supabase(emulator)
    try:
        entries, _, _ = await read_all(source, "global", 10)
    finally:
        await source.close()
    # Then supabase-py POSTs to the RPC endpoint with the key in both headers and the cursor in the body
    first, second = emulator.requests[0], emulator.requests[1]
    assert first.method == "POST"
    assert first.url.path == "/rest/v1/rpc/leaderboard_page"
    assert first.headers["apikey"] == KEY
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(first.content) == {"p_board": "global", "p_limit": 10}
    body = json.loads(second.content)
    assert body["p_after_position"] == 10
    assert body["p_after_user"] == entries[9].user_id
    assert body["p_after_rank"] == entries[9].rank
    assert len(entries) == 25


async def test_challenge_boards_and_unknown_challenges(seeded: str) -> None:
    source = PostgresSource(seeded)
    try:
        entries, total, _ = await read_all(source, "challenge:b", 10)
        nothing = await source.fetch_page("challenge:zzz", 10, None)
    finally:
        await source.close()
    assert [e.rank for e in entries] == [1, 1, 1]
    assert total == 3
    assert nothing.entries == [] and nothing.total is None and nothing.cursor is None


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (html_error(503), SourceUnavailable),
        (html_error(502), SourceUnavailable),
        (
            postgrest_error(503, "PGRST001", "Database client error. Retrying the connection."),
            SourceUnavailable,
        ),
        (postgrest_error(500, "57014", "canceling statement due to statement timeout"), SourceUnavailable),
        (postgrest_error(429, "", "Too many requests"), SourceUnavailable),
        (read_timeout, SourceUnavailable),
        (connect_refused, SourceUnavailable),
        (postgrest_error(400, "22023", "unknown board nope"), SourceError),
        (
            postgrest_error(404, "PGRST202", "Could not find the function public.leaderboard_page"),
            SourceError,
        ),
        (postgrest_error(401, "PGRST301", "JWT expired"), SourceError),
        (malformed_json, SourceError),
    ],
)
async def test_supabase_failures_are_classified(
    seeded: str, fault: Callable[[httpx.Request], httpx.Response], error: type[Exception]
) -> None:
    emulator = PostgrestEmulator(seeded, faults=[fault])
    source = supabase(emulator)
    try:
        with pytest.raises(error) as caught:
            await source.fetch_page("global", 10, None)
        # supabase-py's own retries are off: exactly one request, our policy owns retrying
        assert len(emulator.requests) == 1
        assert KEY not in str(caught.value)
        # and the source works again once the fault is gone
        assert len((await source.fetch_page("global", 10, None)).entries) == 10
    finally:
        await source.close()


@pytest.mark.parametrize(
    "body",
    [
        {"not": "a list"},
        [{"rank": 1}],
        [{"rank": 0, "user_id": "u", "username": "x", "score": 1, "solved": 1, "last_solved_at": None}],
        [{"rank": 1, "user_id": "u", "username": "x", "score": -1, "solved": 1, "last_solved_at": None}],
        [
            {
                "rank": 1,
                "user_id": "u",
                "username": "x",
                "score": 1,
                "solved": 1,
                "last_solved_at": "yesterday",
            }
        ],
        [{"rank": 1, "user_id": "a/b", "username": "x", "score": 1, "solved": 1, "last_solved_at": None}],
    ],
)
async def test_supabase_rows_are_validated(seeded: str, body: Any) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body, request=request)

    source = supabase(PostgrestEmulator(seeded, faults=[reply]))
    try:
        with pytest.raises(SourceError, match="malformed"):
            await source.fetch_page("global", 10, None)
    finally:
        await source.close()


async def test_postgres_unreachable_is_transient_and_recovers(seeded: str, postgres: PostgresEngine) -> None:
    down = PostgresSource(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", timeout_ms=500)
    try:
        with pytest.raises(SourceUnavailable):
            await down.fetch_page("global", 10, None)
    finally:
        await down.close()
    source = PostgresSource(seeded)
    try:
        with pytest.raises(SourceError, match="22023"):
            await source.fetch_page("nope", 10, None)
        assert len((await source.fetch_page("global", 5, None)).entries) == 5
    finally:
        await source.close()


def upstream(pages: dict[int, Any], status: int = 200, seen: list[httpx.Request] | None = None) -> HttpSource:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        offset = int(request.url.params["offset"])
        return httpx.Response(status, json=pages.get(offset, {"total": 0, "entries": []}), request=request)

    return HttpSource(
        "https://upstream.example/leaderboard", token="tok", transport=httpx.MockTransport(handler)
    )


def row(rank: int, n: int) -> dict[str, Any]:
    return {"rank": rank, "user_id": f"u{n}", "username": f"n{n}", "score": 100 - n, "solved": 1,
            "last_solved_at": "2026-11-01T00:00:00+00:00"}  # fmt: skip


async def test_http_source_pages_by_offset_and_validates() -> None:
    seen: list[httpx.Request] = []
    pages = {0: {"total": 3, "entries": [row(1, 1), row(2, 2)]}, 2: {"total": 3, "entries": [row(3, 3)]}}
    source = upstream(pages, seen=seen)
    try:
        entries, total, pages = await read_all(source, "global", 2)
    finally:
        await source.close()
    assert [e.user_id for e in entries] == ["u1", "u2", "u3"]
    assert total == 3 and pages == 2
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert dict(seen[1].url.params) == {"board": "global", "limit": "2", "offset": "2"}


@pytest.mark.parametrize(
    ("pages", "status", "error"),
    [
        ({0: {"total": 2, "entries": [row(2, 1), row(1, 2)]}}, 200, SourceError),  # ranks out of order
        ({0: {"total": 2, "entries": [row(1, 1), row(3, 2)]}}, 200, SourceError),  # rank beyond position
        ({0: {"entries": []}}, 200, SourceError),  # no total
        ({0: []}, 200, SourceError),  # not an object
        ({}, 500, SourceUnavailable),
        ({}, 429, SourceUnavailable),
        ({}, 403, SourceError),
    ],
)
async def test_http_source_failures(pages: dict[int, Any], status: int, error: type[Exception]) -> None:
    source = upstream(pages, status)
    try:
        with pytest.raises(error):
            await source.fetch_page("global", 10, None)
    finally:
        await source.close()


async def test_http_source_404_means_no_such_board() -> None:
    source = upstream({}, 404)
    try:
        page = await source.fetch_page("challenge:x", 10, None)
    finally:
        await source.close()
    assert page.entries == [] and page.total == 0


# ---- the change feed ----------------------------------------------------------------------------------


async def test_both_sources_read_the_same_change_feed(seeded: str) -> None:
    # Given some changes after the seed: an improvement, a regrade down, a removal
    conn = await asyncpg.connect(seeded)
    start = json.loads(await conn.fetchval("select leaderboard_changes('global')::text"))["head"]
    await conn.execute(
        "update challenge_results set score = score + 500 where user_id = $1", uuid.UUID(int=20)
    )
    await conn.execute("update challenge_results set score = 1 where user_id = $1", uuid.UUID(int=1))
    await conn.execute("delete from challenge_results where user_id = $1", uuid.UUID(int=24))
    await conn.close()
    direct = PostgresSource(seeded)
    emulator = PostgrestEmulator(seeded)
    rest = supabase(emulator)
    try:
        for board in ("global", "challenge:a", "challenge:b"):
            a = await direct.fetch_changes(board, start, 2, with_total=True)
            b = await rest.fetch_changes(board, start, 2, with_total=True)
            assert a == b, board
            assert len(a.changes) <= 2
        head = await direct.fetch_changes("global", None, 0)
        everything = await direct.fetch_changes("global", start, 1000)
    finally:
        await direct.close()
        await rest.close()
    assert head.changes == [] and head.head == everything.head
    assert [(c.user_id, c.entry is None) for c in everything.changes] == [
        (str(uuid.UUID(int=20)), False), (str(uuid.UUID(int=1)), False), (str(uuid.UUID(int=24)), True),
    ]  # fmt: skip
    first = everything.changes[0].entry
    assert first is not None and first.rank == 0 and first.last_solved_at is not None
    assert first.last_solved_at.endswith("Z") and len(first.last_solved_at) == 27  # microseconds
    # the wire contract: one POST per call, named arguments, p_with_total only when asked
    sent = [json.loads(r.content) for r in emulator.requests]
    assert all(r.url.path == "/rest/v1/rpc/leaderboard_changes" for r in emulator.requests)
    assert sent[0] == {"p_board": "global", "p_after": start, "p_limit": 2, "p_with_total": True}


async def test_a_position_the_feed_no_longer_covers_is_position_lost(seeded: str) -> None:
    conn = await asyncpg.connect(seeded)
    await conn.execute("delete from challenge_results where user_id = $1", uuid.UUID(int=3))
    await conn.execute("select leaderboard_prune_removed('0 seconds')")
    await conn.close()
    emulator = PostgrestEmulator(seeded)
    for source in (PostgresSource(seeded), supabase(emulator)):
        try:
            with pytest.raises(PositionLost, match="LB001"):
                await source.fetch_changes("global", 0, 10)
        finally:
            await source.close()
    # PostgREST reports it as HTTP 400 with the SQLSTATE as the code
    assert emulator.requests and emulator.requests[0].method == "POST"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (html_error(503), SourceUnavailable),
        (read_timeout, SourceUnavailable),
        (postgrest_error(500, "57014", "canceling statement due to statement timeout"), SourceUnavailable),
        (postgrest_error(400, "LB001", "position 3 is not covered by the change feed"), PositionLost),
        (postgrest_error(404, "PGRST202", "Could not find the function public.leaderboard_changes"),
         SourceError),  # the migration is not applied
        (malformed_json, SourceError),
    ],
)  # fmt: skip
async def test_supabase_feed_failures_are_classified(
    seeded: str, fault: Callable[[httpx.Request], httpx.Response], error: type[Exception]
) -> None:
    emulator = PostgrestEmulator(seeded, faults=[fault])
    source = supabase(emulator)
    try:
        with pytest.raises(error):
            await source.fetch_changes("global", 0, 10)
        assert len(emulator.requests) == 1
        assert (await source.fetch_changes("global", 0, 10)).head > 0
    finally:
        await source.close()


def change(**fields: Any) -> dict[str, Any]:
    return {"user_id": "u1", "username": "x", "score": 1, "solved": 1, "last_solved_at": None,
            "change_seq": 5, "removed": False, **fields}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"head": 5, "horizon": 0},
        {"head": 5, "horizon": 0, "changes": {}},
        {"head": -1, "horizon": 0, "changes": []},
        {"head": 5, "horizon": 0, "changes": [change(change_seq=6)]},  # beyond head
        {"head": 9, "horizon": 0, "changes": [change(change_seq=5), change(change_seq=5, user_id="u2")]},
        {"head": 5, "horizon": 0, "changes": [change(removed=None)]},
        {"head": 5, "horizon": 0, "changes": [change(removed=True, user_id="a/b")]},
        {"head": 5, "horizon": 0, "changes": [change(score=-3)]},
        {
            "head": 5000,
            "horizon": 0,
            "changes": [change(change_seq=i, user_id=f"u{i}") for i in range(1, 1002)],
        },
    ],
)
async def test_supabase_feed_replies_are_validated(seeded: str, body: Any) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body, request=request)

    source = supabase(PostgrestEmulator(seeded, faults=[reply]))
    try:
        with pytest.raises(SourceError, match="malformed"):
            await source.fetch_changes("global", 0, 10)
    finally:
        await source.close()


async def test_the_http_source_has_no_change_feed() -> None:
    source = upstream({})
    try:
        assert source.has_feed is False
        with pytest.raises(SourceError, match="no change feed"):
            await source.fetch_changes("global", 0, 10)
    finally:
        await source.close()
