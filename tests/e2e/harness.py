"""`python -m devstack` as a subprocess, driven the way a person would: over HTTP, with signals.

The stack runs with JSON logs (its stdout is a pipe); a reader thread keeps every line so that tests can
count what each process logged. `--info-file` tells the tests where everything is once it is ready.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from testkit.engines import free_port

# Variables that would make the stack use an engine from the environment: the tests choose explicitly.
_SCRUBBED_PREFIXES = ("VALKEY_", "LEADERBOARD_", "SUPABASE_", "REFRESH_", "SOURCE_", "AWS_ENDPOINT_URL")
_SCRUBBED = ("DATABASE_URL", "PORT", "LOG_FORMAT", "LOG_LEVEL")

FRESH_SECONDS = 3
SMALL_SAMPLE = ("--users", "120", "--challenges", "8", "--results", "2500")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _SCRUBBED and not name.startswith(_SCRUBBED_PREFIXES)
    }
    env["LEADERBOARD_FRESH_SECONDS"] = str(FRESH_SECONDS)
    env["LEADERBOARD_MISS_WAIT_MS"] = "5000"
    env.update(extra)
    return env


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class StackProcess:
    """One running `python -m devstack`."""

    def __init__(self, args: list[str], env: Mapping[str, str], info_file: Path, port: int) -> None:
        self.info_file = info_file
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[dict[str, Any]] = []
        self.stderr = ""
        self._lock = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.info: dict[str, Any] = {}
        self.client = httpx.Client(base_url=self.url, timeout=15)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"process": "?", "message": line.rstrip("\n"), "unparsed": True}
            with self._lock:
                self.lines.append(record)
                self._lock.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def wait_ready(self, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.info_file.exists():
                self.info = json.loads(self.info_file.read_text())
                return self.info
            if self.process.poll() is not None:
                self.wait_exit(5)
                raise AssertionError(
                    f"the stack exited with {self.process.returncode}: {self.stderr.strip()}"
                )
            time.sleep(0.05)
        raise AssertionError("the stack was not ready in time")

    def wait_exit(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)

    def logs(self, message: str, since: int = 0, **fields: Any) -> list[dict[str, Any]]:
        with self._lock:
            lines = self.lines[since:]
        return [
            line
            for line in lines
            if line.get("message") == message and all(line.get(k) == v for k, v in fields.items())
        ]

    def wait_log(self, message: str, since: int = 0, timeout: float = 20, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [
                    line
                    for line in self.lines[since:]
                    if line.get("message") == message and all(line.get(k) == v for k, v in fields.items())
                ]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {message!r} line with {fields} within {timeout} s")
                self._lock.wait(left)

    def get(self, path: str = "/leaderboard", **params: str | int) -> httpx.Response:
        return self.client.get(path, params=params)

    def stop(self, signum: int = signal.SIGINT, timeout: float = 20) -> tuple[int, float]:
        """Send a signal; returns (exit status, seconds it took to exit)."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.wait_exit(timeout)
        self.client.close()
        return code, time.monotonic() - started

    def kill(self) -> None:
        """Last resort for a test that failed half-way: the whole process group, no waiting."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def start_stack(tmp: Path, *args: str, env: Mapping[str, str] | None = None) -> StackProcess:
    port = free_port()
    info = tmp / f"info-{port}.json"
    argv = ["--port", str(port), "--no-simulate", "--log-format", "json", "--info-file", str(info),
            "--schedule-seconds", "0", "--visibility-timeout", "1", *args]  # fmt: skip
    return StackProcess(argv, env or clean_env(), info, port)


def eventually(check: Callable[[], Any], timeout: float = 20, interval: float = 0.2) -> Any:
    """Call `check` until it returns something truthy (and return it), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(interval)
