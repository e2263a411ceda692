"""What each process of the stack gets in its environment, and what `leaderboard-ops` needs to reach it.

The functions read their configuration from the environment exactly as in AWS (common/config.py). The
stack passes the developer's environment through and sets only where the engines are, the log format
and a short fresh window; an engine the developer configured (VALKEY_HOST, REFRESH_QUEUE_URL, a source)
is used instead of the embedded one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.config import ApiSettings, ConfigError, WorkerSettings
from devstack.errors import StartupError
from devstack.options import Options
from testkit.engines import SqsEngine

__all__ = ["DEV_FRESH_SECONDS", "Endpoints", "Environment"]

DEV_FRESH_SECONDS = "10"
# The template's default (template.yaml, LeaderboardBoards), not the code's: locally, as deployed,
# the time boards (week:current, month:2026-10, …) answer out of the box.
DEV_BOARDS = "global,challenge:*,week:*,month:*,season:*"
_SOURCE_VARS = ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_KEY", "SUPABASE_KEY_SECRET_ARN",
                "LEADERBOARD_API_URL", "LEADERBOARD_API_TOKEN", "LEADERBOARD_SOURCE")  # fmt: skip
_VALKEY_VARS = ("VALKEY_CLUSTER_MODE", "VALKEY_TLS", "VALKEY_TLS_CA_FILE", "VALKEY_USERNAME",
                "VALKEY_PASSWORD")  # fmt: skip
_AWS_VARS = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# moto accepts any credentials; these dummies keep a developer's real ones out of the picture.
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# What leaderboard-ops reads, in the order the export block lists it. Secrets are left out: the
# developer's shell has them already (VALKEY_PASSWORD, real AWS credentials).
_OPS_VARS = ("AWS_ENDPOINT_URL_SQS", "AWS_REGION", *MOTO_CREDENTIALS, "REFRESH_QUEUE_URL",
             "REFRESH_DLQ_URL", "VALKEY_HOST", "VALKEY_PORT", "VALKEY_CLUSTER_MODE", "VALKEY_TLS",
             "VALKEY_TLS_CA_FILE", "VALKEY_USERNAME", "LEADERBOARD_KEY", "LEADERBOARD_BOARDS",
             "LEADERBOARD_FRESH_SECONDS")  # fmt: skip


@dataclass
class Endpoints:
    """Where the children find the engines (placeholders while validating the configuration)."""

    valkey: tuple[str, int] | None = None  # None: VALKEY_* from the environment
    queue_url: str | None = None  # None: REFRESH_QUEUE_URL from the environment
    sqs_endpoint: str | None = None
    dlq_url: str | None = None
    database_url: str | None = None  # the embedded PostgreSQL; None: the configured source


class Environment:
    """The developer's environment, and the children's environments derived from it."""

    def __init__(self, environ: Mapping[str, str], *, pretty: bool) -> None:
        self.env = dict(environ)
        self.pretty = pretty

    def is_set(self, name: str) -> bool:
        return bool(self.env.get(name, "").strip())

    @property
    def external_valkey(self) -> bool:
        return self.is_set("VALKEY_HOST")

    @property
    def external_queue(self) -> bool:
        return self.is_set("REFRESH_QUEUE_URL")

    @property
    def external_source(self) -> bool:
        return any(self.is_set(name) for name in ("DATABASE_URL", "SUPABASE_URL", "LEADERBOARD_API_URL"))

    def source_name(self) -> str:
        kind = self.env.get("LEADERBOARD_SOURCE") or ("supabase" if self.is_set("SUPABASE_URL") else "http")
        return f"the worker reads the {kind} source"

    def child_env(self, role: str, ep: Endpoints) -> dict[str, str]:
        """A function's environment. The API gets no database credentials: it never reads the source."""
        env = dict(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        env["LOG_FORMAT"] = "console" if self.pretty else "json"
        env.setdefault("LEADERBOARD_FRESH_SECONDS", DEV_FRESH_SECONDS)
        env.setdefault("LEADERBOARD_BOARDS", DEV_BOARDS)
        if ep.valkey is not None:
            for name in _VALKEY_VARS:
                env.pop(name, None)
            env["VALKEY_HOST"], env["VALKEY_PORT"] = ep.valkey[0], str(ep.valkey[1])
        if ep.queue_url is not None:
            for name in _AWS_VARS:
                env.pop(name, None)
            env.update(REFRESH_QUEUE_URL=ep.queue_url, AWS_REGION=SqsEngine.REGION,
                       AWS_DEFAULT_REGION=SqsEngine.REGION, **MOTO_CREDENTIALS)  # fmt: skip
            if ep.sqs_endpoint:
                env["AWS_ENDPOINT_URL_SQS"] = ep.sqs_endpoint
        if role == "api" or ep.database_url is not None:
            for name in _SOURCE_VARS:
                env.pop(name, None)
        if role == "worker" and ep.database_url is not None:
            env["DATABASE_URL"] = ep.database_url
        return env

    def ops_env(self, ep: Endpoints) -> dict[str, str]:
        """What `leaderboard-ops` needs to operate this stack: the queues, Valkey, the board settings
        and the fresh window the API uses (so that `cache show` judges freshness as the API does)."""
        worker = self.child_env("worker", ep)
        if ep.dlq_url:
            worker["REFRESH_DLQ_URL"] = ep.dlq_url
        moto = ep.queue_url is not None  # then its dummy credentials; never the developer's real ones
        names = [name for name in _OPS_VARS if moto or name not in MOTO_CREDENTIALS]
        return {name: worker[name] for name in names if worker.get(name, "").strip()}

    def validate(self, opt: Options) -> None:
        """Check both functions' configuration before anything starts (with placeholder addresses)."""
        placeholders = Endpoints(
            valkey=None if self.external_valkey else ("127.0.0.1", 6379),
            queue_url=None if self.external_queue else "http://127.0.0.1:1/000000000000/q",
            database_url=None if self.external_source else "postgresql://localhost/postgres",
        )
        problems: list[str] = []
        for role, settings in (("api", ApiSettings), ("worker", WorkerSettings)):
            try:
                settings.from_env(self.child_env(role, placeholders))
            except ConfigError as error:
                problems += [p for p in error.problems if p not in problems]
        if problems:
            raise StartupError("invalid configuration: " + "; ".join(problems))
        if opt.migrate and not self.is_set("DATABASE_URL"):
            raise StartupError(
                "--migrate applies supabase/migrations to DATABASE_URL, which is not set (the embedded "
                "PostgreSQL is always migrated; for a Supabase project use `supabase db push`)"
            )
        if (opt.seed or opt.simulate) and self.external_source and not self.is_set("DATABASE_URL"):
            flag = "--seed" if opt.seed else "--simulate"
            raise StartupError(
                f"{flag} writes to PostgreSQL: set DATABASE_URL (or unset the source variables to use "
                "the embedded PostgreSQL)"
            )
