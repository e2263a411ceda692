"""`make dev` output: every line the supervisor writes, its children's included, is redacted."""

from __future__ import annotations

import io
import json

import pytest

from common.config import WorkerSettings
from common.secret_registry import register_secret, url_without_password
from devstack.output import Output

SECRET = "devstack-secret-3c4d5e6f"


@pytest.fixture
def secret() -> str:
    register_secret(SECRET)
    return SECRET


@pytest.mark.parametrize("pretty", [False, True])
def test_every_kind_of_line_is_redacted(secret: str, pretty: bool) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(pretty, stream=stdout, error_stream=stderr)
    # A child's JSON line, a child's plain line (a traceback), the supervisor's event, the banner
    out.child_line("worker", json.dumps({"message": "x", "dsn": f"postgresql://u:{secret}@h/db"}))
    out.child_line("api-1", f"Traceback: connect failed with password {secret}")
    out.event("info", "ready", database_url=f"postgresql://u:{secret}@h/db", nested={"k": secret})
    if pretty:
        out.block(["", f"  PostgreSQL  postgresql://u:{secret}@h/db", ""])  # the console banner
    out.stderr(f"devstack: error: could not connect with {secret}")
    written = stdout.getvalue() + stderr.getvalue()
    assert secret not in written
    assert written.count("***") >= 5
    if not pretty:
        for line in stdout.getvalue().splitlines():
            json.loads(line)  # still one JSON object per line


def test_the_ready_line_shows_the_database_url_without_its_password() -> None:
    # The supervisor reads the configuration like the worker does, which registers the password
    url = "postgresql://app:hunter2-devstack@db.example:5432/leaderboard?sslmode=require"
    WorkerSettings.from_env({"VALKEY_HOST": "127.0.0.1", "DATABASE_URL": url})
    shown = url_without_password(url)
    assert shown == "postgresql://app:***@db.example:5432/leaderboard?sslmode=require"
    stdout = io.StringIO()
    Output(False, stream=stdout).event("info", "ready", database_url=shown)
    assert json.loads(stdout.getvalue())["database_url"] == shown
    # A URL without a password (the embedded PostgreSQL's socket URL) is shown, and usable, as it is
    local = "postgresql://postgres:@/postgres?host=/tmp/pg-1/pgdata"
    assert url_without_password(local) == local
