"""Timeouts for Lambda in a VPC: what a hung Valkey (SIGSTOP: connections stay open, nothing answers)
costs the API is the configured VALKEY_REQUEST_TIMEOUT_MS once connected, and VALKEY_CONNECT_TIMEOUT_MS
at cold start. These are "does not hang" bounds with slack for a busy machine, not performance targets.

`pytest tests/connectivity/test_timeouts.py -rP | grep measured` prints the measured times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api_lambda.app import ApiApp
from testkit.engines import ValkeyServer
from tests.connectivity.conftest import Endpoint, Writer, endpoint_of, error_lines, get
from tests.support import body_of, make_entries

pytestmark = pytest.mark.usefixtures("sqs")

ApiFor = Callable[..., ApiApp]
WriterFor = Callable[[Endpoint], Writer]
# Scheduling slack on a shared 2-core machine; well below the gap between the two timeouts tested.
SLACK_MS = 250


@pytest.fixture
def own_server() -> Iterator[ValkeyServer]:
    """A server of this test's own, since it will be paused (stop() resumes it first)."""
    server = ValkeyServer().start()
    try:
        yield server
    finally:
        server.stop()


def _timed_get(app: ApiApp, query: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = get(app, query)
    return response, (time.monotonic() - started) * 1000


@pytest.mark.parametrize("request_timeout_ms", [200, 700])
def test_a_hung_server_costs_the_configured_request_timeout(
    own_server: ValkeyServer,
    api_for: ApiFor,
    writer_for: WriterFor,
    request_timeout_ms: int,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a warm API container, connected, serving a snapshot
    endpoint = endpoint_of(own_server)
    writer_for(endpoint).write(make_entries(5))
    app = api_for(endpoint, VALKEY_REQUEST_TIMEOUT_MS=str(request_timeout_ms))
    assert get(app)["statusCode"] == 200
    capfd.readouterr()
    # When the server hangs
    own_server.pause()
    try:
        response, elapsed_ms = _timed_get(app, {"count": "3"})
        served, served_ms = _timed_get(app)
    finally:
        own_server.resume()
    # Then a page this container never served is a 503 cache_unavailable after the configured request
    # timeout, not later
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "cache_unavailable"
    assert request_timeout_ms * 0.9 <= elapsed_ms < request_timeout_ms + SLACK_MS
    [line] = error_lines(capfd.readouterr().out)
    assert "VALKEY_REQUEST_TIMEOUT_MS" in line["error"]
    # And the page it served is answered from its last copy (stale-if-error), after the same timeout
    assert served["statusCode"] == 200
    assert served["headers"]["X-Cache"] == "STALE"
    assert request_timeout_ms * 0.9 <= served_ms < request_timeout_ms + SLACK_MS
    # And once the server is back, the same container serves again (GLIDE reconnects by itself)
    deadline = time.monotonic() + 5
    while get(app)["statusCode"] != 200:
        assert time.monotonic() < deadline, "the API did not recover after the server resumed"
        time.sleep(0.1)
    print(
        f"measured: hung server, VALKEY_REQUEST_TIMEOUT_MS={request_timeout_ms}: 503 in {elapsed_ms:.0f} ms"
    )


def test_a_server_hung_at_cold_start_costs_the_connect_timeout(
    own_server: ValkeyServer, api_for: ApiFor, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a cold API container, and a server that accepts connections but answers nothing
    connect_timeout_ms = 300
    app = api_for(endpoint_of(own_server), VALKEY_CONNECT_TIMEOUT_MS=str(connect_timeout_ms))
    capfd.readouterr()
    own_server.pause()
    try:
        # When two requests arrive
        first, first_ms = _timed_get(app)
        second, second_ms = _timed_get(app)
    finally:
        own_server.resume()
    # Then both are 503s: the first after the connect timeout plus one look at the endpoint (the
    # diagnosis), the next after the connect timeout alone (a container diagnoses once)
    assert first["statusCode"] == second["statusCode"] == 503
    assert connect_timeout_ms * 0.9 <= first_ms < 2 * connect_timeout_ms + SLACK_MS
    assert connect_timeout_ms * 0.9 <= second_ms < connect_timeout_ms + SLACK_MS
    # And the log says the server is hung, naming where it is
    lines = error_lines(capfd.readouterr().out)
    assert len(lines) == 2
    for line in lines:
        assert "VALKEY_HOST" in line["error"]
        assert "did not answer within 300 ms" in line["error"]
    print(
        f"measured: server hung at cold start, VALKEY_CONNECT_TIMEOUT_MS={connect_timeout_ms}: "
        f"503 after {first_ms:.0f} ms (first request), {second_ms:.0f} ms (second)"
    )
