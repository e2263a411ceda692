"""API Gateway events in, API Gateway responses out: payload format 2.0 (HTTP API) and 1.0 (REST API).

Every error leaves through `error_response`, as the documented JSON body. Whatever arrives — a malformed
event, bytes that are not UTF-8, a query string with a thousand fields — becomes an ApiError here or in
api_lambda/routes.py (where domain outcomes are mapped), never a traceback.

The headers every client and cache in between relies on are decided here too: `CachePolicy` (how long a
HIT, STALE or MISS answer may be kept, see README "HTTP caching"), `Cors` (which browser pages may read
the answers) and `Response.to_event` (nosniff, and HEAD/304 framing).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

__all__ = [
    "ApiError",
    "CachePolicy",
    "Cors",
    "Request",
    "Response",
    "error_response",
    "event_header",
    "parse_event",
]

MAX_QUERY_FIELDS = 64
MAX_QUERY_LENGTH = 4096
MAX_PATH_LENGTH = 1024
JSON_TYPE = "application/json; charset=utf-8"
ALLOW = "GET, HEAD, OPTIONS"  # what `Allow` lists: OPTIONS answers CORS preflights
CORS_METHODS = "GET, HEAD"  # what a cross-origin page may send
CORS_REQUEST_HEADERS = "If-None-Match"  # the one non-safelisted request header the API reads
CORS_EXPOSED_HEADERS = "ETag, X-Cache, X-Snapshot-Age, Retry-After"  # readable by the page's script
CORS_MAX_AGE_SECONDS = 600  # how long a browser may reuse a preflight answer (template.yaml: MaxAge)


class ApiError(Exception):
    """An error with its HTTP status, machine-readable code and human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def not_found(code: str, message: str) -> ApiError:
    return ApiError(404, code, message)


@dataclass(slots=True)
class Request:
    method: str
    path: str  # stage prefix removed: what the routes match
    raw_path: str  # as the client sent it (with the stage prefix): what links are built from
    query: dict[str, list[str]]
    if_none_match: str | None
    request_id: str | None
    version: str  # "2.0" or "1.0"
    origin: str | None = None  # the browser page's origin, for CORS
    preflight_method: str | None = None  # Access-Control-Request-Method: set on a CORS preflight


@dataclass(slots=True)
class Response:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def to_event(self, head: bool = False) -> dict[str, Any]:
        """The proxy-integration result; every Response is built with its Content-Type already.

        `nosniff` goes on every answer: bodies carry user-chosen names (`<script>…` is a valid username)
        and must never be sniffed into HTML. A HEAD answer has no body but the Content-Length the GET
        would have had (RFC 9110 9.3.2); a 304 has neither (an API Gateway or HTTP server in front must
        not invent `Content-Length: 0`, which caches would store as the entity's length).
        """
        headers = self.headers
        headers["X-Content-Type-Options"] = "nosniff"
        body = self.body
        if self.status in (204, 304):
            body = ""
        elif head:
            headers["Content-Length"] = str(len(body.encode()))
            body = ""
        return {"statusCode": self.status, "headers": headers, "body": body, "isBase64Encoded": False}


CLOSED_MAX_AGE = 86_400  # a day: a past week's board is final, a cache need not ask again sooner


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long caches may keep an answer, from the snapshot's age (README "HTTP caching" says why).

    - Fresh (HIT, MISS): `max-age` is what is left of the freshness window, rounded up, and no `Age`
      is sent. Caches (Varnish, CloudFront, browsers) subtract an origin's `Age` from `max-age`, so the
      old pair "max-age=window, Age=snapshot age" made every answer past the window uncacheable
      (Varnish stores remaining TTL <= 0 as hit-for-miss). Rounding up keeps a cached copy until the
      snapshot is stale, never a second too short, so the next fetch is the one that asks for a refresh.
    - STALE, refresh just requested: `max-age` lasts until `stale_max_age` after the snapshot went
      stale, when the refresh should have landed; the next fetch then gets the new snapshot.
    - STALE for longer than that (the refresh is failing, or nobody read the board for a while): one
      freshness window at a time, so an outage costs caches one origin request per URL per window.
    - `stale-while-revalidate` and `stale-if-error` as configured, both capped so that no cache serves
      a copy older than LEADERBOARD_MAX_STALE_SECONDS (when set).
    """

    fresh_seconds: int
    stale_max_age: int
    stale_while_revalidate: int
    stale_if_error: int
    max_stale_seconds: int | None = None

    def max_age(self, age_seconds: float) -> int:
        fresh = self.fresh_seconds
        if age_seconds < fresh:
            return math.ceil(fresh - age_seconds)
        stale_for = age_seconds - fresh
        if stale_for < self.stale_max_age:
            return math.ceil(self.stale_max_age - stale_for)
        return fresh

    def cache_control(self, age_seconds: float) -> str:
        max_age = self.max_age(age_seconds)
        swr, sie = self.stale_while_revalidate, self.stale_if_error
        if self.max_stale_seconds is not None:
            room = max(0, math.floor(self.max_stale_seconds - age_seconds))
            max_age = min(max_age, room)
            swr, sie = min(swr, room - max_age), min(sie, room - max_age)
        return _cache_control(max_age, swr, sie)

    def cache_control_closed(self) -> str:
        """A closed board (its period ended and the snapshot is final): it never changes again, so
        caches may keep it long (CLOSED_MAX_AGE)."""
        return _cache_control(CLOSED_MAX_AGE, self.stale_while_revalidate, self.stale_if_error)

    def cache_control_on_error(self, age_seconds: float) -> str:
        """The container's last copy, answered because Valkey failed (stale-if-error at the origin):
        stale to every cache at once (max-age=0), usable by them only under their own stale-if-error,
        capped like the others by LEADERBOARD_MAX_STALE_SECONDS."""
        sie = self.stale_if_error
        if self.max_stale_seconds is not None:
            sie = min(sie, max(0, math.floor(self.max_stale_seconds - age_seconds)))
        return _cache_control(0, 0, sie)


@lru_cache(maxsize=1024)
def _cache_control(max_age: int, swr: int, sie: int) -> str:
    return f"public, max-age={max_age}, stale-while-revalidate={swr}, stale-if-error={sie}"


class Cors:
    """CORS answers, the same as API Gateway's `CorsConfiguration` gives in AWS (template.yaml), for
    `make dev`, REST APIs and any other front. With `*` (the default: public data, no credentials)
    every answer says so and does not vary; with a list, only a listed Origin is echoed back and every
    answer carries `Vary: Origin`, so that caches keep one copy per origin."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self._any = origins == ("*",)
        self._origins = frozenset(origins)
        self._wildcard = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": CORS_EXPOSED_HEADERS,
        }

    def apply(self, response: Response, origin: str | None) -> Response:
        """Add the CORS headers for a request from `origin` (None: not from a browser page)."""
        headers = response.headers
        if self._any:
            headers.update(self._wildcard)
            return response
        headers["Vary"] = f"{headers['Vary']}, Origin" if "Vary" in headers else "Origin"
        if origin is not None and origin.lower() in self._origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
        return response

    def options(self, request: Request) -> Response:
        """OPTIONS on a resource: 204 with `Allow`, plus the preflight answer when it is one."""
        headers = {"Allow": ALLOW, "Cache-Control": "no-store"}
        if request.origin is not None and request.preflight_method is not None:
            headers["Access-Control-Allow-Methods"] = CORS_METHODS
            headers["Access-Control-Allow-Headers"] = CORS_REQUEST_HEADERS
            headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_SECONDS)
        return Response(204, "", headers)


def error_response(error: ApiError) -> Response:
    body = json.dumps({"error": {"code": error.code, "message": error.message}}, separators=(",", ":"))
    headers = {"Content-Type": JSON_TYPE, "Cache-Control": "no-store", **error.headers}
    return Response(error.status, body, headers)


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _header_v1(raw: Any, multi: Any, name: str) -> str | None:
    """A header of a REST API (1.0) event, whose header names keep the client's case."""
    value: str | None = None
    if isinstance(raw, dict):
        for key, item in raw.items():
            if isinstance(key, str) and isinstance(item, str) and key.lower() == name:
                value = item
    if isinstance(multi, dict):
        for key, items in multi.items():
            if isinstance(key, str) and isinstance(items, list) and key.lower() == name:
                joined = ",".join(v for v in items if isinstance(v, str))
                value = joined or value
    return value


def _header_v2(raw: Any, name: str) -> str | None:
    """A header of an HTTP API (2.0) event: API Gateway lowercases names and comma-joins repeats."""
    value = raw.get(name) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _query_v2(raw: str) -> dict[str, list[str]]:
    if len(raw) > MAX_QUERY_LENGTH:
        raise bad_request("invalid_query", f"the query string is longer than {MAX_QUERY_LENGTH} characters")
    if raw.count("&") >= MAX_QUERY_FIELDS:
        raise bad_request("invalid_query", f"the query string has more than {MAX_QUERY_FIELDS} fields")
    if "%" not in raw and "+" not in raw:
        # Nothing to decode (the usual `count=10`): split by hand, exactly as parse_qs would, 5x faster.
        query: dict[str, list[str]] = {}
        for part in raw.split("&"):
            if part:
                name, _, value = part.partition("=")
                query.setdefault(name, []).append(value)
        return query
    try:
        return parse_qs(raw, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("invalid_query", "the query string is not valid UTF-8 with %-escapes") from None


def _query_v1(single: Any, multi: Any) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    if isinstance(multi, dict):
        for name, values in multi.items():
            if isinstance(name, str) and isinstance(values, list):
                query[name] = [v for v in values if isinstance(v, str)]
    elif isinstance(single, dict):
        for name, value in single.items():
            if isinstance(name, str) and isinstance(value, str):
                query[name] = [value]
    if (
        len(query) > MAX_QUERY_FIELDS
        or sum(len(k) + sum(map(len, v)) for k, v in query.items()) > MAX_QUERY_LENGTH
    ):
        raise bad_request("invalid_query", f"the query string is longer than {MAX_QUERY_LENGTH} characters")
    return query


def _strip_stage(path: str, stage: str | None) -> str:
    if stage and stage != "$default":
        prefix = "/" + stage
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return path


def event_header(event: Any, name: str) -> str | None:
    """One request header (lowercase `name`) of either payload version, or None; never raises."""
    if not isinstance(event, dict):
        return None
    if event.get("version") == "2.0":
        return _header_v2(event.get("headers"), name)
    return _header_v1(event.get("headers"), event.get("multiValueHeaders"), name)


def parse_event(event: Any) -> Request:
    """Turn an API Gateway proxy event (either payload version) into a Request, or raise ApiError."""
    if not isinstance(event, dict):
        raise bad_request("invalid_request", "the event is not an API Gateway HTTP request")
    context = event.get("requestContext")
    context = context if isinstance(context, dict) else {}
    fields = _fields_v2(event, context) if event.get("version") == "2.0" else _fields_v1(event, context)
    return _request(context, *fields)


# method, route path, link path, query, version, If-None-Match, Origin, Access-Control-Request-Method
_Fields = tuple[
    str | None, str | None, str | None, dict[str, list[str]], str, str | None, str | None, str | None
]


def _fields_v1(event: dict[str, Any], context: dict[str, Any]) -> _Fields:
    route_path = _as_str(event.get("path"))
    # REST API's `path` has no stage; links need it, and requestContext.path has it.
    context_path = _as_str(context.get("path"))
    link_path = (
        context_path if context_path and route_path and context_path.endswith(route_path) else route_path
    )
    query = _query_v1(event.get("queryStringParameters"), event.get("multiValueQueryStringParameters"))
    raw, multi = event.get("headers"), event.get("multiValueHeaders")
    header = _header_v1
    method = _as_str(event.get("httpMethod"))
    return (method, route_path, link_path, query, "1.0", header(raw, multi, "if-none-match"),
            header(raw, multi, "origin"), header(raw, multi, "access-control-request-method"))  # fmt: skip


def _fields_v2(event: dict[str, Any], context: dict[str, Any]) -> _Fields:
    """Payload 2.0, the hot path: its header names come lowercased, so the three we read are three
    lookups in one dict (about a third of the cost of parsing the event through the general helpers)."""
    http = context.get("http")
    method = _as_str(http.get("method")) if isinstance(http, dict) else None
    link_path = _as_str(event.get("rawPath"))
    # rawPath keeps a named stage ("/prod/leaderboard"); routes are matched without it.
    route_path = _strip_stage(link_path, _as_str(context.get("stage"))) if link_path else None
    query = _query_v2(_as_str(event.get("rawQueryString")) or "")
    headers = event.get("headers")
    get = headers.get if isinstance(headers, dict) else {}.get
    return (method, route_path, link_path, query, "2.0", _as_str(get("if-none-match")),
            _as_str(get("origin")), _as_str(get("access-control-request-method")))  # fmt: skip


def _request(
    context: dict[str, Any],
    method: str | None,
    route_path: str | None,
    link_path: str | None,
    query: dict[str, list[str]],
    version: str,
    if_none_match: str | None,
    origin: str | None,
    preflight_method: str | None,
) -> Request:
    if method is None or route_path is None or link_path is None:
        raise bad_request("invalid_request", "the event is not an API Gateway HTTP request")
    if len(route_path) > MAX_PATH_LENGTH:
        raise not_found("not_found", "no such resource")
    if "%" in route_path:
        try:
            route_path = unquote(route_path, errors="strict")
        except UnicodeDecodeError:
            raise not_found("not_found", "no such resource") from None
    return Request(
        method.upper(),
        route_path,
        link_path,
        query,
        if_none_match,
        _as_str(context.get("requestId")),
        version,
        origin,
        preflight_method,
    )
