"""Week, month and season boards end to end: PostgreSQL → worker → Valkey → API (real engines)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from common.periods import FINAL_GRACE_MS, MONTH, WEEK, containing
from common.runtime import run
from testkit.engines import PostgresEngine
from tests.harness import ApiHarness, CacheTools
from tests.integration.test_worker import WorkerHarness, clean_db, request, workers
from tests.support import FakeContext, body_of, log_lines, sqs_event

__all__ = ["clean_db", "workers"]  # fixtures used here

pytestmark = pytest.mark.usefixtures("sqs")
BOARDS = "global,challenge:*,week:*,month:*,season:*"


def add_results(postgres: PostgresEngine, rows: list[tuple[int, str, int, datetime]]) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(postgres.uri)
        try:
            await conn.execute("truncate leaderboard_seasons")
            await conn.copy_records_to_table(
                "challenge_results",
                records=[(uuid.UUID(int=n), f"player-{n}", c, s, at) for n, c, s, at in rows],
                columns=["user_id", "username", "challenge_id", "score", "submitted_at"],
            )
        finally:
            await conn.close()

    run(go())


def user_ids(body: dict[str, Any]) -> list[int]:
    return [uuid.UUID(e["user_id"]).int for e in body["entries"]]


def test_the_current_week_and_month_by_alias(
    workers: WorkerHarness, api_factory: Any, clean_db: PostgresEngine
) -> None:
    # Given results from this week, and from last week
    now = datetime.now(UTC)
    week, month = containing(WEEK, now), containing(MONTH, now)
    add_results(clean_db, [(1, "a", 10, week.start), (2, "a", 50, week.start - timedelta(microseconds=1))])
    worker, source = workers.app(
        LEADERBOARD_BOARDS=BOARDS, LEADERBOARD_SCHEDULED_BOARDS="global,week:current,month:current"
    )
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS=BOARDS)
    # When the schedule runs
    assert worker.invoke(sqs_event(request("*", "schedule")), FakeContext(), True) == {
        "batchItemFailures": []
    }
    assert week.name in source.calls and month.name in source.calls
    # Then week:current is served under its concrete name, with this week's results only
    response = api.get("/leaderboard", {"board": "week:current"})
    assert response["statusCode"] == 200, response
    body = body_of(response)
    assert body["board"] == week.name
    assert user_ids(body) == [1]
    assert body_of(api.get("/leaderboard", {"board": "month:current"}))["board"] == month.name
    # and the week's own name reads the same snapshot
    assert body_of(api.get("/leaderboard", {"board": week.name}))["version"] == body["version"]


def test_a_new_period_is_an_empty_board_not_an_unknown_one(
    workers: WorkerHarness, api_factory: Any, clean_db: PostgresEngine
) -> None:
    # Given results from last week only
    week = containing(WEEK, datetime.now(UTC))
    add_results(clean_db, [(1, "a", 10, week.start - timedelta(days=1))])
    worker, _ = workers.app(LEADERBOARD_BOARDS=BOARDS)
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS=BOARDS)
    assert worker.invoke(sqs_event(request(week.name)), FakeContext(), True) == {"batchItemFailures": []}
    # Then this week is an empty board (200), a future or too old week is no board at all (404)
    body = body_of(api.get("/leaderboard", {"board": "week:current"}))
    assert (body["board"], body["entries"], body["total"]) == (week.name, [], 0)
    too_old = containing(WEEK, week.start - timedelta(weeks=13)).name
    for board in (week.next().name, too_old, "week:2027-W53"):  # the future, the past, no such week
        response = api.get("/leaderboard", {"board": board})
        assert response["statusCode"] == 404 and body_of(response)["error"]["code"] == "unknown_board", board
    assert api.get("/leaderboard", {"board": "week:2026-W4"})["statusCode"] == 400


def test_a_season_is_served_and_an_unknown_season_is_absent(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    now = datetime.now(UTC)
    add_results(clean_db, [(1, "a", 10, now - timedelta(days=2)), (2, "a", 20, now - timedelta(days=40))])
    start, end = (now - timedelta(days=7)).isoformat(), (now + timedelta(days=7)).isoformat()
    clean_db.psql(
        f"insert into leaderboard_seasons (id, starts_at, ends_at) values ('cup', '{start}', '{end}')"
    )
    worker, _ = workers.app(LEADERBOARD_BOARDS=BOARDS)
    event = sqs_event(request("season:cup"), request("season:nope"))
    assert worker.invoke(event, FakeContext(), True) == {"batchItemFailures": []}
    page = run(cache_tools.cache.read_page("season:cup", 0, 10))
    assert page is not None and len(page.entries) == 1
    assert cache_tools.exists(cache_tools.keys("season:nope").absent)


def test_a_closed_period_is_refreshed_once_after_it_closes(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    # Given results of a week that ended more than the grace ago, and a worker
    last_week = containing(WEEK, datetime.now(UTC)).previous().previous()
    assert datetime.now(UTC).timestamp() * 1000 > last_week.end_ms + FINAL_GRACE_MS
    add_results(clean_db, [(1, "a", 10, last_week.start + timedelta(days=1))])
    worker, source = workers.app(LEADERBOARD_BOARDS=BOARDS)
    # When it is asked for three times, stale reads and the schedule
    for reason in ("stale", "schedule", "stale"):
        assert worker.invoke(sqs_event(request(last_week.name, reason)), FakeContext(), True) == {
            "batchItemFailures": []
        }
    # Then it was read from the source once: the first snapshot is final and answers the others
    assert source.calls == {last_week.name: 1}
    # and an operator's manual refresh still refreshes it (a delta: the board has not changed)
    final = run(cache_tools.cache.read_header(last_week.name))
    feed_calls = source.feed_calls[last_week.name]
    assert worker.invoke(sqs_event(request(last_week.name, "manual")), FakeContext(), True) == {
        "batchItemFailures": []
    }
    again = run(cache_tools.cache.read_header(last_week.name))
    assert final is not None and again is not None and again.version > final.version
    assert source.feed_calls[last_week.name] == feed_calls + 1 and source.calls == {last_week.name: 1}


def test_a_week_board_takes_a_new_result_by_a_delta_not_a_rebuild(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine, capsys: Any
) -> None:
    # Given this week's board, built once from the source
    week = containing(WEEK, datetime.now(UTC))
    add_results(clean_db, [(1, "a", 10, week.start), (2, "a", 30, week.start)])
    worker, source = workers.app(LEADERBOARD_BOARDS=BOARDS)
    assert worker.invoke(sqs_event(request(week.name)), FakeContext(), True) == {"batchItemFailures": []}
    built = run(cache_tools.cache.read_header(week.name))
    assert built is not None and built.position is not None and built.position > 0
    pages_read = source.calls[week.name]
    # When a player submits a result this week and the board is asked for again
    add_results(clean_db, [(3, "b", 20, week.start + timedelta(microseconds=1))])
    later = datetime.fromtimestamp(built.generated_at_ms / 1000 + 1, UTC)
    assert worker.invoke(sqs_event(request(week.name, at=later)), FakeContext(), True) == {
        "batchItemFailures": []
    }
    # Then the second refresh read the week's change feed only, no page of the board
    done = [line for line in log_lines(capsys.readouterr().out) if line["message"] == "refresh_done"]
    assert [(d["board"], d["mode"]) for d in done] == [(week.name, "rebuild"), (week.name, "delta")]
    assert done[1]["changes"] == 1 and done[1]["rows_read"] == 1
    assert source.calls[week.name] == pages_read
    # and the snapshot ranks the new player between the others, at a later position, same rebuild
    header = run(cache_tools.cache.read_header(week.name))
    assert header is not None and header.position is not None and header.position > built.position
    assert header.rebuilt_at_ms == built.rebuilt_at_ms and header.size == 3
    page = run(cache_tools.cache.read_page(week.name, 0, 10))
    assert page is not None
    assert [uuid.UUID(json.loads(e)["user_id"]).int for e in page.entries] == [2, 3, 1]
