"""P4: 1000 concurrent requests on a stale snapshot send one SQS message; the worker, run over every
message in the queue, fetches from the source once.

The requests come from 8 "containers" (processes, as Lambda runs them), all at once; each container
serves its 125 one after the other, as a Lambda container does (one invocation at a time).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import Any

from api_lambda.app import ApiApp, build_app
from api_lambda.http import parse_event
from bench.fixtures import Context, Snapshots, api_event, engines, entries
from bench.stats import summary
from common.runtime import run
from common.sources import ChangePage, Cursor, Source, SourcePage
from refresh_worker.app import WorkerApp
from refresh_worker.app import build_app as build_worker
from testkit.engines import PostgresEngine
from testkit.event_source import SqsEventSource

CONTAINERS = 8
PER_CONTAINER = 125


def _container(env: dict[str, str], start: Any, results: Any) -> None:
    os.environ.update(env)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - this process's EMF lines and logs; it exits soon
    app = build_app(env)
    assert isinstance(app, ApiApp)
    app.connection.client()  # connected, but nothing read yet: the burst is the first traffic
    requests = [parse_event(api_event(query="count=10")) for _ in range(PER_CONTAINER)]
    start.wait(60)
    responses = [app.handle(r) for r in requests]
    results.put([f"{r.status} {r.headers.get('X-Cache')}" for r in responses])
    run(app.close())


class CountingSource:
    """Counts the board reads (pages; the stale snapshot has no feed position, so the refresh is a
    rebuild of one 1000-row page); feed calls pass through uncounted."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name = inner.name
        self.has_feed = inner.has_feed
        self.fetches = 0

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        self.fetches += 1
        return await self.inner.fetch_page(board, limit, after)

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        return await self.inner.fetch_changes(board, after, limit, with_total=with_total)

    async def close(self) -> None:
        await self.inner.close()


def run_stampede() -> dict[str, Any]:
    postgres = PostgresEngine().start()
    try:
        postgres.apply_migrations()
        postgres.psql(
            "insert into challenge_results (user_id, username, challenge_id, score) "
            "select gen_random_uuid(), 'p' || g, 'c' || (g % 7), g % 100 from generate_series(1, 5000) g;"
        )
        with engines() as (server, sqs):
            queues = sqs.create_queues("bench-stampede", visibility_timeout=30)
            snapshots = Snapshots(server)
            snapshots.write("stampede", entries(1000))  # fresh for 1 s: stale by the time the burst starts
            snapshots.close()
            env = {"VALKEY_HOST": server.host, "VALKEY_PORT": str(server.port), "LEADERBOARD_KEY": "stampede",
                   "REFRESH_QUEUE_URL": queues.queue_url, "LEADERBOARD_FRESH_SECONDS": "1",
                   "AWS_ENDPOINT_URL_SQS": sqs.endpoint}  # fmt: skip
            context = multiprocessing.get_context("spawn")
            start, results = context.Event(), context.Queue()
            processes = [
                context.Process(target=_container, args=(env, start, results)) for _ in range(CONTAINERS)
            ]
            for process in processes:
                process.start()
            time.sleep(3)  # all containers up and connected; the snapshot is stale
            started = time.monotonic()
            start.set()
            statuses = [s for _ in processes for s in results.get(timeout=120)]
            burst_seconds = time.monotonic() - started
            for process in processes:
                process.join(60)
            client = sqs.client()
            time.sleep(1)
            attributes = client.get_queue_attributes(QueueUrl=queues.queue_url, AttributeNames=["All"])[
                "Attributes"
            ]
            sent = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
            # The worker, as Lambda's event source drives it, over everything in the queue
            worker = build_worker(
                {**env, "DATABASE_URL": postgres.uri, "LEADERBOARD_SIZE": "1000", "LOG_LEVEL": "WARNING"}
            )
            assert isinstance(worker, WorkerApp)
            counting = CountingSource(worker.source)
            worker.source = counting
            worker.refresher._source = counting

            def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
                return worker.invoke(event, Context(), False)

            poller = SqsEventSource(client, queues.queue_url, queues.queue_arn, handler, wait_seconds=0)
            deliveries = 0
            while (result := poller.poll_once()).received:
                deliveries += result.received
            run(worker.close())
    finally:
        postgres.stop()
    served_stale = sum(1 for s in statuses if s == "200 STALE")
    return {
        "P4_stampede": summary(
            float(max(sent, counting.fetches)),
            1.0,
            messages_sent=sent,
            source_fetches=counting.fetches,
            requests=len(statuses),
            served_stale_200=served_stale,
            containers=CONTAINERS,
            requests_per_container=PER_CONTAINER,
            burst_seconds=round(burst_seconds, 2),
            messages_delivered=deliveries,
        )
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_stampede(), indent=2))
