"""My rank and the players around me, pages, and several boards — all from the cache."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.harness import ApiHarness, CacheTools
from tests.openapi import check_response
from tests.support import body_of, make_entries

pytestmark = pytest.mark.usefixtures("sqs")
USERS = "/leaderboard/users/"


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


def ranks(body: dict[str, Any]) -> list[int]:
    return [e["rank"] for e in body["entries"]]


def ids(body: dict[str, Any]) -> list[str]:
    return [e["user_id"] for e in body["entries"]]


# ---- my rank ---------------------------------------------------------------------------------------


def test_a_user_and_their_neighbours(api: ApiHarness, cache_tools: CacheTools) -> None:
    # Given 20 players, ranked in pairs (1, 1, 3, 3, ...)
    entries = make_entries(20, tie_groups=2)
    version = cache_tools.write(entries, total=20)
    # When player 10 asks for their rank with 2 neighbours on each side
    response = api.get(USERS + uid(10), {"around": "2"})
    # Then they get their own entry and positions 8..12
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["user"]["user_id"] == uid(10)
    assert body["user"]["rank"] == 9  # tied with player 9
    assert ids(body) == [uid(n) for n in range(8, 13)]
    assert body["offset"] == 7
    assert body["count"] == 5
    assert body["version"] == version
    assert body["total"] == 20
    assert response["headers"]["X-Cache"] == "HIT"
    check_response("/leaderboard/users/{user_id}", response)


def test_around_defaults_to_zero(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(5))
    body = body_of(api.get(USERS + uid(3)))
    assert ids(body) == [uid(3)]


@pytest.mark.parametrize(
    ("player", "expected"),
    [
        (1, [1, 2, 3, 4, 5]),  # the leader: the window extends downwards
        (2, [1, 2, 3, 4, 5]),
        (19, [16, 17, 18, 19, 20]),  # near the end: the window extends upwards
        (20, [16, 17, 18, 19, 20]),
    ],
)
def test_the_window_keeps_its_size_at_the_edges(
    api: ApiHarness, cache_tools: CacheTools, player: int, expected: list[int]
) -> None:
    cache_tools.write(make_entries(20))
    body = body_of(api.get(USERS + uid(player), {"around": "2"}))
    assert ids(body) == [uid(n) for n in expected]
    assert body["user"]["user_id"] == uid(player)


def test_a_window_larger_than_the_board_returns_the_board(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(3))
    body = body_of(api.get(USERS + uid(2), {"around": "10"}))
    assert ids(body) == [uid(1), uid(2), uid(3)]
    cache_tools.write(make_entries(1))
    body = body_of(api.get(USERS + uid(1), {"around": "10"}))
    assert ids(body) == [uid(1)]


def test_a_user_not_on_the_board_is_404(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(5))
    response = api.get(USERS + uid(99))
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "user_not_ranked"
    check_response("/leaderboard/users/{user_id}", response)
    cache_tools.write([])  # an empty board has nobody
    assert body_of(api.get(USERS + uid(1)))["error"]["code"] == "user_not_ranked"


def test_a_stale_snapshot_still_answers_my_rank_and_asks_for_a_refresh(
    api: ApiHarness, cache_tools: CacheTools
) -> None:
    cache_tools.write(make_entries(5), age_seconds=300)
    response = api.get(USERS + uid(4))
    assert response["statusCode"] == 200
    assert response["headers"]["X-Cache"] == "STALE"
    assert [m["reason"] for m in api.messages()] == ["stale"]


def test_my_rank_has_an_etag_too(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(5))
    etag = api.get(USERS + uid(2))["headers"]["ETag"]
    assert api.get(USERS + uid(2), headers={"If-None-Match": etag})["statusCode"] == 304


# ---- pages -----------------------------------------------------------------------------------------


def test_paging_through_the_whole_board_follows_next_links(api: ApiHarness, cache_tools: CacheTools) -> None:
    # Given 23 players with ties that straddle page boundaries (groups of 3, pages of 5)
    entries = make_entries(23, tie_groups=3)
    version = cache_tools.write(entries)
    seen: list[dict[str, Any]] = []
    path, query = "/leaderboard", "count=5"
    while True:
        body = body_of(api.get(path, query))
        assert body["version"] == version  # every page from one snapshot version
        seen.extend(body["entries"])
        if body["next"] is None:
            break
        path, _, query = body["next"].partition("?")
    # Then the pages add up to the board, in order, with tied ranks preserved across boundaries
    assert [e["user_id"] for e in seen] == [e.user_id for e in entries]
    assert [e["rank"] for e in seen] == [e.rank for e in entries]
    assert [e["rank"] for e in seen[3:7]] == [4, 4, 4, 7]


def test_offset_at_the_end_and_beyond(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(10))
    last = body_of(api.get(query={"count": "5", "offset": "8"}))
    assert ids(last) == [uid(9), uid(10)]
    assert last["next"] is None
    end = api.get(query={"offset": "10"})
    assert end["statusCode"] == 200
    assert body_of(end)["entries"] == []
    # Past the end the page is empty too: the rule does not depend on the board's size
    beyond = api.get(query={"offset": "10000000"})
    assert beyond["statusCode"] == 200
    assert (body_of(beyond)["entries"], body_of(beyond)["next"]) == ([], None)
    check_response("/leaderboard", beyond)


def test_a_new_version_between_pages_is_visible(api: ApiHarness, cache_tools: CacheTools) -> None:
    first_version = cache_tools.write(make_entries(10))
    first = body_of(api.get(query={"count": "5"}))
    second_version = cache_tools.write(make_entries(10))
    second = body_of(api.get(query={"count": "5", "offset": "5"}))
    assert first["version"] == first_version
    assert second["version"] == second_version > first_version


# ---- several boards --------------------------------------------------------------------------------


def test_each_board_has_its_own_snapshot(api: ApiHarness, cache_tools: CacheTools) -> None:
    global_version = cache_tools.write(make_entries(10))
    challenge_version = cache_tools.write(make_entries(3, start_rank=1)[::-1][:1], board="challenge:two-sum")
    board = body_of(api.get(query={"board": "challenge:two-sum"}))
    assert board["board"] == "challenge:two-sum"
    assert board["version"] == challenge_version  # versions are per board (they may coincide in one ms)
    assert len(board["entries"]) == 1
    assert body_of(api.get())["version"] == global_version
    # next links keep the board
    cache_tools.write(make_entries(10), board="challenge:two-sum")
    assert body_of(api.get(query={"board": "challenge:two-sum", "count": "3"}))["next"] == (
        "/leaderboard?board=challenge%3Atwo-sum&count=3&offset=3"
    )


def test_each_board_has_its_own_freshness_and_marker(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(5))
    cache_tools.write(make_entries(5), board="challenge:a", age_seconds=300)
    assert api.get()["headers"]["X-Cache"] == "HIT"
    assert api.get(query={"board": "challenge:a"})["headers"]["X-Cache"] == "STALE"
    assert api.get(query={"board": "challenge:a"})["headers"]["X-Cache"] == "STALE"
    assert [(m["board"], m["reason"]) for m in api.messages()] == [("challenge:a", "stale")]


def test_boards_not_served_are_404_and_malformed_names_400(api_factory: Any) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS="global,challenge:two-sum")
    assert body_of(api.get(query={"board": "challenge:other"}))["error"]["code"] == "unknown_board"
    # (every malformed name: tests/unit/test_api_routing.py)
    assert body_of(api.get(query={"board": "Global"}))["error"]["code"] == "invalid_board"


def test_a_challenge_the_source_does_not_know_is_404(api_factory: Any, cache_tools: CacheTools) -> None:
    # Given the worker found no such challenge (it records that for one freshness window)
    api: ApiHarness = api_factory(LEADERBOARD_MISS_WAIT_MS="0")
    cache_tools.command("SET", cache_tools.keys("challenge:nope").absent, "1", "PX", "60000")
    # Then readers get a 404 at once, without asking the worker again
    response = api.get(query={"board": "challenge:nope"})
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "unknown_board"
    assert api.messages() == []
