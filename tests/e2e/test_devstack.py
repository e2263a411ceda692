"""`make dev` end to end: the stack as a subprocess, driven over HTTP and with signals.

One stack (small sample, 3-second fresh window, no schedule, 1-second visibility timeout) serves the
read-path tests; the failure and shutdown tests start stacks of their own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import psutil
import pytest

from common.boards import KeySpace
from testkit.engines import free_port, valkey_binary
from tests.e2e.harness import (
    FRESH_SECONDS,
    SMALL_SAMPLE,
    StackProcess,
    clean_env,
    eventually,
    port_open,
    start_stack,
)
from tests.openapi import check_response

pytestmark = pytest.mark.timeout(180)
DB_PASSWORD = "e2e-db-password-7d8e9f"  # a throwaway, for the redaction check


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    running = start_stack(tmp_path_factory.mktemp("stack"), *SMALL_SAMPLE)
    try:
        running.wait_ready()
        yield running
    finally:
        running.kill()


# ---- helpers ------------------------------------------------------------------------------------------


def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def execute(dsn: str, sql: str, *args: Any) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    asyncio.run(go())


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")  # as served


def expected_board(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """The global ranking computed from raw challenge_results rows, independently of the SQL.

    Best score per (user, challenge), reached first at best_at; total = sum of bests; solved = bests > 0;
    last_solved_at = the latest best_at among counted bests; order score desc, last_solved_at asc (none
    last), user_id; competition ranks; the name is the one on the user's latest submission.
    """
    best: dict[tuple[uuid.UUID, str], tuple[int, datetime]] = {}
    names: dict[uuid.UUID, str] = {}
    for row in sorted(rows, key=lambda r: (r["submitted_at"], r["id"])):
        key = (row["user_id"], row["challenge_id"])
        if key not in best or row["score"] > best[key][0]:
            best[key] = (row["score"], row["submitted_at"])
        names[row["user_id"]] = row["username"]
    totals: dict[uuid.UUID, list[Any]] = {}
    for (user, _challenge), (score, at) in best.items():
        total = totals.setdefault(user, [0, 0, None])
        total[0] += score
        if score > 0:
            total[1] += 1
            total[2] = at if total[2] is None else max(total[2], at)
    order = sorted(totals, key=lambda u: (-totals[u][0], totals[u][2] is None, totals[u][2] or 0, u))
    board: list[dict[str, Any]] = []
    for position, user in enumerate(order):
        score, solved, last = totals[user]
        previous = board[-1] if board else None
        tied = previous is not None and (previous["score"], previous["last_solved_at"]) == (score, iso(last))
        rank = previous["rank"] if tied and previous else position + 1
        board.append({"rank": rank, "user_id": str(user), "username": names[user], "score": score,
                      "solved": solved, "last_solved_at": iso(last)})  # fmt: skip
    return board


def generated_ms(body: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(body["generated_at"]).timestamp() * 1000)


def whole_board(stack: StackProcess, not_before_ms: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every entry of one snapshot generated at or after `not_before_ms` (reads until there is one:
    stale reads ask for a refresh), page by page by its `next` links."""

    def snapshot() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        first = stack.get(count=100)
        if first.status_code != 200 or generated_ms(first.json()) < not_before_ms:
            return None
        body = first.json()
        entries = list(body["entries"])
        link = body["next"]
        while link:
            page = stack.client.get(link).json()
            if page["version"] != body["version"]:
                return None  # a newer snapshot arrived meanwhile: start over
            entries += page["entries"]
            link = page["next"]
        return body, entries

    found: tuple[dict[str, Any], list[dict[str, Any]]] = eventually(snapshot, timeout=30, interval=0.5)
    return found


def as_event(response: httpx.Response) -> dict[str, Any]:
    """The response in API Gateway's shape, for tests/openapi.py."""
    names = {"content-type": "Content-Type", "etag": "ETag", "cache-control": "Cache-Control",
             "x-snapshot-age": "X-Snapshot-Age",
             "x-cache": "X-Cache", "retry-after": "Retry-After"}  # fmt: skip
    headers = {names.get(k, k): v for k, v in response.headers.items()}
    return {"statusCode": response.status_code, "headers": headers, "body": response.text}


def wait_until_stale(stack: StackProcess, **params: str | int) -> None:
    """Sleep until the snapshot served for these parameters is past the fresh window."""
    body = stack.get(**params).json()
    age = time.time() - generated_ms(body) / 1000
    time.sleep(max(0.0, FRESH_SECONDS - age + 0.3))


def sqs_client(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


# ---- the read path ------------------------------------------------------------------------------------


def test_cold_start_waits_for_the_worker_then_serves_data(stack: StackProcess) -> None:
    # Given a board nobody has read yet (a cold cache and, first in this module, cold containers)
    challenge = stack.info["example"]["challenge"]
    # When a client reads it
    first = stack.get(board=f"challenge:{challenge}", count=5)
    # Then it gets the data once the worker has filled the cache (MISS), or a clean 503 warming_up
    # that the next read turns into data
    if first.status_code == 503:
        assert first.json()["error"]["code"] == "warming_up"
        assert first.headers["retry-after"]
        check_response("/leaderboard", as_event(first))
        first = eventually(
            lambda: (r := stack.get(board=f"challenge:{challenge}", count=5)).status_code == 200 and r
        )
    else:
        assert first.headers["x-cache"] == "MISS"
    assert first.status_code == 200
    body = first.json()
    assert body["board"] == f"challenge:{challenge}"
    assert len(body["entries"]) == 5
    assert [e["rank"] for e in body["entries"]] == sorted(e["rank"] for e in body["entries"])
    check_response("/leaderboard", as_event(first))
    # And the response went through API Gateway's shape: its request id comes back as a header
    assert first.headers["apigw-requestid"]


def test_the_ranking_equals_one_computed_from_the_raw_rows(stack: StackProcess) -> None:
    # Given the raw results as they are in PostgreSQL now
    read_at_ms = int(time.time() * 1000)
    rows = fetch(stack.info["database_url"], "select * from public.challenge_results")
    expected = expected_board(rows)
    assert len(rows) == 2500 and len(expected) > 100
    # When the whole board is read over HTTP from a snapshot made after that
    body, entries = whole_board(stack, read_at_ms)
    # Then it is exactly the independently computed ranking, ties and zero scores included
    assert body["total"] == len(expected)
    assert entries == expected
    assert any(a["rank"] == b["rank"] for a, b in itertools.pairwise(entries)), "no tie seen"
    assert entries[-1]["score"] == 0 and entries[-1]["last_solved_at"] is None
    assert any(not e["username"].isascii() for e in entries)


def test_a_users_rank_with_neighbours(stack: StackProcess) -> None:
    # Given a real seeded player
    user = stack.info["example"]["user_id"]
    # When a client asks for their rank with two neighbours on each side
    response = eventually(
        lambda: (r := stack.get(f"/leaderboard/users/{user}", around=2)).status_code == 200 and r
    )
    # Then the player is in the middle of a five-entry window
    body = response.json()
    assert body["user"]["user_id"] == user
    assert [e["user_id"] for e in body["entries"]][2] == user
    assert len(body["entries"]) == 5
    check_response("/leaderboard/users/{user_id}", as_event(response))


def test_head_has_the_headers_and_no_body(stack: StackProcess) -> None:
    # Given a warm board
    eventually(lambda: stack.get().status_code == 200)
    # When a client sends HEAD
    response = stack.client.head("/leaderboard")
    # Then the status and caching headers are those of GET, and there is no body
    assert response.status_code == 200
    assert response.headers["etag"] and response.headers["x-cache"] in ("HIT", "STALE")
    assert response.content == b""


def test_new_results_make_the_board_stale_and_one_refresh_brings_them(stack: StackProcess) -> None:
    dsn = stack.info["database_url"]
    # Given a warm board
    warm = eventually(lambda: (r := stack.get(count=3)).status_code == 200 and r).json()
    # And a newcomer who beats everyone, inserted straight into PostgreSQL
    newcomer = uuid.uuid4()
    challenges = [r["challenge_id"] for r in fetch(dsn, "select distinct challenge_id from challenge_best")]
    execute(
        dsn,
        "insert into challenge_results (user_id, username, challenge_id, score) "
        "select $1, 'Ñewcomer 🚀', c, 100000 from unnest($2::text[]) as c",
        newcomer,
        challenges,
    )
    # And the fresh window has passed
    wait_until_stale(stack, count=3)
    mark = stack.mark()
    # When a client reads the board
    stale = stack.get(count=3)
    # Then it gets the old snapshot at once, marked STALE
    assert stale.status_code == 200
    assert stale.headers["x-cache"] == "STALE"
    assert stale.json()["version"] >= warm["version"]
    assert str(newcomer) not in stale.text
    old_version = stale.json()["version"]
    # And concurrent readers meanwhile get answers too (stale or already new)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: httpx.get(f"{stack.url}/leaderboard").status_code, range(6)))
    assert statuses == [200] * 6
    # And soon the board has the newcomer first, in a snapshot with a higher version
    fresh = eventually(lambda: (b := stack.get(count=3).json())["version"] > old_version and b)
    assert fresh["entries"][0]["user_id"] == str(newcomer)
    assert fresh["entries"][0]["username"] == "Ñewcomer 🚀"
    assert fresh["entries"][0]["score"] == 100000 * len(challenges)
    # And that took exactly one refresh request and one refresh
    stack.wait_log("refresh_done", since=mark, process="worker", board="global")
    time.sleep(1)
    requested = stack.logs("refresh_requested", since=mark, board="global")
    assert [(r["reason"], r["process"].startswith("api-")) for r in requested] == [("stale", True)]
    assert len(stack.logs("refresh_done", since=mark, board="global")) == 1


def test_a_failing_source_keeps_serving_stale_and_dead_letters_the_request(
    stack: StackProcess, tmp_path: Path
) -> None:
    # Given the first stack's global board is warm
    warm = eventually(lambda: (r := stack.get()).status_code == 200 and r).json()
    # And a second stack on the same Valkey whose worker's database refuses connections
    closed = free_port()
    valkey = stack.info["valkey"]
    env = clean_env(
        VALKEY_HOST=valkey["host"],
        VALKEY_PORT=str(valkey["port"]),
        DATABASE_URL=f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{closed}/postgres",
        SOURCE_RETRY_ATTEMPTS="2",
        SOURCE_RETRY_BASE_MS="10",
        SOURCE_TIMEOUT_MS="1000",
    )
    broken = start_stack(tmp_path, "--api-workers", "1", env=env)
    try:
        info = broken.wait_ready()
        assert info["database_url"] == f"postgresql://postgres:***@127.0.0.1:{closed}/postgres"
        assert info["postgres_pid"] is None
        wait_until_stale(broken)
        # When clients keep reading through it while its worker fails
        dlq = sqs_client(info["sqs"]["endpoint"])
        dead: list[dict[str, Any]] = []
        deadline = time.monotonic() + 40
        while not dead and time.monotonic() < deadline:
            response = broken.get()
            # Then every read is still a 200 with the last good snapshot, marked STALE
            assert response.status_code == 200
            assert response.headers["x-cache"] == "STALE"
            assert response.json()["version"] == warm["version"]
            dead = dlq.receive_message(QueueUrl=info["sqs"]["dlq_url"], WaitTimeSeconds=1).get("Messages", [])
        # And the refresh request ended in the DLQ after maxReceiveCount (5) failed receives
        assert len(dead) == 1
        request = json.loads(dead[0]["Body"])
        assert (request["type"], request["board"], request["reason"]) == ("refresh", "global", "stale")
        failures = broken.logs("refresh_failed", process="worker", board="global")
        assert len(failures) == 5
        assert {f["error_type"] for f in failures} == {"SourceUnavailable"}
    finally:
        broken.kill()
        # And the database password appeared in no line of the stack's (ready line included)
        assert broken.logs("ready", process="devstack")
        assert not [line for line in broken.lines if DB_PASSWORD in json.dumps(line)]
        assert DB_PASSWORD not in broken.stderr
        # The broken stack's API left its "refresh requested" marker on the shared board: clear it.
        marker = KeySpace("active_leaderboard")("global").refresh_marker
        import subprocess

        subprocess.run([str(valkey_binary("valkey-cli")), "-p", str(valkey["port"]), "DEL", marker],
                       check=True, capture_output=True, timeout=10)  # fmt: skip


# ---- starting and stopping -----------------------------------------------------------------------------


def test_sigint_stops_everything_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # Given a running stack that has served a request
    stack = start_stack(tmp_path, "--api-workers", "2", *SMALL_SAMPLE)
    try:
        info = stack.wait_ready()
        assert eventually(lambda: stack.get().status_code == 200)
        children = psutil.Process(stack.pid).children(recursive=True)
        pids = [*info["api_pids"], info["worker_pid"], info["valkey"]["pid"], info["postgres_pid"]]
        assert {info["worker_pid"], *info["api_pids"]} <= {c.pid for c in children}
        ports = [stack.port, info["valkey"]["port"], int(info["sqs"]["endpoint"].rsplit(":", 1)[1])]
        assert all(port_open(port) for port in ports)
        # When it gets SIGINT (Ctrl-C)
        code, seconds = stack.stop(signal.SIGINT)
    finally:
        stack.kill()
    # Then it exits 0 within a few seconds
    assert code == 0, stack.stderr
    assert seconds < 10
    # And no process, port, info file or temporary data is left behind
    gone = [pid for pid in pids if not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"]
    assert gone == pids
    assert not any(port_open(port) for port in ports)
    assert not stack.info_file.exists()
    assert not Path(info["data_dir"]).exists()
    assert stack.logs("stopped", process="devstack")


def test_kept_data_is_reused_without_seeding_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--keep-data", "--data-dir", str(data), "--api-workers", "1", "--users", "40", "--results", "300")
    # Given a stack that seeded and kept its data, then stopped
    first = start_stack(tmp_path, *args)
    try:
        assert first.wait_ready()["seeded"]["results"] == 300
        total = eventually(lambda: (r := first.get()).status_code == 200 and r).json()["total"]
        assert first.stop(signal.SIGTERM)[0] == 0
    finally:
        first.kill()
    assert (data / "pg" / "pgdata").is_dir()
    # When it starts again on the same directory
    second = start_stack(tmp_path, *args)
    try:
        info = second.wait_ready()
        # Then it does not seed again, and serves the same board
        assert info["seeded"] is None
        assert second.logs("seed_skipped")
        assert eventually(lambda: (r := second.get()).status_code == 200 and r).json()["total"] == total
        assert fetch(info["database_url"], "select count(*) as n from challenge_results")[0]["n"] == 300
    finally:
        second.kill()


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    # Given something already listening on the port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # When the stack is asked to serve there
        stack = StackProcess(["--port", str(port), "--log-format", "json"], clean_env(), tmp_path / "i", port)
        code = stack.wait_exit(60)
    # Then it fails at once with one line saying what and how to fix it
    assert code == 1
    assert stack.stderr.strip().splitlines() == [
        f"devstack: error: port {port} is already in use: stop what listens there, or choose another port "
        "with --port or PORT=…"
    ]


def test_bad_flags_and_configuration_are_one_line_errors(tmp_path: Path) -> None:
    # When the stack is started with a bad flag, then with an invalid function configuration
    bad_flag = StackProcess(["--api-workers", "0"], clean_env(), tmp_path / "a", 0)
    bad_env = StackProcess(
        ["--port", str(free_port())], clean_env(LEADERBOARD_BOARDS="bad board!"), tmp_path / "b", 0
    )
    # Then each exits non-zero with one line naming the problem
    assert bad_flag.wait_exit(60) == 2
    assert bad_flag.stderr.strip().splitlines() == [
        "devstack: error: argument --api-workers: 0 is not between 1 and 32 (see python -m devstack --help)"
    ]
    assert bad_env.wait_exit(60) == 1
    (line,) = bad_env.stderr.strip().splitlines()
    assert line.startswith("devstack: error: invalid configuration: LEADERBOARD_BOARDS")


def test_a_failed_migration_is_a_one_line_error_and_stops_what_started(
    stack: StackProcess, tmp_path: Path
) -> None:
    # Given a database where the migration cannot create anything (a role without CREATE on public)
    dsn = stack.info["database_url"]
    execute(dsn, "drop database if exists e2e_nocreate")
    execute(dsn, "create database e2e_nocreate")
    execute(dsn, "drop role if exists e2e_nocreate; create role e2e_nocreate login")
    socket_dir = dsn.split("host=", 1)[1]
    target = f"postgresql://e2e_nocreate@/e2e_nocreate?host={socket_dir}"
    valkey_port, sqs_port = free_port(), free_port()
    # When the stack is asked to migrate it (with the embedded Valkey and SQS started first)
    env = clean_env(DATABASE_URL=target)
    args = ["--port", str(free_port()), "--migrate", "--log-format", "json"]
    args += ["--valkey-port", str(valkey_port), "--sqs-port", str(sqs_port)]
    failing = StackProcess(args, env, tmp_path / "i", 0)
    code = failing.wait_exit(60)
    # Then it exits 1 with one line naming the migration and PostgreSQL's reason
    assert code == 1
    (line,) = failing.stderr.strip().splitlines()
    assert line.startswith(
        "devstack: error: migration 20261129000000_leaderboard.sql failed on DATABASE_URL: 42501"
    )
    # And the engines it had started are stopped again
    assert not port_open(valkey_port) and not port_open(sqs_port)
