"""GET /leaderboard on a real Valkey (standalone and cluster) and moto SQS.

Given a snapshot written as the worker writes it, when the API Lambda handles API Gateway events,
then the responses, caching headers and refresh messages are as documented.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

import pytest

from api_lambda.app import ApiApp, build_app
from common.runtime import run
from testkit.engines import free_port
from tests.harness import ApiHarness, CacheTools, ValkeyTarget, api_env
from tests.openapi import check_response
from tests.support import FakeContext, body_of, http_event, make_entries

pytestmark = pytest.mark.usefixtures("sqs")


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_fresh_hit_serves_the_top_n_with_caching_headers(
    api: ApiHarness, cache_tools: CacheTools, version: str
) -> None:
    # Given a fresh snapshot of 50 players
    entries = make_entries(50, tie_groups=2)
    stored_version = cache_tools.write(entries, total=57)
    # When a client asks for the top 5
    response = api.get(query={"count": "5"}, version=version)
    # Then it gets exactly those, from the cache, with nothing sent to the queue
    assert response["statusCode"] == 200
    body = body_of(response)
    assert [e["user_id"] for e in body["entries"]] == [e.user_id for e in entries[:5]]
    assert [e["rank"] for e in body["entries"]] == [1, 1, 3, 3, 5]
    assert body["count"] == 5
    assert body["total"] == 57
    assert body["version"] == stored_version
    assert body["board"] == "global"
    assert body["next"] == "/leaderboard?count=5&offset=5"
    headers = response["headers"]
    assert headers["X-Cache"] == "HIT"
    assert headers["ETag"] == f'"{stored_version}"'
    assert headers["Cache-Control"] == "public, max-age=60, stale-while-revalidate=300, stale-if-error=86400"
    assert int(headers["X-Snapshot-Age"]) <= 2
    assert "Age" not in headers  # the answer was made now: caches must not count the snapshot's age
    assert headers["X-Content-Type-Options"] == "nosniff"
    check_response("/leaderboard", response)
    assert api.messages() == []


def test_a_fresh_answer_is_cacheable_for_what_is_left_of_the_window(
    api: ApiHarness, cache_tools: CacheTools
) -> None:
    # Given a snapshot 40 s into its 60 s freshness window
    cache_tools.write(make_entries(5), age_seconds=40)
    headers = api.get()["headers"]
    # Then a cache keeps it fresh for the 20 s left, and sees the snapshot's age in its own header
    assert headers["X-Cache"] == "HIT"
    assert "max-age=20," in headers["Cache-Control"]
    assert "Age" not in headers
    assert 40 <= int(headers["X-Snapshot-Age"]) <= 41


@pytest.mark.parametrize(
    ("age_seconds", "max_age"),
    [
        (61.5, 4),  # stale for 1.5 s: kept until 5 s after it went stale, when the refresh should be in
        (64.5, 1),
        (66, 60),  # stale for longer than that: the refresh is failing; one freshness window at a time
        (3600, 60),
    ],
)
def test_a_stale_answer_stays_cacheable(
    api: ApiHarness, cache_tools: CacheTools, age_seconds: float, max_age: int
) -> None:
    # Given a stale snapshot (60 s window, LEADERBOARD_STALE_MAX_AGE_SECONDS 5)
    cache_tools.write(make_entries(5), age_seconds=age_seconds)
    headers = api.get()["headers"]
    # Then caches may still store it (Varnish turns max-age <= 0 into hit-for-miss)
    assert headers["X-Cache"] == "STALE"
    assert headers["Cache-Control"] == (
        f"public, max-age={max_age}, stale-while-revalidate=300, stale-if-error=86400"
    )


def test_max_stale_also_bounds_what_caches_may_serve(api_factory: Any, cache_tools: CacheTools) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_MAX_STALE_SECONDS="100")
    cache_tools.write(make_entries(5))
    # A copy kept for 60 s may then be served 39 more (100 - 60 - the snapshot's age when read, rounded)
    assert api.get()["headers"]["Cache-Control"] == (
        "public, max-age=60, stale-while-revalidate=39, stale-if-error=39"
    )
    # And a copy that is almost too old is not cacheable at all
    cache_tools.write(make_entries(5), age_seconds=99.5)
    assert api.get()["headers"]["Cache-Control"] == (
        "public, max-age=0, stale-while-revalidate=0, stale-if-error=0"
    )


def test_default_count_is_ten(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(30))
    assert body_of(api.get())["count"] == 10


def test_a_small_board_returns_what_it_has(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(3))
    body = body_of(api.get(query={"count": "100"}))
    assert body["count"] == 3
    assert body["next"] is None


def test_an_empty_board_is_a_valid_answer(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write([])
    response = api.get()
    assert response["statusCode"] == 200
    assert body_of(response)["entries"] == []
    check_response("/leaderboard", response)


def test_stale_snapshot_is_served_and_one_refresh_is_requested(
    api: ApiHarness, cache_tools: CacheTools
) -> None:
    # Given a snapshot older than the freshness window (60 s)
    entries = make_entries(20)
    cache_tools.write(entries, age_seconds=120)
    # When two clients read it
    first = api.get(query={"count": "3"})
    second = api.get(query={"count": "3"})
    # Then both get the old data at once, marked STALE, and exactly one refresh message is sent
    for response in (first, second):
        assert response["statusCode"] == 200
        assert response["headers"]["X-Cache"] == "STALE"
        # stale for a whole window already: caches may keep it one more window
        assert "max-age=60," in response["headers"]["Cache-Control"]
        assert int(response["headers"]["X-Snapshot-Age"]) >= 119
        assert [e["user_id"] for e in body_of(response)["entries"]] == [e.user_id for e in entries[:3]]
    messages = api.messages()
    assert len(messages) == 1
    assert messages[0]["type"] == "refresh"
    assert messages[0]["board"] == "global"
    assert messages[0]["reason"] == "stale"
    assert messages[0]["requested_at"].endswith("Z")


def test_200_stale_reads_in_one_container_send_exactly_one_message(
    api: ApiHarness, cache_tools: CacheTools
) -> None:
    # Given a stale snapshot
    cache_tools.write(make_entries(100), age_seconds=600)
    # When one container serves 200 requests (one at a time, as Lambda hands them to a container)
    responses = [api.get(query={"count": "10"}) for _ in range(200)]
    # Then all are served stale, and one message reaches the queue
    assert all(r["statusCode"] == 200 and r["headers"]["X-Cache"] == "STALE" for r in responses)
    assert len(api.messages(wait=1)) == 1


def _container(env: dict[str, str], requests: int, start: Any, results: Any) -> None:
    """One Lambda container in its own process: build the app, wait for the start signal, serve."""
    app = build_app(env)
    assert isinstance(app, ApiApp)
    app.invoke(http_event(query={"count": "1"}), FakeContext(), True)  # connect before the burst
    start.wait(30)
    for _ in range(requests):
        response = app.invoke(http_event(query={"count": "10"}), FakeContext(), False)
        results.put((response["statusCode"], response["headers"].get("X-Cache", "")))
    run(app.close())


def test_200_stale_reads_across_8_containers_send_exactly_one_message(
    valkey_engine: ValkeyTarget, key_prefix: str, queues: Any, api: ApiHarness, cache_tools: CacheTools
) -> None:
    # Given a stale snapshot and 8 warm containers (processes, as Lambda runs them)
    cache_tools.write(make_entries(100), age_seconds=600)
    env = {
        **api_env(valkey_engine, key_prefix, queues),
        "AWS_ENDPOINT_URL_SQS": os.environ["AWS_ENDPOINT_URL_SQS"],
    }
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=_container, args=(env, 25, start, results)) for _ in range(8)]
    for process in processes:
        process.start()
    # When they all serve 25 requests at the same moment
    time.sleep(0.5)
    start.set()
    served = [results.get(timeout=60) for _ in range(200)]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    # Then all 200 are served stale and exactly one refresh message was sent (warm-ups included)
    assert all(status == 200 and cache == "STALE" for status, cache in served)
    assert len(api.messages(wait=1)) == 1


def test_after_the_worker_clears_the_marker_the_next_stale_episode_asks_again(
    api: ApiHarness, cache_tools: CacheTools
) -> None:
    cache_tools.write(make_entries(5), age_seconds=300)
    api.get()
    assert len(api.messages()) == 1
    # a refresh that produced old data again (e.g. the source is lagging) still clears the marker
    cache_tools.write(make_entries(5), age_seconds=300)
    api.get()
    assert len(api.messages()) == 1


def test_a_failed_send_still_serves_stale_and_lets_the_next_read_retry(
    api_factory: Any, cache_tools: CacheTools, sqs: Any
) -> None:
    # Given a queue URL that does not exist (SQS answers with an error)
    api: ApiHarness = api_factory(REFRESH_QUEUE_URL=f"{sqs.endpoint}/123456789012/no-such-queue")
    cache_tools.write(make_entries(5), age_seconds=300)
    # When a stale read cannot send its refresh request
    response = api.get()
    # Then the stale data is still served, and the marker is gone so that the next read tries again
    assert response["statusCode"] == 200
    assert response["headers"]["X-Cache"] == "STALE"
    assert not cache_tools.exists(cache_tools.keys("global").refresh_marker)


def test_cold_miss_waits_for_the_worker_and_serves_what_it_writes(
    api_factory: Any, cache_tools: CacheTools
) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_MISS_WAIT_MS="3000")
    entries = make_entries(12)
    polls: list[float] = []

    def worker_steps_in(seconds: float) -> None:
        # a stand-in worker, stepping in while the API waits between polls: once the request's message
        # is in the queue, it writes the snapshot the way the worker does
        polls.append(seconds)
        if len(polls) == 3:
            assert api.messages(), "the miss sent no refresh request"
            cache_tools.write(entries)
        time.sleep(seconds)

    api.app.service._sleep = worker_steps_in
    response = api.get(query={"count": "4"})
    assert len(polls) == 3  # the fourth read found the snapshot
    assert response["statusCode"] == 200
    assert response["headers"]["X-Cache"] == "MISS"
    assert [e["user_id"] for e in body_of(response)["entries"]] == [e.user_id for e in entries[:4]]


def test_cold_miss_not_filled_in_time_is_a_clean_503(api_factory: Any) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_MISS_WAIT_MS="200")
    started = time.monotonic()
    response = api.get()
    assert time.monotonic() - started < 2
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "warming_up"
    assert response["headers"]["Retry-After"]
    assert response["headers"]["Cache-Control"] == "no-store"
    check_response("/leaderboard", response)
    messages = api.messages()
    assert [m["reason"] for m in messages] == ["miss"]


def test_if_none_match_gives_304(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(10))
    etag = api.get()["headers"]["ETag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        response = api.get(headers={"If-None-Match": header})
        assert response["statusCode"] == 304
        assert response["body"] == ""
        assert response["headers"]["ETag"] == etag
        check_response("/leaderboard", response)
    assert api.get(headers={"If-None-Match": '"other"'})["statusCode"] == 200
    # a new snapshot has a new ETag
    cache_tools.write(make_entries(10))
    assert api.get(headers={"If-None-Match": etag})["statusCode"] == 200


def test_head_returns_headers_only(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(10))
    response = api.get(method="HEAD")
    assert response["statusCode"] == 200
    assert response["body"] == ""
    assert response["headers"]["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    ("query", "code", "version"), [("count=abc", "invalid_count", "2.0"), ("board=", "invalid_board", "1.0")]
)
def test_bad_input_is_a_400_with_the_documented_json(
    api: ApiHarness, cache_tools: CacheTools, query: str, code: str, version: str
) -> None:
    # A smoke case through the real container; every rule is in tests/unit/test_api_routing.py.
    cache_tools.write(make_entries(5))
    response = api.get(query=query, version=version)
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == code
    assert "Traceback" not in response["body"]
    check_response("/leaderboard", response)


def test_a_named_stage_prefix_is_routed_and_kept_in_links(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(30))
    for version in ("2.0", "1.0"):
        response = api.get(query={"count": "10"}, stage="prod", version=version)
        assert response["statusCode"] == 200, response
        assert body_of(response)["next"] == "/prod/leaderboard?count=10&offset=10"


def test_valkey_unreachable_is_a_fast_503(key_prefix: str, queues: Any) -> None:
    # Given nothing listening where the cache should be
    target = ValkeyTarget("127.0.0.1", free_port(), cluster=False)
    app = build_app(api_env(target, key_prefix, queues, VALKEY_CONNECT_TIMEOUT_MS="300"))
    assert isinstance(app, ApiApp)
    try:
        for _ in range(2):
            started = time.monotonic()
            response = app.invoke(http_event(), FakeContext(), False)
            # Then the answer is a 503 within the connect timeout (plus slack), not a hang
            assert time.monotonic() - started < 1.5
            assert response["statusCode"] == 503
            assert body_of(response)["error"]["code"] == "cache_unavailable"
            assert response["headers"]["Retry-After"] == "1"
            check_response("/leaderboard", response)
    finally:
        run(app.close())


def test_an_older_format_value_under_the_key_counts_as_a_miss(
    api_factory: Any, cache_tools: CacheTools
) -> None:
    # The seed stored a JSON string under active_leaderboard; upgrading must not break reads.
    api: ApiHarness = api_factory(LEADERBOARD_MISS_WAIT_MS="0")
    cache_tools.command("SET", cache_tools.keys("global").snapshot, '{"old": "format"}')
    response = api.get()
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "warming_up"
    # and the worker's swap replaces it
    cache_tools.write(make_entries(3))
    assert api.get()["statusCode"] == 200


def test_snapshot_beyond_max_stale_is_503_and_still_asks_for_a_refresh(
    api_factory: Any, cache_tools: CacheTools
) -> None:
    api: ApiHarness = api_factory(LEADERBOARD_MAX_STALE_SECONDS="100")
    cache_tools.write(make_entries(3), age_seconds=200)
    response = api.get()
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "snapshot_too_old"
    assert [m["reason"] for m in api.messages()] == ["stale"]
    # a snapshot stale but within the limit is served
    cache_tools.write(make_entries(3), age_seconds=80)
    assert api.get()["headers"]["X-Cache"] == "STALE"


def test_a_cold_miss_never_waits_past_the_lambda_timeout(api_factory: Any) -> None:
    # Given a 5 s miss wait but only 800 ms left in the invocation
    api: ApiHarness = api_factory(LEADERBOARD_MISS_WAIT_MS="5000")
    # (a first invocation pays for the container's cold setup: the Valkey connection, importing aioboto3
    # and creating the SQS client on the first refresh request; only the wait itself is measured here)
    api.app.invoke(http_event(), FakeContext(remaining_ms=800), True)
    started = time.monotonic()
    response = api.app.invoke(http_event(), FakeContext(remaining_ms=800), False)
    # Then the API waited up to its own deadline (800 ms - the answer margin), and answered warming_up
    # itself before the function would time out
    assert 0.4 <= time.monotonic() - started < 0.8
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "warming_up"


def test_the_near_cache_serves_a_page_again_until_its_window_ends(
    api_factory: Any, cache_tools: CacheTools
) -> None:
    # Given a container with a 400 ms near-cache that has served version 1
    api: ApiHarness = api_factory(LEADERBOARD_NEAR_CACHE_MS="400")
    first = cache_tools.write(make_entries(5))
    assert body_of(api.get())["version"] == first
    # When the worker stores version 2
    second = cache_tools.write(make_entries(6))
    # Then the container answers version 1 from memory, as a HIT, until the window ends
    near = api.get()
    assert (near["headers"]["X-Cache"], body_of(near)["version"]) == ("HIT", first)
    time.sleep(0.45)
    # And then version 2 from Valkey; from then on no page of version 1 is served near
    fresh = api.get()
    assert (fresh["headers"]["X-Cache"], body_of(fresh)["version"]) == ("HIT", second)
    assert body_of(api.get())["version"] == second
