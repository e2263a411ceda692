"""Friends' ranks: GET /leaderboard/users?ids=… answers several users from one snapshot in one script,
on standalone and cluster Valkey (the `cache_tools` and `api` fixtures run on both)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from common.periods import containing
from tests.harness import ApiHarness, CacheTools
from tests.openapi import check_response
from tests.support import body_of, make_entries

pytestmark = pytest.mark.usefixtures("sqs")
USERS = "/leaderboard/users"
TEMPLATE = "/leaderboard/users"


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


def ask(api: ApiHarness, *players: int | str, **query: str) -> dict[str, Any]:
    ids = ",".join(uid(p) if isinstance(p, int) else p for p in players)
    return api.get(USERS, {"ids": ids, **query})


def test_friends_come_in_rank_order_with_ties_and_the_missing_are_named(
    api: ApiHarness, cache_tools: CacheTools
) -> None:
    # Given 20 players ranked in pairs (1, 1, 3, 3, ...)
    version = cache_tools.write(make_entries(20, tie_groups=2))
    # When a client asks for players 12, 3, 4, 99 (not on the board), 3 again and 11, in that order
    response = ask(api, 12, 3, 4, 99, 3, 11)
    # Then it gets the ranked ones in rank order, each with its competition rank, the tie groups intact
    assert response["statusCode"] == 200
    body = body_of(response)
    assert [(e["user_id"], e["rank"]) for e in body["entries"]] == [
        (uid(3), 3),
        (uid(4), 3),
        (uid(11), 11),
        (uid(12), 11),
    ]
    assert body["entries"][0] == {
        "rank": 3,
        "user_id": uid(3),
        "username": "player-3",
        "score": 180,
        "solved": 3,
        "last_solved_at": "2026-11-01T10:00:00.000000Z",
    }
    # And the one not on the board is named once, the duplicate folded
    assert body["missing"] == [uid(99)]
    assert body["board"] == "global" and body["version"] == version
    assert response["headers"]["X-Cache"] == "HIT"
    assert response["headers"]["ETag"] == f'"{version}"'
    check_response(TEMPLATE, response)


def test_a_uuid_in_upper_case_is_the_same_player_and_folds_with_its_lower_case(
    api: ApiHarness, cache_tools: CacheTools
) -> None:
    cache_tools.write(make_entries(5))
    body = body_of(ask(api, uid(2).upper(), 2, "not-a-player"))
    assert [e["user_id"] for e in body["entries"]] == [uid(2)]
    assert body["missing"] == ["not-a-player"]


def test_nobody_on_the_board_is_an_empty_list_not_a_404(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(3))
    response = ask(api, 7, 8)
    assert response["statusCode"] == 200
    assert body_of(response)["entries"] == [] and body_of(response)["missing"] == [uid(7), uid(8)]
    cache_tools.write([])  # an empty board has nobody
    assert body_of(ask(api, 1))["missing"] == [uid(1)]


def test_a_hundred_friends_on_a_big_board_in_one_answer(api: ApiHarness, cache_tools: CacheTools) -> None:
    # Given 1000 players in tie groups of 3, when 100 of them are asked for in a scrambled order
    cache_tools.write(make_entries(1000, tie_groups=3))
    players = [(n * 37) % 1000 + 1 for n in range(100)]
    body = body_of(ask(api, *players))
    # Then all 100 come back in board order, with the ranks the pages show
    assert [e["user_id"] for e in body["entries"]] == [uid(n) for n in sorted(players)]
    page = {
        e["user_id"]: e for e in body_of(api.get("/leaderboard", {"count": "100", "offset": "0"}))["entries"]
    }
    for entry in body["entries"]:
        n = uuid.UUID(entry["user_id"]).int
        assert entry["rank"] == 1 + (n - 1) // 3 * 3
        if entry["user_id"] in page:
            assert entry == page[entry["user_id"]]
    assert body["missing"] == []


def test_week_and_challenge_boards(api_factory: Any, cache_tools: CacheTools) -> None:
    # Given a week board (the current week) and a challenge board
    api: ApiHarness = api_factory(LEADERBOARD_BOARDS="global,challenge:*,week:*")
    week = containing("week", datetime.now(UTC)).name
    cache_tools.write(make_entries(4), board=week)
    cache_tools.write(make_entries(6, tie_groups=2), board="challenge:two-sum")
    # When friends are asked for on each, the alias included
    for board in (week, "week:current"):
        body = body_of(ask(api, 4, 1, 9, board=board))
        # Then each board answers from its own snapshot, under its concrete name
        assert body["board"] == week
        assert [e["rank"] for e in body["entries"]] == [1, 4] and body["missing"] == [uid(9)]
    response = ask(api, 6, 5, board="challenge:two-sum")
    assert [(e["user_id"], e["rank"]) for e in body_of(response)["entries"]] == [(uid(5), 5), (uid(6), 5)]
    assert body_of(response)["board"] == "challenge:two-sum"
    check_response(TEMPLATE, response)


def test_freshness_etag_and_head_are_those_of_every_read(api_factory: Any, cache_tools: CacheTools) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_FRESH_SECONDS="60")
    # Given a stale snapshot: the answer is STALE and asks for one refresh
    cache_tools.write(make_entries(5), age_seconds=90)
    response = ask(api, 2)
    assert response["headers"]["X-Cache"] == "STALE"
    assert [m["reason"] for m in api.messages()] == ["stale"]
    # Given a fresh one: the ETag is its version, and If-None-Match gives a 304 with no body
    version = cache_tools.write(make_entries(5))
    fresh = ask(api, 2)
    assert fresh["headers"]["X-Cache"] == "HIT" and fresh["headers"]["ETag"] == f'"{version}"'
    assert fresh["headers"]["Cache-Control"].startswith("public, max-age=")
    again = api.get(USERS, {"ids": uid(2)}, headers={"if-none-match": f'"{version}"'})
    assert again["statusCode"] == 304 and again["body"] == ""
    check_response(TEMPLATE, again)
    head = api.get(USERS, {"ids": uid(2)}, method="HEAD")
    assert head["statusCode"] == 200 and head["body"] == ""
    assert head["headers"]["Content-Length"] == str(len(fresh["body"].encode()))


def test_no_snapshot_waits_then_warming_up_and_an_unknown_board_is_404(
    api_factory: Any, cache_tools: CacheTools
) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_MISS_WAIT_MS="100")
    response = ask(api, 1)
    assert response["statusCode"] == 503 and body_of(response)["error"]["code"] == "warming_up"
    assert [m["reason"] for m in api.messages()] == ["miss"]
    check_response(TEMPLATE, response)
    cache_tools.command("SET", cache_tools.keys("challenge:nope").absent, "1", "PX", "20000")
    response = ask(api, 1, board="challenge:nope")
    assert response["statusCode"] == 404 and body_of(response)["error"]["code"] == "unknown_board"


def test_the_near_cache_keys_reads_by_their_id_list(api_factory: Any, cache_tools: CacheTools) -> None:
    # Given the near-cache on, and a board
    api: ApiHarness = api_factory(LEADERBOARD_NEAR_CACHE_MS="5000")
    cache_tools.write(make_entries(10))
    first = body_of(ask(api, 1, 2))
    # When other id lists are asked for within the window, Then each gets its own answer
    assert [e["user_id"] for e in body_of(ask(api, 3))["entries"]] == [uid(3)]
    assert [e["user_id"] for e in body_of(ask(api, 1, 2, 3))["entries"]] == [uid(1), uid(2), uid(3)]
    assert body_of(ask(api, 2, 1))["entries"] == first["entries"]
    # And the same list again is served from the container's copy: no round trip, the board is gone
    keys = cache_tools.keys("global")
    for key in (keys.meta, keys.snapshot, keys.entries, keys.top):
        cache_tools.command("DEL", key)
    assert body_of(ask(api, 1, 2)) == first
    assert ask(api, 1, 2, 4)["statusCode"] == 503  # a new list reads Valkey: no snapshot there


def test_a_partly_evicted_snapshot_is_a_miss(api_factory: Any, cache_tools: CacheTools) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_MISS_WAIT_MS="50")
    cache_tools.write(make_entries(5))
    keys = cache_tools.keys("global")
    stored = cache_tools.command("HGET", keys.entries, uid(3))
    cache_tools.command("ZREM", keys.snapshot, stored[:16] + uid(3).encode())
    # When a friend whose member is gone is asked for, Then it is a miss (a refresh rebuilds the board)
    response = ask(api, 1, 3)
    assert response["statusCode"] == 503 and body_of(response)["error"]["code"] == "warming_up"
    assert [m["reason"] for m in api.messages()] == ["miss"]


def test_a_bad_id_is_a_400_naming_it(api: ApiHarness, cache_tools: CacheTools) -> None:
    # One smoke case on real engines; every rule of the list is unit-tested (tests/unit/test_user_ids.py)
    cache_tools.write(make_entries(2))
    response = api.get(USERS, {"ids": f"{uid(1)},bad id"})
    assert response["statusCode"] == 400
    assert body_of(response)["error"] == {
        "code": "invalid_user_id",
        "message": '"bad id" is not a user id (1 to 128 visible characters)',
    }
    check_response(TEMPLATE, response)
