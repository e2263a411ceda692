"""R5: property-based fuzzing of everything a client (or a misconfigured integration) can send.

Over 10,000 generated requests in both payload versions: no 5xx other than the documented 503s, no
traceback or internal name in any body, and every error body is the documented JSON error.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_lambda.app import ApiApp, build_app
from common.runtime import run
from testkit.engines import SqsEngine, ValkeyServer
from tests.harness import CacheTools, ValkeyTarget, api_env
from tests.openapi import spec
from tests.support import FakeContext, http_event, make_entries

ERROR_CODES = set(
    spec()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
)
DOCUMENTED_STATUS = {200, 204, 304, 400, 404, 405, 503}  # 204: OPTIONS (CORS preflight)
INTERNAL = re.compile(
    r"Traceback|File \"|api_lambda|common\.|refresh_worker|glide|GlideError|Exception|\.py\b"
)
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)

NAMES = st.sampled_from(["count", "offset", "board", "around", "Count", "count[]", "", "x", "\x00", "🙂"])
VALUES = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(
        ["", "10", "0010", "1e2", "0x10", "10.0", " 5", "5 ", "+5", "-0", "٣", "global", "challenge:a",
         "challenge:", "Global", "challenge:{x}", "%", "%%", "%ZZ", "%00", "\u202e", "null", "[]", "9" * 5000,
         "%" * 3000, "a" * 4097]
    ),
    st.text(max_size=40),
)  # fmt: skip
PATHS = st.one_of(
    st.sampled_from(
        ["/leaderboard", "/leaderboard/", "/leaderboard/users/", "/leaderboard/users/x", "/", "",
         "//leaderboard", "/leaderboard/users/00000000-0000-0000-0000-000000000001", "/leaderboard/users/a/b",
         "/LEADERBOARD", "/leaderboard%2Fusers%2Fx", "/leaderboard/users/%ff", "/../etc/passwd",
         "/leaderboard/users/" + "x" * 200]
    ),
    st.text(max_size=60).map(lambda t: "/" + t),
    st.text(max_size=30).map(lambda t: "/leaderboard/users/" + quote(t, safe="")),
)  # fmt: skip
METHODS = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"]), st.text(max_size=10)
)
HEADERS = st.dictionaries(
    st.sampled_from(
        ["If-None-Match", "if-none-match", "Accept", "Content-Type", "X-Forwarded-For", "Cookie"]
    ),
    st.one_of(st.text(max_size=50), st.sampled_from(['"1"', "*", 'W/"x"', ",,,", '"' * 300])),
    max_size=4,
)


@pytest.fixture(scope="module")
def fuzz_api(valkey: ValkeyServer, sqs: SqsEngine) -> Iterator[ApiApp]:
    """One app for all examples: standalone Valkey (input handling does not depend on the topology),
    a snapshot present on two boards, no waiting on misses."""
    target = ValkeyTarget(valkey.host, valkey.port, cluster=False)
    prefix = f"fuzz-{uuid.uuid4().hex[:8]}"
    queues = sqs.create_queues(prefix)
    tools = CacheTools(target, prefix)
    tools.write(make_entries(30, tie_groups=3))
    tools.write(make_entries(5), board="challenge:a")
    tools.close()
    app = build_app(
        api_env(target, prefix, queues, LEADERBOARD_MISS_WAIT_MS="0", LEADERBOARD_BOARDS="global,challenge:a")
    )
    assert isinstance(app, ApiApp)
    yield app
    run(app.close())


def check(response: Any, *, head: bool = False) -> None:
    assert isinstance(response, dict)
    status = response["statusCode"]
    assert status in DOCUMENTED_STATUS, response
    body = response["body"]
    assert isinstance(body, str)
    assert not INTERNAL.search(body), body
    assert response["isBase64Encoded"] is False
    if head:
        assert body == ""
    elif status >= 400:
        error = json.loads(body)
        assert set(error) == {"error"}
        assert set(error["error"]) == {"code", "message"}
        assert error["error"]["code"] in ERROR_CODES
        if status == 503:
            assert error["error"]["code"] in {"cache_unavailable", "warming_up", "snapshot_too_old"}
    elif status == 200 and body:
        assert isinstance(json.loads(body)["entries"], list)


@settings(FUZZ, max_examples=3000)
@given(query=st.lists(st.tuples(NAMES, VALUES), max_size=6), version=st.sampled_from(["2.0", "1.0"]))
def test_fuzz_query_strings(fuzz_api: ApiApp, query: list[tuple[str, str]], version: str) -> None:
    raw = "&".join(f"{quote(k, safe='')}={quote(v, safe='%')}" for k, v in query)
    check(fuzz_api.invoke(http_event("/leaderboard", raw, version=version), FakeContext(), False))


@settings(FUZZ, max_examples=1500)
@given(raw=st.text(max_size=300), version=st.sampled_from(["2.0", "1.0"]))
def test_fuzz_raw_query_strings(fuzz_api: ApiApp, raw: str, version: str) -> None:
    check(fuzz_api.invoke(http_event("/leaderboard", raw, version=version), FakeContext(), False))


@settings(FUZZ, max_examples=2500)
@given(
    path=PATHS,
    method=METHODS,
    headers=HEADERS,
    version=st.sampled_from(["2.0", "1.0"]),
    stage=st.sampled_from(["$default", "prod", "v1"]),
    query=st.sampled_from(["", "count=3", "around=2", "board=challenge:a&count=2", "offset=29", "around=x"]),
)
def test_fuzz_paths_methods_and_headers(
    fuzz_api: ApiApp, path: str, method: str, headers: dict[str, str], version: str, stage: str, query: str
) -> None:
    event = http_event(path, query, method=method, headers=headers, version=version, stage=stage)
    check(fuzz_api.invoke(event, FakeContext(), False), head=method.upper() == "HEAD")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
EVENT_KEYS = ["version", "rawPath", "rawQueryString", "headers", "requestContext", "httpMethod", "path",
              "queryStringParameters", "multiValueQueryStringParameters", "multiValueHeaders"]  # fmt: skip


@settings(FUZZ, max_examples=3000)
@given(
    version=st.sampled_from(["2.0", "1.0"]),
    damage=st.dictionaries(st.sampled_from(EVENT_KEYS), JSON, min_size=1, max_size=4),
    drop=st.lists(st.sampled_from(EVENT_KEYS), max_size=3),
)
def test_fuzz_malformed_events(
    fuzz_api: ApiApp, version: str, damage: dict[str, Any], drop: list[str]
) -> None:
    event = copy.deepcopy(http_event("/leaderboard", "count=2", version=version))
    event.update(damage)
    for name in drop:
        event.pop(name, None)
    check(fuzz_api.invoke(event, FakeContext(), False))


@settings(FUZZ, max_examples=200)
@given(event=JSON)
def test_fuzz_events_that_are_not_events_at_all(fuzz_api: ApiApp, event: Any) -> None:
    check(fuzz_api.invoke(event, FakeContext(), False))
