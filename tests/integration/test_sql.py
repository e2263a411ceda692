"""The migration and `leaderboard_page` on a real PostgreSQL 16 (pgserver).

The trigger-maintained tables must always rank exactly like the naive query over raw results, however
the rows arrive (COPY, single inserts, concurrent writers, updates, deletes), and keyset pages must
stitch together into that same ranking.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from testkit.engines import PostgresEngine

T0 = datetime(2026, 11, 1, tzinfo=UTC)
COLUMNS = ["user_id", "username", "challenge_id", "score", "submitted_at"]

NAIVE_GLOBAL = """
with best as (
    select distinct on (user_id, challenge_id) user_id, challenge_id, score, submitted_at
      from challenge_results order by user_id, challenge_id, score desc, submitted_at, id
), totals as (
    select user_id, sum(score) as score, count(*) filter (where score > 0) as solved,
           max(submitted_at) filter (where score > 0) as last_solved_at
      from best group by user_id
)
select rank() over (order by score desc, last_solved_at asc nulls last) as rank,
       user_id, score, solved, last_solved_at
  from totals order by score desc, last_solved_at asc nulls last, user_id
"""

NAIVE_CHALLENGE = """
with best as (
    select distinct on (user_id) user_id, score, case when score > 0 then submitted_at end as at
      from challenge_results where challenge_id = $1 order by user_id, score desc, submitted_at, id
)
select rank() over (order by score desc, at asc nulls last) as rank, user_id, score,
       (score > 0)::int as solved, at as last_solved_at
  from best order by score desc, at asc nulls last, user_id
"""


@pytest.fixture
async def db(postgres: PostgresEngine) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres.uri)
    await conn.execute("truncate challenge_results, challenge_best, leaderboard_totals restart identity")
    yield conn
    await conn.close()


def user(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


async def insert(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    columns = "user_id, username, challenge_id, score, submitted_at"
    await conn.executemany(f"insert into challenge_results ({columns}) values ($1, $2, $3, $4, $5)", rows)


async def all_pages(conn: asyncpg.Connection, board: str, page_size: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    last = None
    while True:
        if last is None:
            page = await conn.fetch("select * from leaderboard_page($1, $2)", board, page_size)
        else:
            page = await conn.fetch(
                "select * from leaderboard_page($1, $2, $3, $4, $5, $6, $7)",
                board,
                page_size,
                last["score"],
                last["last_solved_at"],
                last["user_id"],
                last["rank"],
                last["position"],
            )
        rows.extend(page)
        if len(page) < page_size:
            return rows
        last = page[-1]


def key(rows: list[asyncpg.Record]) -> list[tuple[Any, ...]]:
    return [(r["rank"], r["user_id"], r["score"], r["solved"], r["last_solved_at"]) for r in rows]


async def assert_matches_naive(conn: asyncpg.Connection, page_size: int = 7) -> None:
    expected = await conn.fetch(NAIVE_GLOBAL)
    got = await all_pages(conn, "global", page_size)
    assert key(got) == key(expected)
    if got:
        assert got[0]["total"] == len(expected)
        assert [r["position"] for r in got] == list(range(1, len(got) + 1))
    for (challenge,) in await conn.fetch("select distinct challenge_id from challenge_results"):
        expected_c = await conn.fetch(NAIVE_CHALLENGE, challenge)
        got_c = await all_pages(conn, f"challenge:{challenge}", page_size)
        assert key(got_c) == key(expected_c), challenge


async def test_ranking_rules_on_crafted_data(db: asyncpg.Connection) -> None:
    # Given: ties on score broken by who reached it first, a tie on both (shared rank), several
    # submissions per challenge (best counts, first time reaching it), zero scores, unicode names
    await insert(
        db,
        [
            (user(1), "Ada", "a", 50, T0 + timedelta(minutes=5)),
            (user(1), "Ada", "a", 30, T0 + timedelta(minutes=1)),  # worse, earlier: ignored
            (user(1), "Ada", "b", 50, T0 + timedelta(minutes=9)),
            (user(2), "Bő", "a", 100, T0 + timedelta(minutes=9)),  # 100, reached at 9
            (user(3), "Çelik 🚀", "a", 100, T0 + timedelta(minutes=9)),  # same score, same time: tie
            (user(3), "Çelik 🚀", "a", 100, T0 + timedelta(minutes=20)),  # re-submitting the best: no change
            (user(4), "Dan", "a", 60, T0 + timedelta(minutes=2)),
            (user(4), "Dan", "b", 40, T0 + timedelta(minutes=3)),  # 100, reached at 3: first
            (user(5), "Eve", "a", 0, T0 + timedelta(minutes=1)),  # nothing solved
            (user(6), "Fay", "a", 0, T0 + timedelta(minutes=2)),
            (user(6), "Fay", "b", 0, T0 + timedelta(minutes=3)),
        ],
    )
    rows = await db.fetch("select * from leaderboard_page('global', 100)")
    # Then
    assert [(r["rank"], r["user_id"].int, r["score"], r["solved"]) for r in rows] == [
        (1, 4, 100, 2),  # reached 100 first (minute 3)
        (2, 1, 100, 2),  # reached 100 at minute 9... tied with 2 and 3 on time too
        (2, 2, 100, 1),
        (2, 3, 100, 1),
        (5, 5, 0, 0),
        (5, 6, 0, 0),
    ]
    assert rows[0]["last_solved_at"] == T0 + timedelta(minutes=3)
    assert rows[4]["last_solved_at"] is None
    assert rows[0]["total"] == 6
    assert rows[3]["username"] == "Çelik 🚀"
    challenge = await db.fetch("select * from leaderboard_page('challenge:b', 100)")
    assert [(r["rank"], r["user_id"].int, r["score"], r["solved"]) for r in challenge] == [
        (1, 1, 50, 1),
        (2, 4, 40, 1),
        (3, 6, 0, 0),
    ]
    await assert_matches_naive(db, page_size=2)


async def test_empty_table_and_unknown_challenge(db: asyncpg.Connection) -> None:
    assert await db.fetch("select * from leaderboard_page('global', 10)") == []
    await insert(db, [(user(1), "Ada", "a", 5, T0)])
    assert await db.fetch("select * from leaderboard_page('challenge:nope', 10)") == []


async def test_the_display_name_is_the_latest_one(db: asyncpg.Connection) -> None:
    await insert(db, [(user(1), "old", "a", 5, T0), (user(1), "new", "b", 5, T0 + timedelta(hours=1))])
    row = await db.fetchrow("select * from leaderboard_page('global', 10)")
    assert row["username"] == "new"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("'nope', 10", "unknown board"),
        ("'challenge:{x}', 10", "unknown board"),
        ("'global', 0", "p_limit"),
        ("'global', 10001", "p_limit"),
        ("'global', 10, null, null, null, null, 5", "next page needs"),
    ],
)
async def test_bad_arguments_are_clear_errors(db: asyncpg.Connection, args: str, message: str) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match=message):
        await db.fetch(f"select * from leaderboard_page({args})")


def random_rows(seed: int, n: int, users: int, challenges: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    return [
        (
            user(rng.randint(1, users)),
            f"u{rng.randint(1, 3)}",
            f"c{rng.randint(1, challenges)}",
            rng.choice([0, 0, 10, 20, 25, 50, 100]),
            T0 + timedelta(seconds=rng.randint(0, 40) * 30),  # coarse times: many ties
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", range(6))
async def test_random_data_ranks_exactly_like_the_naive_query(db: asyncpg.Connection, seed: int) -> None:
    rows = random_rows(seed, 1500, users=200, challenges=6)
    # half by COPY (one statement-level trigger run), half one by one
    await db.copy_records_to_table("challenge_results", records=rows[:750], columns=COLUMNS)
    await insert(db, rows[750:])
    await assert_matches_naive(db, page_size=13)


async def test_updates_and_deletes_are_honoured(db: asyncpg.Connection) -> None:
    await db.copy_records_to_table("challenge_results", records=random_rows(42, 600, 50, 4), columns=COLUMNS)
    # a cheater's results are removed, a regrade lowers some scores, a user's submissions move in time
    await db.execute("delete from challenge_results where user_id = $1", user(7))
    await db.execute("update challenge_results set score = score / 2 where challenge_id = 'c2'")
    await db.execute(
        "update challenge_results set submitted_at = submitted_at - interval '1 day' where user_id = $1",
        user(9),
    )
    await db.execute("delete from challenge_results where challenge_id = 'c4' and user_id = $1", user(3))
    assert await db.fetchval("select count(*) from leaderboard_totals where user_id = $1", user(7)) == 0
    await assert_matches_naive(db)


async def test_concurrent_writers_never_leave_a_stale_total(
    db: asyncpg.Connection, postgres: PostgresEngine
) -> None:
    # Given 6 connections inserting results for the same few users at the same time
    rows = random_rows(7, 1200, users=12, challenges=5)
    connections = [await asyncpg.connect(postgres.uri) for _ in range(6)]
    try:

        async def writer(conn: asyncpg.Connection, part: list[tuple[Any, ...]]) -> None:
            for start in range(0, len(part), 3):
                async with conn.transaction():  # small multi-row transactions interleave the most
                    await insert(conn, part[start : start + 3])

        await asyncio.gather(*(writer(c, rows[i::6]) for i, c in enumerate(connections)))
    finally:
        for conn in connections:
            await conn.close()
    # Then the maintained totals equal the naive ranking over everything that was committed
    await assert_matches_naive(db)


async def test_keyset_pages_use_the_ranking_index(db: asyncpg.Connection) -> None:
    await db.copy_records_to_table(
        "challenge_results", records=random_rows(3, 3000, 1000, 5), columns=COLUMNS
    )
    await db.execute("analyze")
    plan = "\n".join(
        r[0]
        for r in await db.fetch(
            "explain select * from leaderboard_totals t "
            "where (-t.score, t.last_solved_at, t.user_id) > (-50::bigint, now(), $1::uuid) "
            "order by -t.score, t.last_solved_at, t.user_id limit 100",
            user(1),
        )
    )
    assert "leaderboard_totals_rank_idx" in plan


async def test_a_role_without_rls_bypass_still_reads_the_whole_board(db: asyncpg.Connection) -> None:
    # Given results, and a database role that may call the function but is subject to row level
    # security (the tables have RLS on and no policies, as the migration leaves them)
    await insert(db, [(user(i), f"p{i}", "a", 10 * i, T0) for i in range(1, 6)])
    await db.execute(
        "do $$ begin if not exists (select 1 from pg_roles where rolname = 'board_reader') then "
        "create role board_reader nologin; end if; end $$"
    )
    await db.execute(
        "grant execute on function public.leaderboard_page(text, integer, bigint, timestamptz, "
        "uuid, bigint, bigint) to board_reader"
    )
    await db.execute("grant select on leaderboard_totals to board_reader")
    try:
        async with db.transaction():
            await db.execute("set local role board_reader")
            # Then the function (security definer) reads every row, not an empty board
            rows = await db.fetch("select * from leaderboard_page('global', 100)")
            direct = await db.fetchval("select count(*) from leaderboard_totals")
    finally:
        await db.execute("revoke select on leaderboard_totals from board_reader")
        await db.execute(
            "revoke execute on function public.leaderboard_page(text, integer, bigint, "
            "timestamptz, uuid, bigint, bigint) from board_reader"
        )
    assert len(rows) == 5
    assert direct == 0  # the role itself sees nothing: RLS is on
