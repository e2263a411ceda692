"""Events in, responses out, on fakes: parsing both payload versions, routing, every query parameter's
validation and the mapping of domain outcomes to HTTP errors. Through the public entry points only
(`parse_event`, `ApiApp.invoke` / `ApiApp.handle`), so the tests hold however app.py is split.

What needs Valkey (the snapshot layout, the scripts) is tested in tests/integration/test_read_path.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest

from api_lambda.app import ApiApp, MisconfiguredApp, build_app
from api_lambda.http import ApiError, parse_event
from common.config import ApiSettings
from common.metrics import Metrics
from tests.fakes import FakeConnection, FakeRefreshQueue, FakeSnapshotStore, ranked
from tests.openapi import check_response
from tests.support import FakeContext, body_of, http_event

ENV = {"VALKEY_HOST": "fake", "REFRESH_QUEUE_URL": "https://sqs.example/1/q"}
VERSIONS = ["2.0", "1.0"]


@dataclass
class Given:
    app: ApiApp
    store: FakeSnapshotStore
    queue: FakeRefreshQueue
    emf: io.StringIO

    def get(self, path: str = "/leaderboard", query: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self.app.invoke(http_event(path, query, **kwargs), FakeContext(), False)


def given(entries: int = 30, **env: str) -> Given:
    settings = ApiSettings.from_env(ENV | {"LEADERBOARD_MISS_WAIT_MS": "0"} | env)
    store, queue, emf = FakeSnapshotStore(), FakeRefreshQueue(), io.StringIO()
    if entries:
        store.put("global", ranked(entries), version=7)
    metrics = Metrics(settings.metrics_namespace, settings.service, emf)
    app = ApiApp(settings, FakeConnection(), store, queue, metrics)  # type: ignore[arg-type]
    return Given(app, store, queue, emf)


# ---- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_both_payload_versions_parse_to_the_same_request(version: str) -> None:
    event = http_event("/leaderboard", {"count": ["5", "6"], "board": "global"}, version=version,
                       headers={"If-None-Match": '"3"'}, stage="prod")  # fmt: skip
    request = parse_event(event)
    assert request.method == "GET"
    assert request.path == "/leaderboard"
    assert request.raw_path == "/prod/leaderboard"
    assert request.query == {"count": ["5", "6"], "board": ["global"]}
    assert request.if_none_match == '"3"'


@pytest.mark.parametrize(
    "event", [{}, [], "GET /leaderboard", {"version": "2.0"}, {"httpMethod": 5, "path": None}]
)
def test_a_malformed_event_is_invalid_request_not_a_crash(event: Any) -> None:
    with pytest.raises(ApiError) as raised:
        parse_event(event)
    assert (raised.value.status, raised.value.code) == (400, "invalid_request")
    response = given().app.invoke(event, FakeContext(), False)
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "invalid_request"


# ---- validation of every query parameter --------------------------------------------------------

BAD_PAGE_QUERIES = [
    ("count=abc", "invalid_count"),
    ("count=0", "invalid_count"),
    ("count=-1", "invalid_count"),
    ("count=101", "invalid_count"),
    ("count=1.5", "invalid_count"),
    ("count=%205", "invalid_count"),
    ("count=", "invalid_count"),
    ("count=5&count=6", "invalid_count"),
    ("count=99999999999999999999", "invalid_count"),
    ("count=%EF%BC%95", "invalid_count"),  # a full-width digit five
    ("count=%C2%B3", "invalid_count"),  # a superscript three: isdigit() says yes, we say no
    ("offset=-3", "invalid_offset"),
    ("offset=x", "invalid_offset"),
    ("offset=10000001", "invalid_offset"),
    ("offset=1&offset=2", "invalid_offset"),
    ("board=", "invalid_board"),
    ("board=%7Bglobal%7D", "invalid_board"),
    ("board=challenge:a%20b", "invalid_board"),
    ("board=global&board=global", "invalid_board"),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("query", "code"), BAD_PAGE_QUERIES)
def test_bad_input_is_a_400_with_the_documented_json(query: str, code: str, version: str) -> None:
    # Given a snapshot that would answer
    g = given()
    # When a bad query arrives
    response = g.get(query=query, version=version)
    # Then it is a 400 naming the parameter, documented, with no traceback, and nothing was read
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == code
    assert "Traceback" not in response["body"]
    check_response("/leaderboard", response)
    assert g.store.reads == 0


USERS = "/leaderboard/users/"


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        (USERS + "x", {"around": "51"}, 400, "invalid_around"),
        (USERS + "x", {"around": "-1"}, 400, "invalid_around"),
        (USERS + "x", {"around": "a"}, 400, "invalid_around"),
        (USERS + "x", {"around": ["1", "2"]}, 400, "invalid_around"),
        (USERS + "a%00b", None, 400, "invalid_user_id"),
        (USERS + "a%20b", None, 400, "invalid_user_id"),
        (USERS + "a/b", None, 404, "not_found"),
        (USERS + "x" * 129, None, 400, "invalid_user_id"),
        (USERS, None, 404, "not_found"),
    ],
)
def test_bad_user_requests_are_a_4xx(path: str, query: Any, status: int, code: str) -> None:
    g = given()
    response = g.get(path, query)
    assert response["statusCode"] == status
    assert body_of(response)["error"]["code"] == code
    check_response("/leaderboard/users/{user_id}", response)
    assert g.store.reads == 0


@pytest.mark.parametrize("bad", ["challenge:", "Global", "challenge:" + "x" * 65, "challenge:a b", "x" * 300])
def test_malformed_board_names_are_a_400(bad: str) -> None:
    response = given(LEADERBOARD_BOARDS="global,challenge:two-sum").get(query={"board": bad})
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (400, "invalid_board")


def test_the_bounds_follow_configuration() -> None:
    g = given(LEADERBOARD_MAX_COUNT="20", LEADERBOARD_MAX_AROUND="3")
    assert g.get(query={"count": "20"})["statusCode"] == 200
    assert body_of(g.get(query={"count": "21"}))["error"]["message"] == "count must be an integer 1..20"
    assert g.get("/leaderboard/users/u00005", {"around": "4"})["statusCode"] == 400


def test_defaults_are_the_top_ten_of_the_global_board() -> None:
    body = body_of(given().get())
    assert (body["board"], body["offset"], body["count"]) == ("global", 0, 10)
    assert body["next"] == "/leaderboard?count=10&offset=10"


def test_a_page_past_the_end_is_empty_not_an_error() -> None:
    body = body_of(given(entries=5).get(query={"offset": "5"}))
    assert (body["entries"], body["next"]) == ([], None)


# ---- routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_paths_are_404_and_other_methods_405(version: str) -> None:
    g = given()
    for path in ("/nope", "/leaderboard/users/", "/leaderboard/users/a/b"):
        response = g.get(path, version=version)
        assert (response["statusCode"], body_of(response)["error"]["code"]) == (404, "not_found")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = g.get(method=method, version=version)
        assert response["statusCode"] == 405
        assert response["headers"]["Allow"] == "GET, HEAD, OPTIONS"
        assert body_of(response)["error"]["message"] == "only GET and HEAD are allowed"


def test_a_board_this_deployment_does_not_serve_is_404_before_any_read() -> None:
    g = given(LEADERBOARD_BOARDS="global")
    response = g.get(query={"board": "challenge:two-sum"})
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (404, "unknown_board")
    assert g.store.reads == 0


def test_a_user_route_finds_the_user_and_a_uuid_in_any_case() -> None:
    g = given()
    body = body_of(g.get("/leaderboard/users/u00004", {"around": "1"}))
    assert body["user"]["rank"] == 4
    assert [e["rank"] for e in body["entries"]] == [3, 4, 5]
    # PostgreSQL prints UUIDs in lower case: one asked for in upper case is the same player
    uuid = "0b3e8f52-6a1c-4d2e-9f00-aa11bb22cc33"
    g.store.put("global", [ranked(1)[0]._replace(user_id=uuid)])
    assert body_of(g.get(f"/leaderboard/users/{uuid.upper()}"))["user"]["user_id"] == uuid
    response = g.get("/leaderboard/users/nobody")
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (404, "user_not_ranked")


def test_head_has_no_body_and_a_matching_etag_is_a_304() -> None:
    g = given()
    head = g.get(method="HEAD")
    assert (head["statusCode"], head["body"]) == (200, "")
    etag = head["headers"]["ETag"]
    assert etag == '"7"'
    not_modified = g.get(headers={"If-None-Match": etag})
    assert (not_modified["statusCode"], not_modified["body"]) == (304, "")


@pytest.mark.parametrize(
    ("arrange", "status", "code", "retry_after"),
    [
        (lambda s: setattr(s, "down", True), 503, "cache_unavailable", "1"),
        (lambda s: s.boards.clear(), 503, "warming_up", "2"),
        (lambda s: s.absent.add("global") or s.boards.clear(), 404, "unknown_board", None),
    ],
)
def test_domain_outcomes_map_to_documented_errors(
    arrange: Any, status: int, code: str, retry_after: str | None
) -> None:
    g = given()
    arrange(g.store)
    response = g.get()
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (status, code)
    assert response["headers"].get("Retry-After") == retry_after
    check_response("/leaderboard", response)
    # counted, under the board, in the same invocation
    assert '"board":"global"' in g.emf.getvalue()


def test_a_miss_sends_one_refresh_request_through_the_queue() -> None:
    g = given(entries=0)
    assert g.get()["statusCode"] == 503
    assert [(r.board, r.reason) for r in g.queue.sent] == [("global", "miss")]


def test_an_invalid_configuration_answers_500_and_names_no_value() -> None:
    app = build_app({"VALKEY_HOST": "fake", "REFRESH_QUEUE_URL": "not a url", "LEADERBOARD_MAX_COUNT": "x"})
    assert isinstance(app, MisconfiguredApp)
    assert any("LEADERBOARD_MAX_COUNT" in problem for problem in app.error.problems)
    response = app.invoke(http_event(), FakeContext(), False)
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (500, "misconfigured")
    assert "not a url" not in response["body"]
