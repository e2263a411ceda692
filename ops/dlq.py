"""The dead-letter queue: look at it without consuming it, and move its messages back without losing one.

SQS has no "peek": reading a message hides it for a visibility timeout. So every read here hides the
messages only for as long as the command needs them, and makes the ones it keeps visible again at the
end (visibility 0), also when the command fails half-way. The only trace a read leaves is a higher
ApproximateReceiveCount on the DLQ copy, which nothing acts on (a DLQ has no redrive of its own).

Replay (ops/replay.py) moves messages back to the refresh queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.boards import BoardRegistry
from common.errors import InvalidMessage
from common.messages import ALL_SCHEDULED, RefreshRequest
from common.timeutil import iso_from_ms, now_ms
from ops.errors import OpsError
from ops.sqs import Message, QueueAdmin, QueueCounts

__all__ = ["Held", "Peeked", "Stats", "Validator", "describe", "format_age", "peek", "show_body", "stats"]

# How long a read hides a DLQ message: long enough to finish with a batch, short enough that a
# message is back soon even if the command is killed before it can unhide it. A long replay renews
# the hold of what it still holds (Held.renew) rather than hiding messages for longer.
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
        if request.board != ALL_SCHEDULED and not self._boards.allows(request.board, request.requested_at):
            raise InvalidMessage(
                f"board {request.board!r} is not served by this deployment (LEADERBOARD_BOARDS)"
            )
        return request


class Held:
    """Messages this command has hidden, by message id, with their latest receipt handle (SQS changes
    the handle on every receive, and on AWS a delete with an older one may succeed and delete nothing)."""

    def __init__(self, sqs: QueueAdmin, url: str, hold_seconds: int = HOLD_SECONDS) -> None:
        self._sqs = sqs
        self.url = url
        self.hold_seconds = hold_seconds
        self.receipts: dict[str, str] = {}

    async def receive(self, max_messages: int) -> tuple[list[Message], list[Message]]:
        """(messages not seen before, messages seen before) of one receive; all of them stay hidden."""
        batch = await self._sqs.receive(
            self.url, max_messages=max_messages, visibility=self.hold_seconds, wait=WAIT_SECONDS
        )
        new = [m for m in batch if m.message_id not in self.receipts]
        again = [m for m in batch if m.message_id in self.receipts]
        for message in batch:
            self.receipts[message.message_id] = message.receipt  # only the latest handle works
        return new, again

    def receipt(self, message: Message) -> str:
        """The newest receipt handle of a held message."""
        return self.receipts.get(message.message_id, message.receipt)

    def forget(self, message: Message) -> None:
        """The message left the DLQ (deleted): nothing to unhide."""
        self.receipts.pop(message.message_id, None)

    async def renew(self) -> int:
        """Hide every held message for another hold from now. Returns how many could not be renewed
        (and are still held: one deleted meanwhile does not count)."""
        failed = 0
        for message_id, receipt in list(self.receipts.items()):
            try:
                await self._sqs.set_visibility(self.url, receipt, self.hold_seconds)
            except OpsError:
                if self.receipts.get(message_id) == receipt:
                    failed += 1
        return failed

    async def release_all(self, *, give_up_after_failure: bool = False) -> int:
        """Make every held message visible again. Best effort: one that fails reappears by itself
        after the hold. Returns how many could not be released; with `give_up_after_failure` (SQS is
        known to be failing), the first failure counts for all that remain."""
        failed = 0
        receipts = list(self.receipts.values())
        self.receipts.clear()
        for i, receipt in enumerate(receipts):
            try:
                await self._sqs.set_visibility(self.url, receipt, 0)
            except OpsError:
                if give_up_after_failure:
                    return failed + len(receipts) - i
                failed += 1
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
    held = Held(sqs, dlq_url)
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
    held = Held(sqs, dlq_url)
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


# ---- shared by the commands ----------------------------------------------------------------------


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


def show_body(body: str, limit: int = 300) -> str:
    """A body as it can be shown on one terminal line: printable, bounded, quoted when it is not."""
    shown = body if len(body) <= limit else body[:limit] + "…"
    return shown if shown.isprintable() else repr(shown)
