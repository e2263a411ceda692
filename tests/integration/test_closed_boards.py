"""#16 leftovers on real engines: closed boards (header fields, fresh forever at the API, no periodic
rebuild) and a known season with no results (an empty board, not a 404)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_lambda.http import CLOSED_MAX_AGE
from common.periods import FINAL_GRACE_MS, WEEK, containing
from common.runtime import run
from common.sources.postgres import PostgresSource
from testkit.engines import PostgresEngine
from tests.harness import ApiHarness, CacheTools
from tests.integration.test_period_boards import add_results
from tests.integration.test_worker import FaultySource, WorkerHarness, clean_db, request, workers
from tests.support import FakeContext, body_of, sqs_event

__all__ = ["clean_db", "workers"]  # fixtures used here

pytestmark = pytest.mark.usefixtures("sqs")
BOARDS = "global,challenge:*,week:*,month:*,season:*"


def worker_with_catalog(workers: WorkerHarness, **extra: str) -> tuple[Any, FaultySource]:
    """The worker as build_app wires it: its refresher asks the real PostgreSQL source about periods."""
    app, source = workers.app(LEADERBOARD_BOARDS=BOARDS, **extra)
    assert isinstance(source.inner, PostgresSource)
    app.refresher._catalog = source.inner
    return app, source


def refresh(worker: Any, board: str, reason: str = "stale") -> None:
    assert worker.invoke(sqs_event(request(board, reason)), FakeContext(), True) == {"batchItemFailures": []}


def season(postgres: PostgresEngine, name: str, starts: datetime, ends: datetime) -> None:
    postgres.psql(
        f"insert into leaderboard_seasons (id, starts_at, ends_at) values "
        f"('{name}', '{starts.isoformat()}', '{ends.isoformat()}')"
    )


def test_a_known_season_without_results_is_an_empty_board_and_an_unknown_one_is_absent(
    workers: WorkerHarness, api_factory: Any, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    # Given a season that has just started, with no result in it yet (add_results empties the seasons)
    now = datetime.now(UTC)
    add_results(clean_db, [(1, "a", 10, now - timedelta(days=30))])
    season(clean_db, "spring", now - timedelta(hours=1), now + timedelta(days=30))
    worker, _ = worker_with_catalog(workers)
    # When the worker refreshes it, and a season that does not exist
    refresh(worker, "season:spring")
    refresh(worker, "season:nope")
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS=BOARDS)
    # Then the known one is served empty (200, no entries), open, with its end in the header
    response = api.get("/leaderboard", {"board": "season:spring"})
    assert response["statusCode"] == 200, response
    assert (body_of(response)["entries"], body_of(response)["total"]) == ([], 0)
    header = run(cache_tools.cache.read_header("season:spring"))
    assert header is not None and not header.closed
    assert header.ends_at_ms == int((now + timedelta(days=30)).timestamp() * 1000)
    # and the unknown one is a 404
    missing = api.get("/leaderboard", {"board": "season:nope"})
    assert missing["statusCode"] == 404 and body_of(missing)["error"]["code"] == "unknown_board"


def test_a_closed_board_is_fresh_forever_at_the_api_with_a_long_max_age(
    workers: WorkerHarness, api_factory: Any, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    # Given a week that ended more than the grace ago, a season that ended yesterday, and this week
    now = datetime.now(UTC)
    this_week = containing(WEEK, now)
    old_week = this_week.previous().previous()
    assert now.timestamp() * 1000 > old_week.end_ms + FINAL_GRACE_MS
    rows = [
        (1, "a", 10, old_week.start + timedelta(days=1)),
        (2, "a", 5, now - timedelta(days=2)),
        (3, "a", 7, now),
    ]
    add_results(clean_db, rows)
    ended = now - timedelta(days=1)
    season(clean_db, "autumn", now - timedelta(days=5), ended)
    worker, _ = worker_with_catalog(workers)
    for board in (old_week.name, "season:autumn", this_week.name):
        refresh(worker, board)
    # Then the closed boards' headers say so, with the period's end; the current week is open
    headers = {
        b: run(cache_tools.cache.read_header(b)) for b in (old_week.name, "season:autumn", this_week.name)
    }
    closed = headers[old_week.name]
    assert closed is not None and closed.closed and closed.ends_at_ms == old_week.end_ms
    autumn = headers["season:autumn"]
    assert autumn is not None and autumn.closed and autumn.ends_at_ms == int(ended.timestamp() * 1000)
    current = headers[this_week.name]
    assert current is not None and not current.closed and current.ends_at_ms == this_week.end_ms
    # When readers come back after the freshness window
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS=BOARDS, LEADERBOARD_FRESH_SECONDS="1")
    api.messages()
    time.sleep(1.2)
    for board in (old_week.name, "season:autumn"):
        response = api.get("/leaderboard", {"board": board})
        # Then a closed board is a HIT with a day's max-age, and no refresh is requested
        assert response["statusCode"] == 200, response
        assert response["headers"]["X-Cache"] == "HIT"
        assert response["headers"]["Cache-Control"].startswith(f"public, max-age={CLOSED_MAX_AGE},")
    assert api.messages() == []
    # while the open week is STALE and asks for its refresh, as any board
    response = api.get("/leaderboard", {"board": this_week.name})
    assert response["headers"]["X-Cache"] == "STALE"
    assert [m["board"] for m in api.messages()] == [this_week.name]


def test_the_periodic_reconciliation_skips_closed_boards(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    # Given a closed week and the current week, both built, and a reconciliation due every second
    now = datetime.now(UTC)
    this_week = containing(WEEK, now)
    old_week = this_week.previous().previous()
    add_results(clean_db, [(1, "a", 10, old_week.start + timedelta(days=1)), (2, "a", 5, now)])
    worker, source = worker_with_catalog(workers, LEADERBOARD_REBUILD_SECONDS="1")
    for board in (old_week.name, this_week.name):
        refresh(worker, board)
    pages = dict(source.calls)
    time.sleep(1.1)
    # When both are refreshed again after the reconciliation period (manual: a closed week too)
    refresh(worker, old_week.name, "manual")
    refresh(worker, this_week.name, "manual")
    # Then the open week was read whole again, the closed one only had its (empty) change feed read
    assert source.calls[this_week.name] == pages[this_week.name] + 1
    assert source.calls[old_week.name] == pages[old_week.name]
    header = run(cache_tools.cache.read_header(old_week.name))
    assert header is not None and header.closed
