"""Week, month and season boards on a real PostgreSQL 16 (migration 20261201000100_period_boards.sql).

The trigger-maintained period totals must rank exactly like an independent GROUP BY over the raw
results of the period, however the rows arrive, and their change feed must replay into the same board.
The test connection runs in a time zone far from UTC: every boundary must still be UTC.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from testkit.engines import MIGRATIONS, PostgresEngine
from tests.integration.test_sql import COLUMNS, all_pages, insert, key, user

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # 2026-W49 starts
PERIOD_TABLES = (
    "challenge_results, challenge_best, leaderboard_totals, leaderboard_period_best, "
    "leaderboard_period_totals, leaderboard_removed, leaderboard_seasons, leaderboard_period_retention"
)

# Independent of the migration: plain GROUP BYs over the results inside [$1, $2).
NAIVE_PERIOD = """
with r as (
    select * from challenge_results where submitted_at >= $1 and submitted_at < $2
), top as (
    select user_id, challenge_id, max(score) as best from r group by user_id, challenge_id
), best as (
    select t.user_id, t.challenge_id, t.best, min(r.submitted_at) as reached
      from top t join r on r.user_id = t.user_id and r.challenge_id = t.challenge_id and r.score = t.best
     group by t.user_id, t.challenge_id, t.best
), totals as (
    select user_id, sum(best) as score, count(*) filter (where best > 0) as solved,
           max(reached) filter (where best > 0) as last_solved_at
      from best group by user_id
), names as (
    select user_id, username,
           row_number() over (partition by user_id order by submitted_at desc, id desc) as n
      from r
)
select rank() over (order by score desc, last_solved_at asc nulls last) as rank,
       totals.user_id, names.username, score, solved, last_solved_at
  from totals join names on names.user_id = totals.user_id and names.n = 1
 order by score desc, last_solved_at asc nulls last, totals.user_id
"""


@pytest.fixture
async def db(postgres: PostgresEngine) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres.uri)
    await conn.execute("set timezone = 'Pacific/Kiritimati'")  # UTC+14: a wrong boundary shows
    await conn.execute(f"truncate {PERIOD_TABLES} restart identity")
    yield conn
    await conn.execute(f"truncate {PERIOD_TABLES} restart identity")
    await conn.close()


def named_key(rows: list[asyncpg.Record]) -> list[tuple[Any, ...]]:
    return [(*k, r["username"]) for k, r in zip(key(rows), rows, strict=True)]


async def assert_period_matches_naive(
    conn: asyncpg.Connection, board: str, start: datetime, end: datetime, page_size: int = 7
) -> int:
    expected = await conn.fetch(NAIVE_PERIOD, start, end)
    got = await all_pages(conn, board, page_size)
    assert named_key(got) == named_key(expected), board
    if got:
        assert got[0]["total"] == len(expected)
        assert [r["position"] for r in got] == list(range(1, len(got) + 1))
    return len(got)


async def board_rows(conn: asyncpg.Connection, board: str) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        "select * from leaderboard_period_totals where period = $1 order by user_id", board
    )
    return [tuple(r) for r in rows]


async def feed(conn: asyncpg.Connection, board: str, after: int, limit: int = 1000) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        await conn.fetchval("select leaderboard_changes($1, $2, $3)::text", board, after, limit)
    )
    return result


async def test_a_result_at_the_last_instant_of_sunday_and_one_at_monday_midnight(
    db: asyncpg.Connection,
) -> None:
    # Given: one result in the last millisecond of W49 (Sunday), one at the first instant of W50
    sunday = datetime(2026, 12, 6, 23, 59, 59, 999_000, tzinfo=UTC)
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    await insert(db, [(user(1), "Ada", "a", 10, sunday), (user(2), "Bo", "a", 20, monday)])
    # Then each counts in its own week, and both in December
    w49 = await db.fetch("select * from leaderboard_page('week:2026-W49', 10)")
    w50 = await db.fetch("select * from leaderboard_page('week:2026-W50', 10)")
    dec = await db.fetch("select * from leaderboard_page('month:2026-12', 10)")
    assert [(r["user_id"], r["score"], r["last_solved_at"]) for r in w49] == [(user(1), 10, sunday)]
    assert [(r["user_id"], r["score"]) for r in w50] == [(user(2), 20)]
    assert [(r["rank"], r["user_id"]) for r in dec] == [(1, user(2)), (2, user(1))]
    assert dec[0]["total"] == 2


async def test_the_iso_year_and_the_month_turn_independently(db: asyncpg.Connection) -> None:
    # 2026-12-31 and 2027-01-01 are both in ISO week 2026-W53, but in different months
    await insert(
        db,
        [
            (user(1), "Ada", "a", 10, datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
            (user(2), "Bo", "a", 20, datetime(2027, 1, 1, tzinfo=UTC)),
            (user(3), "Cy", "a", 30, datetime(2027, 1, 4, tzinfo=UTC)),  # 2027-W01
        ],
    )
    w53 = await db.fetch("select user_id from leaderboard_page('week:2026-W53', 10)")
    assert [r["user_id"] for r in w53] == [user(2), user(1)]
    assert [r["user_id"] for r in await db.fetch("select * from leaderboard_page('month:2026-12', 10)")] == [
        user(1)
    ]
    jan = await db.fetch("select user_id from leaderboard_page('month:2027-01', 10)")
    assert [r["user_id"] for r in jan] == [user(3), user(2)]
    w01 = await db.fetch("select user_id from leaderboard_page('week:2027-W01', 10)")
    assert [r["user_id"] for r in w01] == [user(3)]
    # a week that does not exist, a malformed board
    assert await db.fetch("select * from leaderboard_page('week:2027-W53', 10)") == []
    with pytest.raises(asyncpg.InvalidParameterValueError, match="unknown board"):
        await db.fetch("select * from leaderboard_page('week:{x}', 10)")


def random_rows(seed: int, n: int, users: int, challenges: int) -> list[tuple[Any, ...]]:
    """Three weeks around two month ends, coarse times (many ties), some exactly on the boundaries."""
    rng = random.Random(seed)
    start = MONDAY - timedelta(days=7)
    edges = [MONDAY, MONDAY + timedelta(days=1), MONDAY + timedelta(days=7)]  # W49, December, W50
    rows = []
    for _ in range(n):
        when = start + timedelta(hours=rng.randint(0, 21 * 4) * 6)
        if rng.random() < 0.05:
            when = rng.choice(edges) - timedelta(microseconds=rng.choice([0, 1]))
        rows.append(
            (
                user(rng.randint(1, users)),
                f"u{rng.randint(1, 3)}",
                f"c{rng.randint(1, challenges)}",
                rng.choice([0, 0, 10, 20, 25, 50, 100]),
                when,
            )
        )
    return rows


PERIODS = [
    ("week:2026-W48", MONDAY - timedelta(days=7), MONDAY),
    ("week:2026-W49", MONDAY, MONDAY + timedelta(days=7)),
    ("week:2026-W50", MONDAY + timedelta(days=7), MONDAY + timedelta(days=14)),
    ("month:2026-11", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ("month:2026-12", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize("seed", range(3))
async def test_random_data_ranks_exactly_like_a_group_by_over_the_period(
    db: asyncpg.Connection, seed: int
) -> None:
    rows = random_rows(seed, 1200, users=150, challenges=5)
    await db.execute(
        "insert into leaderboard_seasons (id, starts_at, ends_at) values ('s1', $1, $2)",
        MONDAY + timedelta(hours=30),
        MONDAY + timedelta(days=9, hours=6),
    )
    # half by COPY (one trigger run for many rows), half one by one
    await db.copy_records_to_table("challenge_results", records=rows[:600], columns=COLUMNS)
    await insert(db, rows[600:])
    sizes = [await assert_period_matches_naive(db, board, start, end) for board, start, end in PERIODS]
    assert all(sizes)
    season = (MONDAY + timedelta(hours=30), MONDAY + timedelta(days=9, hours=6))
    assert await assert_period_matches_naive(db, "season:s1", *season)


async def test_updates_and_deletes_are_reflected(db: asyncpg.Connection) -> None:
    await db.copy_records_to_table("challenge_results", records=random_rows(9, 800, 60, 4), columns=COLUMNS)
    # a cheater's results go, a regrade halves a challenge, one player's results move a day later
    # (some of them across the week and month boundaries)
    await db.execute("delete from challenge_results where user_id = $1", user(7))
    await db.execute("update challenge_results set score = score / 2 where challenge_id = 'c2'")
    await db.execute(
        "update challenge_results set submitted_at = submitted_at + interval '1 day' where user_id = $1",
        user(9),
    )
    await db.execute("update challenge_results set username = 'renamed' where user_id = $1", user(11))
    for board, start, end in PERIODS:
        await assert_period_matches_naive(db, board, start, end)
    assert (
        await db.fetchval("select count(*) from leaderboard_period_totals where user_id = $1", user(7)) == 0
    )


async def test_a_past_period_is_unchanged_by_new_results(db: asyncpg.Connection) -> None:
    await insert(db, [(user(i), f"p{i}", "a", 10 * i, MONDAY - timedelta(days=2)) for i in range(1, 6)])
    before = await board_rows(db, "week:2026-W48")
    head = (await feed(db, "week:2026-W48", 0))["head"]
    # When the same players submit this week, better scores and new names
    await insert(db, [(user(i), f"new{i}", "a", 100 * i, MONDAY + timedelta(hours=i)) for i in range(1, 6)])
    await insert(db, [(user(9), "late", "b", 50, MONDAY + timedelta(days=1))])
    # Then last week's rows (names, scores, change positions) are exactly as they were
    assert await board_rows(db, "week:2026-W48") == before
    assert (await feed(db, "week:2026-W48", head))["changes"] == []
    page = await db.fetch("select * from leaderboard_page('week:2026-W48', 10)")
    assert [r["username"] for r in page] == ["p5", "p4", "p3", "p2", "p1"]
    assert [r["username"] for r in await db.fetch("select * from leaderboard_page('week:2026-W49', 1)")] == [
        "new5"
    ]


async def test_change_positions_move_only_when_a_row_changes(db: asyncpg.Connection) -> None:
    board = "week:2026-W49"
    at = MONDAY + timedelta(days=1)
    await insert(db, [(user(1), "Ada", "a", 50, at), (user(2), "Bo", "a", 40, at)])
    first = await feed(db, board, 0)
    assert first["horizon"] == 0
    # one statement stamps both rows; their order among themselves is the sequence's
    assert sorted((c["user_id"], c["score"], c["removed"]) for c in first["changes"]) == [
        (str(user(1)), 50, False),
        (str(user(2)), 40, False),
    ]
    assert first["head"] == max(c["change_seq"] for c in first["changes"])
    # as leaderboard_changes writes every timestamp: ISO-8601 with the session's offset
    assert datetime.fromisoformat(first["changes"][0]["last_solved_at"]) == at
    head = first["head"]
    # a worse score, the same name: nothing changes, no position moves
    await insert(db, [(user(1), "Ada", "a", 10, at + timedelta(hours=1))])
    assert (await feed(db, board, head)) == {"head": head, "horizon": 0, "changes": []}
    # a better score: one change after the head
    await insert(db, [(user(2), "Bo", "a", 60, at + timedelta(hours=2))])
    second = await feed(db, board, head)
    assert [(c["user_id"], c["score"], c["solved"]) for c in second["changes"]] == [(str(user(2)), 60, 1)]
    assert second["head"] == second["changes"][0]["change_seq"] > head
    # a total that disappears leaves a tombstone; it goes when the total comes back
    await db.execute("delete from challenge_results where user_id = $1", user(1))
    gone = await feed(db, board, second["head"])
    assert [(c["user_id"], c["removed"], c.get("score")) for c in gone["changes"]] == [
        (str(user(1)), True, None)
    ]
    assert await db.fetchval("select count(*) from leaderboard_removed where board = $1", board) == 1
    await insert(db, [(user(1), "Ada", "b", 5, at)])
    back = await feed(db, board, gone["head"])
    assert [(c["user_id"], c["removed"], c["score"]) for c in back["changes"]] == [(str(user(1)), False, 5)]
    assert await db.fetchval("select count(*) from leaderboard_removed where board = $1", board) == 0
    # paging the feed: p_limit rows in change_seq order, the head stays the board's head
    part = await feed(db, board, 0, limit=1)
    assert len(part["changes"]) == 1 and part["head"] == back["head"]


async def test_the_feed_rejects_bad_arguments_and_unknown_boards(db: asyncpg.Connection) -> None:
    for args, message in [
        ("'week:2026-W49', 0, -1", "p_limit"),
        ("'week:2026-W49', 0, 1001", "p_limit"),
        ("'global', 0, 10", "not a period board"),
    ]:
        with pytest.raises(asyncpg.InvalidParameterValueError, match=message):
            await db.fetchval(f"select _leaderboard_period_changes({args})")
    # a truncated history: the stored position is above the head
    await insert(db, [(user(1), "Ada", "a", 5, MONDAY)])
    head = (await feed(db, "week:2026-W49", 0))["head"]
    await db.execute("truncate challenge_results")
    assert await db.fetch("select * from leaderboard_page('week:2026-W49', 10)") == []
    with pytest.raises(asyncpg.PostgresError, match="rebuild") as caught:
        await feed(db, "week:2026-W49", head)
    assert caught.value.sqlstate == "LB001"
    assert await feed(db, "season:nope", 0) == {"head": 0, "horizon": 0, "changes": []}
    with pytest.raises(asyncpg.PostgresError, match="no such board") as caught:
        await feed(db, "season:nope", 5)
    assert caught.value.sqlstate == "LB001"
    # leaderboard_changes hands only well-formed period names to the period feed
    with pytest.raises(asyncpg.InvalidParameterValueError, match="unknown board"):
        await feed(db, "week:", 0)


async def test_period_feeds_share_the_change_feeds_horizon_and_total(db: asyncpg.Connection) -> None:
    # Given: a week with two players, then one of them leaves (a tombstone)
    board = "week:2026-W49"
    await insert(db, [(user(1), "Ada", "a", 50, MONDAY), (user(2), "Bo", "a", 40, MONDAY)])
    start = await feed(db, board, 0)
    await db.execute("delete from challenge_results where user_id = $1", user(2))
    # When: leaderboard_prune_removed prunes every tombstone (as it does any board's)
    assert await db.fetchval("select leaderboard_prune_removed('0 seconds')") >= 1
    # Then: the week's horizon moved up, a position below it must rebuild, and one at it reads on
    horizon = json.loads(await db.fetchval("select leaderboard_changes($1)::text", board))
    assert horizon["horizon"] > start["head"] and horizon["head"] == horizon["horizon"]
    with pytest.raises(asyncpg.PostgresError, match="rebuild") as caught:
        await feed(db, board, start["head"])
    assert caught.value.sqlstate == "LB001"
    assert (await feed(db, board, horizon["horizon"]))["changes"] == []
    # p_with_total counts the board's players
    counted = json.loads(await db.fetchval("select leaderboard_changes($1, null, 0, true)::text", board))
    assert counted["total"] == 1 and counted["changes"] == []
    with pytest.raises(asyncpg.PostgresError, match="rebuild") as caught:
        await feed(db, "season:nope", 5)
    assert caught.value.sqlstate == "LB001"


async def test_seasons_are_built_kept_moved_and_removed(db: asyncpg.Connection) -> None:
    start, end = MONDAY + timedelta(days=2), MONDAY + timedelta(days=40)
    await insert(
        db,
        [
            (user(1), "Ada", "a", 30, start - timedelta(microseconds=1)),  # just before the season
            (user(1), "Ada", "a", 20, start),
            (user(2), "Bo", "a", 25, start + timedelta(days=3)),
        ],
    )
    # An unknown season is an empty board, and the period function says it is unknown
    assert await db.fetch("select * from leaderboard_page('season:winter', 10)") == []
    info = json.loads(await db.fetchval("select leaderboard_board_period('season:winter')"))
    assert info == {"board": "season:winter", "known": False, "starts_at": None, "ends_at": None}
    # When the season is created over existing results, it is built from them
    await db.execute(
        "insert into leaderboard_seasons (id, title, starts_at, ends_at) "
        "values ('winter', 'Winter cup', $1, $2)",
        start,
        end,
    )
    await assert_period_matches_naive(db, "season:winter", start, end)
    info = json.loads(await db.fetchval("select leaderboard_board_period('season:winter')"))
    assert info["known"] and info["starts_at"] == "2026-12-02T00:00:00.000000Z"
    # and kept by the triggers as results arrive (outside the range: ignored)
    await insert(db, [(user(3), "Cy", "b", 90, end - timedelta(days=1)), (user(4), "Di", "b", 99, end)])
    assert await assert_period_matches_naive(db, "season:winter", start, end) == 3
    head = (await feed(db, "season:winter", 0))["head"]
    # Moving the range rebuilds it; players who fall out leave tombstones
    new_start = start + timedelta(days=1)
    await db.execute("update leaderboard_seasons set starts_at = $1 where id = 'winter'", new_start)
    await assert_period_matches_naive(db, "season:winter", new_start, end)
    changes = (await feed(db, "season:winter", head))["changes"]
    assert [(c["user_id"], c["removed"]) for c in changes] == [(str(user(1)), True)]
    # Deleting the season removes its board: positions on it are too old, a rebuild finds nothing
    await db.execute("delete from leaderboard_seasons where id = 'winter'")
    assert await db.fetch("select * from leaderboard_page('season:winter', 10)") == []
    with pytest.raises(asyncpg.PostgresError, match="rebuild"):
        await feed(db, "season:winter", head)
    assert (
        await db.fetchval("select count(*) from leaderboard_period_best where period = 'season:winter'") == 0
    )
    assert await db.fetchval("select count(*) from leaderboard_removed where board = 'season:winter'") == 0


async def test_pruning_keeps_the_retention_and_forgets_older_periods(db: asyncpg.Connection) -> None:
    now = await db.fetchval("select now()")
    old, recent = now - timedelta(weeks=20), now - timedelta(weeks=5)
    await insert(db, [(user(1), "Ada", "a", 10, old), (user(1), "Ada", "a", 10, recent)])
    old_week = await db.fetchval(
        "select period from _leaderboard_periods_at($1) where period like 'week:%'", old
    )
    recent_week = await db.fetchval(
        "select period from _leaderboard_periods_at($1) where period like 'week:%'", recent
    )
    assert await db.fetch("select * from leaderboard_page($1, 10)", old_week)
    result = json.loads(await db.fetchval("select leaderboard_prune_periods()"))
    assert result["weeks_pruned"] == 1
    # Then the old week is gone and stays an unknown board, even if a result dated in it arrives
    assert await db.fetch("select * from leaderboard_page($1, 10)", old_week) == []
    await insert(db, [(user(2), "Bo", "a", 50, old)])
    assert (
        await db.fetchval("select count(*) from leaderboard_period_totals where period = $1", old_week) == 0
    )
    assert not json.loads(await db.fetchval("select leaderboard_board_period($1)", old_week))["known"]
    # the last 12 weeks and 12 months stay
    assert await db.fetch("select * from leaderboard_page($1, 10)", recent_week)
    assert (
        await db.fetchval("select count(*) from leaderboard_period_totals where period like 'month:%'") >= 1
    )
    # a shorter retention prunes more; a bad argument is a clear error
    json.loads(await db.fetchval("select leaderboard_prune_periods(2, 0)"))
    assert await db.fetch("select * from leaderboard_page($1, 10)", recent_week) == []
    with pytest.raises(asyncpg.InvalidParameterValueError, match="p_keep_weeks"):
        await db.fetchval("select leaderboard_prune_periods(-1, 12)")


async def test_a_week_page_reads_the_period_index(db: asyncpg.Connection) -> None:
    await db.copy_records_to_table("challenge_results", records=random_rows(3, 3000, 900, 5), columns=COLUMNS)
    await db.execute("analyze")
    plan = "\n".join(
        r[0]
        for r in await db.fetch(
            "explain select * from leaderboard_period_totals t where t.period = 'week:2026-W49' "
            "and (-t.score, t.last_solved_at, t.user_id) > (-50::bigint, now(), $1::uuid) "
            "order by -t.score, t.last_solved_at, t.user_id limit 100",
            user(1),
        )
    )
    assert "leaderboard_period_totals_rank_idx" in plan
    assert "challenge_results" not in plan


async def test_concurrent_writers_and_a_feed_reader_agree_with_the_board(
    db: asyncpg.Connection, postgres: PostgresEngine
) -> None:
    # Given 4 writers inserting small transactions while a reader follows the week's change feed
    board = "week:2026-W49"
    rows = [
        r for r in random_rows(5, 800, users=15, challenges=4) if MONDAY <= r[4] < MONDAY + timedelta(days=7)
    ]
    writers = [await asyncpg.connect(postgres.uri) for _ in range(4)]
    reader = await asyncpg.connect(postgres.uri)
    replayed: dict[str, tuple[Any, ...]] = {}
    position = 0
    done = asyncio.Event()

    async def write(conn: asyncpg.Connection, part: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(part), 3):
            async with conn.transaction():
                await insert(conn, part[start : start + 3])
                if start % 9 == 0:
                    await conn.execute(
                        "delete from challenge_results where id = (select min(id) from challenge_results)"
                    )

    async def follow() -> None:
        nonlocal position
        while True:
            finished = done.is_set()
            result = await feed(reader, board, position, limit=50)
            for change in result["changes"]:
                if change["removed"]:
                    replayed.pop(change["user_id"], None)
                else:
                    replayed[change["user_id"]] = (change["score"], change["solved"], change["username"])
            position = result["changes"][-1]["change_seq"] if len(result["changes"]) == 50 else result["head"]
            if finished and len(result["changes"]) < 50:
                return
            await asyncio.sleep(0)

    try:
        follower = asyncio.create_task(follow())
        await asyncio.gather(*(write(c, rows[i::4]) for i, c in enumerate(writers)))
        done.set()
        await follower
    finally:
        for conn in (*writers, reader):
            await conn.close()
    # Then the replayed feed equals the board, and the board equals the naive ranking
    await assert_period_matches_naive(db, board, MONDAY, MONDAY + timedelta(days=7))
    final = {
        str(r["user_id"]): (r["score"], r["solved"], r["username"]) for r in await all_pages(db, board, 100)
    }
    assert replayed == final


async def test_the_migration_applies_to_an_install_that_has_results(postgres: PostgresEngine) -> None:
    # Given a database with the first migration only, and results from long ago and from lately
    admin = await asyncpg.connect(postgres.uri)
    await admin.execute("drop database if exists existing_install")
    await admin.execute("create database existing_install")
    await admin.close()
    conn = await asyncpg.connect(postgres.uri.replace("/postgres?", "/existing_install?"))
    try:
        await conn.execute("set client_min_messages = warning")
        first = sorted(MIGRATIONS.glob("*.sql"))[0]
        await conn.execute(first.read_text())
        now = await conn.fetchval("select now()")
        rng = random.Random(4)
        rows = [
            (user(rng.randint(1, 40)), "p", f"c{rng.randint(1, 3)}", rng.choice([0, 10, 20]),
             now - timedelta(days=rng.randint(0, 600), hours=rng.randint(0, 23)))
            for _ in range(1500)
        ]  # fmt: skip
        await conn.copy_records_to_table("challenge_results", records=rows, columns=COLUMNS)
        # When the period migration is applied (every migration after the first, in order)
        for path in sorted(MIGRATIONS.glob("*.sql"))[1:]:
            await conn.execute(path.read_text())
        # Then the kept periods equal the naive ranking, older ones are unknown
        week = await conn.fetchrow(
            "select period, starts_at, ends_at from _leaderboard_periods_at($1) where period like 'week:%'",
            now - timedelta(weeks=3),
        )
        assert week is not None
        assert await assert_period_matches_naive(conn, week["period"], week["starts_at"], week["ends_at"])
        month = await conn.fetchrow(
            "select period, starts_at, ends_at from _leaderboard_periods_at($1) where period like 'month:%'",
            now - timedelta(days=300),
        )
        assert month is not None
        assert await assert_period_matches_naive(conn, month["period"], month["starts_at"], month["ends_at"])
        assert not json.loads(await conn.fetchval("select leaderboard_board_period('month:2025-01')"))[
            "known"
        ]
        # and applying it again changes nothing
        seqs = await conn.fetchval("select sum(change_seq) from leaderboard_period_totals")
        await conn.execute((MIGRATIONS / "20261201000100_period_boards.sql").read_text())
        assert await conn.fetchval("select sum(change_seq) from leaderboard_period_totals") == seqs
    finally:
        await conn.close()
        admin = await asyncpg.connect(postgres.uri)
        await admin.execute("drop database if exists existing_install")
        await admin.close()
