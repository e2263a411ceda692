"""The DLQ logic against an in-memory queue: the failure paths SQS rarely produces on demand (a delete
that fails after its send succeeded, a receive that fails half-way, a hold that lapses) and the pacing
arithmetic. The same faults on moto through a proxy: tests/faults/test_replay_faults.py."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.boards import BoardRegistry
from common.messages import RefreshRequest
from common.runtime import run
from ops.dlq import Validator, peek
from ops.errors import OperationFailed
from ops.replay import MAX_FAILURES_IN_ROW, ReplaySummary, _Pace, replay
from ops.sqs import Message, QueueCounts


def valid(n: int) -> str:
    """A valid request, a different body for each n."""
    return RefreshRequest("global", "stale", datetime(2026, 11, 29, 16, 0, n, tzinfo=UTC)).to_json()


VALID = valid(0)


@dataclass
class _Stored:
    message_id: str
    body: str
    hidden_until: float = 0.0
    receipt: str = ""
    receives: int = 0

    @property
    def hidden(self) -> bool:
        return self.hidden_until > time.monotonic()


@dataclass
class FakeSqs:
    """Queues by URL, with SQS's visibility timeouts in real time. Receipts change on every receive
    and only the latest one works (stricter than AWS, where an older one may succeed and do nothing)."""

    queues: dict[str, list[_Stored]] = field(default_factory=dict)
    fail_delete: bool = False
    fail_delete_of: set[str] = field(default_factory=set)  # bodies whose delete fails
    fail_delete_once: set[str] = field(default_factory=set)  # bodies whose first delete fails
    fail_send: bool = False
    fail_renew: bool = False  # set_visibility(> 0) fails
    fail_receive_after: int | None = None
    lapse_before_receive: set[int] = field(default_factory=set)  # every hold runs out before these
    delete_seconds: float = 0.0
    receives: int = 0
    sends: Counter[str] = field(default_factory=Counter)
    renewals: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def put(self, url: str, body: str) -> None:
        self.queues.setdefault(url, []).append(_Stored(f"m{next(self._ids)}", body))

    def bodies(self, url: str) -> list[str]:
        return [m.body for m in self.queues.get(url, [])]

    def hidden(self, url: str) -> int:
        return sum(m.hidden for m in self.queues.get(url, []))

    async def counts(self, url: str) -> QueueCounts:
        return QueueCounts(len(self.queues.get(url, [])) - self.hidden(url), self.hidden(url), 0)

    async def receive(self, url: str, *, max_messages: int, visibility: int, wait: int) -> list[Message]:
        self.receives += 1
        if self.fail_receive_after is not None and self.receives > self.fail_receive_after:
            raise OperationFailed("receiving messages: cannot reach SQS")
        if self.receives in self.lapse_before_receive:
            for stored in self.queues.get(url, []):
                stored.hidden_until = 0.0
        batch = []
        for stored in [m for m in self.queues.get(url, []) if not m.hidden][:max_messages]:
            stored.hidden_until = time.monotonic() + visibility
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
        if self.fail_send:
            raise OperationFailed("sending the message: cannot reach SQS")
        self.sends[body] += 1
        self.put(url, body)

    async def delete(self, url: str, receipt: str) -> None:
        if self.delete_seconds:
            await asyncio.sleep(self.delete_seconds)
        stored = self._by_receipt(url, receipt)
        if self.fail_delete or stored.body in self.fail_delete_of:
            raise OperationFailed("deleting the message: AccessDenied")
        if stored.body in self.fail_delete_once:
            self.fail_delete_once.discard(stored.body)
            raise OperationFailed("deleting the message: cannot reach SQS")
        self.queues[url].remove(stored)

    async def set_visibility(self, url: str, receipt: str, seconds: int) -> None:
        if seconds > 0 and self.fail_renew:
            raise OperationFailed("changing the message's visibility: cannot reach SQS")
        self.renewals += seconds > 0
        self._by_receipt(url, receipt).hidden_until = time.monotonic() + seconds


VALIDATE = Validator(BoardRegistry.parse("global,challenge:*"))


def replay_all(sqs: FakeSqs, lines: list[str] | None = None, **options: Any) -> ReplaySummary:
    settings: dict[str, Any] = {"limit": None, "dry_run": False, "drop_invalid": False, "rate": 0}
    settings.update(options)
    echo = lines.append if lines is not None else (lambda _: None)
    return run(replay(sqs, "dlq", "queue", VALIDATE, echo=echo, **settings))


def test_a_delete_that_fails_after_the_send_leaves_a_duplicate_never_a_loss() -> None:
    # Given two valid messages in the DLQ, and a DLQ that refuses deletes
    sqs = FakeSqs(fail_delete=True)
    sqs.put("dlq", valid(1))
    sqs.put("dlq", valid(2))
    lines: list[str] = []
    # When they are replayed
    summary = replay_all(sqs, lines)
    # Then both reached the queue once, both are still in the DLQ (visible again), and the run failed
    assert sorted(sqs.bodies("queue")) == [valid(1), valid(2)]
    assert sqs.bodies("dlq") == [valid(1), valid(2)]
    assert sqs.hidden("dlq") == 0
    assert summary.not_deleted == 2
    assert summary.failed
    assert sum("DUPLICATE" in line for line in lines) == 2
    assert summary.dlq_after == QueueCounts(2, 0, 0)


def test_a_delete_that_fails_once_is_retried_and_leaves_no_duplicate() -> None:
    sqs = FakeSqs(fail_delete_once={valid(1)})
    for n in (1, 2, 3):
        sqs.put("dlq", valid(n))
    summary = replay_all(sqs)
    assert sqs.bodies("dlq") == []
    assert sqs.sends == Counter({valid(1): 1, valid(2): 1, valid(3): 1})
    assert (summary.replayed, summary.not_deleted, summary.failed) == (3, 0, False)
    assert summary.errors == []


def test_a_receive_failing_half_way_stops_with_a_summary_and_unhides_what_was_kept() -> None:
    # Given a first batch of 10 invalid messages (kept) and more behind them
    sqs = FakeSqs(fail_receive_after=1)
    for _ in range(12):
        sqs.put("dlq", "not json")
    # When the second receive fails
    summary = replay_all(sqs)
    # Then the run says it stopped early (no exception), nothing was lost and nothing stays hidden
    assert summary.stopped_early == "receiving messages: cannot reach SQS"
    assert summary.failed
    assert (summary.received, summary.invalid_kept) == (10, 10)
    assert len(sqs.bodies("dlq")) == 12
    assert sqs.hidden("dlq") == 0


def test_sends_failing_in_a_row_stop_the_run_and_keep_every_message() -> None:
    sqs = FakeSqs(fail_send=True)
    for n in range(8):
        sqs.put("dlq", valid(n))
    summary = replay_all(sqs)
    assert summary.send_failed == MAX_FAILURES_IN_ROW
    assert summary.stopped_early is not None and "SQS calls in a row failed" in summary.stopped_early
    assert len(sqs.bodies("dlq")) == 8
    assert sqs.hidden("dlq") == 0
    assert sqs.bodies("queue") == []


def test_drop_invalid_goes_on_past_a_failed_delete_and_replays_what_follows() -> None:
    # Given poison whose delete fails, with a valid request behind it
    sqs = FakeSqs(fail_delete_of={"not json"})
    for body in ("not json", valid(1), "{}", valid(2)):
        sqs.put("dlq", body)
    lines: list[str] = []
    summary = replay_all(sqs, lines, drop_invalid=True)
    # Then the valid ones are replayed, the other poison dropped, the failed drop reported
    assert sorted(sqs.bodies("queue")) == [valid(1), valid(2)]
    assert sqs.bodies("dlq") == ["not json"]
    assert (summary.replayed, summary.dropped, summary.drop_failed) == (2, 1, 1)
    assert summary.failed
    assert any("NOT DROPPED" in line for line in lines)
    assert any("not dropped" in error for error in summary.errors)


def test_messages_whose_hold_lapsed_are_tracked_by_id_never_sent_twice_and_all_reached() -> None:
    # Given 10 invalid messages in front of 5 valid ones, holds that cannot be renewed and lapse twice,
    # and a first delete that fails (so that message is still in the DLQ when its hold lapses)
    sqs = FakeSqs(fail_renew=True, lapse_before_receive={2, 4}, fail_delete_once={valid(1)})
    for _ in range(10):
        sqs.put("dlq", "not json")
    for n in range(1, 6):
        sqs.put("dlq", valid(n))
    summary = replay_all(sqs)
    # Then every valid message reached the queue exactly once, and left the DLQ
    assert sqs.sends == Counter({valid(n): 1 for n in range(1, 6)})
    assert sqs.bodies("dlq") == ["not json"] * 10
    assert (summary.received, summary.replayed, summary.invalid_kept, summary.not_deleted) == (15, 5, 10, 0)
    assert not summary.failed


def test_a_run_slower_than_the_hold_renews_it_and_replays_everything_once() -> None:
    # Given deletes so slow that the run outlasts its hold (1 s) twice over
    sqs = FakeSqs(delete_seconds=0.15)
    for n in range(14):
        sqs.put("dlq", valid(n))
    summary = replay_all(sqs, hold_seconds=1)
    assert sqs.renewals > 0
    assert sqs.sends == Counter({valid(n): 1 for n in range(14)})
    assert sqs.bodies("dlq") == []
    assert (summary.replayed, summary.failed) == (14, False)


def test_the_limit_counts_distinct_messages_and_the_rest_stays_visible() -> None:
    sqs = FakeSqs()
    for n in range(7):
        sqs.put("dlq", valid(n))
    summary = replay_all(sqs, limit=3)
    assert summary.replayed == 3
    assert len(sqs.bodies("dlq")) == 4
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
    summary = replay_all(sqs)
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
