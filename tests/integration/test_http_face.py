"""The HTTP face as browsers and caches meet it: CORS, HEAD and 304 framing, nosniff, input rules.

The handler on a real Valkey (standalone only: nothing here depends on the topology). What caches then
do with these headers is tested against a real Varnish in tests/e2e/test_varnish.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from api_lambda.app import MisconfiguredApp, build_app
from tests.harness import ApiHarness, CacheTools
from tests.openapi import check_response
from tests.support import FakeContext, body_of, http_event, make_entries

pytestmark = [
    pytest.mark.usefixtures("sqs"),
    pytest.mark.parametrize("valkey_engine", ["standalone"], indirect=True),
]

USERS = "/leaderboard/users/"
PAGE = "https://board.example.com"
PREFLIGHT = {"Origin": PAGE, "Access-Control-Request-Method": "GET"}


# ---- CORS ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_a_browser_preflight_then_get_pass_with_the_default_any_origin(
    api: ApiHarness, cache_tools: CacheTools, version: str
) -> None:
    cache_tools.write(make_entries(5))
    # When a page on another origin sends the preflight a browser sends before a scripted request
    asks = {**PREFLIGHT, "Access-Control-Request-Headers": "if-none-match"}
    preflight = api.get(method="OPTIONS", headers=asks, version=version)
    # Then it is a 204 that allows GET and HEAD, the If-None-Match header, for 10 minutes
    assert preflight["statusCode"] == 204
    assert preflight["body"] == ""
    headers = preflight["headers"]
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert headers["Access-Control-Allow-Headers"] == "If-None-Match"
    assert headers["Access-Control-Max-Age"] == "600"
    assert headers["Allow"] == "GET, HEAD, OPTIONS"
    assert "Content-Length" not in headers
    # And the GET that follows may be read by the page's script, caching headers included
    response = api.get(headers={"Origin": PAGE}, version=version)
    assert response["statusCode"] == 200
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
    assert (
        response["headers"]["Access-Control-Expose-Headers"] == "ETag, X-Cache, X-Snapshot-Age, Retry-After"
    )
    assert "Vary" not in response["headers"]  # one copy for every origin in caches


def test_errors_are_readable_by_pages_too(api: ApiHarness) -> None:
    response = api.get("/nope", headers={"Origin": PAGE})
    assert response["statusCode"] == 404
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"


def test_a_listed_origin_is_echoed_and_others_are_not(api_factory: Any, cache_tools: CacheTools) -> None:
    # Given an API that lets two origins call it
    api: ApiHarness = api_factory(LEADERBOARD_CORS_ORIGINS="https://board.example.com, http://localhost:3000")
    cache_tools.write(make_entries(5))
    # When a listed origin reads, then its origin comes back, and caches are told answers vary by Origin
    allowed = api.get(headers={"Origin": PAGE})
    assert allowed["headers"]["Access-Control-Allow-Origin"] == PAGE
    assert allowed["headers"]["Vary"] == "Origin"
    local = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"}
    preflight = api.get(method="OPTIONS", headers=local)
    assert preflight["statusCode"] == 204
    assert preflight["headers"]["Access-Control-Allow-Origin"] == "http://localhost:3000"
    # And another origin, or a request without one, gets no permission (the browser then refuses)
    for headers in ({"Origin": "https://evil.example"}, {}):
        response = api.get(headers=headers)
        assert response["statusCode"] == 200
        assert "Access-Control-Allow-Origin" not in response["headers"]
        assert response["headers"]["Vary"] == "Origin"


def test_a_bad_cors_setting_names_the_variable(api_factory: Any) -> None:
    with pytest.raises(AssertionError):
        api_factory(LEADERBOARD_CORS_ORIGINS="https://ok.example, not an origin")
    app = build_app({"LEADERBOARD_CORS_ORIGINS": "https://a.example/path", "VALKEY_HOST": "h",
                     "REFRESH_QUEUE_URL": "https://sqs.example/1/q"})  # fmt: skip
    assert isinstance(app, MisconfiguredApp)
    assert any(p.startswith("LEADERBOARD_CORS_ORIGINS must be") for p in app.error.problems)
    assert not any("a.example" in p for p in app.error.problems)


# ---- HEAD, 304, nosniff ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/leaderboard", f"{USERS}00000000-0000-0000-0000-000000000002", "/nope"])
def test_head_says_the_length_the_get_has(api: ApiHarness, cache_tools: CacheTools, path: str) -> None:
    cache_tools.write(make_entries(5))
    get = api.get(path)
    head = api.get(path, method="HEAD")
    assert head["statusCode"] == get["statusCode"]
    assert head["body"] == ""
    assert head["headers"]["Content-Length"] == str(len(get["body"].encode()))
    assert "Content-Length" not in get["headers"]  # API Gateway frames the GET itself


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_304_has_no_body_and_no_length_but_the_caching_headers(
    api: ApiHarness, cache_tools: CacheTools, method: str
) -> None:
    cache_tools.write(make_entries(5))
    etag = api.get()["headers"]["ETag"]
    response = api.get(method=method, headers={"If-None-Match": f'W/"0", {etag}'})
    assert response["statusCode"] == 304
    assert response["body"] == ""
    assert "Content-Length" not in response["headers"]
    assert "Content-Type" not in response["headers"]  # no content, so no metadata about it
    for header in ("ETag", "Cache-Control", "X-Cache", "X-Snapshot-Age", "X-Content-Type-Options"):
        assert header in response["headers"], header


def test_every_answer_says_nosniff(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(5))
    answers = [api.get(), api.get("/nope"), api.get(query="count=0"), api.get(method="POST"),
               api.get(method="OPTIONS"), api.app.invoke({}, FakeContext(), False)]  # fmt: skip
    misconfigured = build_app({})
    answers.append(misconfigured.invoke(http_event(), FakeContext(), False))
    assert [a["headers"]["X-Content-Type-Options"] for a in answers] == ["nosniff"] * len(answers)


def test_a_plain_options_request_lists_the_methods(api: ApiHarness) -> None:
    response = api.get(f"{USERS}someone", method="OPTIONS")
    assert response["statusCode"] == 204
    assert response["headers"]["Allow"] == "GET, HEAD, OPTIONS"
    assert "Access-Control-Allow-Methods" not in response["headers"]


# ---- input rules ---------------------------------------------------------------------------------------


def test_a_uuid_is_found_whatever_its_case(api: ApiHarness, cache_tools: CacheTools) -> None:
    entries = make_entries(5)
    cache_tools.write(entries)
    stored = entries[2].user_id  # lower case, as PostgreSQL prints a uuid
    for asked in (stored, stored.upper(), stored[:9] + stored[9:].upper()):
        response = api.get(USERS + asked)
        assert response["statusCode"] == 200, asked
        assert body_of(response)["user"]["user_id"] == stored


def test_ids_that_are_not_uuids_are_compared_exactly(api: ApiHarness, cache_tools: CacheTools) -> None:
    entries = [e._replace(user_id=f"Player-{e.rank}") for e in make_entries(3)]
    cache_tools.write(entries)
    assert api.get(USERS + "Player-2")["statusCode"] == 200
    assert body_of(api.get(USERS + "player-2"))["error"]["code"] == "user_not_ranked"


def test_an_over_long_id_is_a_400(api: ApiHarness, cache_tools: CacheTools) -> None:
    cache_tools.write(make_entries(3))
    response = api.get(USERS + "x" * 129)
    assert response["statusCode"] == 400
    assert body_of(response)["error"] == {
        "code": "invalid_user_id",
        "message": "user_id must be 1 to 128 visible characters",
    }
    check_response("/leaderboard/users/{user_id}", response)
    assert body_of(api.get(USERS + "x" * 128))["error"]["code"] == "user_not_ranked"


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/leaderboard", "count=1&count=2", "count must be given once"),
        ("/leaderboard", "offset=1&offset=1", "offset must be given once"),
        ("/leaderboard", "board=global&board=global", "board must be given once"),
        (f"{USERS}x", "around=1&around=x", "around must be given once"),
    ],
)
def test_a_repeated_parameter_gets_one_message(
    api: ApiHarness, cache_tools: CacheTools, path: str, query: str, message: str
) -> None:
    cache_tools.write(make_entries(3))
    response = api.get(path, query)
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["message"] == message
