"""Real engines, started once per test session on free loopback ports and stopped at the end.

- `valkey_engine`: parametrized over a standalone valkey-server and a real 3-node cluster, so every test
  that uses it runs on both topologies. `valkey` is the standalone server alone (fault tests kill it).
- `sqs`: moto's ThreadedMotoServer; `queues` gives each test its own queue + DLQ with a redrive policy.
- `postgres`: PostgreSQL 16 (pgserver) with the Supabase migrations applied.

Tests isolate themselves by key prefix and queue name instead of flushing shared engines.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import common.logs
from api_lambda.app import ApiApp, build_app
from common.runtime import run
from common.secret_registry import registered_secrets
from testkit.engines import PostgresEngine, Queues, SqsEngine, ValkeyCluster, ValkeyServer
from tests.harness import ApiHarness, CacheTools, ValkeyTarget, api_env
from tests.log_watch import LogWatch

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(autouse=True)
def no_secret_in_any_log_line(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LogWatch]:
    """Every test: fail if a configured secret (VALKEY_PASSWORD, SUPABASE_KEY, DATABASE_URL's password,
    LEADERBOARD_API_TOKEN, keys from Secrets Manager) reaches any log call.

    Each event is seen *before* the redaction processor, which would hide the leak (tests/log_watch.py),
    and so are the standard library's log records. Redaction in common.logs is the second line of
    defence; this proves the first holds everywhere. A test that logs a secret on purpose, to prove
    that redaction works, says so with `@pytest.mark.logs_secrets_on_purpose`.
    """
    common.logs.configure_logging()
    watch = LogWatch()
    monkeypatch.setattr(common.logs, "_redact", watch.wrap(common.logs._redact))
    root = logging.getLogger()
    root.addHandler(watch)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
    if request.node.get_closest_marker("logs_secrets_on_purpose") is None:
        leaks = watch.leaks(registered_secrets())  # every one: config keeps only those >= 4 characters
        assert not leaks, f"a secret reached {len(leaks)} log call(s): " + "; ".join(sorted(set(leaks))[:5])


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


@pytest.fixture
def cache_tools(valkey_engine: ValkeyTarget, key_prefix: str) -> Iterator[CacheTools]:
    tools = CacheTools(valkey_engine, key_prefix)
    yield tools
    tools.close()


@pytest.fixture
def api_factory(
    valkey_engine: ValkeyTarget, key_prefix: str, queues: Queues, sqs: SqsEngine
) -> Iterator[Any]:
    """Build API apps with extra environment; every app built is closed afterwards."""
    built: list[ApiApp] = []

    def make(**extra: str) -> ApiHarness:
        env = api_env(valkey_engine, key_prefix, queues, **extra)
        app = build_app(env)
        assert isinstance(app, ApiApp), app
        built.append(app)
        return ApiHarness(app, env, queues, sqs)

    yield make
    for app in built:
        run(app.close())


@pytest.fixture
def api(api_factory: Any) -> ApiHarness:
    harness: ApiHarness = api_factory()
    return harness
