"""Configuration from the environment, validated once per container.

Every problem is collected and reported together, each naming its variable. Values are never echoed:
a mistyped secret pasted into the wrong variable must not end up in CloudWatch. Each variable's default,
bounds and readers are in `common.settings` (written nowhere else); `common.env` reads typed values;
`common.secret_registry` keeps the secrets seen for redaction (re-exported here for older imports).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from common.boards import BoardRegistry, BoardSyntaxError, parse_board_list, validate_board
from common.env import ConfigError, EnvReader
from common.secret_registry import (
    register_secret,
    register_url_credentials,
    registered_secrets,
    url_without_password,
)
from common.settings import API, WORKER, setting

__all__ = [
    "ApiSettings",
    "BoardSettings",
    "ConfigError",
    "EnvReader",
    "SourceSettings",
    "ValkeySettings",
    "WorkerSettings",
    "register_secret",
    "registered_secrets",
    "url_without_password",
]

# GLIDE's own (Rust core) log levels. Its lines are plain text, not our JSON: off unless asked for.
CLIENT_LOG_LEVELS = setting("VALKEY_CLIENT_LOG_LEVEL").choices


def _default_int(name: str, reader: str) -> int:
    value = setting(name).default_for(reader)
    assert isinstance(value, int), name
    return value


@dataclass(frozen=True, slots=True)
class ValkeySettings:
    host: str
    port: int
    cluster_mode: bool = False
    tls: bool = False
    tls_ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # (what the API reads when nothing is set; ValkeySettings.read gives each reader its own)
    request_timeout_ms: int = field(default_factory=lambda: _default_int("VALKEY_REQUEST_TIMEOUT_MS", API))
    connect_timeout_ms: int = field(default_factory=lambda: _default_int("VALKEY_CONNECT_TIMEOUT_MS", API))
    client_name: str = "leaderboard"
    client_log_level: str = "off"

    @classmethod
    def read(cls, env: EnvReader, *, reader: str, client_name: str) -> ValkeySettings:
        """As `reader` (api, worker, ops) reads them: the API's timeouts are small, to fail fast."""
        host = env.string("VALKEY_HOST", required=True) or "127.0.0.1"
        port = env.int_setting("VALKEY_PORT")
        tls = env.bool_setting("VALKEY_TLS")
        ca_file = env.string("VALKEY_TLS_CA_FILE")
        if ca_file is not None:
            if not tls:
                env.problems.append("VALKEY_TLS_CA_FILE is set but VALKEY_TLS is not true")
            elif not os.path.isfile(ca_file):
                env.problems.append("VALKEY_TLS_CA_FILE does not name a readable file")
        username = env.string("VALKEY_USERNAME")
        password = env.secret("VALKEY_PASSWORD")
        if username is not None and password is None:
            env.problems.append("VALKEY_USERNAME is set but VALKEY_PASSWORD is not (ACL users need both)")
        return cls(
            host=host,
            port=port,
            cluster_mode=env.bool_setting("VALKEY_CLUSTER_MODE"),
            tls=tls,
            tls_ca_file=ca_file,
            username=username,
            password=password,
            request_timeout_ms=env.int_setting("VALKEY_REQUEST_TIMEOUT_MS", reader),
            connect_timeout_ms=env.int_setting("VALKEY_CONNECT_TIMEOUT_MS", reader),
            client_name=client_name,
            client_log_level=env.choice_setting("VALKEY_CLIENT_LOG_LEVEL"),
        )


@dataclass(frozen=True, slots=True)
class BoardSettings:
    """What both functions must agree on: key names, which boards exist, and when a snapshot is stale."""

    key: str
    boards: BoardRegistry
    fresh_seconds: int
    refresh_marker_seconds: int

    @classmethod
    def read(cls, env: EnvReader) -> BoardSettings:
        key = env.str_setting("LEADERBOARD_KEY")
        if any(ch in key for ch in "{} \t\r\n") or len(key) > 100:
            env.problems.append("LEADERBOARD_KEY must be at most 100 characters without braces or spaces")
            key = str(setting("LEADERBOARD_KEY").default)
        spec = env.str_setting("LEADERBOARD_BOARDS")
        # How far back week:* and month:* reach; at most what leaderboard_prune_periods keeps.
        keep_weeks = env.int_setting("LEADERBOARD_KEEP_WEEKS")
        keep_months = env.int_setting("LEADERBOARD_KEEP_MONTHS")
        try:
            boards = BoardRegistry.parse(spec, keep_weeks=keep_weeks, keep_months=keep_months)
        except BoardSyntaxError as exc:
            env.problems.append(f"LEADERBOARD_BOARDS {exc}")
            boards = BoardRegistry.parse("global")
        return cls(
            key=key,
            boards=boards,
            fresh_seconds=env.int_setting("LEADERBOARD_FRESH_SECONDS"),
            refresh_marker_seconds=env.int_setting("LEADERBOARD_REFRESH_MARKER_SECONDS"),
        )


DEFAULT_COUNT = 10  # a page's size when `count` is not given (at most LEADERBOARD_MAX_COUNT)


def _queue_url(env: EnvReader, *, required: bool) -> str | None:
    return env.url("REFRESH_QUEUE_URL", schemes=("https", "http"), required=required)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    valkey: ValkeySettings
    boards: BoardSettings
    queue_url: str
    max_count: int
    default_count: int
    max_around: int
    miss_wait_ms: int
    max_stale_seconds: int | None  # None: no limit
    stale_while_revalidate_seconds: int
    stale_if_error_seconds: int
    near_cache_ms: int
    near_cache_max_entries: int
    near_cache_max_bytes: int
    metrics_namespace: str
    service: str
    # ---- the HTTP face (issue 13): who may call from a browser; how long caches keep a STALE answer
    cors_origins: tuple[str, ...]
    stale_max_age_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = EnvReader(environ)
        valkey = ValkeySettings.read(env, reader=API, client_name="leaderboard-api")
        boards = BoardSettings.read(env)
        max_count = env.int_setting("LEADERBOARD_MAX_COUNT")
        max_stale = env.int_setting("LEADERBOARD_MAX_STALE_SECONDS")
        settings = cls(
            valkey=valkey,
            boards=boards,
            queue_url=_queue_url(env, required=True) or "",
            max_count=max_count,
            default_count=min(DEFAULT_COUNT, max_count),
            max_around=env.int_setting("LEADERBOARD_MAX_AROUND"),
            miss_wait_ms=env.int_setting("LEADERBOARD_MISS_WAIT_MS"),
            max_stale_seconds=max_stale or None,
            stale_while_revalidate_seconds=env.int_setting("LEADERBOARD_STALE_WHILE_REVALIDATE_SECONDS"),
            stale_if_error_seconds=env.int_setting("LEADERBOARD_STALE_IF_ERROR_SECONDS"),
            near_cache_ms=env.int_setting("LEADERBOARD_NEAR_CACHE_MS"),
            near_cache_max_entries=env.int_setting("LEADERBOARD_NEAR_CACHE_MAX_ENTRIES"),
            near_cache_max_bytes=env.int_setting("LEADERBOARD_NEAR_CACHE_MAX_BYTES"),
            metrics_namespace=env.str_setting("METRICS_NAMESPACE"),
            service=env.str_setting("POWERTOOLS_SERVICE_NAME", API),
            # ---- the HTTP face (issue 13)
            cors_origins=_cors_origins(env),
            stale_max_age_seconds=env.int_setting("LEADERBOARD_STALE_MAX_AGE_SECONDS"),
        )
        env.check()
        return settings


_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")


def _cors_origins(env: EnvReader) -> tuple[str, ...]:
    """`*` or a comma-separated list of origins as browsers send them (scheme://host[:port], no path)."""
    raw = env.str_setting("LEADERBOARD_CORS_ORIGINS")
    origins = tuple(part.strip().lower() for part in raw.split(","))
    if origins == ("*",):
        return origins
    if not all(_ORIGIN.fullmatch(origin) for origin in origins):
        env.problems.append(
            "LEADERBOARD_CORS_ORIGINS must be * or comma-separated origins like https://example.com"
        )
        return ("*",)
    return origins


SOURCE_KINDS = setting("LEADERBOARD_SOURCE").choices


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """Where the ranking comes from. Exactly one source; ambiguity is an error, not a guess."""

    kind: str
    supabase_url: str | None
    supabase_key: str | None = field(repr=False)
    supabase_key_secret_arn: str | None
    database_url: str | None = field(repr=False)
    api_url: str | None
    api_token: str | None = field(repr=False)
    timeout_ms: int
    page_size: int

    @classmethod
    def read(cls, env: EnvReader) -> SourceSettings:
        supabase_url = env.url("SUPABASE_URL", schemes=("https", "http"))
        supabase_key = env.secret("SUPABASE_KEY")
        secret_arn = env.string("SUPABASE_KEY_SECRET_ARN")
        database_url = env.raw("DATABASE_URL")
        if database_url is not None:
            register_url_credentials(database_url)
            if urlsplit(database_url).scheme not in ("postgres", "postgresql"):
                env.problems.append("DATABASE_URL must be a postgresql:// URL")
        api_url = env.url("LEADERBOARD_API_URL", schemes=("https", "http"))
        configured = [
            kind
            for kind, present in (
                ("supabase", supabase_url is not None),
                ("postgres", database_url is not None),
                ("http", api_url is not None),
            )
            if present
        ]
        kind = (env.string("LEADERBOARD_SOURCE") or "").lower()
        if kind and kind not in SOURCE_KINDS:
            env.problems.append("LEADERBOARD_SOURCE must be one of " + ", ".join(SOURCE_KINDS))
        elif not kind:
            if len(configured) == 1:
                kind = configured[0]
            elif not configured:
                env.problems.append(
                    "no source configured: set SUPABASE_URL (+ SUPABASE_KEY), DATABASE_URL "
                    "or LEADERBOARD_API_URL"
                )
            else:
                env.problems.append(
                    "LEADERBOARD_SOURCE must be set: several sources are configured ("
                    + ", ".join(configured)
                    + ")"
                )
        if kind == "supabase":
            if supabase_url is None:
                env.problems.append("SUPABASE_URL is required when LEADERBOARD_SOURCE is supabase")
            if supabase_key is None and secret_arn is None:
                env.problems.append(
                    "SUPABASE_KEY or SUPABASE_KEY_SECRET_ARN is required for the supabase source"
                )
        elif kind == "postgres" and database_url is None:
            env.problems.append("DATABASE_URL is required when LEADERBOARD_SOURCE is postgres")
        elif kind == "http" and api_url is None:
            env.problems.append("LEADERBOARD_API_URL is required when LEADERBOARD_SOURCE is http")
        return cls(
            kind=kind,
            supabase_url=supabase_url,
            supabase_key=supabase_key,
            supabase_key_secret_arn=secret_arn,
            database_url=database_url,
            api_url=api_url,
            api_token=env.secret("LEADERBOARD_API_TOKEN"),
            timeout_ms=env.int_setting("SOURCE_TIMEOUT_MS"),
            page_size=env.int_setting("SOURCE_PAGE_SIZE"),
        )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    valkey: ValkeySettings
    boards: BoardSettings
    source: SourceSettings
    leaderboard_size: int
    delta_max_rows: int
    rebuild_seconds: int
    scheduled_boards: tuple[str, ...]
    lock_ttl_ms: int  # a lease, renewed every third of it while the refresh works
    deadline_ms: int  # one refresh's whole budget (also capped by the invocation's time)
    min_remaining_ms: int
    queue_url: str | None  # where a locked request is re-sent with a delay (else: failed)
    locked_retry_seconds: int
    retry_attempts: int
    retry_base_ms: int
    retry_max_ms: int
    write_chunk: int
    metrics_namespace: str
    service: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = EnvReader(environ)
        valkey = ValkeySettings.read(env, reader=WORKER, client_name="leaderboard-worker")
        boards = BoardSettings.read(env)
        source = SourceSettings.read(env)
        scheduled_spec = env.str_setting("LEADERBOARD_SCHEDULED_BOARDS")
        try:
            scheduled = parse_board_list(scheduled_spec)
        except BoardSyntaxError as exc:
            env.problems.append(f"LEADERBOARD_SCHEDULED_BOARDS {exc}")
            scheduled = ("global",)
        unknown = [b for b in scheduled if not boards.boards.allows(validate_board(b))]
        if unknown:
            env.problems.append(
                "LEADERBOARD_SCHEDULED_BOARDS names boards that LEADERBOARD_BOARDS does not allow"
            )
        settings = cls(
            valkey=valkey,
            boards=boards,
            source=source,
            leaderboard_size=env.int_setting("LEADERBOARD_SIZE"),
            delta_max_rows=env.int_setting("LEADERBOARD_DELTA_MAX_ROWS"),
            rebuild_seconds=env.int_setting("LEADERBOARD_REBUILD_SECONDS"),
            scheduled_boards=scheduled,
            lock_ttl_ms=env.int_setting("REFRESH_LOCK_TTL_MS"),
            deadline_ms=env.int_setting("REFRESH_DEADLINE_MS"),
            queue_url=_queue_url(env, required=False),
            locked_retry_seconds=env.int_setting("REFRESH_LOCKED_RETRY_SECONDS"),
            min_remaining_ms=env.int_setting("REFRESH_MIN_REMAINING_MS"),
            retry_attempts=env.int_setting("SOURCE_RETRY_ATTEMPTS"),
            retry_base_ms=env.int_setting("SOURCE_RETRY_BASE_MS"),
            retry_max_ms=env.int_setting("SOURCE_RETRY_MAX_MS"),
            write_chunk=env.int_setting("CACHE_WRITE_CHUNK"),
            metrics_namespace=env.str_setting("METRICS_NAMESPACE"),
            service=env.str_setting("POWERTOOLS_SERVICE_NAME", WORKER),
        )
        env.check()
        return settings
