"""`python -m devstack` command line and environment, validated into one Options object.

Bad input is a one-line error and exit status 2 (argparse's two-line usage message is replaced).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from testkit.engines import ROOT

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_INFO_FILE", "Options", "UsageError", "parse_options"]

DEFAULT_DATA_DIR = ROOT / ".devstack"
# Where `leaderboard-ops --dev` looks for a running stack (ops/devinfo.py).
DEFAULT_INFO_FILE = DEFAULT_DATA_DIR / "stack.json"


class UsageError(Exception):
    """Bad flags or environment: one line, exit status 2."""


@dataclass(frozen=True, slots=True)
class Options:
    port: int = 8000
    api_workers: int = 2
    simulate: bool = False
    simulate_rate: float = 3.0
    users: int = 2_000
    challenges: int = 50
    results: int = 50_000
    random_seed: int = 42
    seed: bool | None = None  # None: seed the embedded database when it is empty; never an external one
    migrate: bool = False
    schedule_seconds: int = 60
    visibility_timeout: int = 10
    max_receive_count: int = 5
    worker_timeout: int = 60
    api_timeout: int = 10
    keep_data: bool = False
    data_dir: Path = DEFAULT_DATA_DIR
    info_file: Path = DEFAULT_INFO_FILE
    pretty: bool = True
    valkey_port: int | None = None
    sqs_port: int | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see python -m devstack --help)")


def _int(low: int, high: int) -> type[int]:
    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return convert  # type: ignore[return-value]  # argparse only needs a callable


def _env_int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise UsageError(f"{name} must be an integer between {low} and {high}") from None
    if not low <= value <= high:
        raise UsageError(f"{name} must be an integer between {low} and {high}")
    return value


def _parser(environ: Mapping[str, str]) -> _Parser:
    d = Options()
    p = _Parser(
        prog="python -m devstack",
        description="The whole leaderboard service on this machine: valkey-server, PostgreSQL with the "
        "Supabase migrations and a seeded sample, moto SQS, the API behind an API Gateway emulation "
        "and the refresh worker behind Lambda's SQS event source. Ctrl-C stops everything.",
    )
    add = p.add_argument
    add(
        "--port",
        type=_int(1, 65535),
        default=_env_int(environ, "PORT", d.port, 1, 65535),
        help="HTTP port on 127.0.0.1 (env PORT; default 8000)",
    )
    add(
        "--api-workers",
        type=_int(1, 32),
        default=d.api_workers,
        help="API processes (Lambda containers), one handler thread each (default 2)",
    )
    add(
        "--simulate",
        action=argparse.BooleanOptionalAction,
        default=d.simulate,
        help="keep inserting new results every second (make dev SIMULATE=1)",
    )
    add(
        "--simulate-rate",
        type=float,
        default=d.simulate_rate,
        help="average results per second with --simulate (default 3)",
    )
    add = p.add_argument_group("sample data").add_argument
    add("--users", type=_int(1, 10_000_000), default=d.users, help=f"players (default {d.users})")
    add(
        "--challenges",
        type=_int(1, 10_000),
        default=d.challenges,
        help=f"challenges (default {d.challenges})",
    )
    add("--results", type=_int(0, 100_000_000), default=d.results, help=f"submissions (default {d.results})")
    add(
        "--random-seed",
        type=int,
        default=d.random_seed,
        help=f"same seed, same sample (default {d.random_seed})",
    )
    add(
        "--seed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="seed the database (default: the embedded one when it is empty; an external "
        "DATABASE_URL only with --seed)",
    )
    add(
        "--migrate",
        action="store_true",
        help="apply supabase/migrations to an external DATABASE_URL (never done silently)",
    )
    add = p.add_argument_group("refresh loop").add_argument
    add(
        "--schedule-seconds",
        type=_int(0, 86_400),
        default=_env_int(environ, "LEADERBOARD_SCHEDULE_SECONDS", d.schedule_seconds, 0, 86_400),
        help="scheduled refresh period, as EventBridge Scheduler's (env LEADERBOARD_SCHEDULE_SECONDS; "
        "default 60; 0: off)",
    )
    add(
        "--visibility-timeout",
        type=_int(0, 43_200),
        default=d.visibility_timeout,
        help="queue visibility timeout in seconds (default 10: short for local use)",
    )
    add(
        "--max-receive-count",
        type=_int(1, 1000),
        default=d.max_receive_count,
        help="receives before a message moves to the DLQ (default 5, as the template)",
    )
    add(
        "--worker-timeout",
        type=_int(1, 900),
        default=d.worker_timeout,
        help="the worker function's timeout in seconds (default 60)",
    )
    add(
        "--api-timeout",
        type=_int(1, 30),
        default=d.api_timeout,
        help="the API function's timeout in seconds (default 10)",
    )
    add = p.add_argument_group("processes and data").add_argument
    add(
        "--keep-data",
        action="store_true",
        help="keep PostgreSQL's data under --data-dir and reuse it next time (no re-seeding)",
    )
    add(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where --keep-data keeps it (default {DEFAULT_DATA_DIR}); implies --keep-data",
    )
    add(
        "--info-file",
        type=Path,
        default=None,
        help=f"once ready, write URLs, pids, DATABASE_URL and the environment leaderboard-ops needs as "
        f"JSON here (default {DEFAULT_INFO_FILE}, read by leaderboard-ops --dev; removed at exit)",
    )
    add(
        "--log-format",
        choices=("console", "json"),
        default=None,
        help="default: console on a terminal, JSON otherwise (env LOG_FORMAT)",
    )
    add("--valkey-port", type=_int(1, 65535), default=None, help="embedded valkey-server's port")
    add("--sqs-port", type=_int(1, 65535), default=None, help="embedded moto server's port")
    return p


def parse_options(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Options:
    environ = os.environ if environ is None else environ
    args = _parser(environ).parse_args(argv)
    log_format = args.log_format or environ.get("LOG_FORMAT", "").strip().lower() or None
    if log_format not in (None, "console", "json"):
        raise UsageError("LOG_FORMAT must be console or json")
    pretty = sys.stdout.isatty() if log_format is None else log_format == "console"
    if args.simulate_rate <= 0 or args.simulate_rate > 1000:
        raise UsageError("--simulate-rate must be between 0 and 1000 results per second")
    return Options(
        port=args.port,
        api_workers=args.api_workers,
        simulate=args.simulate,
        simulate_rate=args.simulate_rate,
        users=args.users,
        challenges=args.challenges,
        results=args.results,
        random_seed=args.random_seed,
        seed=args.seed,
        migrate=args.migrate,
        schedule_seconds=args.schedule_seconds,
        visibility_timeout=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        worker_timeout=args.worker_timeout,
        api_timeout=args.api_timeout,
        keep_data=args.keep_data or args.data_dir is not None,
        data_dir=(args.data_dir or DEFAULT_DATA_DIR).resolve(),
        info_file=args.info_file.resolve() if args.info_file else DEFAULT_INFO_FILE,
        pretty=pretty,
        valkey_port=args.valkey_port,
        sqs_port=args.sqs_port,
    )
