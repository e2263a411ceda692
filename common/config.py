"""Configuration from the environment, validated once per container.

Every problem is collected and reported together, each naming its variable. Values are never echoed:
a mistyped secret pasted into the wrong variable must not end up in CloudWatch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from common.boards import BoardRegistry, BoardSyntaxError, parse_board_list, validate_board

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

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

# Secrets seen while reading configuration. The log pipeline redacts every one of them wherever it
# appears, as a second line of defence behind "never log a secret".
_SECRETS: set[str] = set()


# GLIDE's own (Rust core) log levels. Its lines are plain text, not our JSON: off unless asked for.
CLIENT_LOG_LEVELS = ("off", "error", "warn", "info", "debug")
# Shorter values cannot be redacted usefully: replacing every "k" would garble every line.
MIN_SECRET_LENGTH = 4


def registered_secrets() -> frozenset[str]:
    return frozenset(_SECRETS)


def register_secret(value: str) -> None:
    """Mark a value fetched at run time (e.g. from Secrets Manager) for redaction in every log line."""
    if len(value) >= MIN_SECRET_LENGTH:
        _SECRETS.add(value)


def _register_url_credentials(url: str) -> None:
    """A connection URL's secrets: its password, as written and decoded, and a `password` query
    parameter (libpq accepts both); the whole URL too when it holds one. A URL without a password (a
    local socket, trust or .pgpass authentication) holds no secret, and can be shown as it is."""
    try:
        parts = urlsplit(url)
        passwords = [parts.password or ""]
        passwords += [value for key, value in parse_qsl(parts.query) if key == "password"]
    except ValueError:  # unparseable: keep all of it out of the logs
        register_secret(url)
        return
    for password in filter(None, passwords):
        register_secret(password)
        register_secret(unquote(password))
        register_secret(url)


def url_without_password(url: str) -> str:
    """A connection URL as it may be shown: its password (and a `password` query parameter) as ***.
    A URL without one comes back unchanged (the local stack's socket URL is used as it is shown)."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if parts.password:
            userinfo, _, host = parts.netloc.rpartition("@")
            parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{host}")
        if any(key == "password" for key, _ in pairs):
            masked = [(key, "***" if key == "password" else value) for key, value in pairs]
            parts = parts._replace(query=urlencode(masked, safe="/*:"))
    except ValueError:
        return "***"
    return urlunsplit(parts)


class ConfigError(Exception):
    """Raised with one line per bad variable; the message never contains a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


class EnvReader:
    """Reads typed values and remembers what was wrong instead of stopping at the first problem."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None:
            if required and default is None:
                self.problems.append(f"{name} is required")
            return default
        return value

    def secret(self, name: str) -> str | None:
        value = self._env.get(name)
        if not value:
            return None
        register_secret(value)
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value, 10)
        except ValueError:
            number = None
        if number is None or not minimum <= number <= maximum:
            self.problems.append(f"{name} must be an integer between {minimum} and {maximum}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._env.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False if lowered else default
        self.problems.append(f"{name} must be true or false")
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in choices:
            self.problems.append(f"{name} must be one of " + ", ".join(choices))
            return default
        return value.lower()

    def url(self, name: str, *, schemes: tuple[str, ...], required: bool = False) -> str | None:
        value = self.string(name, required=required)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            self.problems.append(
                f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
            return None
        return value

    def check(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


@dataclass(frozen=True, slots=True)
class ValkeySettings:
    host: str
    port: int
    cluster_mode: bool = False
    tls: bool = False
    tls_ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    request_timeout_ms: int = 250
    connect_timeout_ms: int = 1000
    client_name: str = "leaderboard"
    client_log_level: str = "off"

    @classmethod
    def read(
        cls, env: EnvReader, *, request_timeout_ms: int, connect_timeout_ms: int, client_name: str
    ) -> ValkeySettings:
        host = env.string("VALKEY_HOST", required=True) or "127.0.0.1"
        port = env.integer("VALKEY_PORT", 6379, minimum=1, maximum=65535)
        tls = env.boolean("VALKEY_TLS", False)
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
            cluster_mode=env.boolean("VALKEY_CLUSTER_MODE", False),
            tls=tls,
            tls_ca_file=ca_file,
            username=username,
            password=password,
            request_timeout_ms=env.integer(
                "VALKEY_REQUEST_TIMEOUT_MS", request_timeout_ms, minimum=10, maximum=60_000
            ),
            connect_timeout_ms=env.integer(
                "VALKEY_CONNECT_TIMEOUT_MS", connect_timeout_ms, minimum=10, maximum=60_000
            ),
            client_name=client_name,
            client_log_level=env.choice("VALKEY_CLIENT_LOG_LEVEL", "off", CLIENT_LOG_LEVELS),
        )


@dataclass(frozen=True, slots=True)
class BoardSettings:
    """What both functions must agree on: key names, which boards exist, and when a snapshot is stale."""

    key: str = "active_leaderboard"
    boards: BoardRegistry = field(default_factory=lambda: BoardRegistry.parse("global"))
    fresh_seconds: int = 60
    refresh_marker_seconds: int = 30

    @classmethod
    def read(cls, env: EnvReader) -> BoardSettings:
        key = env.string("LEADERBOARD_KEY", "active_leaderboard") or "active_leaderboard"
        if any(ch in key for ch in "{} \t\r\n") or len(key) > 100:
            env.problems.append("LEADERBOARD_KEY must be at most 100 characters without braces or spaces")
            key = "active_leaderboard"
        spec = env.string("LEADERBOARD_BOARDS", "global,challenge:*") or "global"
        # How far back week:* and month:* reach; at most what leaderboard_prune_periods keeps.
        keep_weeks = env.integer("LEADERBOARD_KEEP_WEEKS", 12, minimum=0, maximum=5_200)
        keep_months = env.integer("LEADERBOARD_KEEP_MONTHS", 12, minimum=0, maximum=1_200)
        try:
            boards = BoardRegistry.parse(spec, keep_weeks=keep_weeks, keep_months=keep_months)
        except BoardSyntaxError as exc:
            env.problems.append(f"LEADERBOARD_BOARDS {exc}")
            boards = BoardRegistry.parse("global")
        return cls(
            key=key,
            boards=boards,
            fresh_seconds=env.integer("LEADERBOARD_FRESH_SECONDS", 60, minimum=1, maximum=86_400),
            refresh_marker_seconds=env.integer(
                "LEADERBOARD_REFRESH_MARKER_SECONDS", 30, minimum=1, maximum=3_600
            ),
        )


def _queue_url(env: EnvReader, *, required: bool) -> str | None:
    return env.url("REFRESH_QUEUE_URL", schemes=("https", "http"), required=required)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    valkey: ValkeySettings
    boards: BoardSettings
    queue_url: str
    max_count: int = 100
    default_count: int = 10
    max_around: int = 50
    miss_wait_ms: int = 2000
    max_stale_seconds: int | None = None
    stale_while_revalidate_seconds: int = 300
    stale_if_error_seconds: int = 86_400
    near_cache_ms: int = 1000
    near_cache_max_entries: int = 1000
    near_cache_max_bytes: int = 16 * 1024 * 1024
    metrics_namespace: str = "Leaderboard"
    service: str = "leaderboard-api"
    # ---- the HTTP face (issue 13): who may call from a browser; how long caches keep a STALE answer
    cors_origins: tuple[str, ...] = ("*",)
    stale_max_age_seconds: int = 5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = EnvReader(environ)
        valkey = ValkeySettings.read(
            env, request_timeout_ms=250, connect_timeout_ms=1000, client_name="leaderboard-api"
        )
        boards = BoardSettings.read(env)
        max_count = env.integer("LEADERBOARD_MAX_COUNT", 100, minimum=1, maximum=10_000)
        max_stale = env.integer("LEADERBOARD_MAX_STALE_SECONDS", 0, minimum=0, maximum=31_536_000)
        settings = cls(
            valkey=valkey,
            boards=boards,
            queue_url=_queue_url(env, required=True) or "",
            max_count=max_count,
            default_count=min(10, max_count),
            max_around=env.integer("LEADERBOARD_MAX_AROUND", 50, minimum=0, maximum=500),
            miss_wait_ms=env.integer("LEADERBOARD_MISS_WAIT_MS", 2000, minimum=0, maximum=25_000),
            max_stale_seconds=max_stale or None,
            stale_while_revalidate_seconds=env.integer(
                "LEADERBOARD_STALE_WHILE_REVALIDATE_SECONDS", 300, minimum=0, maximum=31_536_000
            ),
            stale_if_error_seconds=env.integer(
                "LEADERBOARD_STALE_IF_ERROR_SECONDS", 86_400, minimum=0, maximum=31_536_000
            ),
            near_cache_ms=env.integer("LEADERBOARD_NEAR_CACHE_MS", 1000, minimum=0, maximum=60_000),
            near_cache_max_entries=env.integer(
                "LEADERBOARD_NEAR_CACHE_MAX_ENTRIES", 1000, minimum=0, maximum=1_000_000
            ),
            near_cache_max_bytes=env.integer(
                "LEADERBOARD_NEAR_CACHE_MAX_BYTES", 16 * 1024 * 1024, minimum=0, maximum=2**31
            ),
            metrics_namespace=env.string("METRICS_NAMESPACE", "Leaderboard") or "Leaderboard",
            service=env.string("POWERTOOLS_SERVICE_NAME", "leaderboard-api") or "leaderboard-api",
            # ---- the HTTP face (issue 13)
            cors_origins=_cors_origins(env),
            stale_max_age_seconds=env.integer(
                "LEADERBOARD_STALE_MAX_AGE_SECONDS", 5, minimum=1, maximum=86_400
            ),
        )
        env.check()
        return settings


_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")


def _cors_origins(env: EnvReader) -> tuple[str, ...]:
    """`*` or a comma-separated list of origins as browsers send them (scheme://host[:port], no path)."""
    raw = env.string("LEADERBOARD_CORS_ORIGINS", "*") or "*"
    origins = tuple(part.strip().lower() for part in raw.split(","))
    if origins == ("*",):
        return origins
    if not all(_ORIGIN.fullmatch(origin) for origin in origins):
        env.problems.append(
            "LEADERBOARD_CORS_ORIGINS must be * or comma-separated origins like https://example.com"
        )
        return ("*",)
    return origins


SOURCE_KINDS = ("supabase", "postgres", "http")


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """Where the ranking comes from. Exactly one source; ambiguity is an error, not a guess."""

    kind: str
    supabase_url: str | None = None
    supabase_key: str | None = field(default=None, repr=False)
    supabase_key_secret_arn: str | None = None
    database_url: str | None = field(default=None, repr=False)
    api_url: str | None = None
    api_token: str | None = field(default=None, repr=False)
    timeout_ms: int = 5000
    page_size: int = 1000

    @classmethod
    def read(cls, env: EnvReader) -> SourceSettings:
        supabase_url = env.url("SUPABASE_URL", schemes=("https", "http"))
        supabase_key = env.secret("SUPABASE_KEY")
        secret_arn = env.string("SUPABASE_KEY_SECRET_ARN")
        database_url = env.raw("DATABASE_URL")
        if database_url is not None:
            _register_url_credentials(database_url)
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
            timeout_ms=env.integer("SOURCE_TIMEOUT_MS", 5000, minimum=100, maximum=120_000),
            page_size=env.integer("SOURCE_PAGE_SIZE", 1000, minimum=1, maximum=10_000),
        )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    valkey: ValkeySettings
    boards: BoardSettings
    source: SourceSettings
    leaderboard_size: int = 0
    delta_max_rows: int = 10_000
    rebuild_seconds: int = 3_600
    scheduled_boards: tuple[str, ...] = ("global",)
    lock_ttl_ms: int = 10_000  # a lease, renewed every third of it while the refresh works
    deadline_ms: int = 60_000  # one refresh's whole budget (also capped by the invocation's time)
    min_remaining_ms: int = 5_000
    queue_url: str | None = None  # where a locked request is re-sent with a delay (else: failed)
    locked_retry_seconds: int = 3
    retry_attempts: int = 5
    retry_base_ms: int = 200
    retry_max_ms: int = 5_000
    write_chunk: int = 1000
    metrics_namespace: str = "Leaderboard"
    service: str = "leaderboard-worker"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = EnvReader(environ)
        valkey = ValkeySettings.read(
            env, request_timeout_ms=2000, connect_timeout_ms=2000, client_name="leaderboard-worker"
        )
        boards = BoardSettings.read(env)
        source = SourceSettings.read(env)
        scheduled_spec = env.string("LEADERBOARD_SCHEDULED_BOARDS", "global") or "global"
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
            leaderboard_size=env.integer("LEADERBOARD_SIZE", 0, minimum=0, maximum=10_000_000),
            delta_max_rows=env.integer("LEADERBOARD_DELTA_MAX_ROWS", 10_000, minimum=0, maximum=1_000_000),
            rebuild_seconds=env.integer("LEADERBOARD_REBUILD_SECONDS", 3_600, minimum=0, maximum=604_800),
            scheduled_boards=scheduled,
            lock_ttl_ms=env.integer("REFRESH_LOCK_TTL_MS", 10_000, minimum=1_000, maximum=900_000),
            deadline_ms=env.integer("REFRESH_DEADLINE_MS", 60_000, minimum=1_000, maximum=900_000),
            queue_url=_queue_url(env, required=False),
            locked_retry_seconds=env.integer("REFRESH_LOCKED_RETRY_SECONDS", 3, minimum=0, maximum=900),
            min_remaining_ms=env.integer("REFRESH_MIN_REMAINING_MS", 5_000, minimum=0, maximum=900_000),
            retry_attempts=env.integer("SOURCE_RETRY_ATTEMPTS", 5, minimum=1, maximum=50),
            retry_base_ms=env.integer("SOURCE_RETRY_BASE_MS", 200, minimum=1, maximum=60_000),
            retry_max_ms=env.integer("SOURCE_RETRY_MAX_MS", 5_000, minimum=1, maximum=300_000),
            write_chunk=env.integer("CACHE_WRITE_CHUNK", 1000, minimum=1, maximum=3_000),
            metrics_namespace=env.string("METRICS_NAMESPACE", "Leaderboard") or "Leaderboard",
            service=env.string("POWERTOOLS_SERVICE_NAME", "leaderboard-worker") or "leaderboard-worker",
        )
        env.check()
        return settings
