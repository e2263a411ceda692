"""Every environment variable the functions and the operator's CLI read, described once: name, default,
bounds, who reads it, and one line of documentation.

`common.config` parses and validates from these entries (no default or bound is written anywhere else),
and README's configuration table is generated from them: `python -m common.settings` prints it, and
tests/unit/test_settings_registry.py fails when README's copy is not current.

A default may differ per reader (the API's Valkey timeouts are small so that it fails fast, the
worker's patient); `defaults` then holds one value per reader.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["API", "OPS", "SETTINGS", "WORKER", "Setting", "markdown_table", "setting"]

API, WORKER, OPS = "api", "worker", "ops"
Value = int | str | bool | None
_YEAR = 31_536_000


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    readers: tuple[str, ...]
    doc: str
    default: Value = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    defaults: Mapping[str, Value] = field(default_factory=dict)  # per reader, when they differ
    shown: str | None = None  # how README shows the default, when the value alone would mislead

    def default_for(self, reader: str | None = None) -> Value:
        return self.defaults.get(reader, self.default) if reader else self.default

    def bounds(self) -> tuple[int, int]:
        assert self.minimum is not None and self.maximum is not None, f"{self.name} has no bounds"
        return self.minimum, self.maximum

    def range(self) -> str:
        """What values are accepted, as README shows it."""
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum}..{self.maximum}"
        if self.choices:
            return ", ".join(self.choices)
        if isinstance(self.default, bool):
            return "true, false"
        return ""

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        if self.defaults:
            return ", ".join(f"{'API' if r == API else r} {_show(v)}" for r, v in self.defaults.items())
        return _show(self.default)


def _show(value: Value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"`{value}`" if value else "—"
    return str(value)


def _int(
    name: str,
    readers: tuple[str, ...],
    default: int,
    low: int,
    high: int,
    doc: str,
    *,
    defaults: Mapping[str, Value] | None = None,
    shown: str | None = None,
) -> Setting:
    return Setting(name, readers, doc, default, low, high, defaults=defaults or {}, shown=shown)


_ALL = (API, WORKER, OPS)
_BOTH = (API, WORKER)

_ENTRIES = (
    # ---- Valkey (both functions, and the CLI)
    Setting("VALKEY_HOST", _ALL, "the cache endpoint's host", shown="required"),
    _int("VALKEY_PORT", _ALL, 6379, 1, 65535, "the cache endpoint's port"),
    Setting(
        "VALKEY_CLUSTER_MODE", _ALL, "cluster client (ElastiCache Serverless and cluster-mode groups)", False
    ),
    Setting("VALKEY_TLS", _ALL, "TLS (certificates are always verified)", False),
    Setting("VALKEY_TLS_CA_FILE", _ALL, "a PEM CA file, for a private CA (needs VALKEY_TLS)"),
    Setting("VALKEY_USERNAME", _ALL, "ACL user (needs VALKEY_PASSWORD)"),
    Setting("VALKEY_PASSWORD", _ALL, "AUTH password, or the ACL user's (a secret: redacted from every log)"),
    _int(
        "VALKEY_REQUEST_TIMEOUT_MS",
        _ALL,
        2000,
        10,
        60_000,
        "per-command timeout: the API fails fast",
        defaults={API: 250, WORKER: 2000, OPS: 2000},
    ),
    _int(
        "VALKEY_CONNECT_TIMEOUT_MS",
        _ALL,
        2000,
        10,
        60_000,
        "connection timeout",
        defaults={API: 1000, WORKER: 2000, OPS: 2000},
    ),
    Setting(
        "VALKEY_CLIENT_LOG_LEVEL",
        _ALL,
        "GLIDE's own (plain-text) log lines",
        "off",
        choices=("off", "error", "warn", "info", "debug"),
    ),
    # ---- the boards (both functions, and the CLI)
    Setting(
        "LEADERBOARD_KEY", _ALL, "the global board's key; other keys derive from it", "active_leaderboard"
    ),
    Setting(
        "LEADERBOARD_BOARDS",
        _ALL,
        "boards served (`challenge:*` = any challenge; `week:*`, `month:*`, `season:*` the time boards)",
        "global,challenge:*",
    ),
    _int(
        "LEADERBOARD_KEEP_WEEKS",
        _ALL,
        12,
        0,
        5_200,
        "past weeks `week:*` serves (at most what `leaderboard_prune_periods` keeps)",
    ),
    _int("LEADERBOARD_KEEP_MONTHS", _ALL, 12, 0, 1_200, "past months `month:*` serves"),
    _int("LEADERBOARD_FRESH_SECONDS", _ALL, 60, 1, 86_400, "freshness window"),
    _int(
        "LEADERBOARD_REFRESH_MARKER_SECONDS",
        _ALL,
        30,
        1,
        3_600,
        "how long one stale episode suppresses further refresh requests",
    ),
    # ---- the API
    Setting(
        "REFRESH_QUEUE_URL",
        _ALL,
        "the refresh queue (`AWS_ENDPOINT_URL_SQS` overrides the endpoint); the "
        "worker re-sends a request that found its board locked there (unset or FIFO: the record is "
        "reported failed instead)",
        shown="API: required; worker: unset (template: RefreshQueue)",
    ),
    _int(
        "LEADERBOARD_MAX_COUNT",
        (API,),
        100,
        1,
        10_000,
        "largest `count` of a page (the default page is 10, or this when smaller)",
    ),
    _int("LEADERBOARD_MAX_AROUND", (API,), 50, 0, 500, "largest `around` of a user's window"),
    _int("LEADERBOARD_MISS_WAIT_MS", (API,), 2000, 0, 25_000, "how long a cold miss waits for the worker"),
    _int(
        "LEADERBOARD_MAX_STALE_SECONDS",
        (API,),
        0,
        0,
        _YEAR,
        "beyond this age, 503 instead of stale data; 0 = no limit",
        shown="unset",
    ),
    _int(
        "LEADERBOARD_STALE_WHILE_REVALIDATE_SECONDS",
        (API,),
        300,
        0,
        _YEAR,
        "Cache-Control stale-while-revalidate",
    ),
    _int(
        "LEADERBOARD_STALE_IF_ERROR_SECONDS",
        (API,),
        86_400,
        0,
        _YEAR,
        "Cache-Control stale-if-error; also "
        "how long after going stale the container's own last copy may answer while Valkey fails",
    ),
    _int(
        "LEADERBOARD_STALE_MAX_AGE_SECONDS",
        (API,),
        5,
        1,
        86_400,
        "how long caches may keep a STALE answer while its refresh runs ([HTTP caching](#http-caching))",
    ),
    Setting(
        "LEADERBOARD_CORS_ORIGINS",
        (API,),
        "browser origins allowed to read the answers: `*` or comma-separated origins (`https://example.com`)",
        "*",
    ),
    _int(
        "LEADERBOARD_NEAR_CACHE_MS",
        (API,),
        1000,
        0,
        60_000,
        "near-cache: a page this container read less "
        "than this long ago (of the board's newest version, snapshot still fresh) is served again without "
        "a round trip; 0 = off",
    ),
    _int(
        "LEADERBOARD_NEAR_CACHE_MAX_ENTRIES",
        (API,),
        1000,
        0,
        1_000_000,
        "how many recent reads (near-cache "
        'and stale-if-error copies) a container keeps, split evenly between pages and "my rank" windows',
    ),
    _int(
        "LEADERBOARD_NEAR_CACHE_MAX_BYTES",
        (API,),
        16 * 1024 * 1024,
        0,
        2**31,
        "how many bytes those recent reads may hold",
    ),
    # ---- the worker's source
    Setting(
        "LEADERBOARD_SOURCE",
        (WORKER,),
        "`supabase`, `postgres` or `http`",
        shown="inferred",
        choices=("supabase", "postgres", "http"),
    ),
    Setting("SUPABASE_URL", (WORKER,), "Supabase source: the project URL"),
    Setting("SUPABASE_KEY", (WORKER,), "Supabase source: the service key (a secret)"),
    Setting("SUPABASE_KEY_SECRET_ARN", (WORKER,), "Supabase source: the key from Secrets Manager instead"),
    Setting("DATABASE_URL", (WORKER,), "PostgreSQL source (its password is a secret)"),
    Setting("LEADERBOARD_API_URL", (WORKER,), "upstream HTTP source"),
    Setting("LEADERBOARD_API_TOKEN", (WORKER,), "upstream HTTP source's bearer token (a secret)"),
    _int(
        "SOURCE_TIMEOUT_MS",
        (WORKER,),
        5000,
        100,
        120_000,
        "deadline of one attempt at one page: connecting "
        "(or waiting for a pooled connection), the request and the whole reply together; a timed-out "
        "attempt is transient and retried",
    ),
    _int(
        "SOURCE_PAGE_SIZE",
        (WORKER,),
        1000,
        1,
        10_000,
        "rows per page (Supabase returns at most 1000 rows per request by default)",
    ),
    _int("SOURCE_RETRY_ATTEMPTS", (WORKER,), 5, 1, 50, "attempts per source call (transient errors only)"),
    _int("SOURCE_RETRY_BASE_MS", (WORKER,), 200, 1, 60_000, "first retry's wait (random exponential)"),
    _int("SOURCE_RETRY_MAX_MS", (WORKER,), 5_000, 1, 300_000, "longest wait between attempts"),
    # ---- the worker's refresh
    _int(
        "LEADERBOARD_SIZE",
        (WORKER,),
        0,
        0,
        10_000_000,
        "entries kept per board: 0 keeps every ranked "
        "player; N > 0 is a memory cap (the top N; a capped board that loses players below N is rebuilt "
        "by the next refresh)",
    ),
    _int(
        "LEADERBOARD_DELTA_MAX_ROWS",
        (WORKER,),
        10_000,
        0,
        1_000_000,
        "more changes than this since the last refresh: rebuild instead of a delta",
    ),
    _int(
        "LEADERBOARD_REBUILD_SECONDS",
        (WORKER,),
        3_600,
        0,
        604_800,
        "read each board whole at least this often (periodic reconciliation); 0 = only when needed",
    ),
    Setting(
        "LEADERBOARD_SCHEDULED_BOARDS",
        (WORKER,),
        'what a schedule message (`"board": "*"`) refreshes; '
        "`week:current`, `month:current` = the current period (and, for an hour after it ends, the "
        "previous one)",
        "global",
    ),
    _int(
        "REFRESH_LOCK_TTL_MS",
        (WORKER,),
        10_000,
        1_000,
        900_000,
        "the lock's lease (renewed every third of it; a dead worker's lock lapses within it)",
    ),
    _int(
        "REFRESH_DEADLINE_MS",
        (WORKER,),
        60_000,
        1_000,
        900_000,
        "one refresh's whole budget (also capped by the invocation's remaining time)",
        shown="60000 (template: 120000)",
    ),
    _int(
        "REFRESH_MIN_REMAINING_MS", (WORKER,), 5_000, 0, 900_000, "least invocation time to start a refresh"
    ),
    _int(
        "REFRESH_LOCKED_RETRY_SECONDS",
        (WORKER,),
        3,
        0,
        900,
        "delay of a request re-sent because its board was locked",
    ),
    _int(
        "CACHE_WRITE_CHUNK",
        (WORKER,),
        1000,
        1,
        3_000,
        "players per staging script of a rebuild (a script blocks Valkey while it runs)",
    ),
    # ---- logs and metrics
    Setting("LOG_LEVEL", _ALL, "log level", "INFO"),
    Setting("LOG_FORMAT", _ALL, "`json`, or `console` for people", "json"),
    Setting(
        "POWERTOOLS_SERVICE_NAME",
        _BOTH,
        "the `service` of every log line and metric",
        defaults={API: "leaderboard-api", WORKER: "leaderboard-worker"},
    ),
    Setting("METRICS_NAMESPACE", _BOTH, "CloudWatch namespace of the metrics", "Leaderboard"),
    # ---- the CLI's own
    Setting("REFRESH_DLQ_URL", (OPS,), "the refresh queue's DLQ (else derived from its RedrivePolicy)"),
    _int("AWS_MAX_ATTEMPTS", (OPS,), 3, 1, 20, "tries per SQS call, the first included (the AWS SDKs' own)"),
)

SETTINGS: Mapping[str, Setting] = {entry.name: entry for entry in _ENTRIES}


def setting(name: str) -> Setting:
    return SETTINGS[name]


_WHO = {API: "API", WORKER: "worker", OPS: "ops"}


def markdown_table() -> str:
    """README's configuration table, one row per variable."""
    rows = ["| variable | used by | default | range | meaning |", "|---|---|---|---|---|"]
    for entry in _ENTRIES:
        who = ", ".join(_WHO[reader] for reader in entry.readers)
        rows.append(f"| `{entry.name}` | {who} | {entry.shown_default()} | {entry.range()} | {entry.doc} |")
    return "\n".join(rows) + "\n"


BEGIN, END = (
    "<!-- settings table: begin (python -m common.settings --write) -->",
    "<!-- settings table: end -->",
)
_BLOCK = re.compile(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), re.DOTALL)


def readme_table(readme: str) -> str | None:
    """The table between README's markers, or None when the markers are missing."""
    found = _BLOCK.search(readme)
    return found.group(1) if found else None


def main(argv: list[str]) -> int:
    """Print the table; with --write, replace README's copy (run from the repository's root)."""
    if argv[1:] == ["--write"]:
        path = Path("README.md")
        text = path.read_text()
        if readme_table(text) is None:
            print(f"README.md has no {BEGIN!r} ... {END!r} block", file=sys.stderr)
            return 1
        path.write_text(_BLOCK.sub(lambda _: f"{BEGIN}\n{markdown_table()}{END}", text))
        return 0
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
