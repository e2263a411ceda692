"""`leaderboard-ops` on moto SQS and real Valkey: the runbook's commands, run in-process through main().

The DLQ is filled the way production fills it: messages sent to the refresh queue and received (and
not deleted) until SQS's redrive policy moves them, so their attributes are those of real dead letters.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.messages import RefreshRequest
from common.periods import containing
from ops.cli import main
from testkit.engines import Queues, SqsEngine, free_port
from tests.harness import CacheTools, drain
from tests.support import make_entries

pytestmark = pytest.mark.usefixtures("sqs")

MAX_RECEIVES = 5  # the `queues` fixture's redrive policy


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def ops(capsys: pytest.CaptureFixture[str], queues: Queues) -> Any:
    """Run the CLI with the refresh queue configured as the functions have it (REFRESH_QUEUE_URL)."""

    def run_cli(*argv: str, env: dict[str, str] | None = None, **kwargs: Any) -> Result:
        capsys.readouterr()
        environ = {"REFRESH_QUEUE_URL": queues.queue_url} if env is None else env
        code = main(list(argv), environ=environ, **kwargs)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run_cli


def request_body(board: str = "global", reason: str = "stale", n: int = 0) -> str:
    return RefreshRequest(board, reason, datetime(2026, 11, 29, 16, 0, n % 60, tzinfo=UTC)).to_json()


def park_in_dlq(sqs: SqsEngine, queues: Queues, bodies: list[str]) -> None:
    """An outage: every body is sent, then received MAX_RECEIVES times and never deleted, until SQS
    moves it to the DLQ."""
    client = sqs.client()
    for body in bodies:
        client.send_message(QueueUrl=queues.queue_url, MessageBody=body)
    for _ in range(MAX_RECEIVES * (len(bodies) // 10 + 2) + 5):
        client.receive_message(QueueUrl=queues.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert dlq_depth(sqs, queues) == len(bodies)


def dlq_depth(sqs: SqsEngine, queues: Queues, url: str | None = None) -> int:
    attributes = sqs.client().get_queue_attributes(
        QueueUrl=url or queues.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def bodies_in(sqs: SqsEngine, url: str) -> Counter[str]:
    return Counter(m["Body"] for m in drain(sqs, url))


# ---- replay ----------------------------------------------------------------------------------------


def test_replay_after_an_outage_moves_every_message_back_and_loses_none(
    ops: Any, sqs: SqsEngine, queues: Queues
) -> None:
    # Given 23 refresh requests that failed 5 times each while Supabase was down (more than one batch)
    sent = [request_body("global" if i % 3 else "challenge:two-sum", "stale", i) for i in range(23)]
    park_in_dlq(sqs, queues, sent)
    # When the operator replays the DLQ
    result = ops("dlq", "replay", "--rate", "0")
    # Then every message is back in the refresh queue, once, and the DLQ is empty
    assert result.code == 0, result.err
    assert bodies_in(sqs, queues.queue_url) == Counter(sent)
    assert dlq_depth(sqs, queues) == 0
    assert bodies_in(sqs, queues.dlq_url) == Counter()
    assert result.out.count(" replayed ") == 23
    assert "summary: 23 read, 23 replayed, 0 invalid kept" in result.out


def test_max_limits_the_replay_and_the_rest_stays(ops: Any, sqs: SqsEngine, queues: Queues) -> None:
    sent = [request_body(n=i) for i in range(12)]
    park_in_dlq(sqs, queues, sent)
    result = ops("dlq", "replay", "--max", "5", "--rate", "0")
    assert result.code == 0, result.err
    moved = bodies_in(sqs, queues.queue_url)
    left = bodies_in(sqs, queues.dlq_url)
    assert sum(moved.values()) == 5
    assert moved + left == Counter(sent)


def test_rate_limits_sends_through_the_sleep_hook(ops: Any, sqs: SqsEngine, queues: Queues) -> None:
    park_in_dlq(sqs, queues, [request_body(n=i) for i in range(4)])
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    result = ops("dlq", "replay", "--rate", "2", sleep=sleep)
    assert result.code == 0, result.err
    assert len(pauses) == 3  # a pause before every send but the first (spacing: tests/unit/test_ops_dlq.py)
    assert all(p > 0 for p in pauses)


def test_dry_run_changes_nothing(ops: Any, sqs: SqsEngine, queues: Queues) -> None:
    sent = [request_body(n=i) for i in range(4)]
    park_in_dlq(sqs, queues, [*sent, "not json"])
    result = ops("dlq", "replay", "--dry-run", "--drop-invalid")
    assert result.code == 0, result.err
    assert result.out.count("would replay") == 4
    assert result.out.count("would drop") == 1
    assert "nothing changed" in result.out
    assert bodies_in(sqs, queues.queue_url) == Counter()
    assert bodies_in(sqs, queues.dlq_url) == Counter([*sent, "not json"])


def test_invalid_messages_are_kept_and_reported(ops: Any, sqs: SqsEngine, queues: Queues) -> None:
    # Given valid requests and two poison messages in the DLQ
    valid = [request_body(n=i) for i in range(3)]
    poison = ["not json", request_body("challenge:not-served")]
    park_in_dlq(sqs, queues, valid + poison)
    # When it is replayed without --drop-invalid, with a deployment that serves only `global`
    env = {"REFRESH_QUEUE_URL": queues.queue_url, "LEADERBOARD_BOARDS": "global"}
    result = ops("dlq", "replay", "--rate", "0", env=env)
    # Then the valid ones move, the poison stays in the DLQ, and each is reported with its reason
    assert result.code == 0, result.err
    assert bodies_in(sqs, queues.queue_url) == Counter(valid)
    assert "invalid: body is not JSON" in result.out
    assert "is not served by this deployment" in result.out
    assert "2 invalid kept" in result.out
    assert "--drop-invalid" in result.out
    assert bodies_in(sqs, queues.dlq_url) == Counter(poison)


def test_drop_invalid_discards_only_the_poison_and_prints_it(
    ops: Any, sqs: SqsEngine, queues: Queues
) -> None:
    valid = [request_body(n=i) for i in range(3)]
    park_in_dlq(sqs, queues, [*valid, "not json", '{"type":"refresh"}'])
    result = ops("dlq", "replay", "--drop-invalid", "--rate", "0")
    assert result.code == 0, result.err
    assert result.out.count(" dropped ") == 2
    assert "body was not json" in result.out
    assert "2 invalid dropped" in result.out
    assert bodies_in(sqs, queues.queue_url) == Counter(valid)
    assert dlq_depth(sqs, queues) == 0


def test_a_failed_send_keeps_the_message_in_the_dlq_and_exits_1(
    ops: Any, sqs: SqsEngine, queues: Queues
) -> None:
    # Given a target queue that does not exist
    sent = [request_body(n=i) for i in range(3)]
    park_in_dlq(sqs, queues, sent)
    missing = queues.queue_url + "-gone"
    # When the replay cannot send
    result = ops("dlq", "replay", "--dlq-url", queues.dlq_url, "--queue-url", missing, "--rate", "0")
    # Then it says so, exits 1, and every message is still in the DLQ (visible again at once)
    assert result.code == 1
    assert "could not be moved (none was lost" in result.err
    assert result.out.count("FAILED") == 3
    assert bodies_in(sqs, queues.dlq_url) == Counter(sent)


def test_the_queue_is_found_from_the_dlq_and_the_dlq_from_the_queue(
    ops: Any, sqs: SqsEngine, queues: Queues
) -> None:
    park_in_dlq(sqs, queues, [request_body()])
    # only the DLQ given: the queue is the DLQ's one source queue
    only_dlq = ops("dlq", "replay", "--rate", "0", env={"REFRESH_DLQ_URL": queues.dlq_url})
    assert only_dlq.code == 0, only_dlq.err
    assert f"-> {queues.queue_url}" in only_dlq.out
    # only the queue given: the DLQ is the one its redrive policy names
    only_queue = ops("dlq", "stats")
    assert only_queue.code == 0, only_queue.err
    assert f"DLQ    {queues.dlq_url}" in only_queue.out


# ---- peek and stats ---------------------------------------------------------------------------------


def test_peek_shows_messages_and_their_validity_without_consuming_them(
    ops: Any, sqs: SqsEngine, queues: Queues
) -> None:
    valid = [request_body("challenge:two-sum", "miss"), request_body()]
    park_in_dlq(sqs, queues, [*valid, "\x00binary"])
    first = ops("dlq", "peek")
    second = ops("dlq", "peek", "-n", "2")
    assert first.code == 0, first.err
    assert "3 message(s)" in first.out
    assert first.out.count("   valid: ") == 2
    assert "valid: board=challenge:two-sum reason=miss" in first.out
    assert "INVALID: body is not JSON" in first.out
    assert "'\\x00binary'" in first.out  # shown escaped, never raw
    assert f"(receives: {MAX_RECEIVES + 1}" in first.out
    assert "2 message(s)" in second.out
    assert bodies_in(sqs, queues.dlq_url) == Counter([*valid, "\x00binary"])


def test_stats_counts_both_queues_and_the_oldest_message(ops: Any, sqs: SqsEngine, queues: Queues) -> None:
    park_in_dlq(sqs, queues, [request_body(n=i) for i in range(4)])
    client = sqs.client()
    for i in range(2):
        client.send_message(QueueUrl=queues.queue_url, MessageBody=request_body(n=i))
    result = ops("dlq", "stats", "--dlq-url", queues.dlq_url)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    dlq_part = lines[: lines.index(f"queue  {queues.queue_url}")]
    queue_part = lines[lines.index(f"queue  {queues.queue_url}") :]
    assert "  visible        4" in dlq_part
    assert "  in flight      0" in dlq_part
    assert any(line.startswith("  oldest message ") and "all 4 read" in line for line in dlq_part)
    assert "  visible        2" in queue_part
    assert dlq_depth(sqs, queues) == 4  # reading the oldest put everything back
    assert ops("dlq", "stats").out.count("  visible        4") == 1  # visible again at once


# ---- refresh ----------------------------------------------------------------------------------------


def test_refresh_enqueues_a_valid_manual_request(ops: Any, sqs: SqsEngine, queues: Queues) -> None:
    result = ops("refresh", "--board", "challenge:two-sum")
    assert result.code == 0, result.err
    (message,) = drain(sqs, queues.queue_url)
    request = RefreshRequest.parse(message["Body"])
    assert request.board == "challenge:two-sum"
    assert request.reason == "manual"
    assert abs((datetime.now(UTC) - request.requested_at).total_seconds()) < 60
    assert json.loads(message["Body"])["type"] == "refresh"


def test_refresh_refuses_a_board_the_deployment_does_not_serve(ops: Any, queues: Queues) -> None:
    result = ops("refresh", "--board", "challenge:x", env={"REFRESH_QUEUE_URL": queues.queue_url,
                                                           "LEADERBOARD_BOARDS": "global"})  # fmt: skip
    assert result.code == 2
    assert "not among LEADERBOARD_BOARDS" in result.err


def valkey_env(cache_tools: CacheTools, queues: Queues, **extra: str) -> dict[str, str]:
    return {
        **cache_tools.target.env(),
        "LEADERBOARD_KEY": cache_tools.prefix,
        "REFRESH_QUEUE_URL": queues.queue_url,
        **extra,
    }


def test_refresh_wait_prints_the_new_version(
    ops: Any, sqs: SqsEngine, queues: Queues, cache_tools: CacheTools
) -> None:
    # Given a board with a snapshot
    old_version = cache_tools.write(make_entries(3), age_seconds=300)
    written: list[int] = []

    async def worker_on_first_pause(_seconds: float) -> None:
        # The CLI pauses between polls; a stand-in worker writes the new snapshot there, on the
        # CLI's own event loop (GLIDE serves one loop per process).
        if not written:
            written.append(await cache_tools.write_async(make_entries(5)))

    # When the operator asks for a refresh and waits
    result = ops("refresh", "--wait", "30", env=valkey_env(cache_tools, queues), sleep=worker_on_first_pause)
    # Then the CLI reports the version the worker wrote, and the request went to the queue
    assert result.code == 0, result.err
    assert f"newer than version {old_version}" in result.out
    assert f"new snapshot: version {written[0]}," in result.out
    assert "5 entries" in result.out
    assert written[0] > old_version
    assert [RefreshRequest.parse(m["Body"]).reason for m in drain(sqs, queues.queue_url)] == ["manual"]


def test_refresh_wait_without_a_worker_exits_1(ops: Any, queues: Queues, cache_tools: CacheTools) -> None:
    version = cache_tools.write(make_entries(2))
    result = ops("refresh", "--wait", "0.3", env=valkey_env(cache_tools, queues))
    assert result.code == 1
    assert f"no new snapshot of global within 0.3 s (still version {version})" in result.err


# ---- cache show ---------------------------------------------------------------------------------------


def test_cache_show_reports_the_snapshot_the_lock_and_the_marker(
    ops: Any, queues: Queues, cache_tools: CacheTools
) -> None:
    # Given a 7-entry snapshot of a 9-player board, a refresh in progress and one requested
    version = cache_tools.write(make_entries(7), total=9, age_seconds=90)

    async def in_progress() -> None:
        assert await cache_tools.lock.acquire("global", 30_000) is not None

    from common.runtime import run

    run(in_progress())
    marker = cache_tools.keys("global").refresh_marker
    assert cache_tools.command("SET", marker, "token", "NX", "PX", "20000") == "OK"
    result = ops("cache", "show", env=valkey_env(cache_tools, queues, LEADERBOARD_FRESH_SECONDS="60"))
    assert result.code == 0, result.err
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.out.splitlines())
    assert rows["board"] == "global"
    assert rows["key"] == cache_tools.prefix
    assert rows["version"] == str(version)
    assert rows["entries"] == "7"
    assert rows["total"] == "9"
    assert rows["source"] == "test"
    assert rows["position"] == "none (the source has no change feed)"
    assert rows["layout"] == "v2 (sorted set of 7, hash of 7)"
    assert "STALE, fresh for 60 s" in rows["generated_at"]
    assert rows["lock"].startswith("held by test (expires in ")
    assert rows["refresh pending"].startswith("yes (expires in ")
    assert int(rows["version counter"]) > version  # the lock taken after the write bumped it


@pytest.mark.parametrize(
    ("setting", "argv", "verdict"),
    [
        ("300", [], "; fresh, fresh for 300 s)"),
        ("10", [], "; STALE, fresh for 10 s)"),
        ("10", ["--fresh-seconds", "300"], "; fresh, fresh for 300 s)"),
        (
            None,
            [],
            "; freshness unknown: set LEADERBOARD_FRESH_SECONDS to the API's value, or --fresh-seconds)",
        ),
    ],
)
def test_cache_show_judges_freshness_by_the_apis_window_never_its_own_default(
    ops: Any, queues: Queues, cache_tools: CacheTools, setting: str | None, argv: list[str], verdict: str
) -> None:
    # Given a snapshot 90 s old
    cache_tools.write(make_entries(3), age_seconds=90)
    # When the operator shows it with the API's LEADERBOARD_FRESH_SECONDS (or none, or a flag)
    extra = {} if setting is None else {"LEADERBOARD_FRESH_SECONDS": setting}
    result = ops("cache", "show", *argv, env=valkey_env(cache_tools, queues, **extra))
    # Then the verdict is by that window; without one there is no verdict (the code's 60 s default
    # is not necessarily what the deployment runs with)
    assert result.code == 0, result.err
    (line,) = [line for line in result.out.splitlines() if line.startswith("generated_at")]
    assert line.endswith(verdict), line


def test_global_flags_work_before_and_after_the_command(ops: Any, queues: Queues) -> None:
    # When -v comes after the command, or between the command and its action
    after = ops("dlq", "stats", "-v", "--sample", "0")
    between = ops("dlq", "-v", "stats", "--sample", "0")
    before = ops("-v", "dlq", "stats", "--sample", "0")
    # Then each is accepted and prints the same report
    assert (after.code, between.code, before.code) == (0, 0, 0), after.err + between.err + before.err
    assert after.out.splitlines()[0] == before.out.splitlines()[0] == f"DLQ    {queues.dlq_url}"


def test_dev_without_a_running_stack_is_exit_2(ops: Any, tmp_path: Path) -> None:
    # Given no info file, then one whose stack is gone (a pid nobody has)
    missing = ops("--dev-info", str(tmp_path / "none.json"), "dlq", "stats")
    stale = tmp_path / "stale.json"
    stale.write_text(
        json.dumps({"pid": 2**22 + 12345, "ops_env": {"REFRESH_QUEUE_URL": "http://127.0.0.1:1/0/q"}})
    )
    gone = ops("dlq", "stats", "--dev-info", str(stale))
    # Then each is one line saying so
    assert missing.code == gone.code == 2
    assert missing.err.strip() == (
        f"leaderboard-ops: error: no running dev stack: {tmp_path / 'none.json'} does not exist "
        "(start one with `make dev`)"
    )
    assert "is not running" in gone.err and len(gone.err.strip().splitlines()) == 1


def test_cache_show_flags_an_older_release_and_an_inconsistent_snapshot(
    ops: Any, queues: Queues, cache_tools: CacheTools
) -> None:
    # Given a board whose snapshot key is still an older release's LIST (no v2 header)
    keys = cache_tools.keys("global")
    cache_tools.command("RPUSH", keys.snapshot, '{"format":1}', '{"rank":1}')
    result = ops("cache", "show", env=valkey_env(cache_tools, queues))
    assert result.code == 0, result.err
    assert "v1 list of 2 (an older release's; the next refresh replaces it)" in result.out
    # And given a v2 snapshot whose hash lost an entry (evicted)
    cache_tools.command("DEL", keys.snapshot)
    cache_tools.write(make_entries(3))
    cache_tools.command("HDEL", keys.entries, make_entries(3)[1].user_id)
    result = ops("cache", "show", env=valkey_env(cache_tools, queues))
    assert "v2 (sorted set of 3, hash of 2): INCONSISTENT" in result.out


def test_cache_show_of_an_empty_board(ops: Any, queues: Queues, cache_tools: CacheTools) -> None:
    result = ops("cache", "show", "--board", "challenge:two-sum", env=valkey_env(cache_tools, queues))
    assert result.code == 0, result.err
    assert "snapshot         none" in result.out
    assert "lock             free" in result.out
    assert "refresh pending  no" in result.out


def test_cache_show_takes_every_board_form(ops: Any, queues: Queues, cache_tools: CacheTools) -> None:
    # Given a week board with a snapshot, and a service that serves every kind of board
    week = containing("week", datetime.now(UTC)).name
    cache_tools.write(make_entries(2), board=week)
    env = valkey_env(cache_tools, queues, LEADERBOARD_BOARDS="global,challenge:*,week:*,month:*,season:*")
    # When cache show is asked for each form, Then each is accepted; an alias shows its period
    for board in ("global", "challenge:two-sum", week, "week:current", "month:current", "season:cup"):
        result = ops("cache", "show", "--board", board, env=env)
        assert result.code == 0, (board, result.err)
    shown = ops("cache", "show", "--board", "week:current", env=env).out
    assert re.search(rf"^board\s+{week}$", shown, re.M) and "snapshot         none" not in shown


# ---- configuration and failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dlq", "stats"], "the DLQ is not configured: set REFRESH_DLQ_URL or pass --dlq-url"),
        (["dlq", "replay"], "the DLQ is not configured"),
        (["refresh"], "the refresh queue is not configured: set REFRESH_QUEUE_URL or pass --queue-url"),
        (["cache", "show"], "configuration: VALKEY_HOST is required"),
        (["refresh", "--board", "nope"], "--board: board must be 'global', 'challenge:<id>'"),
        (["dlq", "peek", "--dlq-url", "ftp://x"], "configuration: --dlq-url must be a URL"),
    ],
)
def test_missing_configuration_is_exit_2_with_one_line(ops: Any, argv: list[str], message: str) -> None:
    result = ops(*argv, env={})
    assert result.code == 2
    assert result.err.startswith(f"leaderboard-ops: error: {message}")
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err + result.out


def test_a_queue_that_does_not_exist_is_exit_2(ops: Any, queues: Queues) -> None:
    result = ops("dlq", "stats", "--dlq-url", queues.dlq_url + "-nope")
    assert result.code == 2
    assert "does not exist" in result.err


def test_unreachable_sqs_is_exit_1(ops: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{free_port()}")
    result = ops("dlq", "stats", "--dlq-url", "http://127.0.0.1:1/123456789012/q")
    assert result.code == 1
    assert "cannot reach SQS" in result.err
    assert "Traceback" not in result.err


def test_unreachable_valkey_is_exit_1(ops: Any, queues: Queues) -> None:
    env = {"VALKEY_HOST": "127.0.0.1", "VALKEY_PORT": str(free_port()), "VALKEY_CONNECT_TIMEOUT_MS": "200"}
    result = ops("cache", "show", env=env)
    assert result.code == 1
    assert "cannot connect to Valkey" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["dlq"],
        ["dlq", "stats"],
        ["dlq", "peek"],
        ["dlq", "replay"],
        ["refresh"],
        ["cache"],
        ["cache", "show"],
    ],
)
def test_every_command_has_help(ops: Any, argv: list[str]) -> None:
    result = ops(*argv, "--help")
    assert result.code == 0
    assert result.out.startswith(f"usage: leaderboard-ops {' '.join(argv)}".rstrip())


def test_a_usage_error_is_exit_2(ops: Any) -> None:
    result = ops("dlq", "replay", "--rate", "fast")
    assert result.code == 2
    assert "--rate" in result.err
