"""The DLQ logic against an in-memory queue: the failure paths SQS rarely produces on demand (a delete
that fails after its send succeeded, a receive that fails half-way) and the pacing arithmetic."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from common.boards import BoardRegistry
from common.runtime import run
from ops.dlq import Validator, _Pace, peek, replay
from ops.errors import OperationFailed
from ops.sqs import Message, QueueCounts

VALID = '{"type":"refresh","board":"global","reason":"stale","requested_at":"2026-11-29T16:00:00.000Z"}'


@dataclass
class _Stored:
    message_id: str
    body: str
    hidden: bool = False
    receipt: str = ""
    receives: int = 0


@dataclass
class FakeSqs:
    """Queues by URL. Receipts change on every receive, as in SQS; only the latest one works."""

    queues: dict[str, list[_Stored]] = field(default_factory=dict)
    fail_delete: bool = False
    fail_receive_after: int | None = None
    receives: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def put(self, url: str, body: str) -> None:
        self.queues.setdefault(url, []).append(_Stored(f"m{next(self._ids)}", body))

    def bodies(self, url: str) -> list[str]:
        return [m.body for m in self.queues.get(url, [])]

    def hidden(self, url: str) -> int:
        return sum(m.hidden for m in self.queues.get(url, []))

    async def counts(self, url: str) -> QueueCounts:
        return QueueCounts(len(self.queues[url]) - self.hidden(url), self.hidden(url), 0)

    async def receive(self, url: str, *, max_messages: int, visibility: int, wait: int) -> list[Message]:
        self.receives += 1
        if self.fail_receive_after is not None and self.receives > self.fail_receive_after:
            raise OperationFailed("receiving messages: cannot reach SQS")
        batch = []
        for stored in [m for m in self.queues.get(url, []) if not m.hidden][:max_messages]:
            stored.hidden = visibility > 0
            stored.receives += 1
            stored.receipt = f"{stored.message_id}#{stored.receives}"
            batch.append(
                Message(stored.message_id, stored.receipt, stored.body, stored.receives, 1_700_000_000_000)
            )
        return batch

    def _by_receipt(self, url: str, receipt: str) -> _Stored:
        for stored in self.queues.get(url, []):
            if stored.receipt == receipt:
                return stored
        raise OperationFailed("the receipt handle has expired")

    async def send(self, url: str, body: str, **_: Any) -> None:
        self.put(url, body)

    async def delete(self, url: str, receipt: str) -> None:
        if self.fail_delete:
            raise OperationFailed("deleting the message: AccessDenied")
        self.queues[url].remove(self._by_receipt(url, receipt))

    async def set_visibility(self, url: str, receipt: str, seconds: int) -> None:
        self._by_receipt(url, receipt).hidden = seconds > 0


VALIDATE = Validator(BoardRegistry.parse("global,challenge:*"))


def test_a_delete_that_fails_after_the_send_leaves_a_duplicate_never_a_loss() -> None:
    # Given two valid messages in the DLQ, and a DLQ that refuses deletes
    sqs = FakeSqs(fail_delete=True)
    sqs.put("dlq", VALID)
    sqs.put("dlq", VALID)
    lines: list[str] = []
    # When they are replayed
    summary = run(replay(sqs, "dlq", "queue", VALIDATE, limit=None, dry_run=False, drop_invalid=False,
                         rate=0, echo=lines.append))  # fmt: skip
    # Then both reached the queue, both are still in the DLQ (visible again), and the run failed
    assert sqs.bodies("queue") == [VALID, VALID]
    assert sqs.bodies("dlq") == [VALID, VALID]
    assert sqs.hidden("dlq") == 0
    assert summary.not_deleted == 2
    assert summary.failed
    assert sum("DUPLICATE" in line for line in lines) == 2


def test_a_receive_failing_half_way_still_unhides_what_was_kept() -> None:
    # Given a first batch of 10 invalid messages (kept) and more behind them
    sqs = FakeSqs(fail_receive_after=1)
    for _ in range(12):
        sqs.put("dlq", "not json")
    # When the second receive fails
    with pytest.raises(OperationFailed):
        run(replay(sqs, "dlq", "queue", VALIDATE, limit=None, dry_run=False, drop_invalid=False,
                   rate=0, echo=lambda _: None))  # fmt: skip
    # Then nothing was lost and nothing stays hidden
    assert len(sqs.bodies("dlq")) == 12
    assert sqs.hidden("dlq") == 0


def test_peek_unhides_everything_it_read() -> None:
    sqs = FakeSqs()
    for body in (VALID, "not json", VALID):
        sqs.put("dlq", body)
    found = run(peek(sqs, "dlq", VALIDATE, limit=2))
    assert [p.problem for p in found] == [None, "body is not JSON"]
    assert sqs.hidden("dlq") == 0
    assert len(sqs.bodies("dlq")) == 3


def test_a_dlq_of_only_invalid_messages_is_read_once_and_left_as_it_was() -> None:
    # A DLQ holding only invalid messages: the run reads each once, keeps it, and stops.
    sqs = FakeSqs()
    for _ in range(3):
        sqs.put("dlq", "{}")
    summary = run(replay(sqs, "dlq", "queue", VALIDATE, limit=None, dry_run=False, drop_invalid=False,
                         rate=0, echo=lambda _: None))  # fmt: skip
    assert summary.received == 3
    assert summary.invalid_kept == 3
    assert not summary.failed
    assert sqs.hidden("dlq") == 0


def test_pacing_spaces_sends_by_one_over_the_rate() -> None:
    now = [100.0]
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    async def five_sends() -> None:
        pace = _Pace(4, sleep, clock=lambda: now[0])
        for _ in range(5):
            await pace.wait()

    run(five_sends())
    assert pauses == [0.25, 0.25, 0.25, 0.25]


def test_no_rate_means_no_pause() -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    async def sends() -> None:
        pace = _Pace(0, sleep)
        for _ in range(3):
            await pace.wait()

    run(sends())
    assert pauses == []


def test_a_slow_rate_takes_few_messages_per_receive() -> None:
    # At 0.1 messages/s a batch of 10 would take 100 s, longer than the 60 s hold: take 3 at a time.
    sqs = FakeSqs()
    for _ in range(7):
        sqs.put("dlq", VALID)
    sizes: list[int] = []
    receive = sqs.receive

    async def counting_receive(url: str, **kwargs: Any) -> list[Message]:
        batch = await receive(url, **kwargs)
        sizes.append(len(batch))
        return batch

    sqs.receive = counting_receive  # type: ignore[method-assign]

    async def no_wait(_: float) -> None:
        return None

    summary = run(replay(sqs, "dlq", "queue", VALIDATE, limit=None, dry_run=False, drop_invalid=False,
                         rate=0.1, sleep=no_wait, echo=lambda _: None))  # fmt: skip
    assert summary.replayed == 7
    assert sizes == [3, 3, 1, 0]
