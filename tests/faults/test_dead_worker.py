"""R9_dead_worker: a worker SIGKILLed mid-fetch, while readers' requests wait behind its lock.

Before issue 14 the dead worker's lock stayed for its whole TTL (60 s) and the other worker deleted every
request that found it as `locked`: the board stayed stale for 66.6 s. Now the lock is a 10 s lease renewed
by a heartbeat, and a locked request is re-sent with a 3 s delay (refresh_worker/redelivery.py), so the
next delivery after the lease lapses refreshes the board, with no new reader request.

Real Valkey and PostgreSQL, moto SQS; worker A in its own process (killed), worker B in this one, fed by
the test kit's SQS event source (which deletes what the handler does not report failed, as Lambda does).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from common.messages import RefreshRequest
from common.runtime import run
from refresh_worker.app import WorkerApp, build_app
from testkit.engines import PostgresEngine, SqsEngine
from testkit.event_source import SqsEventSource
from tests.faults.test_worker_faults import seed, start_worker, worker_env
from tests.harness import CacheTools, ValkeyTarget
from tests.support import FakeContext, make_entries

PLAYERS = 20_000
TARGET_SECONDS = 15


class RecordingSender:
    """The real delayed sender, remembering which bodies it re-sent (those originals are not dropped)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bodies: list[str] = []

    async def send_later(self, body: str, *, delay_seconds: int, attributes: dict[str, str]) -> None:
        await self.inner.send_later(body, delay_seconds=delay_seconds, attributes=attributes)
        self.bodies.append(body)

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("valkey_engine", ["standalone"], indirect=True)
def test_r9_a_dead_workers_board_is_fresh_again_within_15_s_and_no_request_is_dropped(
    valkey_engine: ValkeyTarget,
    key_prefix: str,
    postgres: PostgresEngine,
    cache_tools: CacheTools,
    sqs: SqsEngine,
) -> None:
    # Given a stale snapshot, a queue like production's (visibility 720 s: a failed record would only
    # come back after 12 minutes), and worker A refreshing 20,000 players in small chunks
    seed(postgres, PLAYERS)
    old_version = cache_tools.write(make_entries(10), age_seconds=300)
    queues = sqs.create_queues(f"r9-{key_prefix}", max_receive_count=5, visibility_timeout=720)
    env = worker_env(valkey_engine, key_prefix, postgres, LEADERBOARD_SIZE="0", REFRESH_MIN_REMAINING_MS="0")
    keys = cache_tools.keys("global")
    worker_a = start_worker({**env, "CACHE_WRITE_CHUNK": "20", "SOURCE_PAGE_SIZE": "20"}, "normal")
    worker_b = build_app({**env, "REFRESH_QUEUE_URL": queues.queue_url})
    assert isinstance(worker_b, WorkerApp)
    sender = RecordingSender(worker_b.redelivery._sender)
    worker_b.redelivery._sender = sender
    dropped: list[str] = []  # acknowledged while no refresh that started after them had committed

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        resent_before = len(sender.bodies)
        result = worker_b.invoke(event, FakeContext(), False)
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        resent = set(sender.bodies[resent_before:])
        header = run(cache_tools.cache.read_header("global"))
        for record in event["Records"]:
            if record["messageId"] in failed or record["body"] in resent:
                continue
            requested = RefreshRequest.parse(record["body"]).requested_at.timestamp() * 1000
            if header is None or header.generated_at_ms < requested:
                dropped.append(record["body"])
        return result

    client = sqs.client()
    poller = SqsEventSource(client, queues.queue_url, queues.queue_arn, handler, wait_seconds=0)
    try:
        # When readers ask for a refresh while A fetches
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not cache_tools.command("KEYS", keys.tag + ":staging:*"):
            time.sleep(0.005)
        assert cache_tools.command("KEYS", keys.tag + ":staging:*"), "worker A never started fetching"
        requested_at = datetime.now(UTC)
        for _ in range(3):
            client.send_message(
                QueueUrl=queues.queue_url,
                MessageBody=RefreshRequest("global", "stale", requested_at).to_json(),
            )
        # and A is killed mid-fetch, holding its lease (B finds the board locked)
        worker_a.kill()
        killed = time.monotonic()
        worker_a.wait(10)
        assert cache_tools.exists(keys.lock)
        assert poller.poll_once().received >= 1
        assert sender.bodies, "B did not find the board locked"
        # Then, with no new reader request, B's next deliveries refresh the board
        fresh_after: float | None = None
        while time.monotonic() - killed < 60:
            poller.poll_once()
            header = run(cache_tools.cache.read_header("global"))
            if header is not None and header.version > old_version and header.size == PLAYERS:
                assert header.generated_at_ms >= requested_at.timestamp() * 1000
                fresh_after = time.monotonic() - killed
                break
            time.sleep(0.2)
        # and the remaining requests are acknowledged without another fetch
        drain = time.monotonic() + 15
        while time.monotonic() < drain and _depth(client, queues.queue_url):
            poller.poll_once()
            time.sleep(0.2)
        left, in_dlq = _depth(client, queues.queue_url), _depth(client, queues.dlq_url)
    finally:
        if worker_a.poll() is None:
            worker_a.kill()
        run(worker_b.close())
    lease_ms = int(cache_tools.command("PTTL", keys.lock))
    print(
        f"\nR9_dead_worker: fresh snapshot {fresh_after if fresh_after is None else round(fresh_after, 1)} s "
        f"after the SIGKILL (target <= {TARGET_SECONDS} s); requests acknowledged without a later refresh: "
        f"{len(dropped)} (target 0); locked re-sends: {len(sender.bodies)}; left in the queue {left}, "
        f"in the DLQ {in_dlq}; lock PTTL now {lease_ms} ms"
    )
    assert worker_a.returncode == -9
    assert fresh_after is not None, "the board never became fresh again"
    assert fresh_after <= TARGET_SECONDS
    assert dropped == []
    assert (left, in_dlq) == (0, 0)


def _depth(client: Any, url: str) -> int:
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]  # fmt: skip
    return sum(int(value) for value in attributes.values())
