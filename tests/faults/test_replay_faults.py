"""R10_replay_faults: `leaderboard-ops dlq replay` on moto SQS behind a TCP proxy that slows, fails and
cuts requests part-way (testkit/proxy.py), with poison among the valid requests.

Each scenario follows the runbook (replay; if the exit code is not 0, replay again once SQS answers) and
counts, over the valid requests: lost (in neither queue), left in both queues, and the runs that
printed their summary. Target: 0 / 0 / every run. Duplicates in the refresh queue (a request sent by
the first run whose DLQ copy could not be deleted, then sent again by the second) are harmless and
counted for the record.

`pytest tests/faults/test_replay_faults.py -rP | grep R10` prints the figures.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from common.messages import RefreshRequest
from ops.cli import main
from testkit.engines import Queues, SqsEngine
from testkit.proxy import TcpProxy
from tests.harness import drain

HOLD = 1  # second each read hides a message: short, so that a slow run outlasts it
POISON = ["not json", '{"type":"refresh"}', '{"type":"refresh","board":"../etc","reason":"stale"}']


@pytest.fixture
def proxy(sqs: SqsEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """The CLI reaches SQS through the proxy only (the AWS SDK reads AWS_ENDPOINT_URL_SQS)."""
    server = TcpProxy("127.0.0.1", int(sqs.port or 0)).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", server.endpoint)
    yield server
    server.stop()


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Procedure:
    name: str
    sqs: SqsEngine
    queues: Queues
    capsys: pytest.CaptureFixture[str]
    valid: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def park(self, valid: int, *, poison_every: int = 0, poison_first: int = 0) -> None:
        """Put `valid` distinct requests in the DLQ, after `poison_first` poison messages, and with one
        before every `poison_every`th request."""
        client = self.sqs.client()
        start = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
        for n in range(poison_first):
            client.send_message(QueueUrl=self.queues.dlq_url, MessageBody=POISON[n % len(POISON)])
        for n in range(valid):
            if poison_every and n % poison_every == 0:
                client.send_message(QueueUrl=self.queues.dlq_url, MessageBody=POISON[n % len(POISON)])
            body = RefreshRequest("global", "stale", start + timedelta(seconds=n)).to_json()
            client.send_message(QueueUrl=self.queues.dlq_url, MessageBody=body)
            self.valid.append(body)

    def replay(self, *flags: str) -> Run:
        self.capsys.readouterr()
        argv = ["dlq", "replay", "--dlq-url", self.queues.dlq_url, "--queue-url", self.queues.queue_url,
                "--rate", "0", "--hold", str(HOLD), *flags]  # fmt: skip
        code = main(argv, environ={"AWS_MAX_ATTEMPTS": "1"})  # no SDK retries: a failure fails at once
        captured = self.capsys.readouterr()
        run = Run(code, captured.out, captured.err)
        self.runs.append(run)
        return run

    def wait_for_held_messages(self) -> None:
        """A run that lost SQS could not make what it held visible again: that takes one hold."""
        client = self.sqs.client()
        deadline = time.monotonic() + HOLD + 5
        while time.monotonic() < deadline:
            attributes = client.get_queue_attributes(
                QueueUrl=self.queues.dlq_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            if attributes["ApproximateNumberOfMessagesNotVisible"] == "0":
                return
            time.sleep(0.2)
        raise AssertionError("DLQ messages stayed in flight for longer than their hold")

    def figures(self) -> dict[str, int]:
        """Drain both queues and count; then print the figures."""
        self.wait_for_held_messages()
        dlq = Counter(m["Body"] for m in drain(self.sqs, self.queues.dlq_url))
        queue = Counter(m["Body"] for m in drain(self.sqs, self.queues.queue_url))
        figures = {
            "lost": sum(1 for b in self.valid if not dlq[b] and not queue[b]),
            "in_both": sum(1 for b in self.valid if dlq[b] and queue[b]),
            "summaries": sum("\nsummary: " in "\n" + r.out for r in self.runs),
            "runs": len(self.runs),
            "duplicates": sum(queue[b] - 1 for b in self.valid if queue[b] > 1),
            "valid_in_dlq": sum(dlq[b] for b in self.valid),
            "poison_in_queue": sum(queue[b] for b in POISON),
        }
        codes = ",".join(str(r.code) for r in self.runs)
        print(
            f"measured R10_replay_faults[{self.name}]: {len(self.valid)} valid, lost {figures['lost']}, "
            f"left in both queues {figures['in_both']}, summary printed {figures['summaries']}/"
            f"{figures['runs']} runs (exit codes {codes}); duplicates in the queue {figures['duplicates']}"
        )
        return figures


@pytest.fixture
def procedure(
    request: pytest.FixtureRequest, sqs: SqsEngine, queues: Queues, capsys: pytest.CaptureFixture[str]
) -> Procedure:
    return Procedure(request.node.name.removeprefix("test_"), sqs, queues, capsys)


def assert_targets(figures: dict[str, int]) -> None:
    assert figures["lost"] == 0, figures
    assert figures["in_both"] == 0, figures
    assert figures["valid_in_dlq"] == 0, figures
    assert figures["poison_in_queue"] == 0, figures
    assert figures["summaries"] == figures["runs"], figures


def test_slow_deletes(procedure: Procedure, proxy: TcpProxy) -> None:
    # Given 10 poison messages (kept) in front of 12 requests, and deletes so slow that the run
    # outlasts its hold twice over
    procedure.park(12, poison_first=10)
    proxy.slow(b"AmazonSQS.DeleteMessage", 0.2)
    # When the operator replays once
    run = procedure.replay()
    # Then that one run replayed every request: the kept poison did not reappear half-way and end it
    # (it did before holds were renewed: the last 2 requests stayed behind, and the run exited 0)
    assert run.code == 0, run
    assert "summary: 22 read, 12 replayed, 10 invalid kept" in run.out
    figures = procedure.figures()
    assert_targets(figures)
    assert figures["duplicates"] == 0


def test_sqs_cut_part_way(procedure: Procedure, proxy: TcpProxy) -> None:
    # Given 15 requests in the DLQ, and SQS unreachable from the 6th delete on (its send went through)
    procedure.park(15)
    proxy.cut_at(b"AmazonSQS.DeleteMessage", 6)
    # When the operator replays
    first = procedure.replay()
    # Then the run stops (the 6th delete and the next two sends failed: 3 calls in a row), says why
    # and prints its summary: 5 moved, 1 duplicate, 2 not sent, the rest untouched
    assert first.code == 1, first
    assert "summary: 8 read, 5 replayed" in first.out
    assert "2 not sent" in first.out
    assert "1 sent but not deleted" in first.out
    assert "stopped early: " in first.out
    assert first.err.count("\n") == 1 and "run the replay again" in first.err
    # When SQS is back and the operator replays again, as the error says
    proxy.restore()
    procedure.wait_for_held_messages()
    second = procedure.replay()
    assert second.code == 0, second
    # Then nothing was lost and nothing is left in the DLQ; the one request sent twice is a duplicate
    figures = procedure.figures()
    assert_targets(figures)
    assert figures["duplicates"] == 1


def test_poison_with_a_failing_delete(procedure: Procedure, proxy: TcpProxy) -> None:
    # Given poison in front of every third valid request, and the first poison's delete failing
    procedure.park(9, poison_every=3)
    proxy.fail(b"AmazonSQS.DeleteMessage", until=b"AmazonSQS.SendMessage")
    # When the operator replays with --drop-invalid
    first = procedure.replay("--drop-invalid")
    # Then the run goes past the failed delete: every valid request is replayed, the failure reported
    assert first.code == 1, first
    assert "summary: 12 read, 9 replayed, 0 invalid kept, 2 invalid dropped, 1 invalid not dropped" in (
        first.out
    )
    assert "NOT DROPPED" in first.out
    assert "1 invalid message(s) could not be dropped" in first.err
    # When the operator replays again, the last poison goes too
    procedure.wait_for_held_messages()
    second = procedure.replay("--drop-invalid")
    assert second.code == 0, second
    assert "summary: 1 read, 0 replayed, 0 invalid kept, 1 invalid dropped" in second.out
    assert_targets(procedure.figures())


def test_sqs_unreachable_from_the_start(procedure: Procedure, proxy: TcpProxy) -> None:
    # Given SQS unreachable before the replay starts
    procedure.park(3)
    proxy.cut()
    first = procedure.replay()
    # Then the run fails with a one-line error, and still prints its summary
    assert first.code == 1, first
    assert "summary: 0 read, 0 replayed" in first.out
    assert "cannot reach SQS" in first.err and "Traceback" not in first.err
    proxy.restore()
    second = procedure.replay()
    assert second.code == 0, second
    assert_targets(procedure.figures())
