"""API Gateway (HTTP API, payload format 2.0) in front of a Lambda handler, as an ASGI application.

Each HTTP request becomes the event API Gateway would send (`build_event`), the handler is called
unchanged, and its result becomes the HTTP response API Gateway would return (`response_parts`).

Threading, and why. valkey-glide serves one event loop per process (see common/runtime.py), and the
handler drives its own loop. uvicorn's loop must therefore never run handler code: every invocation
goes to ONE dedicated thread (a single-worker executor), whose loop is this "container's" loop. One
thread also gives Lambda's concurrency model: a container handles one request at a time, the others
wait their turn; more concurrency means more processes (`--api-workers`).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from common.logs import get_logger
from testkit.lambda_context import LambdaContext

__all__ = ["HttpApiGateway", "build_event", "new_request_id", "response_parts"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[dict[str, Any], Any], Any]

MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API's payload limit
INTEGRATION_TIMEOUT_SECONDS = 30.0  # HTTP API's maximum integration timeout
_JSON = "application/json"

log = get_logger("devstack.gateway")


def new_request_id() -> str:
    """Shaped like HTTP API's request ids ("JkVm4jGXoAMEVqw=")."""
    return base64.b64encode(os.urandom(11)).decode()


def _headers(scope: Scope) -> tuple[dict[str, str], list[str]]:
    """Lowercase names, repeated headers joined with commas; cookies go to their own list (as in 2.0)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers, cookies


def build_event(scope: Scope, body: bytes, request_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The HTTP API 2.0 event for one request. rawPath and rawQueryString are exactly what was sent."""
    now = now or datetime.now(UTC)
    raw_path_bytes = scope.get("raw_path")
    raw_path = raw_path_bytes.decode("latin-1") if raw_path_bytes else quote(scope.get("path", "/"))
    raw_query = scope.get("query_string", b"").decode("latin-1")
    headers, cookies = _headers(scope)
    client = scope.get("client")
    host = headers.get("host", "localhost").split(":")[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if raw_query:
        grouped: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            grouped[name] = f"{grouped[name]},{value}" if name in grouped else value
        event["queryStringParameters"] = grouped
    event["requestContext"] = {
        "accountId": "000000000000",
        "apiId": "devstack",
        "domainName": host,
        "domainPrefix": host.split(".")[0],
        "http": {
            "method": scope.get("method", "GET"),
            "path": raw_path,
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
            "sourceIp": client[0] if client else "127.0.0.1",
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    event["isBase64Encoded"] = False
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def _message(status: int, text: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps({"message": text}).encode()
    return status, [("content-type", _JSON)], body


def response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """What API Gateway makes of a handler's return value (payload format 2.0 rules).

    A dict with `statusCode` is taken as-is; anything else that is JSON-serialisable is a 200 with the
    value as JSON body; a malformed response is a 500, as API Gateway returns it.
    """
    if isinstance(result, dict) and "statusCode" in result:
        try:
            status = int(result["statusCode"])
            raw_body = result.get("body") or ""
            body = base64.b64decode(raw_body) if result.get("isBase64Encoded") else str(raw_body).encode()
            headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
            headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
        except (TypeError, ValueError, AttributeError):
            return _message(500, "Internal Server Error")
        return status, headers, body
    if isinstance(result, str):
        return 200, [("content-type", _JSON)], result.encode()
    try:
        return 200, [("content-type", _JSON)], json.dumps(result).encode()
    except (TypeError, ValueError):
        return _message(500, "Internal Server Error")


def _framed(head: bool, status: int, headers: list[tuple[str, str]], payload: bytes) -> list[tuple[str, str]]:
    """`Content-Length` as RFC 9110 wants it: the body's length. On HEAD, the length the GET would
    have had: the handler's own header (our handler sends no body on HEAD), else the length of the
    body it returned anyway, else none. None on 204 and 304 (8.6, 15.4.5), which have no content."""
    given = [v for k, v in headers if k == "content-length"]
    framed = [(k, v) for k, v in headers if k != "content-length"]
    if status in (204, 304) or status < 200:
        return framed
    if head and given:
        return [*framed, ("content-length", given[-1])]
    if head and not payload:
        return framed
    return [*framed, ("content-length", str(len(payload)))]


class HttpApiGateway:
    """The ASGI application. `handler` is "module:function", imported in the handler thread at
    startup (Lambda's init phase); `on_ready` runs once the handler is loaded."""

    def __init__(
        self,
        handler: str,
        *,
        function_name: str,
        timeout_seconds: float,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self._handler_ref = handler
        self._function_name = function_name
        self._timeout = timeout_seconds
        self._on_ready = on_ready
        self._executor: ThreadPoolExecutor | None = None
        self._handler: Handler | None = None

    def _load(self) -> Handler:
        module_name, _, attribute = self._handler_ref.partition(":")
        handler: Handler = getattr(importlib.import_module(module_name), attribute)
        return handler

    def _invoke(self, event: dict[str, Any]) -> Any:
        assert self._handler is not None
        return self._handler(event, LambdaContext(self._function_name, self._timeout))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda")
                loop = asyncio.get_running_loop()
                try:
                    self._handler = await loop.run_in_executor(self._executor, self._load)
                except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which exits
                    self._executor.shutdown(wait=False)
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                if self._on_ready is not None:
                    self._on_ready()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = new_request_id()
        body = await self._read_body(receive)
        if body is None:
            status, headers, payload = _message(413, "Request Entity Too Large")
        else:
            event = build_event(scope, body, request_id)
            status, headers, payload = await self._call(event)
        headers = _framed(scope.get("method") == "HEAD", status, headers, payload)
        headers.append(("apigw-requestid", request_id))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else payload})
        query = scope.get("query_string", b"").decode("latin-1")
        log.info(
            "http_request",
            method=scope.get("method"),
            path=scope.get("path", "") + (f"?{query}" if query else ""),
            status=status,
            cache=dict(headers).get("x-cache"),
            ms=round((time.perf_counter() - started) * 1000, 1),
            request_id=request_id,
        )

    async def _call(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._invoke, event)
            result = await asyncio.wait_for(future, INTEGRATION_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("integration_timeout", seconds=INTEGRATION_TIMEOUT_SECONDS)
            return _message(503, "Service Unavailable")
        except Exception:  # a raising handler is a 500, as behind API Gateway
            log.exception("handler_failed")
            return _message(500, "Internal Server Error")
        return response_parts(result)
