"""R1 and friends: Valkey dies, hangs, comes back, or runs out of memory while we serve.

Each test owns its valkey-server (a killed or paused server must not disturb other tests). Bounds on
time here are correctness bounds — "answers instead of hanging" — taken from the configuration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api_lambda.app import ApiApp, build_app
from common.messages import RefreshRequest
from common.runtime import run
from refresh_worker.app import build_app as build_worker
from testkit.engines import Queues, ValkeyServer
from tests.emf import emf_documents
from tests.harness import CacheTools, ValkeyTarget, api_env
from tests.support import FakeContext, body_of, http_event, log_lines, make_entries, sqs_event

pytestmark = pytest.mark.usefixtures("sqs")
REQUEST_TIMEOUT_MS = 250
NEAR_CACHE_MS = 500


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A private server with an append-only file, so that a restart keeps the snapshot (as a real cache
    with persistence or replicas would)."""
    node = ValkeyServer(extra_args=("--appendonly", "yes", "--appendfsync", "always"), data_dir=tmp_path)
    node.start()
    yield node
    node.stop()


@pytest.fixture
def target(server: ValkeyServer) -> ValkeyTarget:
    return ValkeyTarget(server.host, server.port, cluster=False)


@pytest.fixture
def app(target: ValkeyTarget, key_prefix: str, queues: Queues) -> Iterator[ApiApp]:
    env = api_env(target, key_prefix, queues, VALKEY_REQUEST_TIMEOUT_MS=str(REQUEST_TIMEOUT_MS),
                  LEADERBOARD_NEAR_CACHE_MS=str(NEAR_CACHE_MS))  # fmt: skip
    built = build_app(env)
    assert isinstance(built, ApiApp)
    yield built
    run(built.close())


@pytest.fixture
def tools(target: ValkeyTarget, key_prefix: str) -> Iterator[CacheTools]:
    tools = CacheTools(target, key_prefix)
    yield tools
    tools.close()


def info(tools: CacheTools, section: str, field: str) -> int:
    text = tools.command("INFO", section).decode()
    return int(text.split(f"{field}:")[1].split()[0])


def timed_get(app: ApiApp, count: int = 5) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = app.invoke(http_event(query={"count": str(count)}), FakeContext(), False)
    return response, time.monotonic() - started


def wait_for_valkey(app: ApiApp, within: float) -> float:
    """Seconds until a page this container never served is answered 200 (read from Valkey)."""
    started = time.monotonic()
    unseen = iter(range(6, 10_000))
    while time.monotonic() - started < within:
        response, _ = timed_get(app, next(unseen))
        if response["statusCode"] == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"no 200 within {within} s")


def assert_answered_in_time(app: ApiApp, seconds: float) -> dict[str, int]:
    """For `seconds`: the page served before the outage is a 200 every time (HIT from the near-cache,
    then STALE from the container's last copy), a page never served a 503 cache_unavailable; each
    within the request timeout + 100 ms. Returns how often each X-Cache status came back."""
    bound = REQUEST_TIMEOUT_MS / 1000 + 0.1
    seen: dict[str, int] = {}
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        response, elapsed = timed_get(app)
        assert response["statusCode"] == 200, response
        assert elapsed < bound, f"{elapsed:.3f} s > request timeout + 100 ms"
        seen[response["headers"]["X-Cache"]] = seen.get(response["headers"]["X-Cache"], 0) + 1
        unseen, elapsed = timed_get(app, 7)
        assert unseen["statusCode"] == 503
        assert body_of(unseen)["error"]["code"] == "cache_unavailable"
        assert elapsed < bound, f"{elapsed:.3f} s > request timeout + 100 ms"
    return seen


def test_valkey_killed_during_traffic_then_restarted(
    app: ApiApp, tools: CacheTools, server: ValkeyServer
) -> None:
    # Given a warm API serving a snapshot
    tools.write(make_entries(10))
    assert timed_get(app)[0]["statusCode"] == 200
    # When the server is killed (SIGKILL: no goodbye to the clients)
    server.kill()
    # Then for the next 2 s every request is answered within the request timeout + 100 ms: the page it
    # served is a 200 (from the near-cache while it is young, then stale-if-error), others a 503
    seen = assert_answered_in_time(app, 2.0)
    assert seen.get("HIT", 0) >= 1
    assert seen.get("STALE", 0) >= 1
    # And when it is back on the same port, requests succeed within 2 s, with the same API process
    server.start()
    assert wait_for_valkey(app, within=2.0) < 2.0
    assert body_of(timed_get(app)[0])["count"] == 5


def test_valkey_that_hangs(app: ApiApp, tools: CacheTools, server: ValkeyServer) -> None:
    # Given a warm API, when the server stops answering (SIGSTOP: connections stay open)
    tools.write(make_entries(10))
    assert timed_get(app)[0]["statusCode"] == 200
    server.pause()
    try:
        # Then requests are answered in time instead of hanging until the Lambda timeout
        seen = assert_answered_in_time(app, 1.5)
    finally:
        server.resume()
    assert seen.get("STALE", 0) >= 1
    assert wait_for_valkey(app, within=2.0) < 2.0


def test_stale_if_error_answers_say_so_and_are_counted(
    app: ApiApp, tools: CacheTools, server: ValkeyServer, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a page served while Valkey was up, and the near-cache window gone by
    tools.write(make_entries(10))
    before = timed_get(app)[0]
    time.sleep(NEAR_CACHE_MS / 1000)
    capfd.readouterr()
    server.pause()
    try:
        # When it is asked for again while Valkey hangs
        response, _ = timed_get(app)
    finally:
        server.resume()
    # Then the same body comes back, STALE, with headers telling caches it is stale already
    assert response["statusCode"] == 200
    assert response["body"] == before["body"]
    assert response["headers"]["X-Cache"] == "STALE"
    assert (
        response["headers"]["Cache-Control"]
        == "public, max-age=0, stale-while-revalidate=0, stale-if-error=86400"
    )
    assert response["headers"]["ETag"] == before["headers"]["ETag"]
    # And the failure is logged and counted
    out = capfd.readouterr().out
    [warning] = [line for line in log_lines(out) if line["message"] == "served_stale_on_error"]
    assert "VALKEY_REQUEST_TIMEOUT_MS" in warning["error"]
    [metrics] = emf_documents(out)
    assert metrics["StaleOnError"] == 1
    assert metrics["Stale"] == 1


def test_warm_invocations_reuse_one_connection(app: ApiApp, tools: CacheTools) -> None:
    tools.write(make_entries(10))
    timed_get(app)
    client = app.connection.ready
    before = info(tools, "clients", "connected_clients")
    for count in range(1, 51):  # different pages: the near-cache does not answer them
        assert timed_get(app, count)[0]["statusCode"] == 200
    after = info(tools, "clients", "connected_clients")
    assert app.connection.ready is client
    assert after == before


def test_maxmemory_reached_fails_the_message_and_keeps_serving_the_old_snapshot(
    target: ValkeyTarget, key_prefix: str, tools: CacheTools, app: ApiApp, server: ValkeyServer, postgres: Any
) -> None:
    # Given an old snapshot, and a cache that cannot hold another copy next to it
    postgres.psql("truncate challenge_results, challenge_best, leaderboard_totals restart identity;")
    postgres.psql(
        "insert into challenge_results (user_id, username, challenge_id, score, submitted_at) "
        "select ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, repeat('n', 60), 'a', g, now() "
        "from generate_series(1, 20000) g;"
    )
    old_version = tools.write(make_entries(10), age_seconds=300)
    used = info(tools, "memory", "used_memory")
    tools.command("CONFIG", "SET", "maxmemory", str(used + 512 * 1024))
    tools.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    worker = build_worker({**target.env(), "LEADERBOARD_KEY": key_prefix, "DATABASE_URL": postgres.uri,
                           "LEADERBOARD_SIZE": "0"})  # fmt: skip
    try:
        # When the worker tries to store a 20,000-entry snapshot
        event = sqs_event(RefreshRequest("global", "stale", datetime.now(UTC)).to_json())
        result = worker.invoke(event, FakeContext(), True)
    finally:
        run(worker.close())
    # Then the message fails (it will be retried), no staging data is left behind,
    # and readers still get the old snapshot
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert tools.command("KEYS", "*staging*") == []
    response = timed_get(app)[0]
    assert response["statusCode"] == 200
    assert body_of(response)["version"] == old_version
    tools.command("CONFIG", "SET", "maxmemory", "0")
