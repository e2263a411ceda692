"""Real engines from wheels, on loopback and free ports: valkey-server (standalone or a 3-node cluster),
PostgreSQL (pgserver) with the Supabase migrations, and moto's SQS server.

TLS is the one thing the wheels cannot do: the embedded valkey-server is built without it. A server with
`tls=` runs the system's `redis-server` (Debian's 7.0 is built with TLS; `apt-get install redis-server`)
with certificates from a throwaway `CertificateAuthority` (trustme). A missing program raises
`EngineMissing`, which callers may turn into a skip; every other start failure is an `EngineError`.

The test suite and `make dev` both start their engines here, so there is one way to do it. One module
per engine (`valkey_engines`, `postgres_engine`, `sqs_engine`; `ports` and `errors` shared), gathered
here so that callers import from one place. Every
engine is a child process (or a thread) that `stop()` ends and waits for: no orphan is left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testkit.errors import EngineError, EngineMissing
from testkit.ports import free_port, port_in_use
from testkit.postgres_engine import MIGRATIONS, PostgresEngine, migrations
from testkit.sqs_engine import Queues, SqsEngine
from testkit.valkey_engines import (
    CertificateAuthority,
    TlsFiles,
    ValkeyCluster,
    ValkeyServer,
    tls_server_binary,
    valkey_binary,
)

__all__ = [
    "MIGRATIONS",
    "ROOT",
    "CertificateAuthority",
    "EngineError",
    "EngineMissing",
    "PostgresEngine",
    "Queues",
    "SqsEngine",
    "TlsFiles",
    "ValkeyCluster",
    "ValkeyServer",
    "free_port",
    "migrations",
    "port_in_use",
    "running",
    "tls_server_binary",
    "valkey_binary",
]

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def running(engine: Any) -> Iterator[Any]:
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
