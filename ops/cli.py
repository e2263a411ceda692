"""`leaderboard-ops`: the operator's command line.

    leaderboard-ops dlq stats                      counters of the DLQ (and queue), age of the oldest message
    leaderboard-ops dlq peek [-n N]                show DLQ messages and whether each is a valid request
    leaderboard-ops dlq replay [--dry-run] ...     move DLQ messages back to the refresh queue
    leaderboard-ops refresh [--board B] [--wait S] ask for a refresh now, optionally wait for it
    leaderboard-ops cache show [--board B]         what Valkey holds for a board
    leaderboard-ops boards show|publish [--wait S] the published set of known boards (ops/boards.py)

Configuration is the functions' own environment (REFRESH_QUEUE_URL, VALKEY_*, LEADERBOARD_KEY,
LEADERBOARD_BOARDS, LEADERBOARD_FRESH_SECONDS, ...) plus REFRESH_DLQ_URL; flags override. AWS
credentials, region and AWS_ENDPOINT_URL_SQS come from the standard AWS chain. `--dev` takes all of it
from the running `make dev` stack instead (ops/devinfo.py). The global flags (-v, --dev, --dev-info)
go before or after the command.

Exit codes: 0 done; 1 an operation failed (unreachable, denied, a replay that could not move every
valid message); 2 bad usage or configuration. Errors are one line on stderr, never a traceback.

The commands live in ops/dlq_commands.py, ops/cache_commands.py and ops/boards.py (what they share in
ops/shell.py); this module parses arguments, loads the configuration, dispatches and maps errors to
exit codes.

Everything runs on the process's one event loop (`common.runtime.run`), as GLIDE requires; heavy
modules (aioboto3, GLIDE) are imported by the commands that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.boards import GLOBAL
from common.errors import LeaderboardError
from common.runtime import run
from ops.cache_commands import cache_command, refresh_command
from ops.config import OpsConfig
from ops.dlq import HOLD_SECONDS
from ops.dlq_commands import dlq_command, print_pending_summary
from ops.errors import OpsError
from ops.shell import Sleep, echo

__all__ = ["main"]

PROG = "leaderboard-ops"


# ---- argument parsing ----------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _global_flags() -> argparse.ArgumentParser:
    """Flags every command accepts, before or after its name. SUPPRESS: a flag that is not given sets
    nothing, so a command's parser never resets what the top-level parser read (see `_flag`)."""
    flags = argparse.ArgumentParser(add_help=False)
    add = flags.add_argument
    add(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also print the service's log lines",
    )
    add("--dev", action="store_true", default=argparse.SUPPRESS,
        help="operate the running `make dev` stack (reads its info file, .devstack/stack.json)")  # fmt: skip
    add("--dev-info", type=Path, metavar="PATH", default=argparse.SUPPRESS,
        help="operate the `make dev` stack that wrote this info file (its --info-file)")  # fmt: skip
    return flags


def _flag(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


def _parser() -> argparse.ArgumentParser:
    flags = _global_flags()
    queues = argparse.ArgumentParser(add_help=False)
    queues.add_argument("--queue-url", metavar="URL", help="the refresh queue (default: $REFRESH_QUEUE_URL)")
    queues.add_argument(
        "--dlq-url",
        metavar="URL",
        help="the dead-letter queue (default: $REFRESH_DLQ_URL, else the queue's redrive policy)",
    )
    board = argparse.ArgumentParser(add_help=False)
    board.add_argument(
        "--board",
        default=GLOBAL,
        help="global (default), challenge:<id>, week:<YYYY>-W<ww>, month:<YYYY-MM>, season:<id>, "
        "week:current or month:current",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[flags],
        description="Operate the leaderboard service: dead-letter queue, manual refresh, cache inspection.",
        epilog="Exit codes: 0 done, 1 operation failed, 2 usage or configuration error. See docs/deploy.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dlq = commands.add_parser("dlq", parents=[flags], help="inspect and replay the dead-letter queue")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    stats = dlq_commands.add_parser(
        "stats", parents=[queues, flags], help="message counts and the age of the oldest message"
    )
    stats.add_argument(
        "--sample",
        type=int,
        default=100,
        metavar="N",
        help="read up to N messages (and put them back) to find the oldest; 0 = skip (default 100)",
    )
    peek = dlq_commands.add_parser(
        "peek",
        parents=[queues, flags],
        help="show messages without consuming them, and whether each is valid",
    )
    peek.add_argument("-n", type=_positive_int, default=10, metavar="N", help="how many (default 10)")
    replay = dlq_commands.add_parser(
        "replay",
        parents=[queues, flags],
        help="move messages back to the refresh queue (send first, then delete)",
        description="Move DLQ messages back to the refresh queue. Each is sent first and deleted from the "
        "DLQ only after the send succeeded. Invalid messages stay in the DLQ (reported) unless "
        "--drop-invalid. Runs until the DLQ is drained or --max messages were read, and always ends "
        "with a summary. Exit 1 if a valid message could not be moved, an invalid one could not be "
        "dropped, or the run stopped early (SQS unreachable).",
    )
    replay.add_argument("--max", type=_positive_int, metavar="N", help="at most N messages (default: all)")
    replay.add_argument("--dry-run", action="store_true", help="report what would happen; change nothing")
    replay.add_argument(
        "--rate",
        type=_non_negative_float,
        default=10.0,
        metavar="R",
        help="at most R messages per second (default 10; 0 = no limit)",
    )
    replay.add_argument(
        "--hold",
        type=_positive_int,
        default=HOLD_SECONDS,
        metavar="SECONDS",
        help=f"how long each read hides a message; renewed while the run works (default {HOLD_SECONDS})",
    )
    replay.add_argument(
        "--drop-invalid",
        action="store_true",
        help="delete messages that are not valid refresh requests (each is printed first)",
    )

    refresh = commands.add_parser(
        "refresh", parents=[queues, board, flags], help="send a manual refresh request for a board"
    )
    refresh.add_argument(
        "--wait",
        type=_non_negative_float,
        metavar="SECONDS",
        help="then wait up to SECONDS for a new snapshot and print its version (needs VALKEY_*)",
    )

    cache = commands.add_parser("cache", parents=[flags], help="inspect what Valkey holds")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    show = cache_commands.add_parser(
        "show", parents=[board, flags], help="snapshot version, age, size, lock holder, pending refresh"
    )
    show.add_argument(
        "--fresh-seconds",
        type=_positive_int,
        metavar="S",
        help="judge freshness by this window (default: $LEADERBOARD_FRESH_SECONDS, the API's setting)",
    )
    from ops import boards

    boards.add_parser(commands, [flags])
    return parser


# ---- commands (ops/dlq_commands.py, ops/cache_commands.py, ops/boards.py) -----------------------------


async def _dispatch(args: argparse.Namespace, config: OpsConfig, sleep: Sleep) -> int:
    if args.command == "dlq":
        return await dlq_command(args, config, sleep)
    if args.command == "refresh":
        return await refresh_command(args, config, sleep)
    if args.command == "boards":
        from ops import boards

        return await boards.command(args, config, sleep, echo)
    return await cache_command(args, config)


def _dev_environment(args: argparse.Namespace, environ: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """With --dev/--dev-info: the stack's variables over the environment's. The AWS SDK reads the
    process environment, so the stack's AWS_* (moto's endpoint and dummy credentials) go there too."""
    path = _flag(args, "dev_info")
    if path is None and not _flag(args, "dev", False):
        return environ
    from ops.devinfo import default_info_file, dev_environment

    dev = dev_environment(path or default_info_file())
    os.environ.update({name: value for name, value in dev.items() if name.startswith("AWS_")})
    return {**(os.environ if environ is None else environ), **dev}


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Sleep | None = None,
) -> int:
    """Run one command; returns the exit code. `environ` replaces os.environ for our own settings
    (tests; the AWS SDK always reads the process environment), `sleep` the pause between polls."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    from common.logs import configure_logging

    # The shared modules log JSON lines to stdout; an operator wants the command's output alone.
    configure_logging("DEBUG" if _flag(args, "verbose", False) else "CRITICAL", pretty=True)
    try:
        environ = _dev_environment(args, environ)
        config = OpsConfig.load(
            environ, queue_url=getattr(args, "queue_url", None), dlq_url=getattr(args, "dlq_url", None)
        )
        return run(_dispatch(args, config, sleep or asyncio.sleep))
    except OpsError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except LeaderboardError as exc:  # CacheUnavailable, ValkeyAuthError: operational
        return _fail(args, str(exc), 1)
    except KeyboardInterrupt:
        print_pending_summary(args)
        print(f"{PROG}: interrupted (held DLQ messages reappear within a minute)", file=sys.stderr)
        return 130
    except BaseException:
        print_pending_summary(args)  # a bug: say what was done before the traceback
        raise


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print_pending_summary(args)
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return code
