"""API Gateway events in, API Gateway responses out: payload format 2.0 (HTTP API) and 1.0 (REST API).

This is the one place where domain errors become HTTP statuses. Whatever arrives — a malformed event,
bytes that are not UTF-8, a query string with a thousand fields — leaves as a documented JSON error,
never as a traceback.
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
    headers: dict[str, str]
    request_id: str | None
    version: str  # "2.0" or "1.0"


@dataclass(slots=True)
class Response:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def to_event(self, head: bool = False) -> dict[str, Any]:
        headers = dict(self.headers)
        if self.body and "Content-Type" not in headers:
            headers["Content-Type"] = JSON_TYPE
        return {
            "statusCode": self.status,
            "headers": headers,
            "body": "" if head else self.body,
            "isBase64Encoded": False,
        }


def error_response(error: ApiError) -> Response:
    body = json.dumps({"error": {"code": error.code, "message": error.message}}, separators=(",", ":"))
    headers = {"Content-Type": JSON_TYPE, "Cache-Control": "no-store", **error.headers}
    return Response(error.status, body, headers)


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _lower_headers(raw: Any, multi: Any = None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            if isinstance(name, str) and isinstance(value, str):
                headers[name.lower()] = value
    if isinstance(multi, dict):
        for name, values in multi.items():
            if isinstance(name, str) and isinstance(values, list):
                joined = ",".join(v for v in values if isinstance(v, str))
                if joined:
                    headers[name.lower()] = joined
    return headers


def _query_v2(raw: str) -> dict[str, list[str]]:
    if len(raw) > MAX_QUERY_LENGTH:
        raise bad_request("invalid_query", f"the query string is longer than {MAX_QUERY_LENGTH} characters")
    try:
        return parse_qs(raw, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise bad_request(
            "invalid_query", f"the query string is not valid (at most {MAX_QUERY_FIELDS} UTF-8 fields)"
        ) from None


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
        headers = _lower_headers(event.get("headers"))
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
        headers = _lower_headers(event.get("headers"), event.get("multiValueHeaders"))
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
        headers=headers,
        request_id=_as_str(context.get("requestId")),
        version=version,
    )
