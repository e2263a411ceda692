"""Friends' ranks on fakes (tests/fakes.py): the route's validation and answer through ApiApp, the
near-cache keyed by the id list, and stale-if-error per list. The script itself is proven on real
engines in tests/integration/test_friends.py."""

from __future__ import annotations

import pytest

from api_lambda.service import HIT, STALE, LeaderboardService
from common.config import ApiSettings
from common.errors import CacheUnavailable
from tests.fakes import FakeMetrics, FakeRefreshSender, FakeSnapshotStore, ranked
from tests.openapi import check_response
from tests.support import body_of
from tests.unit.test_api_routing import ENV, given

USERS = "/leaderboard/users"


def reader(store: FakeSnapshotStore, near_cache_ms: int) -> LeaderboardService:
    settings = ApiSettings.from_env(ENV | {"LEADERBOARD_NEAR_CACHE_MS": str(near_cache_ms)})
    return LeaderboardService(settings, store, FakeRefreshSender(), FakeMetrics())


def test_the_route_answers_the_ranked_ones_and_names_the_missing() -> None:
    app = given(entries=10)
    response = app.get(USERS, {"ids": "u00004,nobody,u00002,u00004"})
    assert response["statusCode"] == 200
    body = body_of(response)
    assert [e["user_id"] for e in body["entries"]] == ["u00002", "u00004"]
    assert body["missing"] == ["nobody"] and body["version"] == 7 and body["board"] == "global"
    assert response["headers"]["ETag"] == '"7"'
    check_response(USERS, response)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, "invalid_ids"),
        ({"ids": ""}, "invalid_ids"),
        ({"ids": ",".join(f"u{n}" for n in range(101))}, "invalid_ids"),
        ({"ids": ["a", "b"]}, "invalid_ids"),  # given twice
        ({"ids": "a,b c"}, "invalid_user_id"),
        ({"ids": "a", "board": "nope:x"}, "invalid_board"),
    ],
)
def test_bad_queries_are_400_with_their_code(query: dict[str, str | list[str]], code: str) -> None:
    response = given().get(USERS, query)
    assert response["statusCode"] == 400 and body_of(response)["error"]["code"] == code
    check_response(USERS, response)


def test_each_id_list_is_its_own_near_read_and_the_same_list_costs_no_read() -> None:
    store = FakeSnapshotStore()
    store.put("global", ranked(5), version=3)
    service = reader(store, near_cache_ms=60_000)
    first = service.users("global", ("u00001", "x"))
    assert (first.cache_status, first.missing, len(first.entries)) == (HIT, ["x"], 1)
    assert service.users("global", ("u00001", "u00003")).missing == []
    assert service.users("global", ("u00001", "x")).missing == ["x"]
    assert store.reads == 2  # the repeated list was served near
    assert service.page("global", 0, 10).missing is None  # a page is never taken for a list


def test_valkey_down_serves_the_lists_last_copy_and_only_that_list() -> None:
    store = FakeSnapshotStore()
    store.put("global", ranked(3), version=9)
    service = reader(store, near_cache_ms=0)
    service.users("global", ("u00001",))
    store.down = True
    view = service.users("global", ("u00001",))
    assert (view.cache_status, view.served_on_error, view.header.version) == (STALE, True, 9)
    with pytest.raises(CacheUnavailable):
        service.users("global", ("u00001", "u00002"))
