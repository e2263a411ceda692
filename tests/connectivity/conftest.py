"""Valkey as production runs it: TLS, passwords and ACL users, hung and unreachable servers, a cluster.

Each test describes an endpoint by the VALKEY_* variables a Lambda function would get (`Endpoint`),
builds API apps on it (`api_for`), writes snapshots with the worker's own cache code (`writer_for`) and
reads what the API logged (`error_lines`).

TLS servers are the system's redis-server (the embedded valkey-server has no TLS) with certificates from
a throwaway CA made by trustme. Where redis-server is not installed, the TLS tests are skipped with that
reason and nothing else; `.ci/run` installs it, so CI always runs them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import common.logs
from api_lambda.app import ApiApp, build_app
from common.boards import KeySpace
from common.cache import LeaderboardCache, SnapshotHeader
from common.config import EnvReader, ValkeySettings, registered_secrets
from common.lock import RefreshLock
from common.models import Entry
from common.runtime import run
from common.settings import WORKER
from common.valkey import ValkeyConnection
from testkit.engines import (
    CertificateAuthority,
    EngineMissing,
    Queues,
    TlsFiles,
    ValkeyCluster,
    ValkeyServer,
    tls_server_binary,
)
from tests.support import FakeContext, http_event, log_lines, missing_tool

# Random per session, so that finding one in captured output can only mean it leaked.
DEFAULT_PASSWORD = f"default-{secrets.token_hex(12)}"
APP_USER, APP_PASSWORD = "app", f"app-{secrets.token_hex(12)}"
NO_SCRIPTS_USER, NO_SCRIPTS_PASSWORD = "noscripts", f"noscripts-{secrets.token_hex(12)}"
LEAST_USER, LEAST_PASSWORD = "leaderboard", f"least-{secrets.token_hex(12)}"
# The least-privilege access string of docs/valkey.md, for key prefixes "lb-..." (the tests' key_prefix).
LEAST_ACCESS = "on ~lb-* ~{lb-* -@all +@read +@write +@scripting +@connection +info +time +cluster|slots"
# ElastiCache's usual access string ("on ~* +@all", plus channels), one without Lua, and the least one.
ACL_USERS = (
    "--user", APP_USER, "on", f">{APP_PASSWORD}", "~*", "&*", "+@all",
    "--user", NO_SCRIPTS_USER, "on", f">{NO_SCRIPTS_PASSWORD}", "~*", "&*", "+@all", "-@scripting",
    "--user", LEAST_USER, f">{LEAST_PASSWORD}", *LEAST_ACCESS.split(),
)  # fmt: skip


@dataclass(frozen=True)
class Endpoint:
    """A Valkey endpoint as a function's configuration names it."""

    host: str
    port: int
    cluster: bool = False
    tls: bool = False
    tls_ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return "cluster" if self.cluster else "standalone"

    def env(self) -> dict[str, str]:
        env = {
            "VALKEY_HOST": self.host,
            "VALKEY_PORT": str(self.port),
            "VALKEY_CLUSTER_MODE": "true" if self.cluster else "false",
            "VALKEY_TLS": "true" if self.tls else "false",
        }
        for name, value in (
            ("VALKEY_TLS_CA_FILE", self.tls_ca_file),
            ("VALKEY_USERNAME", self.username),
            ("VALKEY_PASSWORD", self.password),
        ):
            if value is not None:
                env[name] = value
        return env

    def settings(self, *, request_timeout_ms: int = 5000) -> ValkeySettings:
        """Read through the same code as the functions' configuration."""
        env = EnvReader({"VALKEY_REQUEST_TIMEOUT_MS": str(request_timeout_ms), **self.env()})
        settings = ValkeySettings.read(env, reader=WORKER, client_name="tests")
        env.check()
        return settings


def endpoint_of(engine: ValkeyServer | ValkeyCluster, **kwargs: Any) -> Endpoint:
    """The endpoint of a test engine (its topology unless `cluster=` says otherwise)."""
    kwargs.setdefault("cluster", isinstance(engine, ValkeyCluster) or engine.cluster)
    return Endpoint(engine.host, engine.port, **kwargs)


class Writer:
    """Writes snapshots as the worker does (lock, staging, fenced swap) through any endpoint."""

    def __init__(self, settings: ValkeySettings, prefix: str) -> None:
        self.connection = ValkeyConnection(settings)
        self.keys = KeySpace(prefix)
        self.cache = LeaderboardCache(self.connection, self.keys)
        self.lock = RefreshLock(self.connection, self.keys, holder="test")

    def write(self, entries: Sequence[Entry], *, board: str = "global", age_seconds: float = 0) -> int:
        """Store a snapshot under a fresh lease; returns its version."""

        async def go() -> int:
            lease = await self.lock.acquire(board, 10_000)
            assert lease is not None, "the lock is held"
            try:
                assert await self.cache.write_snapshot(
                    self.header(board, lease.version, entries, age_seconds), entries, staging_ttl_ms=10_000
                )
            finally:
                await self.lock.release(lease)
            return lease.version

        return run(go())

    @staticmethod
    def header(board: str, version: int, entries: Sequence[Entry], age_seconds: float = 0) -> SnapshotHeader:
        return SnapshotHeader(
            board=board,
            version=version,
            generated_at_ms=int((time.time() - age_seconds) * 1000),
            total=len(entries),
            size=len(entries),
            source="test",
        )

    def command(self, *args: str) -> Any:
        async def go() -> Any:
            client = await self.connection.client()
            return await client.custom_command(list(args))

        return run(go())

    def close(self) -> None:
        run(self.connection.close())


@pytest.fixture(autouse=True)
def redact_only_this_tests_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log redactor hides every secret the process has registered, and other tests register
    throwaway ones (tests/unit sets SUPABASE_KEY="k", which would turn every "k" in a log line into
    "***"). Here it sees only secrets registered during the test. So these tests do not depend on what
    ran before them, and checks that a password appears nowhere test our code, not the safety net."""
    before = registered_secrets()
    monkeypatch.setattr(common.logs, "registered_secrets", lambda: frozenset(registered_secrets() - before))


@pytest.fixture
def writer_for(key_prefix: str) -> Iterator[Callable[[Endpoint], Writer]]:
    """Writers on any endpoint, under this test's key prefix; all closed afterwards."""
    writers: list[Writer] = []

    def make(endpoint: Endpoint) -> Writer:
        writer = Writer(endpoint.settings(), key_prefix)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close()


@pytest.fixture
def api_for(key_prefix: str, queues: Queues) -> Iterator[Callable[..., ApiApp]]:
    """API apps on an endpoint's variables plus any extra; every app is closed afterwards."""
    apps: list[ApiApp] = []

    def make(endpoint: Endpoint, **extra: str) -> ApiApp:
        env = {
            **endpoint.env(),
            "LEADERBOARD_KEY": key_prefix,
            "REFRESH_QUEUE_URL": queues.queue_url,
            "LEADERBOARD_MISS_WAIT_MS": "0",
            "LEADERBOARD_NEAR_CACHE_MS": "0",  # every read goes to the endpoint under test
            **extra,
        }
        app = build_app(env)
        assert isinstance(app, ApiApp), app
        apps.append(app)
        return app

    yield make
    for app in apps:
        run(app.close())


def get(app: ApiApp, query: dict[str, str] | None = None) -> dict[str, Any]:
    """GET /leaderboard as API Gateway delivers it."""
    return app.invoke(http_event("/leaderboard", query), FakeContext(), cold_start=False)


def error_lines(captured: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(captured) if line["level"] == "error"]


# ---- TLS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: TlsFiles
    other_ca: CertificateAuthority
    directory: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Our CA and a server certificate for 127.0.0.1, plus a second CA that signed nothing of ours."""
    try:
        tls_server_binary()
        directory = tmp_path_factory.mktemp("pki")
        ca = CertificateAuthority(directory / "ca").create()
        other = CertificateAuthority(directory / "other", name="some-other-ca").create()
    except EngineMissing as missing:
        missing_tool(f"TLS tests need it: {missing}")
    return Pki(ca=ca, server=ca.issue("server"), other_ca=other, directory=directory)


@pytest.fixture(scope="session")
def tls_server(pki: Pki) -> Iterator[ValkeyServer]:
    server = ValkeyServer(tls=pki.server).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_cluster(pki: Pki) -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster(tls=pki.server).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["standalone", "cluster"])
def tls_engine(request: pytest.FixtureRequest) -> ValkeyServer | ValkeyCluster:
    """A TLS-only endpoint (the plaintext port is off), standalone and as a 3-node cluster."""
    engine: ValkeyServer | ValkeyCluster = request.getfixturevalue(
        "tls_cluster" if request.param == "cluster" else "tls_server"
    )
    return engine


# ---- authentication ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def auth_server() -> Iterator[ValkeyServer]:
    server = ValkeyServer(password=DEFAULT_PASSWORD, extra_args=ACL_USERS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_cluster() -> Iterator[ValkeyCluster]:
    cluster = ValkeyCluster(password=DEFAULT_PASSWORD, extra_args=ACL_USERS).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["standalone", "cluster"])
def auth_engine(request: pytest.FixtureRequest) -> ValkeyServer | ValkeyCluster:
    """A server that wants a password for the default user and knows the ACL users above."""
    engine: ValkeyServer | ValkeyCluster = request.getfixturevalue(
        "auth_cluster" if request.param == "cluster" else "auth_server"
    )
    return engine
