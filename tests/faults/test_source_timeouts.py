"""SOURCE_TIMEOUT_MS bounds one attempt, whatever the attempt is waiting for.

One source call (`fetch_page`) is one attempt of the worker's retry policy. It may have to get a pooled
connection, send the query and read a reply that trickles in; each of those had a timeout of its own,
so a hung source cost a multiple of the configured value per attempt (PostgreSQL: twice, the query's
timeout and then the pool's release waiting for the cancelled query). Here a frozen PostgreSQL (every
server process SIGSTOPped) and an HTTP upstream that drips its reply a byte at a time must each cost
one timeout per attempt. These are "does not hang" bounds with slack for a busy machine.

`pytest tests/faults/test_source_timeouts.py -rP | grep measured` prints the measured times.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from common.errors import SourceUnavailable
from common.runtime import run
from common.sources.base import SourcePage
from common.sources.http import HttpSource
from common.sources.postgres import PostgresSource
from common.sources.supabase import SupabaseSource
from testkit.engines import PostgresEngine

TIMEOUT_MS = 600
# Scheduling slack on a shared 2-core machine: far below the extra timeout the bug cost.
SLACK_MS = 250
ATTEMPTS = 2


def timed_attempts(fetch: Callable[[], Coroutine[Any, Any, SourcePage]]) -> list[float]:
    """Milliseconds each of ATTEMPTS failing attempts took; each must fail as SourceUnavailable."""
    durations = []
    for _ in range(ATTEMPTS):
        started = time.monotonic()
        with pytest.raises(SourceUnavailable):
            run(fetch())
        durations.append((time.monotonic() - started) * 1000)
    return durations


def assert_one_timeout_each(durations: list[float], what: str) -> None:
    print(f"measured {what}: " + ", ".join(f"{d:.0f} ms" for d in durations) + f" (timeout {TIMEOUT_MS})")
    for duration in durations:
        assert TIMEOUT_MS - 50 <= duration <= TIMEOUT_MS + SLACK_MS, durations


@pytest.mark.parametrize("pool", ["warm", "cold"])
def test_one_attempt_against_a_frozen_postgresql_costs_one_timeout(
    postgres: PostgresEngine, pool: str
) -> None:
    # Given a source with a pooled connection already open (warm), or none yet (cold)
    source = PostgresSource(postgres.uri, timeout_ms=TIMEOUT_MS)
    try:
        if pool == "warm":
            run(source.fetch_page("global", 10, None))
        # When the server freezes, each attempt costs one timeout: connection and query together
        with postgres.paused():
            durations = timed_attempts(lambda: source.fetch_page("global", 10, None))
        assert_one_timeout_each(durations, f"postgres attempts ({pool} pool)")
        # Then, once the server is back, the same source answers again
        page = run(source.fetch_page("global", 10, None))
        assert page.entries is not None
    finally:
        run(source.close())


class Drip:
    """An HTTP server that sends its headers at once, then one body byte every `interval` seconds:
    every read returns in time, so per-read timeouts never fire, yet the reply never completes."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            try:
                conn.sendall(head)
                while not self._stop.wait(self.interval):
                    conn.sendall(b" ")
            except OSError:
                return  # the client gave up: that is the point

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._listener.close()


@pytest.fixture
def drip() -> Iterator[Drip]:
    server = Drip()
    yield server
    server.close()


def test_one_attempt_against_a_dripping_http_upstream_costs_one_timeout(drip: Drip) -> None:
    source = HttpSource(drip.url + "/leaderboard", timeout_ms=TIMEOUT_MS)
    try:
        durations = timed_attempts(lambda: source.fetch_page("global", 10, None))
    finally:
        run(source.close())
    assert_one_timeout_each(durations, "http attempts (dripping reply)")


def test_one_attempt_against_a_dripping_supabase_costs_one_timeout(drip: Drip) -> None:
    async def key() -> str:
        return "service-role-key-for-the-timeout-test"

    source = SupabaseSource(drip.url, key, timeout_ms=TIMEOUT_MS)
    try:
        durations = timed_attempts(lambda: source.fetch_page("global", 10, None))
    finally:
        run(source.close())
    assert_one_timeout_each(durations, "supabase attempts (dripping reply)")
