"""The worker's SQS batch on fakes: invalid records fail alone, requests are coalesced per board, a
failed board fails only its records, a locked board is asked again later. SQS wiring itself (redrive,
delays) is in tests/integration/test_worker.py."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from common.config import WorkerSettings
from common.messages import RefreshRequest
from common.metrics import Metrics
from refresh_worker.app import WorkerApp
from refresh_worker.redelivery import Redelivery
from tests.fakes import FakeBoardStore, FakeDelayedSender, FakeLock, FakeSource, ranked
from tests.support import FakeContext, sqs_event

ENV = {"VALKEY_HOST": "fake", "DATABASE_URL": "postgresql://db/x", "SOURCE_RETRY_ATTEMPTS": "1"}


class Given:
    def __init__(self, **env: str) -> None:
        self.settings = WorkerSettings.from_env(ENV | env)
        self.store, self.lock, self.source = FakeBoardStore(), FakeLock(), FakeSource()
        self.sender = FakeDelayedSender()
        self.emf = io.StringIO()
        metrics = Metrics(self.settings.metrics_namespace, self.settings.service, self.emf)
        redelivery = Redelivery(self.sender, self.settings.locked_retry_seconds)
        self.app = WorkerApp(self.settings, None, self.store, self.lock, self.source, metrics, redelivery)  # type: ignore[arg-type]
        self.source.boards["global"] = ranked(3)
        self.source.boards["challenge:two-sum"] = ranked(2)

    def invoke(self, event: Any) -> list[str]:
        result = self.app.invoke(event, FakeContext(), False)
        return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]

    def metrics(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.emf.getvalue().splitlines()]


def request(board: str = "global", reason: str = "stale") -> str:
    return RefreshRequest(board, reason, datetime.now(UTC)).to_json()


def ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        '{"type": "other"}',
        request().replace('"global"', '"{bad}"'),
        request().replace('"stale"', '"why"'),
        '{"type": "refresh", "board": "global", "reason": "stale", "requested_at": "yesterday"}',
        "x" * 5000,
    ],
)
def test_an_invalid_message_fails_alone_and_the_valid_ones_are_refreshed(body: str) -> None:
    # Given a batch of one poison record between two good ones
    g = Given()
    event = sqs_event(request(), body, request("challenge:two-sum"))
    # When the worker handles it
    failed = g.invoke(event)
    # Then only the poison record is reported, and both boards were refreshed
    assert failed == [ids(event)[1]]
    assert set(g.store.boards) == {"global", "challenge:two-sum"}
    assert any(m.get("MessagesRejected") == 1 for m in g.metrics())


def test_a_board_this_deployment_does_not_serve_is_an_invalid_message() -> None:
    g = Given(LEADERBOARD_BOARDS="global")
    event = sqs_event(request("challenge:two-sum"))
    assert g.invoke(event) == ids(event)
    assert g.store.boards == {}


def test_requests_for_one_board_are_coalesced_into_one_refresh() -> None:
    g = Given()
    event = sqs_event(request(), request(reason="miss"), request())
    assert g.invoke(event) == []
    assert len(g.lock.acquired) == 1
    assert g.store.commits == 1


def test_a_failing_board_fails_only_its_own_records() -> None:
    g = Given()
    g.source.boards.pop("challenge:two-sum")
    g.source.boards["challenge:broken"] = ranked(1)
    event = sqs_event(request("challenge:broken"), request(), request("challenge:broken"))

    async def broken(board: str, limit: int, after: Any) -> Any:
        raise RuntimeError("a bug in the source")  # not a LeaderboardError: a crash, logged with a traceback

    original = g.source.fetch_page

    async def page(board: str, limit: int, after: Any) -> Any:
        return await (broken if board == "challenge:broken" else original)(board, limit, after)

    g.source.fetch_page = page  # type: ignore[method-assign]
    failed = g.invoke(event)
    assert sorted(failed) == sorted([ids(event)[0], ids(event)[2]])
    assert "global" in g.store.boards
    assert any(m.get("RefreshFailures") == 1 and m["board"] == "challenge:*" for m in g.metrics())


def test_a_locked_board_is_sent_again_later_and_acknowledged() -> None:
    g = Given()
    g.lock.steal("global")
    event = sqs_event(request())
    assert g.invoke(event) == []
    assert [(delay, attrs) for _, delay, attrs in g.sender.sent] == [
        (g.settings.locked_retry_seconds, {"LockedRetries": "1"})
    ]


def test_records_without_a_message_id_and_events_that_are_not_sqs_fail_nothing() -> None:
    g = Given()
    assert g.invoke({"Records": [{"body": request()}]}) == []
    assert g.invoke({"detail": "not sqs"}) == []
    assert g.invoke([]) == []
    assert g.store.boards == {}


def test_a_scheduled_request_refreshes_every_scheduled_board() -> None:
    g = Given(LEADERBOARD_SCHEDULED_BOARDS="global,challenge:two-sum")
    event = sqs_event(request("*", "schedule"))
    assert g.invoke(event) == []
    assert set(g.store.boards) == {"global", "challenge:two-sum"}
