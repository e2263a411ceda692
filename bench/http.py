"""H1: cache-hit requests per second through the `make dev` HTTP server, 32 concurrent clients.

Informative only: in AWS the HTTP layer is API Gateway and each Lambda container serves one request at a
time. Here two API processes (the default) share this machine's two cores with the load generator,
which runs in its own process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.stats import percentile
from testkit.engines import free_port

CLIENTS = 32
SECONDS = 10.0
ROOT = Path(__file__).resolve().parent.parent


async def _load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one_client() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.monotonic() - started
    ok = statuses.get(200, 0)
    return {
        "rps": round(ok / elapsed),
        "requests": sum(statuses.values()),
        "statuses": statuses,
        "latency_p50_ms": round(percentile(latencies, 50), 2),
        "latency_p99_ms": round(percentile(latencies, 99), 2),
    }


def run_http() -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        info = Path(tmp) / "info.json"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VALKEY_", "LEADERBOARD_", "AWS_ENDPOINT"))
        }
        env.update(LEADERBOARD_FRESH_SECONDS="3600", LOG_LEVEL="WARNING")
        args = ["--port", str(port), "--no-simulate", "--info-file", str(info), "--log-format", "json"]
        args += ["--schedule-seconds", "0", "--users", "2000", "--results", "50000"]
        stack = subprocess.Popen(
            [sys.executable, "-m", "devstack", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not info.exists():
                if stack.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the dev stack did not start: {stack.stderr.read() if stack.stderr else ''}"
                    )
                time.sleep(0.2)
            url = f"http://127.0.0.1:{port}/leaderboard?count=10"
            while (
                httpx.get(url, timeout=10).headers.get("x-cache") != "HIT"
            ):  # the first read fills the cache
                time.sleep(0.2)
            loader = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import asyncio, json; from bench.http import _load; "
                    f"print(json.dumps(asyncio.run(_load({url!r}, {CLIENTS}, {SECONDS}))))",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(loader.stdout.strip().splitlines()[-1])
        finally:
            stack.send_signal(2)
            try:
                stack.wait(30)
            except subprocess.TimeoutExpired:
                stack.kill()
    return {
        "H1_http_rps": {
            "value": measured["rps"],
            "unit": f"requests/s (cache hits, {CLIENTS} clients, 2 API processes, {SECONDS:.0f} s)",
            **measured,
        }
    }


if __name__ == "__main__":
    print(json.dumps(run_http(), indent=2))
