"""C1: valkey-glide-sync against valkey-glide (async) as our handler drives it, side by side on one server.

The async client is driven the way a Lambda handler drives it: one long-lived loop and
`run_until_complete` per call (common.runtime.run). Three reads: GET of 100 bytes, `LRANGE k 0 10` on a
10k-element list, and `invoke_script` of a small read script. Plus the cold import of each package in
fresh interpreters. Both clients live in this one process (see docs/valkey.md: they share the Rust core
without sharing an event loop, which is safe).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from typing import Any

from bench.cold_start import _cold
from bench.fixtures import engines
from bench.read_path import _pin
from bench.stats import compare, summary
from common.runtime import run
from testkit.engines import ValkeyServer

_SCRIPT = "local h = redis.call('LINDEX', KEYS[1], 0); return redis.call('LRANGE', KEYS[1], 0, 10)"


@contextlib.contextmanager
def clients(server: ValkeyServer) -> Iterator[tuple[Any, Any]]:
    import glide
    import glide_sync

    sync_client = glide_sync.GlideClient.create(
        glide_sync.GlideClientConfiguration([glide_sync.NodeAddress(server.host, server.port)])
    )
    address = glide.NodeAddress(server.host, server.port)
    async_client = run(glide.GlideClient.create(glide.GlideClientConfiguration([address])))
    try:
        yield sync_client, async_client
    finally:
        sync_client.close()
        run(async_client.close())


def run_clients(import_runs: int = 7) -> dict[str, Any]:
    import glide
    import glide_sync

    everything = os.sched_getaffinity(0)
    with engines() as (server, _sqs), clients(server) as (sync_client, async_client):
        pinning = _pin(server.pid)
        sync_client.set("bench:raw100", "x" * 100)
        sync_client.rpush("bench:list", [f"entry-{i:05d}-" + "y" * 120 for i in range(10_000)])
        sync_script, async_script = glide_sync.Script(_SCRIPT), glide.Script(_SCRIPT)  # type: ignore[no-untyped-call]
        samples = compare(
            {
                "sync_get": lambda: sync_client.get("bench:raw100"),
                "async_get": lambda: run(async_client.get("bench:raw100")),
                "sync_lrange": lambda: sync_client.lrange("bench:list", 0, 10),
                "async_lrange": lambda: run(async_client.lrange("bench:list", 0, 10)),
                "sync_script": lambda: sync_client.invoke_script(sync_script, keys=["bench:list"]),
                "async_script": lambda: run(async_client.invoke_script(async_script, keys=["bench:list"])),
            },
            rounds=5,
        )
        os.sched_setaffinity(0, everything)
    cold: dict[str, list[float]] = {"glide": [], "glide_sync": []}
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as pycache:
        for imports in ("import glide", "import glide_sync"):
            _cold(imports, None, pycache, write=True)
        for _ in range(import_runs):
            for name, values in cold.items():
                values.append(_cold(f"import {name}", None, pycache))
    med = {name: statistics.median(values) for name, values in cold.items()}
    raw = {name: sample.as_dict() for name, sample in samples.items()}
    return {
        "C1_sync_vs_async_get": summary(samples["sync_get"].p50 / samples["async_get"].p50, None, **pinning),
        "C1_sync_vs_async_lrange": summary(samples["sync_lrange"].p50 / samples["async_lrange"].p50, None),
        "C1_sync_vs_async_script": summary(samples["sync_script"].p50 / samples["async_script"].p50, None),
        "C1_import_sync_vs_async": summary(
            med["glide_sync"] / med["glide"],
            None,
            glide_sync_ms=round(med["glide_sync"], 1),
            glide_ms=round(med["glide"], 1),
            runs=import_runs,
        ),
        "_clients_raw": raw,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_clients(), indent=2))
