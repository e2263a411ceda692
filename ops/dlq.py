"""The dead-letter queue: look at it without consuming it, and move its messages back without losing one.

SQS has no "peek": reading a message hides it for a visibility timeout. So every read here hides the
messages only for as long as the command needs them, and makes the ones it keeps visible again at the
end (visibility 0), also when the command fails half-way. The only trace a read leaves is a higher
ApproximateReceiveCount on the DLQ copy, which nothing acts on (a DLQ has no redrive of its own).

Replay sends a message to the source queue first and deletes it from the DLQ only after the send
succeeded. A crash between the two leaves the message in both queues: a duplicate refresh is harmless
(the worker coalesces and fences), a lost one is not. Moto lacks StartMessageMoveTask, and this way
needs nothing beyond receive/send/delete on real AWS either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from common.boards import BoardRegistry
from common.errors import InvalidMessage
from common.messages import ALL_SCHEDULED, RefreshRequest
from common.timeutil import iso_from_ms, now_ms
from ops.errors import OpsError
from ops.sqs import Message, QueueAdmin, QueueCounts

__all__ = ["Peeked", "ReplaySummary", "Sleep", "Stats", "Validator", "peek", "replay", "stats"]

Sleep = Callable[[float], Awaitable[None]]
Echo = Callable[[str], None]

# How long a read hides a DLQ message: long enough to finish with a batch, short enough that a
# message is back soon even if the command is killed before it can unhide it.
HOLD_SECONDS = 60
WAIT_SECONDS = 1  # long poll: an empty answer then means "nothing left", not "unlucky sample"
BATCH = 10  # SQS's limit per receive


class Validator:
    """Is a body a refresh request the worker will accept? The worker's own rules, so that what is
    reported valid here is not rejected again after a replay."""

    def __init__(self, boards: BoardRegistry) -> None:
        self._boards = boards

    def __call__(self, body: str) -> RefreshRequest:
        request = RefreshRequest.parse(body)
        if request.board != ALL_SCHEDULED and not self._boards.allows(request.board):
            raise InvalidMessage(
                f"board {request.board!r} is not served by this deployment (LEADERBOARD_BOARDS)"
            )
        return request


class _Held:
    """Messages this command has hidden, by message id, with their latest receipt handle."""

    def __init__(self, sqs: QueueAdmin, url: str) -> None:
        self._sqs = sqs
        self.url = url
        self.receipts: dict[str, str] = {}

    async def receive(self, max_messages: int) -> tuple[list[Message], list[Message]]:
        """(messages not seen before, messages seen before) of one receive; all of them stay hidden."""
        batch = await self._sqs.receive(
            self.url, max_messages=max_messages, visibility=HOLD_SECONDS, wait=WAIT_SECONDS
        )
        new = [m for m in batch if m.message_id not in self.receipts]
        again = [m for m in batch if m.message_id in self.receipts]
        for message in batch:
            self.receipts[message.message_id] = message.receipt  # only the latest handle works
        return new, again

    def forget(self, message: Message) -> None:
        """The message left the DLQ (deleted): nothing to unhide."""
        self.receipts.pop(message.message_id, None)

    async def release_all(self) -> int:
        """Make every held message visible again. Best effort: one that fails reappears by itself
        after HOLD_SECONDS. Returns how many could not be released."""
        failed = 0
        for receipt in self.receipts.values():
            try:
                await self._sqs.set_visibility(self.url, receipt, 0)
            except OpsError:
                failed += 1
        self.receipts.clear()
        return failed


# ---- stats ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    dlq: QueueCounts
    queue: QueueCounts | None
    oldest_sent_ms: int | None
    sampled: int


async def stats(sqs: QueueAdmin, dlq_url: str, queue_url: str | None, *, sample: int) -> Stats:
    """Counters of both queues. SQS gives no age of the oldest message through its API (CloudWatch's
    ApproximateAgeOfOldestMessage lags by minutes), so up to `sample` messages are read and put back."""
    counts = await sqs.counts(dlq_url)
    queue = await sqs.counts(queue_url) if queue_url else None
    held = _Held(sqs, dlq_url)
    oldest: int | None = None
    seen = 0
    try:
        while seen < sample:
            new, _ = await held.receive(min(BATCH, sample - seen))
            if not new:
                break
            seen += len(new)
            for message in new:
                if message.sent_at_ms is not None and (oldest is None or message.sent_at_ms < oldest):
                    oldest = message.sent_at_ms
    finally:
        await held.release_all()
    return Stats(counts, queue, oldest, seen)


# ---- peek ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peeked:
    message: Message
    request: RefreshRequest | None
    problem: str | None


async def peek(sqs: QueueAdmin, dlq_url: str, validate: Validator, *, limit: int) -> list[Peeked]:
    """Up to `limit` DLQ messages, each judged as the worker would judge it; none is consumed."""
    held = _Held(sqs, dlq_url)
    found: list[Peeked] = []
    try:
        while len(found) < limit:
            new, _ = await held.receive(min(BATCH, limit - len(found)))
            if not new:
                break
            for message in new:
                try:
                    found.append(Peeked(message, validate(message.body), None))
                except InvalidMessage as exc:
                    found.append(Peeked(message, None, str(exc)))
    finally:
        await held.release_all()
    return found[:limit]


# ---- replay --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplaySummary:
    received: int = 0
    replayed: int = 0
    would_replay: int = 0
    invalid_kept: int = 0
    dropped: int = 0
    send_failed: int = 0
    not_deleted: int = 0  # sent, but still in the DLQ too: a duplicate, never a loss
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.send_failed or self.not_deleted)


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


def describe(message: Message) -> str:
    age = ""
    if message.sent_at_ms is not None:
        ago = format_age((now_ms() - message.sent_at_ms) / 1000)
        age = f", sent {iso_from_ms(message.sent_at_ms)}, {ago} ago"
    return f"{message.message_id} (receives: {message.receive_count}{age})"


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


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
    sleep: Sleep = asyncio.sleep,
    echo: Echo = print,
) -> ReplaySummary:
    """Move DLQ messages back to `queue_url`, one line per message. Invalid messages stay in the DLQ
    (reported) unless `drop_invalid`; a dry run sends and deletes nothing."""
    run = _Replay(
        sqs, _Held(sqs, dlq_url), queue_url, validate, dry_run, drop_invalid, _Pace(rate, sleep), echo
    )
    # A slow --rate takes fewer messages per receive, so that none outstays its hold before it is sent.
    batch = BATCH if rate <= 0 or dry_run else max(1, min(BATCH, int(rate * HOLD_SECONDS / 2)))
    try:
        while limit is None or run.summary.received < limit:
            want = batch if limit is None else min(batch, limit - run.summary.received)
            new, _ = await run.held.receive(want)
            if not new:
                break  # empty, or only messages this run keeps (invalid ones, dry-run ones)
            for message in new:
                await run.one(message)
    finally:
        unreleased = await run.held.release_all()
        if unreleased:
            run.summary.errors.append(
                f"{unreleased} kept message(s) could not be made visible again; "
                f"they reappear in the DLQ within {HOLD_SECONDS} s"
            )
    return run.summary


@dataclass(slots=True)
class _Replay:
    """The state of one replay run."""

    sqs: QueueAdmin
    held: _Held
    queue_url: str
    validate: Validator
    dry_run: bool
    drop_invalid: bool
    pace: _Pace
    echo: Echo
    summary: ReplaySummary = field(default_factory=ReplaySummary)

    async def one(self, message: Message) -> None:
        self.summary.received += 1
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
            self.summary.errors.append(f"{message.message_id}: not sent: {exc}")
            self._line("FAILED", message, f"not sent ({exc}); it stays in the DLQ")
            return
        try:
            await self.sqs.delete(self.held.url, message.receipt)
        except OpsError as exc:
            self.summary.not_deleted += 1
            self.summary.errors.append(f"{message.message_id}: sent but not deleted from the DLQ: {exc}")
            self._line("DUPLICATE", message, f"sent, but still in the DLQ ({exc})")
            return
        self.held.forget(message)
        self.summary.replayed += 1
        self._line("replayed", message, what)

    async def _invalid(self, message: Message, problem: str) -> None:
        if not self.drop_invalid:
            self.summary.invalid_kept += 1
            self._line("kept", message, f"invalid: {problem}")
        elif self.dry_run:
            self.summary.invalid_kept += 1
            self._line("would drop", message, f"invalid: {problem}")
        else:
            await self.sqs.delete(self.held.url, message.receipt)
            self.held.forget(message)
            self.summary.dropped += 1
            self._line("dropped", message, f"invalid: {problem}; body was {show_body(message.body)}")

    def _line(self, verb: str, message: Message, detail: str) -> None:
        self.echo(f"[{self.summary.received}] {verb:<12} {describe(message)}: {detail}")


def show_body(body: str, limit: int = 300) -> str:
    """A body as it can be shown on one terminal line: printable, bounded, quoted when it is not."""
    shown = body if len(body) <= limit else body[:limit] + "…"
    return shown if shown.isprintable() else repr(shown)
