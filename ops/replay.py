"""`dlq replay`: move DLQ messages back to the refresh queue without losing one, and always say what
happened.

- Send first; delete from the DLQ only after the send succeeded. A failure between the two leaves the
  message in both queues: a duplicate refresh is harmless (the worker coalesces and fences), a lost one
  is not. A failed delete is retried at the end of the run with the message's newest receipt handle.
- Every message is tracked by id for the whole run, and the run renews the hold of everything it
  still holds (every third of the hold, in the background), so a run slower than the hold does not
  see its own messages reappear. Should one reappear anyway (a renewal failed), its id says what was
  done with it: a replayed message is never sent twice by one run.
- The run goes on until a receive brings nothing left to do (the DLQ is drained, or holds only what
  this run keeps: invalid messages, or everything on a dry run) or `limit` messages were read. A failed
  send or delete is reported and the run goes on; it stops early only when SQS cannot be read or
  MAX_FAILURES_IN_ROW calls in a row failed (SQS is unreachable), and says so. Once stopped that way,
  it does not spend a retry budget on every message it holds: they reappear after their hold.
- The summary is updated as the run goes, so whoever stops it (an error, Ctrl-C) can still print it.

Moto lacks StartMessageMoveTask, and receive/send/delete needs nothing more on real AWS either.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from common.errors import InvalidMessage
from ops.dlq import BATCH, HOLD_SECONDS, Held, Validator, describe, show_body
from ops.errors import OpsError
from ops.sqs import Message, QueueAdmin, QueueCounts

__all__ = ["MAX_FAILURES_IN_ROW", "ReplaySummary", "Sleep", "replay"]

Sleep = Callable[[float], Awaitable[None]]
Echo = Callable[[str], None]
# What this run did with a message: keeps it in the DLQ (invalid, dry run, not sent), sent it and
# still has to delete it from the DLQ, or is done with it (replayed, or dropped).
State = Literal["kept", "sent", "done"]

MAX_FAILURES_IN_ROW = 3  # sends and deletes: SQS is unreachable, stop rather than fail every message
MAX_RECEIVES_OF_KEPT = 3  # in a row, bringing back only messages this run keeps: stop looking


@dataclass(slots=True)
class ReplaySummary:
    received: int = 0  # distinct messages read
    replayed: int = 0  # sent and deleted from the DLQ
    would_replay: int = 0
    invalid_kept: int = 0
    dropped: int = 0
    drop_failed: int = 0  # invalid, the delete failed: still in the DLQ
    send_failed: int = 0  # not sent: still in the DLQ
    not_deleted: int = 0  # sent, but still in the DLQ too: a duplicate, never a loss
    renew_failed: int = 0  # hold renewals that failed (the message may reappear; it is tracked by id)
    stopped_early: str | None = None  # why the run ended before the DLQ was drained or the limit reached
    dlq_after: QueueCounts | None = None  # the DLQ's counters after the run, when SQS still answered
    problems: dict[str, str] = field(default_factory=dict)  # by message id, or "" for the run

    @property
    def errors(self) -> list[str]:
        return list(self.problems.values())

    @property
    def failed(self) -> bool:
        return bool(self.send_failed or self.not_deleted or self.drop_failed or self.stopped_early)


class _Pace:
    """At most `rate` sends per second (0 = no limit), so a big replay does not stampede the worker."""

    def __init__(self, rate: float, sleep: Sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1 / rate if rate > 0 else 0.0
        self._sleep = sleep
        self._clock = clock
        self._next: float | None = None

    async def wait(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        if self._next is not None and self._next > now:
            await self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


async def replay(
    sqs: QueueAdmin,
    dlq_url: str,
    queue_url: str,
    validate: Validator,
    *,
    limit: int | None,
    dry_run: bool,
    drop_invalid: bool,
    rate: float,
    hold_seconds: int = HOLD_SECONDS,
    sleep: Sleep = asyncio.sleep,
    echo: Echo = print,
    summary: ReplaySummary | None = None,
) -> ReplaySummary:
    """Move DLQ messages back to `queue_url`, one line per message; returns (and fills in place) the
    summary. SQS failures never escape: they are in the summary. Invalid messages stay in the DLQ
    (reported) unless `drop_invalid`; a dry run sends and deletes nothing."""
    held = Held(sqs, dlq_url, hold_seconds)
    run = _Replay(sqs, held, queue_url, validate, dry_run, drop_invalid, _Pace(rate, sleep), echo,
                  summary if summary is not None else ReplaySummary())  # fmt: skip
    renewer = asyncio.create_task(run.renew_holds())
    try:
        await run.read_all(limit)
        if not run.summary.stopped_early:
            await run.retry_deletes()
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await run.finish(dlq_url)
    return run.summary


@dataclass(slots=True)
class _Replay:
    """The state of one replay run."""

    sqs: QueueAdmin
    held: Held
    queue_url: str
    validate: Validator
    dry_run: bool
    drop_invalid: bool
    pace: _Pace
    echo: Echo
    summary: ReplaySummary
    state: dict[str, State] = field(default_factory=dict)
    sent: dict[str, Message] = field(default_factory=dict)  # sent, not yet deleted from the DLQ
    failures_in_row: int = 0  # sends and deletes

    async def read_all(self, limit: int | None) -> None:
        only_kept_again = 0
        while limit is None or self.summary.received < limit:
            want = BATCH if limit is None else min(BATCH, limit - self.summary.received)
            try:
                new, again = await self.held.receive(want)
            except OpsError as exc:
                self._stop(str(exc))
                return
            work = [m for m in (*new, *again) if self.state.get(m.message_id) in (None, "sent")]
            if not work:
                # Drained, or only messages this run keeps. Kept ones that came back (a renewal of
                # their hold failed) are hidden again by this receive: look behind them a few times.
                only_kept_again += 1
                if not again or only_kept_again >= MAX_RECEIVES_OF_KEPT:
                    return
                continue
            only_kept_again = 0
            for message in work:
                if self.state.get(message.message_id) == "sent":
                    await self._delete_sent(message, retry=True)  # it reappeared: its delete failed
                elif limit is None or self.summary.received < limit:
                    await self._first(message)
                if self.summary.stopped_early:
                    return

    async def renew_holds(self) -> None:
        while True:
            await asyncio.sleep(self.held.hold_seconds / 3)
            self.summary.renew_failed += await self.held.renew()

    async def retry_deletes(self) -> None:
        for message in list(self.sent.values()):
            await self._delete_sent(message, retry=True)

    async def finish(self, dlq_url: str) -> None:
        unreleased = await self.held.release_all(give_up_after_failure=bool(self.summary.stopped_early))
        if unreleased:
            self.summary.problems[""] = (
                f"{unreleased} held message(s) could not be made visible again; "
                f"they reappear in the DLQ within {self.held.hold_seconds} s"
            )
        if unreleased and self.summary.stopped_early:
            return  # SQS does not answer: no counters either
        try:
            self.summary.dlq_after = await self.sqs.counts(dlq_url)
        except OpsError:
            self.summary.dlq_after = None

    def _stop(self, reason: str) -> None:
        self.summary.stopped_early = reason

    def _failed(self, exc: OpsError) -> None:
        self.failures_in_row += 1
        if self.failures_in_row >= MAX_FAILURES_IN_ROW:
            self._stop(f"{self.failures_in_row} SQS calls in a row failed, the last: {exc}")

    async def _first(self, message: Message) -> None:
        self.summary.received += 1
        self.state[message.message_id] = "kept"
        try:
            request = self.validate(message.body)
        except InvalidMessage as exc:
            await self._invalid(message, str(exc))
            return
        what = f"board={request.board} reason={request.reason}"
        if self.dry_run:
            self.summary.would_replay += 1
            self._line("would replay", message, what)
            return
        await self.pace.wait()
        try:
            await self.sqs.send(
                self.queue_url,
                message.body,
                attributes=message.attributes,
                group_id=message.group_id,
                dedup_id=message.message_id,
            )
        except OpsError as exc:
            self.summary.send_failed += 1
            self.summary.problems[message.message_id] = f"{message.message_id}: not sent: {exc}"
            self._line("FAILED", message, f"not sent ({exc}); it stays in the DLQ")
            self._failed(exc)
            return
        self.failures_in_row = 0
        self.state[message.message_id] = "sent"
        self.sent[message.message_id] = message
        await self._delete_sent(message, retry=False, what=what)

    async def _delete_sent(self, message: Message, *, retry: bool, what: str = "") -> None:
        """Delete the DLQ copy of a message already sent to the queue, with its newest receipt."""
        try:
            await self.sqs.delete(self.held.url, self.held.receipt(message))
        except OpsError as exc:
            if not retry:  # a retry's failure changes nothing: it was counted the first time
                self._failed(exc)
                self.summary.not_deleted += 1
                self.summary.problems[message.message_id] = (
                    f"{message.message_id}: sent but not deleted from the DLQ: {exc}"
                )
                self._line("DUPLICATE", message, f"sent, but still in the DLQ ({exc}); will retry the delete")
            return
        self.failures_in_row = 0
        self.held.forget(message)
        self.state[message.message_id] = "done"
        self.sent.pop(message.message_id, None)
        self.summary.replayed += 1
        if retry:
            self.summary.not_deleted -= 1
            self.summary.problems.pop(message.message_id, None)
            self._line("replayed", message, "its DLQ copy is deleted now (retried)")
        else:
            self._line("replayed", message, what)

    async def _invalid(self, message: Message, problem: str) -> None:
        if not self.drop_invalid:
            self.summary.invalid_kept += 1
            self._line("kept", message, f"invalid: {problem}")
            return
        if self.dry_run:
            self.summary.invalid_kept += 1
            self._line("would drop", message, f"invalid: {problem}")
            return
        try:
            await self.sqs.delete(self.held.url, self.held.receipt(message))
        except OpsError as exc:
            self._failed(exc)
            self.summary.drop_failed += 1
            self.summary.problems[message.message_id] = f"{message.message_id}: not dropped: {exc}"
            self._line("NOT DROPPED", message, f"invalid: {problem}; the delete failed ({exc}), it stays")
            return
        self.failures_in_row = 0
        self.held.forget(message)
        self.state[message.message_id] = "done"
        self.summary.dropped += 1
        self._line("dropped", message, f"invalid: {problem}; body was {show_body(message.body)}")

    def _line(self, verb: str, message: Message, detail: str) -> None:
        self.echo(f"[{self.summary.received}] {verb:<12} {describe(message)}: {detail}")
