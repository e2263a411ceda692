"""The API Gateway emulation of the local stack: HTTP request → HTTP API 2.0 event → HTTP response.

The ASGI application is driven in-process (no server), with small handlers defined here.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_lambda.http import parse_event
from devstack.gateway import HttpApiGateway, build_event, new_request_id, response_parts

SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "events" / "http-api-v2.json").read_text())


def scope(
    method: str = "GET",
    raw_path: bytes = b"/leaderboard",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers or [(b"host", b"127.0.0.1:8000")],
        "client": ("10.1.2.3", 50000),
    }


def test_the_event_is_http_api_payload_2_0_with_everything_as_received() -> None:
    # Given a request with a percent-encoded path, a repeated parameter, repeated headers and cookies
    request = scope(
        raw_path=b"/leaderboard/users/a%20b",
        query=b"count=5&count=6&name=%C3%A9t%C3%A9&flag",
        headers=[
            (b"host", b"127.0.0.1:8000"),
            (b"x-dup", b"one"),
            (b"x-dup", b"two"),
            (b"cookie", b"a=1; b=2"),
            (b"user-agent", b"curl/8.5"),
        ],
    )
    # When it becomes an event
    event = build_event(request, b"", "req-1")
    # Then rawPath and rawQueryString are exactly what was sent, and the rest is as API Gateway builds it
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/leaderboard/users/a%20b"
    assert event["rawQueryString"] == "count=5&count=6&name=%C3%A9t%C3%A9&flag"
    assert event["queryStringParameters"] == {"count": "5,6", "name": "été", "flag": ""}
    assert event["headers"] == {"host": "127.0.0.1:8000", "x-dup": "one,two", "user-agent": "curl/8.5"}
    assert event["cookies"] == ["a=1", "b=2"]
    http = event["requestContext"]["http"]
    assert http == {"method": "GET", "path": "/leaderboard/users/a%20b", "protocol": "HTTP/1.1",
                    "sourceIp": "10.1.2.3", "userAgent": "curl/8.5"}  # fmt: skip
    context = event["requestContext"]
    assert (context["requestId"], context["stage"], context["routeKey"]) == ("req-1", "$default", "$default")
    assert event["isBase64Encoded"] is False and "body" not in event
    # And it has no key that the sample event (events/, a GET as API Gateway sends it) lacks, but for the
    # cookies API Gateway adds when there are some
    assert set(event) <= {*SAMPLE, "cookies"}
    assert set(context) <= set(SAMPLE["requestContext"])
    # And the API function reads it as intended
    parsed = parse_event(event)
    assert (parsed.method, parsed.path, parsed.query["count"]) == (
        "GET",
        "/leaderboard/users/a b",
        ["5", "6"],
    )


def test_an_empty_query_has_no_parameters_and_a_binary_body_is_base64() -> None:
    # Given a request without a query string and with a body that is not UTF-8
    event = build_event(scope(method="POST"), b"\xff\x00", "req-2")
    # Then the event has an empty rawQueryString, no parameters, and the body in base64
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"


def test_request_ids_are_unique_and_shaped_like_api_gateways() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 16 and i.endswith("=") for i in ids)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            {"statusCode": 201, "headers": {"X-A": "1"}, "body": "hi", "cookies": ["c=1"]},
            (201, [("x-a", "1"), ("set-cookie", "c=1")], b"hi"),
        ),
        (
            {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True},
            (200, [], b"\x00\x01"),
        ),
        ({"hello": "world"}, (200, [("content-type", "application/json")], b'{"hello": "world"}')),
        ("plain", (200, [("content-type", "application/json")], b"plain")),
        (
            {"statusCode": "not a number"},
            (500, [("content-type", "application/json")], b'{"message": "Internal Server Error"}'),
        ),
    ],
)
def test_handler_results_become_responses_by_payload_2_0_rules(
    result: Any, expected: tuple[int, list[tuple[str, str]], bytes]
) -> None:
    assert response_parts(result) == expected


# ---- the ASGI application, in-process ---------------------------------------------------------------


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A handler that answers with what it was given."""
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"event": event, "remaining_ms": context.get_remaining_time_in_millis()}),
    }


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("handler bug")


def framed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers as the API handler does: the status from the path, no body on HEAD but its length."""
    status = int(event["rawPath"].strip("/") or 200)
    headers = {"Content-Type": "application/json", "Content-Length": "0"}
    if event["requestContext"]["http"]["method"] == "HEAD":
        return {"statusCode": status, "headers": {**headers, "Content-Length": "636"}, "body": ""}
    return {"statusCode": status, "headers": headers, "body": "" if status in (204, 304) else "{}"}


class Asgi:
    """Minimal ASGI driver: lifespan, then requests, on one event loop."""

    def __init__(self, app: HttpApiGateway) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sent: list[dict[str, Any]] = []

    def start(self) -> None:
        async def go() -> None:
            answered = asyncio.Event()

            async def send(message: Any) -> None:
                self._sent.append(message)
                answered.set()

            self._task = asyncio.ensure_future(self.app({"type": "lifespan"}, self._lifespan.get, send))
            await self._lifespan.put({"type": "lifespan.startup"})
            await answered.wait()

        self.loop.run_until_complete(go())
        assert self._sent[-1]["type"] == "lifespan.startup.complete", self._sent

    def request(self, request: dict[str, Any], body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.app(request, receive, send))
        start, content = sent
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return start["status"], headers, content["body"]

    def stop(self) -> None:
        self.loop.run_until_complete(self._lifespan.put({"type": "lifespan.shutdown"}))
        self.loop.run_until_complete(self._task)
        self.loop.close()


@pytest.fixture
def gateway(request: pytest.FixtureRequest) -> Iterator[Asgi]:
    ready: list[bool] = []
    app = HttpApiGateway(
        f"tests.unit.test_gateway:{request.param}",
        function_name="fn",
        timeout_seconds=10,
        on_ready=lambda: ready.append(True),
    )
    driver = Asgi(app)
    driver.start()
    assert ready == [True]
    yield driver
    driver.stop()


@pytest.mark.parametrize("gateway", ["echo"], indirect=True)
def test_the_handler_gets_the_event_and_a_context_counting_down_from_the_timeout(gateway: Asgi) -> None:
    # When a request goes through the gateway
    status, headers, body = gateway.request(scope(query=b"count=3"))
    # Then the handler saw the 2.0 event and a context with the function's timeout ahead of it
    assert status == 200
    seen = json.loads(body)
    assert seen["event"]["rawQueryString"] == "count=3"
    assert 9_000 < seen["remaining_ms"] <= 10_000
    # And the response carries API Gateway's request id and the right length
    assert headers["apigw-requestid"] == seen["event"]["requestContext"]["requestId"]
    assert headers["content-length"] == str(len(body))


@pytest.mark.parametrize("gateway", ["echo"], indirect=True)
def test_head_sends_the_headers_without_the_body(gateway: Asgi) -> None:
    status, headers, body = gateway.request(scope(method="HEAD"))
    assert status == 200
    assert body == b""
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize("gateway", ["boom"], indirect=True)
def test_a_raising_handler_is_a_500_as_behind_api_gateway(gateway: Asgi) -> None:
    status, headers, body = gateway.request(scope())
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}
    assert headers["content-type"] == "application/json"


def test_a_handler_that_cannot_be_loaded_fails_the_startup() -> None:
    # Given a gateway whose handler does not exist
    driver = Asgi(HttpApiGateway("tests.unit.test_gateway:missing", function_name="fn", timeout_seconds=1))
    # When it starts, then the server is told that startup failed (uvicorn then exits)
    with pytest.raises(AssertionError, match=r"lifespan\.startup\.failed"):
        driver.start()
    driver.loop.close()


@pytest.mark.parametrize("gateway", ["framed"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path", "length"),
    [
        ("GET", b"/200", "2"),  # the body's length, whatever the handler said
        ("HEAD", b"/200", "636"),  # the length the GET would have: the handler's own
        ("GET", b"/304", None),  # RFC 9110 15.4.5: no content, no Content-Length (not 0)
        ("HEAD", b"/304", None),
        ("GET", b"/204", None),
    ],
)
def test_content_length_is_the_gets_or_absent(
    gateway: Asgi, method: str, path: bytes, length: str | None
) -> None:
    status, headers, body = gateway.request(scope(method=method, raw_path=path))
    assert status == int(path.strip(b"/"))
    assert headers.get("content-length") == length
    assert body == (b"{}" if (method, status) == ("GET", 200) else b"")
