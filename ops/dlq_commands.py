"""`leaderboard-ops dlq stats|peek|replay`: the dead-letter queue, and what each command prints."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from common.timeutil import iso_from_ms, now_ms
from ops.config import OpsConfig
from ops.dlq import Validator, describe, format_age, show_body
from ops.errors import OperationFailed, UsageError

if TYPE_CHECKING:
    from ops.dlq import Peeked, Stats
    from ops.replay import ReplaySummary
    from ops.sqs import SqsAdmin

from ops.shell import Sleep, echo, sqs_admin

__all__ = ["dlq_command", "print_pending_summary"]


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


async def dlq_command(args: argparse.Namespace, config: OpsConfig, sleep: Sleep) -> int:
    from ops import dlq as logic

    if config.dlq_url is None and config.queue_url is None:
        raise UsageError(
            "the DLQ is not configured: set REFRESH_DLQ_URL or pass --dlq-url "
            "(or REFRESH_QUEUE_URL / --queue-url, whose redrive policy names it)"
        )
    if args.dlq_command == "replay":
        return await _replay(args, config, sleep)
    async with sqs_admin(config) as sqs:
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
    async with sqs_admin(config) as sqs:
        dlq_url, queue_url = await _resolve_queues(config, sqs, need_queue=True)
        assert queue_url is not None
        mode = " (dry run: nothing is sent or deleted)" if args.dry_run else ""
        echo(f"replaying {dlq_url} -> {queue_url}{mode}")
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
            echo=echo,
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
    echo(f"DLQ    {dlq_url}")
    echo(f"  visible        {result.dlq.visible}")
    echo(f"  in flight      {result.dlq.in_flight}")
    if result.oldest_sent_ms is None:
        echo("  oldest message -" if result.sampled == 0 else "  oldest message ? (no timestamp)")
    else:
        age = format_age((now_ms() - result.oldest_sent_ms) / 1000)
        total = result.dlq.visible + result.dlq.in_flight
        sampled = (
            f"{result.sampled} of {total} read" if result.sampled < total else f"all {result.sampled} read"
        )
        echo(f"  oldest message {age} (sent {iso_from_ms(result.oldest_sent_ms)}; {sampled})")
    if result.queue is not None and queue_url is not None:
        echo(f"queue  {queue_url}")
        echo(f"  visible        {result.queue.visible}")
        echo(f"  in flight      {result.queue.in_flight}")
        echo(f"  delayed        {result.queue.delayed}")


def _print_peek(found: list[Peeked], dlq_url: str) -> None:
    echo(f"{len(found)} message(s) from {dlq_url} (none consumed)")
    for i, item in enumerate(found, 1):
        echo(f"#{i} {describe(item.message)}")
        if item.request is not None:
            r = item.request
            echo(f"   valid: board={r.board} reason={r.reason} requested_at={r.requested_at.isoformat()}")
        else:
            echo(f"   INVALID: {item.problem}")
        echo(f"   body: {show_body(item.message.body)}")


def _print_summary(summary: ReplaySummary, dry_run: bool) -> None:
    if dry_run:
        echo(
            f"summary (dry run): {summary.received} read, {summary.would_replay} would be replayed, "
            f"{summary.invalid_kept} invalid; nothing changed"
        )
    else:
        echo(
            f"summary: {summary.received} read, {summary.replayed} replayed, "
            f"{summary.invalid_kept} invalid kept, {summary.dropped} invalid dropped, "
            f"{summary.drop_failed} invalid not dropped, {summary.send_failed} not sent, "
            f"{summary.not_deleted} sent but not deleted"
        )
    if summary.stopped_early:
        echo(f"  stopped early: {summary.stopped_early}")
    if summary.dlq_after is not None:
        after = summary.dlq_after
        echo(f"  DLQ after the run: {after.visible} visible, {after.in_flight} in flight")
    if summary.renew_failed:
        echo(f"  {summary.renew_failed} hold renewal(s) failed (tracked by id: none was sent twice)")
    for error in summary.errors:
        echo(f"  error: {error}")
    if summary.invalid_kept and not dry_run:
        echo(
            "  invalid messages stay in the DLQ: inspect them with `leaderboard-ops dlq peek`, "
            "discard them with `leaderboard-ops dlq replay --drop-invalid`"
        )


def print_pending_summary(args: argparse.Namespace) -> None:
    """A replay that ended with an exception has not printed its summary yet: print what it did."""
    summary: ReplaySummary | None = getattr(args, "pending_summary", None)
    if summary is not None:
        args.pending_summary = None
        _print_summary(summary, args.dry_run)
