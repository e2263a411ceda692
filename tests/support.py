"""Test helpers: API Gateway and SQS events built from the samples in events/ (the shapes Lambda
delivers, as `sam local generate-event` prints them), a fake Lambda context, and snapshot builders."""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from common.models import Entry

EVENTS = Path(__file__).resolve().parent.parent / "events"
_V2 = json.loads((EVENTS / "http-api-v2.json").read_text())
_V1 = json.loads((EVENTS / "rest-api-v1.json").read_text())
_SQS = json.loads((EVENTS / "sqs-refresh.json").read_text())


@dataclass
class FakeContext:
    """What Lambda passes as `context`, with a settable remaining time."""

    function_name: str = "leaderboard-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 60_000
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:leaderboard-test"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def http_event(
    path: str = "/leaderboard",
    query: Mapping[str, str | list[str]] | str | None = None,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    version: str = "2.0",
    stage: str = "$default",
) -> dict[str, Any]:
    """An API Gateway proxy event of payload version 2.0 (HTTP API) or 1.0 (REST API)."""
    if isinstance(query, str):
        raw_query = query
        pairs: list[tuple[str, str]] = []
        for part in raw_query.split("&") if raw_query else []:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    else:
        pairs = []
        for name, value in (query or {}).items():
            for item in value if isinstance(value, list) else [value]:
                pairs.append((name, item))
        raw_query = urlencode(pairs)
    request_id = str(uuid.uuid4())
    if version == "2.0":
        event = copy.deepcopy(_V2)
        event.pop("body", None)
        event["isBase64Encoded"] = False
        event["rawPath"] = path if stage == "$default" else f"/{stage}{path}"
        event["rawQueryString"] = raw_query
        grouped: dict[str, list[str]] = {}
        for name, value in pairs:
            grouped.setdefault(name, []).append(value)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in grouped.items()} or None
        event["headers"] = {k.lower(): v for k, v in (headers or {}).items()}
        event["requestContext"]["http"]["method"] = method
        event["requestContext"]["http"]["path"] = event["rawPath"]
        event["requestContext"]["requestId"] = request_id
        event["requestContext"]["stage"] = stage
        event["routeKey"] = "$default"
        return event
    event = copy.deepcopy(_V1)
    event.pop("body", None)
    event["isBase64Encoded"] = False
    event["httpMethod"] = method
    event["path"] = path
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    event["multiValueQueryStringParameters"] = multi or None
    event["queryStringParameters"] = {k: v[-1] for k, v in multi.items()} or None
    event["headers"] = dict(headers or {})
    event["multiValueHeaders"] = {k: [v] for k, v in (headers or {}).items()}
    event["requestContext"]["requestId"] = request_id
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = f"/{stage}{path}" if stage != "$default" else path
    event["requestContext"]["stage"] = stage
    return event


def sqs_event(*bodies: str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS event as Lambda's event source delivers it, one record per body."""
    template = _SQS["Records"][0]
    records = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = body
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


def body_of(response: Mapping[str, Any]) -> Any:
    return json.loads(response["body"])


def make_entries(n: int, *, tie_groups: int = 1, start_rank: int = 1) -> list[Entry]:
    """n entries in rank order with competition ranks; `tie_groups` > 1 puts that many players on each
    score (1, 1, 3, 3, 5, ... for 2), as the worker would store them."""
    entries: list[Entry] = []
    for i in range(n):
        group = i // tie_groups
        rank = start_rank + group * tie_groups
        entries.append(
            Entry(
                rank=rank,
                user_id=str(uuid.UUID(int=start_rank + i)),
                username=f"player-{start_rank + i}",
                score=10 * (n - group * tie_groups),
                solved=1 + i % 5,
                last_solved_at="2026-11-01T10:00:00.000Z",
            )
        )
    return entries


def log_lines(text: str) -> list[dict[str, Any]]:
    """Our structured log lines in captured output: JSON objects with a `message` (EMF metric lines and
    GLIDE's own plain-text lines are skipped)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "message" in record and "_aws" not in record:
                records.append(record)
    return records


def missing_tool(reason: str) -> None:
    """Skip a test whose system tool (redis-server with TLS, varnishd) is not installed on a developer's
    machine; fail it where the tool must be there: `.ci/run` installs them and sets
    LEADERBOARD_TESTS_NEED_EVERY_TOOL, so CI can never pass by skipping them."""
    if os.environ.get("LEADERBOARD_TESTS_NEED_EVERY_TOOL"):
        pytest.fail(f"{reason} (required: LEADERBOARD_TESTS_NEED_EVERY_TOOL is set)")
    pytest.skip(reason)
