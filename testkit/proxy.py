"""A TCP proxy on loopback in front of one server, which a test can cut, slow down or make fail.

For faults a real engine will not produce on demand: SQS becoming unreachable part-way through a
command (`cut()`, or `cut_at(b"DeleteMessage", 5)`: at the 5th delete; then `restore()`), one kind of
request that is slow or fails (`slow(b"DeleteMessage", 0.5)`, `fail(b"DeleteMessage", until=b"Send")`).
Rules match bytes of the client's request (an AWS JSON-protocol call names itself in its `X-Amz-Target`
header, e.g. `AmazonSQS.DeleteMessage`); a request that fails has its connection closed before it
reaches the server, as a network fault would. Threads only: it works whichever event loop (or none) the
client runs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

__all__ = ["TcpProxy"]


@dataclass(slots=True)
class _Rule:
    marker: bytes
    delay: float = 0.0
    fail: bool = False
    cut_at: int | None = None  # cut the proxy when this many requests matched (this one is dropped)
    until: bytes | None = None  # the rule ends with the first request that contains this
    matched: int = 0


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._rules: list[_Rule] = []
        self._cut = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self.requests = 0  # client chunks forwarded (roughly: requests)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    # ---- faults ------------------------------------------------------------------------------------

    def cut(self) -> None:
        """Unreachable from now on: open connections are closed, new ones closed as soon as accepted."""
        with self._lock:
            self._cut = True
            connections, self._open = self._open, set()
        for conn in connections:
            _close(conn)

    def restore(self) -> None:
        """Reachable again, every rule gone."""
        with self._lock:
            self._cut = False
            self._rules = []

    def slow(self, marker: bytes, seconds: float) -> _Rule:
        """Hold every request containing `marker` for `seconds` before forwarding it."""
        return self._add(_Rule(marker, delay=seconds))

    def fail(self, marker: bytes, *, until: bytes | None = None) -> _Rule:
        """Drop every request containing `marker` (its connection is closed), until a request that
        contains `until` passes (or `clear()`)."""
        return self._add(_Rule(marker, fail=True, until=until))

    def cut_at(self, marker: bytes, n: int) -> _Rule:
        """Cut the proxy (see `cut`) at the `n`th request containing `marker`, which is dropped."""
        return self._add(_Rule(marker, cut_at=n))

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def _add(self, rule: _Rule) -> _Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    # ---- plumbing ----------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                cut = self._cut
            if cut:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if from_client and not self._apply_rules(chunk):
                    break
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
            _close(source)
            _close(target)

    def _apply_rules(self, chunk: bytes) -> bool:
        """False: drop the request (and its connection)."""
        with self._lock:
            self.requests += 1
            self._rules = [r for r in self._rules if r.until is None or r.until not in chunk]
            rules = [rule for rule in self._rules if rule.marker in chunk]
            for rule in rules:
                rule.matched += 1
            cut_now = any(rule.cut_at is not None and rule.matched >= rule.cut_at for rule in rules)
        if cut_now:
            self.cut()
            return False
        with self._lock:
            cut = self._cut
        if cut or any(rule.fail for rule in rules):
            return False
        delay = max((rule.delay for rule in rules), default=0.0)
        if delay:
            time.sleep(delay)
        with self._lock:
            return not self._cut

    def stop(self) -> None:
        self._stopped.set()
        self.cut()
        self._thread.join(2)
        self._listener.close()


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        conn.close()
