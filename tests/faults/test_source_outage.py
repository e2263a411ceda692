"""R2 and R6 end to end: the source is down for a while, then comes back; poison arrives with good mail.

API, worker (driven by Lambda's SQS event source over moto), real Valkey, real PostgreSQL behind a
PostgREST-shaped transport, and the operator's `leaderboard-ops`. Messages are counted at every step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api_lambda.app import ApiApp, build_app
from common.boards import KeySpace
from common.cache import LeaderboardCache
from common.config import WorkerSettings
from common.lock import RefreshLock
from common.messages import RefreshRequest
from common.metrics import Metrics
from common.runtime import run
from common.sources.supabase import SupabaseSource
from common.valkey import ValkeyConnection
from ops.cli import main as ops
from refresh_worker.app import WorkerApp
from testkit.engines import PostgresEngine, Queues, SqsEngine, ValkeyServer
from testkit.event_source import SqsEventSource
from testkit.postgrest import PostgrestEmulator, connect_refused, html_error, read_timeout
from tests.harness import CacheTools, ValkeyTarget, api_env
from tests.support import FakeContext, body_of, http_event, make_entries

LOCK_TTL_MS = 3000
RETRY_ATTEMPTS = 3


@dataclass
class Outage(PostgrestEmulator):
    """PostgREST that, while `down`, answers in turn with a 503 page, a timeout and a refused connection."""

    down: bool = True
    kinds: tuple[tuple[str, Any], ...] = (("503", html_error(503)), ("timeout", read_timeout),
                                          ("refused", connect_refused))  # fmt: skip
    failures: list[str] = field(default_factory=list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            label, fault = self.kinds[len(self.failures) % len(self.kinds)]
            self.failures.append(label)
            return fault(request)  # type: ignore[no-any-return]
        return await super().handle(request)


@pytest.fixture
def target(valkey: ValkeyServer) -> ValkeyTarget:
    return ValkeyTarget(valkey.host, valkey.port, cluster=False)


@pytest.fixture
def seeded(postgres: PostgresEngine) -> PostgresEngine:
    postgres.psql("truncate challenge_results, challenge_best, leaderboard_totals restart identity;")
    postgres.psql(
        "insert into challenge_results (user_id, username, challenge_id, score, submitted_at) "
        "select ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 'p' || g, 'a', 1000 - g, now() "
        "from generate_series(1, 40) g;"
    )
    return postgres


@dataclass
class Stack:
    api: ApiApp
    worker: WorkerApp
    outage: Outage
    poller: SqsEventSource
    sqs: SqsEngine
    queues: Queues
    tools: CacheTools
    env: dict[str, str]

    def read(self) -> dict[str, Any]:
        return self.api.invoke(http_event(query={"count": "5"}), FakeContext(), False)

    def deliver(self) -> int:
        """One batch through the worker, as Lambda's event source does; returns messages received."""
        return self.poller.poll_once(FakeContext(remaining_ms=60_000)).received

    def depth(self, url: str) -> int:
        attributes = self.sqs.client().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def stack(
    target: ValkeyTarget, key_prefix: str, queues: Queues, sqs: SqsEngine, seeded: PostgresEngine
) -> Iterator[Stack]:
    env = api_env(target, key_prefix, queues, LEADERBOARD_REFRESH_MARKER_SECONDS="1")
    api = build_app(env)
    assert isinstance(api, ApiApp)
    settings = WorkerSettings.from_env(
        {
            **target.env(),
            "LEADERBOARD_KEY": key_prefix,
            "SUPABASE_URL": "https://project.supabase.co",
            "SUPABASE_KEY": "service-role-key-for-the-outage-test",
            "REFRESH_DEADLINE_MS": str(LOCK_TTL_MS),
            "SOURCE_RETRY_ATTEMPTS": str(RETRY_ATTEMPTS),
            "SOURCE_RETRY_BASE_MS": "20",
            "SOURCE_TIMEOUT_MS": "500",
            "REFRESH_MIN_REMAINING_MS": "0",
        }
    )
    outage = Outage(seeded.uri)

    async def key() -> str:
        return settings.source.supabase_key or ""

    source = SupabaseSource("https://project.supabase.co", key, timeout_ms=500, transport=outage.transport())
    connection = ValkeyConnection(settings.valkey)
    keys = KeySpace(key_prefix)
    cache, lock = LeaderboardCache(connection, keys), RefreshLock(connection, keys)
    worker = WorkerApp(settings, connection, cache, lock, source, Metrics("t", "t"))

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return worker.invoke(event, context, False)

    client = sqs.client()
    poller = SqsEventSource(client, queues.queue_url, queues.queue_arn, handler, wait_seconds=0)
    tools = CacheTools(target, key_prefix)
    yield Stack(api, worker, outage, poller, sqs, queues, tools, env)
    tools.close()
    run(api.close())
    run(worker.close())


def test_a_source_outage_serves_stale_reads_parks_requests_in_the_dlq_and_replay_loses_none(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a snapshot that went stale while Supabase is down (503s, timeouts, refused connections)
    old_version = stack.tools.write(make_entries(5), age_seconds=600)
    # When readers keep coming and the worker keeps trying for ~8 s
    reads: list[tuple[int, str]] = []
    invocation_seconds: list[float] = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        response = stack.read()
        reads.append((response["statusCode"], response["headers"].get("X-Cache", "")))
        started = time.monotonic()
        if stack.deliver():
            invocation_seconds.append(time.monotonic() - started)
        time.sleep(0.1)
    # Then every read was answered with the stale data
    assert reads
    assert all(read == (200, "STALE") for read in reads), set(reads)
    # and each delivery gave up within its deadline (REFRESH_DEADLINE_MS), after its retries
    assert invocation_seconds
    assert max(invocation_seconds) < LOCK_TTL_MS / 1000
    assert set(stack.outage.failures) == {"503", "timeout", "refused"}
    # and the requests end in the DLQ after maxReceiveCount receives
    drain_deadline = time.monotonic() + 15
    while time.monotonic() < drain_deadline and stack.depth(stack.queues.queue_url):
        stack.deliver()
        time.sleep(0.2)
    assert stack.depth(stack.queues.queue_url) == 0
    parked = stack.depth(stack.queues.dlq_url)
    assert parked >= 2  # the marker expires every second: each stale episode asked again
    # When the source recovers and the operator replays the DLQ
    stack.outage.down = False
    environ = {"REFRESH_QUEUE_URL": stack.queues.queue_url}
    capsys.readouterr()
    assert ops(["dlq", "replay"], environ=environ) == 0, capsys.readouterr().err
    replay_output = capsys.readouterr().out
    # Then every parked message is back in the queue (counted: none lost), the DLQ is empty
    assert stack.depth(stack.queues.dlq_url) == 0
    assert stack.depth(stack.queues.queue_url) == parked
    assert str(parked) in replay_output
    # and the worker turns them into one fresh snapshot (the rest are already satisfied)
    processed = 0
    while (received := stack.deliver()) and processed < 10 * parked:
        processed += received
    assert processed == parked
    assert stack.depth(stack.queues.queue_url) == 0
    assert stack.depth(stack.queues.dlq_url) == 0
    response = stack.read()
    assert response["statusCode"] == 200
    assert response["headers"]["X-Cache"] == "HIT"
    body = body_of(response)
    assert body["version"] > old_version
    assert body["total"] == 40
    assert body["entries"][0]["username"] == "p1"


def test_poison_messages_among_good_ones_reach_the_dlq_and_peek_explains_them(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.outage.down = False
    good = RefreshRequest("global", "manual", datetime.now(UTC)).to_json()
    poison = {
        "not json": "Hello from SQS!",
        "wrong type": "[1, 2, 3]",
        "unknown board": json.dumps(
            {
                "type": "refresh",
                "board": "team:red",
                "reason": "stale",
                "requested_at": "2026-11-29T16:00:00Z",
            }
        ),
        "missing fields": '{"type": "refresh"}',
        "huge": json.dumps({"type": "refresh", "board": "global", "pad": "x" * 10_000}),
    }
    client = stack.sqs.client()
    for body in [*poison.values(), good]:
        client.send_message(QueueUrl=stack.queues.queue_url, MessageBody=body)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and stack.depth(stack.queues.queue_url):
        stack.deliver()
        time.sleep(0.2)
    # The good one was processed (a fresh snapshot), every poison one is in the DLQ
    assert stack.read()["headers"]["X-Cache"] in {"HIT", "MISS"}
    assert stack.depth(stack.queues.dlq_url) == len(poison)
    capsys.readouterr()
    assert ops(["dlq", "peek", "-n", "10"], environ={"REFRESH_QUEUE_URL": stack.queues.queue_url}) == 0
    shown = capsys.readouterr().out
    assert shown.count("INVALID: ") == len(poison)
    reasons = (
        "body is not JSON",
        "body is not a JSON object",
        "board must be",
        "board is missing",
        "larger than",
    )
    for reason in reasons:
        assert reason in shown, reason
    assert stack.depth(stack.queues.dlq_url) == len(poison)  # peek consumed nothing
