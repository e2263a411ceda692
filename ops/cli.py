"""`leaderboard-ops`: the operator's command line.

    leaderboard-ops dlq stats                      counters of the DLQ (and queue), age of the oldest message
    leaderboard-ops dlq peek [-n N]                show DLQ messages and whether each is a valid request
    leaderboard-ops dlq replay [--dry-run] ...     move DLQ messages back to the refresh queue
    leaderboard-ops refresh [--board B] [--wait S] ask for a refresh now, optionally wait for it
    leaderboard-ops cache show [--board B]         what Valkey holds for a board

Configuration is the functions' own environment (REFRESH_QUEUE_URL, VALKEY_*, LEADERBOARD_KEY,
LEADERBOARD_BOARDS, LEADERBOARD_FRESH_SECONDS, ...) plus REFRESH_DLQ_URL; flags override. AWS
credentials, region and AWS_ENDPOINT_URL_SQS come from the standard AWS chain. `--dev` takes all of it
from the running `make dev` stack instead (ops/devinfo.py). The global flags (-v, --dev, --dev-info)
go before or after the command.

Exit codes: 0 done; 1 an operation failed (unreachable, denied, a replay that could not move every
valid message); 2 bad usage or configuration. Errors are one line on stderr, never a traceback.

Everything runs on the process's one event loop (`common.runtime.run`), as GLIDE requires; heavy
modules (aioboto3, GLIDE) are imported by the commands that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.boards import GLOBAL, BoardSyntaxError, validate_board
from common.errors import LeaderboardError
from common.messages import ALL_SCHEDULED, RefreshRequest
from common.queue import deduplication_id
from common.runtime import run
from common.timeutil import iso_from_ms, now_ms
from ops.config import OpsConfig
from ops.dlq import HOLD_SECONDS, Validator, describe, format_age, show_body
from ops.errors import OperationFailed, OpsError, UsageError

if TYPE_CHECKING:
    from ops.dlq import Peeked, Stats
    from ops.replay import ReplaySummary
    from ops.sqs import SqsAdmin

__all__ = ["main"]

PROG = "leaderboard-ops"
Sleep = Callable[[float], Awaitable[None]]


def _echo(line: str) -> None:
    print(line, flush=True)


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
    board.add_argument("--board", default=GLOBAL, help="global (default) or challenge:<id>")

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
    return parser


# ---- commands ------------------------------------------------------------------------------------


def _sqs(config: OpsConfig) -> SqsAdmin:
    from ops.sqs import SqsAdmin

    return SqsAdmin(config.region(), attempts=config.sqs_attempts())


async def _resolve_queues(config: OpsConfig, sqs: SqsAdmin, *, need_queue: bool) -> tuple[str, str | None]:
    """(DLQ URL, queue URL): as configured, else derived from each other through SQS."""
    dlq, queue = config.dlq_url, config.queue_url
    if dlq is None:
        assert queue is not None  # checked before any client was made
        arn = await sqs.dead_letter_target(queue)
        if arn is None:
            raise UsageError(f"the queue {queue} has no redrive policy, hence no DLQ: pass --dlq-url")
        dlq = await sqs.url_of(arn)
    if queue is None and need_queue:
        sources = await sqs.dead_letter_sources(dlq)
        if len(sources) != 1:
            raise UsageError(
                f"{len(sources)} queues use this DLQ, so the target is ambiguous: pass --queue-url"
            )
        queue = sources[0]
    return dlq, queue


async def _dlq(args: argparse.Namespace, config: OpsConfig, sleep: Sleep) -> int:
    from ops import dlq as logic

    if config.dlq_url is None and config.queue_url is None:
        raise UsageError(
            "the DLQ is not configured: set REFRESH_DLQ_URL or pass --dlq-url "
            "(or REFRESH_QUEUE_URL / --queue-url, whose redrive policy names it)"
        )
    if args.dlq_command == "replay":
        return await _replay(args, config, sleep)
    async with _sqs(config) as sqs:
        dlq_url, queue_url = await _resolve_queues(config, sqs, need_queue=False)
        if args.dlq_command == "stats":
            result = await logic.stats(sqs, dlq_url, queue_url, sample=max(0, args.sample))
            _print_stats(result, dlq_url, queue_url)
            return 0
        found = await logic.peek(sqs, dlq_url, Validator(config.registry), limit=args.n)
        _print_peek(found, dlq_url)
        return 0


async def _replay(args: argparse.Namespace, config: OpsConfig, sleep: Sleep) -> int:
    """The summary is printed whatever happens: here when the run ends, else by `main` (an error
    before or around the run, Ctrl-C), from `args.pending_summary`."""
    from ops.replay import ReplaySummary, replay

    summary = args.pending_summary = ReplaySummary()
    async with _sqs(config) as sqs:
        dlq_url, queue_url = await _resolve_queues(config, sqs, need_queue=True)
        assert queue_url is not None
        mode = " (dry run: nothing is sent or deleted)" if args.dry_run else ""
        _echo(f"replaying {dlq_url} -> {queue_url}{mode}")
        await replay(
            sqs,
            dlq_url,
            queue_url,
            Validator(config.registry),
            limit=args.max,
            dry_run=args.dry_run,
            drop_invalid=args.drop_invalid,
            rate=args.rate,
            hold_seconds=args.hold,
            sleep=sleep,
            echo=_echo,
            summary=summary,
        )
    args.pending_summary = None
    _print_summary(summary, args.dry_run)
    if summary.failed:
        raise OperationFailed(_failure(summary))
    return 0


def _failure(summary: ReplaySummary) -> str:
    parts = []
    if summary.send_failed or summary.not_deleted:
        parts.append(
            f"{summary.send_failed + summary.not_deleted} message(s) could not be moved "
            "(none was lost; see the lines above)"
        )
    if summary.drop_failed:
        parts.append(f"{summary.drop_failed} invalid message(s) could not be dropped")
    if summary.stopped_early:
        parts.append(f"the run stopped early: {summary.stopped_early}")
    return "; ".join(parts) + "; run the replay again"


def _print_stats(result: Stats, dlq_url: str, queue_url: str | None) -> None:
    _echo(f"DLQ    {dlq_url}")
    _echo(f"  visible        {result.dlq.visible}")
    _echo(f"  in flight      {result.dlq.in_flight}")
    if result.oldest_sent_ms is None:
        _echo("  oldest message -" if result.sampled == 0 else "  oldest message ? (no timestamp)")
    else:
        age = format_age((now_ms() - result.oldest_sent_ms) / 1000)
        total = result.dlq.visible + result.dlq.in_flight
        sampled = (
            f"{result.sampled} of {total} read" if result.sampled < total else f"all {result.sampled} read"
        )
        _echo(f"  oldest message {age} (sent {iso_from_ms(result.oldest_sent_ms)}; {sampled})")
    if result.queue is not None and queue_url is not None:
        _echo(f"queue  {queue_url}")
        _echo(f"  visible        {result.queue.visible}")
        _echo(f"  in flight      {result.queue.in_flight}")
        _echo(f"  delayed        {result.queue.delayed}")


def _print_peek(found: list[Peeked], dlq_url: str) -> None:
    _echo(f"{len(found)} message(s) from {dlq_url} (none consumed)")
    for i, item in enumerate(found, 1):
        _echo(f"#{i} {describe(item.message)}")
        if item.request is not None:
            r = item.request
            _echo(f"   valid: board={r.board} reason={r.reason} requested_at={r.requested_at.isoformat()}")
        else:
            _echo(f"   INVALID: {item.problem}")
        _echo(f"   body: {show_body(item.message.body)}")


def _print_summary(summary: ReplaySummary, dry_run: bool) -> None:
    if dry_run:
        _echo(
            f"summary (dry run): {summary.received} read, {summary.would_replay} would be replayed, "
            f"{summary.invalid_kept} invalid; nothing changed"
        )
    else:
        _echo(
            f"summary: {summary.received} read, {summary.replayed} replayed, "
            f"{summary.invalid_kept} invalid kept, {summary.dropped} invalid dropped, "
            f"{summary.drop_failed} invalid not dropped, {summary.send_failed} not sent, "
            f"{summary.not_deleted} sent but not deleted"
        )
    if summary.stopped_early:
        _echo(f"  stopped early: {summary.stopped_early}")
    if summary.dlq_after is not None:
        after = summary.dlq_after
        _echo(f"  DLQ after the run: {after.visible} visible, {after.in_flight} in flight")
    if summary.renew_failed:
        _echo(f"  {summary.renew_failed} hold renewal(s) failed (tracked by id: none was sent twice)")
    for error in summary.errors:
        _echo(f"  error: {error}")
    if summary.invalid_kept and not dry_run:
        _echo(
            "  invalid messages stay in the DLQ: inspect them with `leaderboard-ops dlq peek`, "
            "discard them with `leaderboard-ops dlq replay --drop-invalid`"
        )


def _print_pending_summary(args: argparse.Namespace) -> None:
    """A replay that ended with an exception has not printed its summary yet: print what it did."""
    summary: ReplaySummary | None = getattr(args, "pending_summary", None)
    if summary is not None:
        args.pending_summary = None
        _print_summary(summary, args.dry_run)


def _board(config: OpsConfig, raw: str, *, allow_all: bool = False) -> str:
    if allow_all and raw == ALL_SCHEDULED:
        return raw
    try:
        board = validate_board(raw)
    except BoardSyntaxError as exc:
        raise UsageError(f"--board: {exc}") from None
    if not config.registry.allows(board):
        raise UsageError(f"--board: {board!r} is not among LEADERBOARD_BOARDS")
    return board


async def _refresh(args: argparse.Namespace, config: OpsConfig, sleep: Sleep) -> int:

    board = _board(config, args.board, allow_all=True)
    if args.wait is not None and board == ALL_SCHEDULED:
        raise UsageError("--wait needs one board: '*' names the worker's scheduled boards")
    queue_url = config.require_queue_url()
    if args.wait is None:
        async with _sqs(config) as sqs:
            await _send_refresh(sqs, queue_url, board)
        return 0
    settings = config.valkey()
    from common.boards import KeySpace
    from common.cache import LeaderboardCache
    from common.valkey import ValkeyConnection
    from ops.cache import wait_for_new_version

    connection = ValkeyConnection(settings)
    try:
        cache = LeaderboardCache(connection, KeySpace(config.key_prefix))
        before = await cache.read_header(board)
        async with _sqs(config) as sqs:
            await _send_refresh(sqs, queue_url, board)
        version = before.version if before else None
        _echo(f"waiting up to {args.wait:g} s for a snapshot newer than version {version or 'none'}")
        header = await wait_for_new_version(cache, board, version, within=args.wait, sleep=sleep)
    finally:
        await connection.close()
    if header is None:
        raise OperationFailed(
            f"no new snapshot of {board} within {args.wait:g} s (still version {version or 'none'}): "
            "check the worker's logs and `leaderboard-ops dlq stats`"
        )
    _echo(
        f"new snapshot: version {header.version}, generated_at {header.generated_at}, "
        f"{header.size} entries (total {header.total})"
    )
    return 0


async def _send_refresh(sqs: SqsAdmin, queue_url: str, board: str) -> None:
    body = RefreshRequest(board=board, reason="manual", requested_at=datetime.now(UTC)).to_json()
    await sqs.send(queue_url, body, group_id=board, dedup_id=deduplication_id(body))
    _echo(f"sent {body} to {queue_url}")


async def _cache(args: argparse.Namespace, config: OpsConfig) -> int:
    board = _board(config, args.board)
    settings = config.valkey()
    from common.boards import KeySpace
    from common.cache import LeaderboardCache
    from common.valkey import ValkeyConnection
    from ops.cache import inspect, render

    connection = ValkeyConnection(settings)
    try:
        state = await inspect(connection, LeaderboardCache(connection, KeySpace(config.key_prefix)), board)
    finally:
        await connection.close()
    for line in render(state, fresh_seconds=args.fresh_seconds or config.fresh_seconds):
        _echo(line)
    return 0


async def _dispatch(args: argparse.Namespace, config: OpsConfig, sleep: Sleep) -> int:
    if args.command == "dlq":
        return await _dlq(args, config, sleep)
    if args.command == "refresh":
        return await _refresh(args, config, sleep)
    return await _cache(args, config)


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
        _print_pending_summary(args)
        print(f"{PROG}: interrupted (held DLQ messages reappear within a minute)", file=sys.stderr)
        return 130
    except BaseException:
        _print_pending_summary(args)  # a bug: say what was done before the traceback
        raise


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    _print_pending_summary(args)
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return code
