"""Every `leaderboard-ops` command against the local stack, in one step, configured the two ways
`make dev` offers: the `export …` block it prints (run by a real shell) and `--dev-info` (what
`leaderboard-ops --dev` reads). The CLI runs as the operator runs it: a separate process.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import boto3
import pytest

from common.messages import RefreshRequest
from devstack.banner import export_block
from tests.e2e.harness import FRESH_SECONDS, SMALL_SAMPLE, StackProcess, clean_env, eventually, start_stack

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    running = start_stack(tmp_path_factory.mktemp("ops-stack"), "--api-workers", "1", *SMALL_SAMPLE)
    try:
        running.wait_ready()
        yield running
    finally:
        running.kill()


def ops_via_export_block(stack: StackProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    """`leaderboard-ops ARGV` in a shell that ran the export block the stack printed, and nothing else
    of ours: the environment is scrubbed of every variable that could point at an engine."""
    script = "\n".join(export_block(stack.info["ops_env"])) + '\nexec "$PYTHON" -m ops "$@"'
    env = {**clean_env(), "PYTHON": sys.executable}
    for name in ("LEADERBOARD_FRESH_SECONDS", "LEADERBOARD_MISS_WAIT_MS"):  # the stack's, not the harness's
        env.pop(name, None)
    return subprocess.run(
        ["bash", "-c", script, "ops", *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def ops_via_dev_info(stack: StackProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    env.pop("LEADERBOARD_FRESH_SECONDS")
    command = [sys.executable, "-m", "ops", *argv, "--dev-info", str(stack.info_file)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def rows(output: str) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in output.splitlines() if "  " in line)


def test_the_export_block_gives_leaderboard_ops_everything_it_needs(stack: StackProcess) -> None:
    info: dict[str, Any] = stack.info
    sqs = boto3.client("sqs", endpoint_url=info["sqs"]["endpoint"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    dlq_url, queue_url = info["sqs"]["dlq_url"], info["sqs"]["queue_url"]
    # Given a dead letter: a valid refresh request that failed elsewhere
    parked = RefreshRequest.parse(
        '{"type":"refresh","board":"global","reason":"stale","requested_at":"2026-12-01T12:00:00.000Z"}'
    )
    sqs.send_message(QueueUrl=dlq_url, MessageBody=parked.to_json())

    # When the operator runs `dlq stats` with a global flag after the command
    stats = ok(ops_via_export_block(stack, "dlq", "stats", "-v", "--sample", "10"))
    # Then it reports the stack's DLQ (found from the queue's redrive policy or REFRESH_DLQ_URL) and queue
    assert f"DLQ    {dlq_url}" in stats and f"queue  {queue_url}" in stats
    assert re.search(r"visible +1\b", stats), stats

    # When it peeks, Then the message is shown, valid, and stays
    peek = ok(ops_via_export_block(stack, "dlq", "peek", "-n", "5"))
    assert "1 message(s)" in peek and "valid: board=global reason=stale" in peek

    # When it dry-runs a replay, then replays
    dry = ok(ops_via_export_block(stack, "dlq", "replay", "--dry-run"))
    assert "1 would be replayed" in dry
    replay = ok(ops_via_export_block(stack, "dlq", "replay", "--rate", "0"))
    # Then the message is back in the refresh queue and the DLQ is empty
    assert "1 replayed" in replay
    assert eventually(
        lambda: "visible        0" in ok(ops_via_export_block(stack, "dlq", "stats", "--sample", "0"))
    )

    # When it asks for a refresh and waits for it
    refresh = ok(ops_via_export_block(stack, "refresh", "--board", "global", "--wait", "30"))
    # Then the worker made a new snapshot
    version = int(re.search(r"new snapshot: version (\d+)", refresh).group(1))  # type: ignore[union-attr]

    # When it shows the cache
    show = rows(ok(ops_via_export_block(stack, "cache", "show")))
    # Then it sees that snapshot, judged by the stack's fresh window (not the code's 60 s default)
    assert show["board"] == "global" and int(show["version"]) >= version
    assert f"fresh for {FRESH_SECONDS} s" in show["generated_at"]


def test_dev_info_reads_the_same_environment_from_the_info_file(stack: StackProcess) -> None:
    # When the operator names the stack's info file instead of exporting anything
    stats = ok(ops_via_dev_info(stack, "dlq", "stats", "--sample", "0"))
    refresh = ok(ops_via_dev_info(stack, "refresh", "--wait", "30"))
    show = rows(ok(ops_via_dev_info(stack, "cache", "show", "--board", "global")))
    # Then every command reaches the stack's queues and Valkey
    assert f"DLQ    {stack.info['sqs']['dlq_url']}" in stats
    assert "new snapshot: version" in refresh
    assert f"fresh for {FRESH_SECONDS} s" in show["generated_at"]
    # And the info file says which variables those are, with no secret among them
    info = json.loads(stack.info_file.read_text())
    assert {"REFRESH_QUEUE_URL", "REFRESH_DLQ_URL", "AWS_ENDPOINT_URL_SQS", "VALKEY_HOST", "VALKEY_PORT",
            "LEADERBOARD_FRESH_SECONDS"} <= set(info["ops_env"])  # fmt: skip
    assert "VALKEY_PASSWORD" not in info["ops_env"] and "DATABASE_URL" not in info["ops_env"]


def test_boards_publish_makes_a_challenge_created_since_the_last_publication_readable(
    stack: StackProcess,
) -> None:
    # Given the worker published the known boards once
    ok(ops_via_export_block(stack, "boards", "publish", "--wait", "30"))

    # and then a challenge is created (its first result is submitted)
    async def submit() -> None:
        conn = await asyncpg.connect(stack.info["database_url"])
        try:
            await conn.execute(
                "insert into challenge_results (user_id, username, challenge_id, score) "
                "values ($1, $2, $3, $4)",
                uuid.uuid4(), "Newcomer", "brand-new", 42,
            )  # fmt: skip
        finally:
            await conn.close()

    asyncio.run(submit())

    def status(board: str) -> int:
        return stack.get("/leaderboard", board=board).status_code

    # When a reader asks for it: Then it is unknown until the next publication (a 404 at once)
    show = ok(ops_via_export_block(stack, "boards", "show", "--board", "challenge:brand-new"))
    assert "NOT in the set" in show, show
    assert status("challenge:brand-new") == 404
    # When the operator forces a publication
    published = ok(ops_via_export_block(stack, "boards", "publish", "--wait", "30"))
    # Then the worker published a set that holds it, and the board is served
    assert re.search(r"published: \d+ board\(s\)", published), published
    show = ok(ops_via_dev_info(stack, "boards", "show", "--board", "challenge:brand-new"))
    assert "in the set: served" in show, show
    assert eventually(lambda: status("challenge:brand-new") == 200)
