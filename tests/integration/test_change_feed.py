"""The change feed migration on a real PostgreSQL 16: positions, tombstones, LB001, pruning, grants, the
upgrade of an install that already holds data, and concurrent writers.

Boards are checked against an independent ranking (tests/naive.py: plain SQL over `challenge_results`,
not our functions), computed in the same snapshot as the feed answer it is compared with.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from common.models import Change
from common.sources.base import change_page_from_reply
from testkit.engines import PostgresEngine, migrations
from tests import naive

T0 = datetime(2026, 11, 1, tzinfo=UTC)
COLUMNS = ["user_id", "username", "challenge_id", "score", "submitted_at"]

FEED = "select leaderboard_changes($1, $2, $3)::text"


def user(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


@pytest.fixture
async def db(postgres: PostgresEngine) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres.uri)
    await conn.execute(
        "truncate challenge_results, challenge_best, leaderboard_totals, leaderboard_removed, "
        "leaderboard_feed_horizon restart identity"
    )
    yield conn
    await conn.close()


async def insert(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        "insert into challenge_results (user_id, username, challenge_id, score, submitted_at) "
        "values ($1, $2, $3, $4, $5)",
        rows,
    )


async def feed(conn: asyncpg.Connection, board: str, after: int | None, limit: int = 1000) -> Any:
    return json.loads(await conn.fetchval(FEED, board, after, limit))


def state(
    changes: list[Change], into: dict[str, tuple[Any, ...]] | None = None
) -> dict[str, tuple[Any, ...]]:
    """Apply feed changes to a board held as {user_id: (username, score, solved, last_solved_at)}."""
    board = dict(into or {})
    for change in changes:
        if change.entry is None:
            board.pop(change.user_id, None)
        else:
            e = change.entry
            board[change.user_id] = (e.username, e.score, e.solved, e.last_solved_at)
    return board


def naive_state(rows: list[asyncpg.Record]) -> dict[str, tuple[Any, ...]]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"

    return {r["user_id"]: (r["username"], r["score"], r["solved"], iso(r["at"])) for r in rows}


async def replay(
    conn: asyncpg.Connection, board: str, after: int, limit: int = 7
) -> tuple[list[Change], int]:
    """Every change after `after`, in pages of `limit`, as the worker reads them."""
    changes: list[Change] = []
    while True:
        page = change_page_from_reply(await feed(conn, board, after, limit))
        changes.extend(page.changes)
        if len(page.changes) < limit:
            return changes, page.head
        after = page.changes[-1].seq


async def test_the_feed_follows_inserts_updates_and_deletes(db: asyncpg.Connection) -> None:
    # Given three players
    await insert(db, [(user(i), f"p{i}", "a", 10 * i, T0 + timedelta(minutes=i)) for i in (1, 2, 3)])
    start = await feed(db, "global", None)
    assert start["changes"] == [] and start["horizon"] == 0
    # When one improves, one is regraded down, one is removed, and a new one arrives
    await insert(db, [(user(1), "p1", "b", 100, T0 + timedelta(hours=1))])
    await db.execute("update challenge_results set score = 5 where user_id = $1", user(2))
    await db.execute("delete from challenge_results where user_id = $1", user(3))
    await insert(db, [(user(4), "p4", "a", 7, T0 + timedelta(hours=2))])
    # Then the feed after the start has exactly those four changes, each player once, in order
    reply = await feed(db, "global", start["head"])
    changes = change_page_from_reply(reply).changes
    assert [(c.user_id, c.entry is None) for c in changes] == [
        (str(user(1)), False),
        (str(user(2)), False),
        (str(user(3)), True),
        (str(user(4)), False),
    ]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert reply["head"] == changes[-1].seq
    assert changes[0].entry is not None and changes[0].entry.score == 110
    assert changes[1].entry is not None and changes[1].entry.score == 5  # a decrease is a change too
    # And a removal comes with no entry fields at all
    assert set(reply["changes"][2]) == {"user_id", "change_seq", "removed"}
    # And nothing is left after head
    assert (await feed(db, "global", reply["head"]))["changes"] == []


async def test_rows_that_do_not_change_keep_their_position(db: asyncpg.Connection) -> None:
    await insert(db, [(user(1), "p1", "a", 50, T0), (user(2), "p2", "a", 40, T0)])
    before = await db.fetch("select user_id, change_seq from leaderboard_totals order by user_id")
    head = (await feed(db, "global", None))["head"]
    # When a player re-submits a worse result (their best and total stay the same)
    await insert(db, [(user(1), "p1", "a", 10, T0 + timedelta(hours=1))])
    # Then no row got a new position and the feed has nothing new
    assert await db.fetch("select user_id, change_seq from leaderboard_totals order by user_id") == before
    assert (await feed(db, "global", head))["changes"] == []


async def test_a_new_display_name_reaches_the_challenge_boards(db: asyncpg.Connection) -> None:
    await insert(db, [(user(1), "old", "a", 50, T0), (user(1), "old", "b", 5, T0)])
    heads = {b: (await feed(db, b, None))["head"] for b in ("challenge:a", "challenge:b")}
    # When the player's latest submission carries a new name (on challenge b only)
    await insert(db, [(user(1), "new", "b", 1, T0 + timedelta(hours=1))])
    # Then challenge a, where nothing else changed, reports the player again, with the new name
    for board in ("challenge:a", "challenge:b"):
        changes = change_page_from_reply(await feed(db, board, heads[board])).changes
        assert [(c.user_id, c.entry and c.entry.username) for c in changes] == [(str(user(1)), "new")]


async def test_a_player_who_comes_back_loses_the_tombstone(db: asyncpg.Connection) -> None:
    await insert(db, [(user(1), "p1", "a", 50, T0)])
    await db.execute("delete from challenge_results")
    # global and challenge:a (the result's week and month boards have their own tombstones)
    assert await db.fetchval("select count(*) from leaderboard_removed where board !~ '^(week|month):'") == 2
    head = (await feed(db, "global", None))["head"]
    await insert(db, [(user(1), "p1", "a", 20, T0)])
    assert await db.fetchval("select count(*) from leaderboard_removed") == 0
    changes = change_page_from_reply(await feed(db, "global", head)).changes
    assert [(c.user_id, c.entry is not None) for c in changes] == [(str(user(1)), True)]


async def test_positions_the_feed_no_longer_covers_are_refused_with_lb001(db: asyncpg.Connection) -> None:
    await insert(db, [(user(i), f"p{i}", "a", i, T0) for i in range(1, 5)])
    early = (await feed(db, "global", None))["head"]
    await db.execute("delete from challenge_results where user_id = $1", user(2))
    head = (await feed(db, "global", None))["head"]
    # When the tombstones are pruned (global and challenge:a, and those of T0's week and month)
    assert await db.fetchval("select leaderboard_prune_removed('0 seconds')") == 4
    # Then the horizon moved up to the pruned removal, a reader behind it must rebuild
    after = await feed(db, "global", None)
    assert after["horizon"] == head and after["head"] == head
    with pytest.raises(asyncpg.PostgresError, match="not covered by the change feed") as raised:
        await feed(db, "global", early)
    assert raised.value.sqlstate == "LB001"
    # and a reader at the horizon is fine; one ahead of head (another database) is refused too
    assert (await feed(db, "global", head))["changes"] == []
    with pytest.raises(asyncpg.PostgresError) as ahead:
        await feed(db, "global", head + 1000)
    assert ahead.value.sqlstate == "LB001"
    # and the other boards' horizons are their own
    assert (await feed(db, "challenge:zzz", None))["horizon"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [("'nope', 0, 10", "unknown board"), ("'global', 0, 1001", "p_limit"), ("'global', 0, -1", "p_limit")],
)
async def test_bad_feed_arguments_are_clear_errors(db: asyncpg.Connection, args: str, message: str) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match=message):
        await db.fetchval(f"select leaderboard_changes({args})")


async def test_the_feed_uses_its_indexes(db: asyncpg.Connection) -> None:
    rows = [(user(i), f"p{i}", f"c{i % 5}", i % 97, T0 + timedelta(seconds=i)) for i in range(1, 3001)]
    await db.copy_records_to_table("challenge_results", records=rows, columns=COLUMNS)
    await db.execute("analyze")
    for sql, index in [
        ("select * from leaderboard_totals where change_seq > 2900 order by change_seq limit 100",
         "leaderboard_totals_change_idx"),
        ("select * from challenge_best where challenge_id = 'c1' and change_seq > 2900 "
         "order by change_seq limit 100", "challenge_best_change_idx"),
    ]:  # fmt: skip
        plan = "\n".join(r[0] for r in await db.fetch("explain " + sql))
        assert index in plan, plan


async def test_replaying_the_feed_from_any_position_gives_the_naive_board(db: asyncpg.Connection) -> None:
    rng = random.Random(5)
    # per round: board -> (its head, the naive board) read in one snapshot
    positions: list[dict[str, tuple[int, dict[str, tuple[Any, ...]]]]] = []
    boards = ["global", "challenge:c1", "challenge:c2"]
    for round_ in range(6):
        # random inserts, regrades (up and down), deletions; coarse times make many ties
        rows = [
            (user(rng.randint(1, 60)), f"u{rng.randint(1, 3)}", f"c{rng.randint(1, 3)}",
             rng.choice([0, 10, 20, 50]), T0 + timedelta(seconds=rng.randint(0, 20)))
            for _ in range(80)
        ]  # fmt: skip
        await db.copy_records_to_table("challenge_results", records=rows, columns=COLUMNS)
        await db.execute("update challenge_results set score = score / 2 where id % 11 = $1", round_)
        await db.execute("delete from challenge_results where id % 13 = $1", round_)
        async with db.transaction(isolation="repeatable_read"):
            snapshot: dict[str, tuple[int, dict[str, tuple[Any, ...]]]] = {}
            for board in boards:
                head = (await feed(db, board, None))["head"]
                query, args = naive.for_board(board)
                snapshot[board] = (head, naive_state(await db.fetch(query, *args)))
        positions.append(snapshot)
    # Then from the start, and from every intermediate position, feed + earlier state = the naive board
    last = positions[-1]
    for board in boards:
        from_zero, _ = await replay(db, board, 0)
        assert state(from_zero) == last[board][1], board
        for earlier in positions[:-1]:
            head, before = earlier[board]
            changes, _ = await replay(db, board, head)
            assert state(changes, before) == last[board][1], (board, head)


async def test_under_concurrent_writers_every_feed_answer_is_one_committed_state(
    db: asyncpg.Connection, postgres: PostgresEngine
) -> None:
    # Given four connections inserting, regrading and deleting results in small transactions
    await insert(db, [(user(i), f"p{i}", "c1", 10, T0) for i in range(1, 30)])
    stop = asyncio.Event()

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        conn = await asyncpg.connect(postgres.uri)
        try:
            while not stop.is_set():
                async with conn.transaction():
                    op = rng.random()
                    who = user(rng.randint(1, 40))
                    if op < 0.6:
                        at = T0 + timedelta(microseconds=rng.randint(0, 50))  # sub-millisecond ties
                        score = rng.choice([0, 5, 10, 30])
                        await insert(
                            conn, [(who, f"n{rng.randint(1, 3)}", f"c{rng.randint(1, 3)}", score, at)]
                        )
                    elif op < 0.8:
                        await conn.execute(
                            "update challenge_results set score = score / 2 where user_id = $1", who
                        )
                    else:
                        await conn.execute("delete from challenge_results where user_id = $1", who)
                    if rng.random() < 0.5:  # a second statement in the same transaction
                        await insert(conn, [(user(rng.randint(1, 40)), "m", "c2", 20, T0)])
        finally:
            await conn.close()

    writers = [asyncio.ensure_future(writer(s)) for s in range(4)]
    # When a reader follows the feed while they write
    board: dict[str, tuple[Any, ...]] = {}
    position = 0
    checks = 0
    try:
        for _ in range(25):
            await asyncio.sleep(0.02)
            async with db.transaction(isolation="repeatable_read"):
                changes: list[Change] = []
                while True:  # one snapshot for every page and the independent ranking
                    page = change_page_from_reply(await feed(db, "global", position, 5))
                    changes.extend(page.changes)
                    if len(page.changes) < 5:
                        break
                    position = page.changes[-1].seq
                position = page.head
                expected = naive_state(await db.fetch(naive.GLOBAL))
            board = state(changes, board)
            # Then the board built from the feed is exactly the ranking of that committed state
            assert board == expected
            checks += 1
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert checks == 25
    assert position > 0


async def test_an_existing_install_with_data_upgrades_in_place(postgres: PostgresEngine) -> None:
    # Given a database on the first migration alone, with results already in it
    admin = await asyncpg.connect(postgres.uri)
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'create database "{name}"')
    conn = await asyncpg.connect(postgres.uri.replace("/postgres?", f"/{name}?"))
    try:
        await conn.execute("set client_min_messages = warning")
        first, second, *_ = migrations()  # the change feed alone, not the period boards after it
        await conn.execute(first.read_text())
        await insert(conn, [(user(i), f"p{i}", "a", 10 * i, T0) for i in range(1, 6)])
        before = await conn.fetch("select * from leaderboard_page('global', 10)")
        # When the change feed migration is applied (twice: it is idempotent)
        await conn.execute(second.read_text())
        await conn.execute(second.read_text())
        # Then the board is unchanged, existing rows sit at position 0, and new changes are numbered
        assert await conn.fetch("select * from leaderboard_page('global', 10)") == before
        assert await conn.fetchval("select count(*) from leaderboard_totals where change_seq = 0") == 5
        assert (await feed(conn, "global", None))["head"] == 0
        await insert(conn, [(user(1), "p1", "b", 1, T0)])
        changes = change_page_from_reply(await feed(conn, "global", 0)).changes
        assert [c.user_id for c in changes] == [str(user(1))]
        # and replaying from 0 over the pages read before gives today's board
        old = {str(r["user_id"]): (r["username"], r["score"], r["solved"], None) for r in before}
        assert state(changes, old)[str(user(1))][1] == 11
    finally:
        await conn.close()
        await admin.execute(f'drop database "{name}"')
        await admin.close()


async def test_only_privileged_roles_may_read_the_feed(db: asyncpg.Connection) -> None:
    await insert(db, [(user(1), "p1", "a", 5, T0)])
    for role in ("anon", "authenticated", "service_role"):
        await db.execute(
            f"do $$ begin if not exists (select 1 from pg_roles where rolname = '{role}') then "
            f"create role {role} nologin; end if; end $$"
        )
    # the grants are made for roles that exist when the migration runs (as on Supabase)
    await db.execute("set client_min_messages = warning")
    for migration in migrations()[1:]:  # each re-grants what it (re)defines; later ones keep the grants
        await db.execute(migration.read_text())
    for role, allowed in (("anon", False), ("authenticated", False), ("service_role", True)):
        async with db.transaction():
            await db.execute(f"set local role {role}")
            if allowed:
                assert (await feed(db, "global", 0))["changes"] != []
            else:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await feed(db, "global", 0)
