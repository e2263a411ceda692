"""R8_invented_boards: 5,000 invented challenge names at full speed cost no SQS message, no source query
and no wait, and leave the global board's latency alone.

Before issue 14 (measured with `make dev`): 32 clients asking for 5,000 random `challenge:<name>` made
3,174 SQS messages and 3,164 source queries in 120 s, each blocking an API container up to
LEADERBOARD_MISS_WAIT_MS, and the global p50 went from 5.6 to 731 ms. Now the worker publishes the
source's boards (common.known_boards) and a cold miss of a name outside them is a 404 at once.

Real Valkey and PostgreSQL, moto SQS. The attacker is an API container in its own process
(tests/faults/invented_boards.py); the measured reader is another in this one, with its near-cache off so
that every global read goes to Valkey. The worker then drains the queue with a source that counts
every query. `-rP | grep R8` prints the figures; the latency ratio is printed, not asserted (speed
targets are for `make bench`); the counts are asserted, and the same counters are shown to count when
the published set is gone (the fallback: one message and one query per name, as before).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api_lambda.app import ApiApp, build_app
from common.known_boards import KnownBoardKeys
from common.messages import RefreshRequest
from common.runtime import run
from refresh_worker.app import WorkerApp
from refresh_worker.app import build_app as build_worker
from testkit.engines import PostgresEngine, SqsEngine
from testkit.event_source import SqsEventSource
from tests.faults.test_dead_worker import _depth
from tests.faults.test_worker_faults import seed, worker_env
from tests.harness import CacheTools, ValkeyTarget, api_env
from tests.support import FakeContext, http_event, sqs_event

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
NAMES = 5_000
CONTROL_READS = 1_500
FALLBACK_NAMES = 20
BOARDS = "global,challenge:*,season:*"


class CountingSource:
    """The worker's real source, counting every query it sends (pages, feed, board lists)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.has_feed = inner.name, inner.has_feed
        self.queries = 0

    async def fetch_page(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return await self.inner.fetch_page(*args, **kwargs)

    async def fetch_changes(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return await self.inner.fetch_changes(*args, **kwargs)

    async def close(self) -> None:
        await self.inner.close()


def global_p50_ms(
    app: ApiApp, *, reads: int | None = None, while_running: Any = None, board: str = "global"
) -> float:
    """p50 of one board's first page read again and again (a 200; for an unknown board, a 404)."""
    event, context, took = http_event("/leaderboard", {"count": "10", "board": board}), FakeContext(), []
    while (reads is not None and len(took) < reads) or (while_running is not None and while_running()):
        started = time.perf_counter()
        response = app.invoke(event, context, cold_start=False)
        took.append(time.perf_counter() - started)
        assert response["statusCode"] == (200 if board == "global" else 404), response
    return statistics.median(took) * 1000


def attack(tmp_path: Path, env: dict[str, str], count: int, mode: str, reader: ApiApp) -> tuple[Any, float]:
    """Run the attacker container (tests/faults/invented_boards.py) while the reader measures the global
    p50; returns the attacker's summary and that p50."""
    output = tmp_path / f"attacker-{mode}.out"
    with output.open("w") as sink:
        attacker = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.invented_boards", json.dumps(env), str(count), mode],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            during = global_p50_ms(reader, while_running=lambda: attacker.poll() is None)
        finally:
            if attacker.poll() is None:
                attacker.kill()
    return json.loads(output.read_text().strip().splitlines()[-1]), during


@pytest.mark.parametrize("valkey_engine", ["standalone"], indirect=True)
def test_r8_invented_challenge_names_cost_no_message_no_query_and_no_wait(
    valkey_engine: ValkeyTarget, key_prefix: str, postgres: PostgresEngine, cache_tools: CacheTools,
    sqs: SqsEngine, tmp_path: Path,
) -> None:  # fmt: skip
    # Given a served global board, a known challenge, and one schedule run (which publishes the boards)
    seed(postgres, 200)
    queues = sqs.create_queues(f"r8-{key_prefix}")
    worker = build_worker(worker_env(valkey_engine, key_prefix, postgres, LEADERBOARD_BOARDS=BOARDS))
    assert isinstance(worker, WorkerApp) and worker.known is not None
    schedule = RefreshRequest("*", "schedule", datetime.now(UTC)).to_json()
    assert worker.invoke(sqs_event(schedule), FakeContext(), True) == {"batchItemFailures": []}
    counting = CountingSource(worker.refresher._source)
    worker.refresher._source = counting
    env = api_env(
        valkey_engine, key_prefix, queues, LEADERBOARD_BOARDS=BOARDS, LEADERBOARD_MISS_WAIT_MS="2000",
        LOG_LEVEL="ERROR",
    )  # fmt: skip
    reader = build_app(env)
    assert isinstance(reader, ApiApp)
    poller = SqsEventSource(
        sqs.client(), queues.queue_url, queues.queue_arn,
        lambda event, _: worker.invoke(event, FakeContext(), False), wait_seconds=0,
    )  # fmt: skip
    try:
        before = global_p50_ms(reader, reads=1000)
        # When an attacker's container asks for 5,000 invented challenges as fast as it can
        control = attack(tmp_path, env, CONTROL_READS, "global", reader)
        invented = attack(tmp_path, env, NAMES, "invented", reader)
        summary, during = invented
        missing = global_p50_ms(reader, reads=500, board="challenge:never-published")
        sent = _depth(sqs.client(), queues.queue_url)
        while poller.poll_once().received:  # the worker handles whatever was sent
            pass
        queries = counting.queries
        # Contrast: the same counters, with the published set gone (the API falls back to asking)
        cache_tools.command("DEL", KnownBoardKeys.for_prefix(key_prefix).known)
        fallback = build_app({**env, "LEADERBOARD_MISS_WAIT_MS": "50"})
        assert isinstance(fallback, ApiApp)
        for n in range(FALLBACK_NAMES):
            fallback.invoke(
                http_event("/leaderboard", {"board": f"challenge:unpublished-{n}"}), FakeContext(), False
            )
        run(fallback.close())
        fallback_sent = _depth(sqs.client(), queues.queue_url)
        while poller.poll_once().received:
            pass
        fallback_queries = counting.queries - queries
    finally:
        run(reader.close())
        run(worker.close())
    rate = NAMES / summary["seconds"]
    print(
        f"\nR8_invented_boards: {NAMES} invented challenge names in {summary['seconds']:.1f} s "
        f"({rate:,.0f}/s, statuses {summary['statuses']}): SQS messages sent {sent} (target 0), source "
        f"queries {queries} (target 0), global p50 during / before = {during:.3f} / {before:.3f} ms = "
        f"{during / before:.2f} (target <= 1.2); control, the attacker reading global instead "
        f"({CONTROL_READS / control[0]['seconds']:,.0f}/s): {control[1]:.3f} / {before:.3f} ms = "
        f"{control[1] / before:.2f}; an unknown board's 404 p50 "
        f"{missing:.3f} ms vs the hit p50 {before:.3f} ms; without the published set: {FALLBACK_NAMES} "
        f"names -> {fallback_sent} messages, {fallback_queries} source queries"
    )
    # Every answer a 404 (a rare 503 cache_unavailable: the attacker runs at nice 19, and a reply it is
    # not scheduled to read within VALKEY_REQUEST_TIMEOUT_MS counts as a timeout)
    statuses = summary["statuses"]
    assert set(statuses) <= {"404", "503"} and statuses["404"] >= NAMES * 0.99, statuses
    assert control[0]["statuses"].get("200", 0) >= CONTROL_READS * 0.99
    assert (sent, queries) == (0, 0)
    assert fallback_sent == FALLBACK_NAMES and fallback_queries >= FALLBACK_NAMES
