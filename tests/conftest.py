"""Real engines, started once per test session on free loopback ports and stopped at the end.

- `valkey_engine`: parametrized over a standalone valkey-server and a real 3-node cluster, so every test
  that uses it runs on both topologies. `valkey` is the standalone server alone (fault tests kill it).
- `sqs`: moto's ThreadedMotoServer; `queues` gives each test its own queue + DLQ with a redrive policy.
- `postgres`: PostgreSQL 16 (pgserver) with the Supabase migrations applied.

Tests isolate themselves by key prefix and queue name instead of flushing shared engines.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.engines import PostgresEngine, Queues, SqsEngine, ValkeyCluster, ValkeyServer

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@dataclass(frozen=True)
class ValkeyTarget:
    """Where a test's cache lives: host, port, topology."""

    host: str
    port: int
    cluster: bool

    @property
    def name(self) -> str:
        return "cluster" if self.cluster else "standalone"

    def env(self) -> dict[str, str]:
        return {
            "VALKEY_HOST": self.host,
            "VALKEY_PORT": str(self.port),
            "VALKEY_CLUSTER_MODE": "true" if self.cluster else "false",
        }


@pytest.fixture(scope="session")
def valkey() -> Iterator[ValkeyServer]:
    server = ValkeyServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["standalone", "cluster"])
def valkey_engine(request: pytest.FixtureRequest) -> ValkeyTarget:
    if request.param == "cluster":
        cluster: ValkeyCluster = request.getfixturevalue("valkey_cluster")
        return ValkeyTarget(cluster.host, cluster.port, cluster=True)
    server: ValkeyServer = request.getfixturevalue("valkey")
    return ValkeyTarget(server.host, server.port, cluster=False)


@pytest.fixture(scope="session")
def sqs() -> Iterator[SqsEngine]:
    engine = SqsEngine().start()
    os.environ["AWS_ENDPOINT_URL_SQS"] = engine.endpoint
    yield engine
    engine.stop()


@pytest.fixture
def queues(sqs: SqsEngine) -> Queues:
    return sqs.create_queues(f"refresh-{uuid.uuid4().hex[:12]}", max_receive_count=5, visibility_timeout=1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresEngine]:
    engine = PostgresEngine().start()
    engine.apply_migrations()
    yield engine
    engine.stop()


@pytest.fixture
def key_prefix() -> str:
    """A fresh LEADERBOARD_KEY per test: tests never see each other's boards."""
    return f"lb-{uuid.uuid4().hex[:10]}"


def drain(sqs_engine: SqsEngine, queue_url: str, *, wait: int = 0) -> list[dict[str, Any]]:
    """Receive (and delete) every message now in a queue."""
    client = sqs_engine.client()
    messages: list[dict[str, Any]] = []
    while True:
        reply = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, AttributeNames=["All"]
        )
        batch = reply.get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)
