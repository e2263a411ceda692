"""API Gateway events in, API Gateway responses out: payload format 2.0 (HTTP API) and 1.0 (REST API).

Every error leaves through `error_response`, as the documented JSON body. Whatever arrives — a malformed
event, bytes that are not UTF-8, a query string with a thousand fields — becomes an ApiError here or in
api_lambda/app.py (where domain outcomes are mapped), never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

__all__ = [
    "ApiError",
    "Request",
    "Response",
    "error_response",
    "parse_event",
]

MAX_QUERY_FIELDS = 64
MAX_QUERY_LENGTH = 4096
MAX_PATH_LENGTH = 1024
JSON_TYPE = "application/json; charset=utf-8"


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


@dataclass(slots=True)
class Response:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def to_event(self, head: bool = False) -> dict[str, Any]:
        """The proxy-integration result; every Response is built with its Content-Type already."""
        return {
            "statusCode": self.status,
            "headers": self.headers,
            "body": "" if head else self.body,
            "isBase64Encoded": False,
        }


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


def parse_event(event: Any) -> Request:
    """Turn an API Gateway proxy event (either payload version) into a Request, or raise ApiError."""
    if not isinstance(event, dict):
        raise bad_request("invalid_request", "the event is not an API Gateway HTTP request")
    context = event.get("requestContext")
    context = context if isinstance(context, dict) else {}
    if event.get("version") == "2.0":
        http = context.get("http")
        method = _as_str(http.get("method")) if isinstance(http, dict) else None
        link_path = _as_str(event.get("rawPath"))
        # rawPath keeps a named stage ("/prod/leaderboard"); routes are matched without it.
        route_path = _strip_stage(link_path, _as_str(context.get("stage"))) if link_path else None
        query = _query_v2(_as_str(event.get("rawQueryString")) or "")
        if_none_match = _header_v2(event.get("headers"), "if-none-match")
        version = "2.0"
    else:
        method = _as_str(event.get("httpMethod"))
        route_path = _as_str(event.get("path"))
        # REST API's `path` has no stage; links need it, and requestContext.path has it.
        context_path = _as_str(context.get("path"))
        link_path = (
            context_path if context_path and route_path and context_path.endswith(route_path) else route_path
        )
        query = _query_v1(event.get("queryStringParameters"), event.get("multiValueQueryStringParameters"))
        if_none_match = _header_v1(event.get("headers"), event.get("multiValueHeaders"), "if-none-match")
        version = "1.0"
    if method is None or route_path is None or link_path is None:
        raise bad_request("invalid_request", "the event is not an API Gateway HTTP request")
    if len(route_path) > MAX_PATH_LENGTH:
        raise not_found("not_found", "no such resource")
    try:
        decoded = unquote(route_path, errors="strict")
    except UnicodeDecodeError:
        raise not_found("not_found", "no such resource") from None
    return Request(
        method=method.upper(),
        path=decoded,
        raw_path=link_path,
        query=query,
        if_none_match=if_none_match,
        request_id=_as_str(context.get("requestId")),
        version=version,
    )
