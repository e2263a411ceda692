"""The refresh worker on real Valkey (standalone and cluster), real PostgreSQL and moto SQS.

Faults are injected by wrapping the real source or store (they delay or fail calls, then delegate);
nothing here mocks Valkey or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from common.boards import KeySpace
from common.cache import LeaderboardCache, SnapshotHeader, Swap
from common.config import WorkerSettings
from common.errors import CacheUnavailable, SourceError, SourceUnavailable
from common.lock import RefreshLock
from common.messages import RefreshRequest
from common.metrics import Metrics
from common.models import Entry
from common.runtime import run
from common.sources import ChangePage, Cursor, Source, SourcePage, create_source
from common.sources.supabase import SupabaseSource
from common.valkey import ValkeyConnection
from refresh_worker.app import WorkerApp
from refresh_worker.redelivery import Redelivery
from testkit.engines import PostgresEngine, Queues, SqsEngine
from testkit.event_source import SqsEventSource
from testkit.postgrest import PostgrestEmulator
from tests.fakes import FakeDelayedSender
from tests.harness import CacheTools, ValkeyTarget
from tests.support import FakeContext, log_lines, make_entries, sqs_event

T0 = datetime(2026, 11, 1, tzinfo=UTC)
Action = Callable[[], Awaitable[None]]


class FaultySource:
    """Delegates to a real source; counts calls per board (pages in `calls`, change-feed calls in
    `feed_calls`) and runs scripted actions before some (`actions` before pages, `feed_actions` before
    feed calls)."""

    def __init__(
        self, inner: Source, actions: Sequence[Action | None] = (), feed_actions: Sequence[Action | None] = ()
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.has_feed = inner.has_feed
        self.actions = list(actions)
        self.feed_actions = list(feed_actions)
        self.calls: dict[str, int] = {}
        self.feed_calls: dict[str, int] = {}

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        self.calls[board] = self.calls.get(board, 0) + 1
        action = self.actions.pop(0) if self.actions else None
        if action is not None:
            await action()
        return await self.inner.fetch_page(board, limit, after)

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        self.feed_calls[board] = self.feed_calls.get(board, 0) + 1
        action = self.feed_actions.pop(0) if self.feed_actions else None
        if action is not None:
            await action()
        return await self.inner.fetch_changes(board, after, limit, with_total=with_total)

    async def close(self) -> None:
        await self.inner.close()


def fail(error: Exception) -> Action:
    async def act() -> None:
        raise error

    return act


def stall(seconds: float) -> Action:
    async def act() -> None:
        await asyncio.sleep(seconds)

    return act


def slow_fail(seconds: float) -> Action:
    async def act() -> None:
        await asyncio.sleep(seconds)
        raise SourceUnavailable("timed out")

    return act


def request(board: str = "global", reason: str = "stale", at: datetime | None = None) -> str:
    return RefreshRequest(board, reason, at or datetime.now(UTC)).to_json()


def seed(postgres: PostgresEngine, players: int, *, challenge: str = "a", base: int = 0) -> None:
    """`players` players with distinct totals on one challenge (player 1 first)."""

    async def go() -> None:
        conn = await asyncpg.connect(postgres.uri)
        try:
            rows = [
                (
                    uuid.UUID(int=base + i),
                    f"player-{base + i}",
                    challenge,
                    100_000 - i,
                    T0 + timedelta(seconds=i),
                )
                for i in range(1, players + 1)
            ]
            await conn.copy_records_to_table(
                "challenge_results",
                records=rows,
                columns=["user_id", "username", "challenge_id", "score", "submitted_at"],
            )
        finally:
            await conn.close()

    run(go())


@pytest.fixture
def clean_db(postgres: PostgresEngine) -> PostgresEngine:
    postgres.psql("truncate challenge_results, challenge_best, leaderboard_totals restart identity;")
    return postgres


class WorkerHarness:
    def __init__(self, target: ValkeyTarget, prefix: str, dsn: str, built: list[WorkerApp]) -> None:
        self.target = target
        self.prefix = prefix
        self.dsn = dsn
        self.built = built

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **self.target.env(),
            "LEADERBOARD_KEY": self.prefix,
            "DATABASE_URL": self.dsn,
            "SOURCE_RETRY_BASE_MS": "10",
            "SOURCE_RETRY_MAX_MS": "50",
            **extra,
        }

    def app(
        self,
        actions: Sequence[Action | None] = (),
        *,
        feed_actions: Sequence[Action | None] = (),
        source: Source | None = None,
        store: Callable[[LeaderboardCache], Any] | None = None,
        **extra: str,
    ) -> tuple[WorkerApp, FaultySource]:
        settings = WorkerSettings.from_env(self.env(**extra))
        connection = ValkeyConnection(settings.valkey)
        keys = KeySpace(settings.boards.key)
        cache = LeaderboardCache(connection, keys)
        faulty = FaultySource(source or create_source(settings.source), actions, feed_actions)
        app = WorkerApp(settings, connection, cache, RefreshLock(connection, keys), faulty,
                        Metrics(settings.metrics_namespace, settings.service))  # fmt: skip
        if store is not None:
            app.refresher._cache = store(cache)
        self.built.append(app)
        return app, faulty


@pytest.fixture
def workers(
    valkey_engine: ValkeyTarget, key_prefix: str, clean_db: PostgresEngine
) -> Iterator[WorkerHarness]:
    built: list[WorkerApp] = []
    yield WorkerHarness(valkey_engine, key_prefix, clean_db.uri, built)
    for app in built:
        run(app.close())


def test_happy_path_refreshes_the_board_from_postgres(
    workers: WorkerHarness,
    cache_tools: CacheTools,
    clean_db: PostgresEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given 30 players in the database and an empty cache
    seed(clean_db, 30)
    app, source = workers.app(LEADERBOARD_SIZE="25", SOURCE_PAGE_SIZE="10")
    # When the worker handles one refresh request
    result = app.invoke(sqs_event(request()), FakeContext(), True)
    # Then nothing failed and the snapshot holds the top 25 in order, with the total of 30
    assert result == {"batchItemFailures": []}
    header = run(cache_tools.cache.read_header("global"))
    assert header is not None
    assert (header.size, header.total, header.source) == (25, 30, "postgres")
    page = run(cache_tools.cache.read_page("global", 0, 100))
    assert page is not None
    users = [json.loads(e)["user_id"] for e in page.entries]
    assert users == [str(uuid.UUID(int=i)) for i in range(1, 26)]
    assert source.calls == {"global": 3}  # pages of 10, 10 and 5
    assert source.feed_calls == {"global": 2}  # the feed's head first, the catch-up after the pages
    # and one structured line tells what happened
    done = [line for line in log_lines(capsys.readouterr().out) if line["message"] == "refresh_done"]
    assert len(done) == 1
    for field in ("board", "reason", "version", "entries", "source_ms", "write_ms", "attempts", "mode"):
        assert field in done[0], field
    assert done[0]["entries"] == 25 and done[0]["attempts"] == 5 and done[0]["rows_read"] == 25
    assert (done[0]["mode"], done[0]["rebuild_reason"]) == ("rebuild", "no_snapshot")


def test_messages_for_the_same_board_are_coalesced(workers: WorkerHarness, clean_db: PostgresEngine) -> None:
    seed(clean_db, 5, challenge="a")
    app, source = workers.app()
    event = sqs_event(request(), request(reason="miss"), request(reason="schedule"), request("challenge:a"),
                      request("challenge:a"))  # fmt: skip
    assert app.invoke(event, FakeContext(), True) == {"batchItemFailures": []}
    assert source.calls == {"global": 1, "challenge:a": 1}


def test_the_schedule_message_refreshes_every_scheduled_board(
    workers: WorkerHarness, clean_db: PostgresEngine
) -> None:
    seed(clean_db, 5, challenge="a")
    app, source = workers.app(LEADERBOARD_SCHEDULED_BOARDS="global,challenge:a")
    assert app.invoke(sqs_event(request("*", "schedule")), FakeContext(), True) == {"batchItemFailures": []}
    assert source.calls == {"global": 1, "challenge:a": 1}


def test_a_request_older_than_the_snapshot_is_acknowledged_without_fetching(
    workers: WorkerHarness, cache_tools: CacheTools
) -> None:
    cache_tools.write(make_entries(3))  # generated now
    app, source = workers.app()
    old = request(at=datetime.now(UTC) - timedelta(minutes=1))
    assert app.invoke(sqs_event(old), FakeContext(), True) == {"batchItemFailures": []}
    assert source.calls == {}


def test_two_workers_one_fetch(workers: WorkerHarness, clean_db: PostgresEngine) -> None:
    # Given two workers that receive a refresh for the same board at the same moment
    seed(clean_db, 10)
    slow, slow_source = workers.app([stall(0.5)])
    fast, fast_source = workers.app()
    sender = FakeDelayedSender()
    fast.redelivery = Redelivery(sender, 3)
    body = request()

    async def both() -> list[list[str]]:
        first = asyncio.ensure_future(slow.process(sqs_event(request())["Records"], lambda: 60_000))
        await asyncio.sleep(0.1)  # the slow one holds the lock now
        second = asyncio.ensure_future(fast.process(sqs_event(body)["Records"], lambda: 60_000))
        return list(await asyncio.gather(first, second))

    # Then the one that finds the lock taken re-sends its message with a short delay (the holder may
    # die) and acknowledges the original, and only one fetch happens
    assert run(both()) == [[], []]
    assert sender.sent == [(body, 3, {"LockedRetries": "1"})]
    assert slow_source.calls == {"global": 1}
    assert fast_source.calls == {}


def test_a_locked_request_without_a_queue_to_resend_to_is_reported_failed(
    workers: WorkerHarness, clean_db: PostgresEngine, cache_tools: CacheTools
) -> None:
    # Given a board whose lock another worker holds, and a worker with no REFRESH_QUEUE_URL
    seed(clean_db, 3)
    assert run(cache_tools.lock.acquire("global", 5_000)) is not None
    app, source = workers.app()
    event = sqs_event(request())
    # Then the request is not acknowledged: it comes back after the visibility timeout
    assert app.invoke(event, FakeContext(), True) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]
    }
    assert source.calls == {}


class FrozenRenewals:
    """The real lock, whose renewals never get through (a frozen container sends nothing): the lease
    lapses after its TTL although the worker still believes it holds it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def renew(self, *_: Any) -> bool:
        await asyncio.Event().wait()  # never returns; cancelled with the heartbeat
        return True


class SlowStore:
    """Delegates to the real cache, but stalls before swapping a snapshot in (a GC pause, a frozen
    container): long enough for this worker's lock to expire."""

    def __init__(self, inner: LeaderboardCache, stall_seconds: float) -> None:
        self.inner = inner
        self.stall_seconds = stall_seconds
        self.results: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def commit(self, header: SnapshotHeader, swap: Swap) -> bool:
        await asyncio.sleep(self.stall_seconds)
        result = await self.inner.commit(header, swap)
        self.results.append(result)
        return result


def test_a_worker_whose_lock_expired_cannot_overwrite_a_newer_snapshot(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    # Given worker A that stalls 1.5 s before writing, with a 1 s lock
    seed(clean_db, 10)
    stores: list[SlowStore] = []

    def slow(cache: LeaderboardCache) -> SlowStore:
        stores.append(SlowStore(cache, 1.5))
        return stores[-1]

    a, _ = workers.app(store=slow, REFRESH_LOCK_TTL_MS="1000", REFRESH_MIN_REMAINING_MS="0")
    a.refresher._lock = FrozenRenewals(a.refresher._lock)
    b, _ = workers.app(REFRESH_LOCK_TTL_MS="1000", REFRESH_MIN_REMAINING_MS="0")

    async def race() -> list[list[str]]:
        first = asyncio.ensure_future(a.process(sqs_event(request())["Records"], lambda: 60_000))
        await asyncio.sleep(1.2)  # A's lock has expired; B takes a new one with a higher version
        second = asyncio.ensure_future(b.process(sqs_event(request())["Records"], lambda: 60_000))
        return list(await asyncio.gather(first, second))

    # When both finish (B first, then A's late write)
    assert run(race()) == [[], []]
    # Then A's write was refused and the stored snapshot is B's
    assert stores[0].results == [False]
    header = run(cache_tools.cache.read_header("global"))
    assert header is not None
    lock_versions = int(cache_tools.command("GET", cache_tools.keys("global").version))
    assert header.version == lock_versions  # the newest version taken is the one stored


def test_transient_failures_are_retried_within_the_deadline(
    workers: WorkerHarness, clean_db: PostgresEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(clean_db, 5)
    app, source = workers.app([fail(SourceUnavailable("503")), fail(SourceUnavailable("timeout"))])
    assert app.invoke(sqs_event(request()), FakeContext(), True) == {"batchItemFailures": []}
    assert source.calls == {"global": 3}
    lines = log_lines(capsys.readouterr().out)
    assert [line["attempt"] for line in lines if line["message"] == "source_attempt_failed"] == [1, 2]
    # three attempts at the first page, plus the feed's head and the catch-up
    assert [line["attempts"] for line in lines if line["message"] == "refresh_done"] == [5]


def test_retries_stop_at_the_attempt_limit_and_the_message_fails(workers: WorkerHarness) -> None:
    app, source = workers.app([fail(SourceUnavailable("down"))] * 10, SOURCE_RETRY_ATTEMPTS="3")
    event = sqs_event(request())
    result = app.invoke(event, FakeContext(), True)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert source.calls == {"global": 3}


def test_retries_stop_before_the_lock_deadline(workers: WorkerHarness) -> None:
    # Every attempt fails after 0.4 s; with a 2 s budget, fetching must give up at the fetch deadline
    # (budget minus the write reserve = 1 s), cutting the attempt in flight
    app, source = workers.app([slow_fail(0.4)] * 50, REFRESH_DEADLINE_MS="2000", SOURCE_RETRY_ATTEMPTS="50",
                              SOURCE_TIMEOUT_MS="100", REFRESH_MIN_REMAINING_MS="0")  # fmt: skip
    started = time.monotonic()
    result = app.invoke(sqs_event(request()), FakeContext(), True)
    assert len(result["batchItemFailures"]) == 1
    assert time.monotonic() - started < 2.0
    assert source.calls["global"] == 3


def test_a_permanent_failure_is_not_retried(workers: WorkerHarness) -> None:
    app, source = workers.app([fail(SourceError("HTTP 401 JWT expired"))])
    result = app.invoke(sqs_event(request()), FakeContext(), True)
    assert len(result["batchItemFailures"]) == 1
    assert source.calls == {"global": 1}


def test_too_little_time_left_means_no_refresh_is_started(workers: WorkerHarness) -> None:
    app, source = workers.app()
    result = app.invoke(sqs_event(request()), FakeContext(remaining_ms=3_000), True)
    assert len(result["batchItemFailures"]) == 1
    assert source.calls == {}


def test_poison_messages_fail_alone(
    workers: WorkerHarness, clean_db: PostgresEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch with the plain-text sample message, an unknown board and a valid request
    seed(clean_db, 3)
    app, source = workers.app(LEADERBOARD_BOARDS="global")
    event = sqs_event("Hello from SQS!", request("challenge:not-served"), request(), '{"type": "refresh"}')
    ids = [r["messageId"] for r in event["Records"]]
    # When the worker handles it
    result = app.invoke(event, FakeContext(), True)
    # Then only the poison ones are reported, and the valid one was processed in the same batch
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        [ids[0], ids[1], ids[3]]
    )
    assert source.calls == {"global": 1}
    reasons = {line["message_id"]: line["reason"] for line in log_lines(capsys.readouterr().out)
               if line["message"] == "message_rejected"}  # fmt: skip
    assert reasons[ids[0]] == "body is not JSON"
    assert "not served" in reasons[ids[1]]
    assert "board" in reasons[ids[3]]


def test_an_unknown_challenge_is_remembered_as_absent(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    seed(clean_db, 3, challenge="a")
    app, _ = workers.app()
    assert app.invoke(sqs_event(request("challenge:nope")), FakeContext(), True) == {"batchItemFailures": []}
    keys = cache_tools.keys("challenge:nope")
    assert cache_tools.exists(keys.absent)
    # and everything it leaves behind expires: no snapshot, no version counter, a TTL on the marker
    assert not cache_tools.exists(keys.snapshot)
    assert not cache_tools.exists(keys.version)
    assert int(cache_tools.command("PTTL", keys.absent)) > 0
    assert cache_tools.command("KEYS", keys.tag + "*") == [keys.absent.encode()]


def rpc_calls(emulator: PostgrestEmulator) -> dict[str, int]:
    calls: dict[str, int] = {}
    for sent in emulator.requests:
        name = sent.url.path.rpartition("/")[2]
        calls[name] = calls.get(name, 0) + 1
    return calls


def test_the_supabase_source_end_to_end(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    seed(clean_db, 12)

    async def key() -> str:
        return "service-role-key"

    emulator = PostgrestEmulator(clean_db.uri)
    supabase = SupabaseSource("https://project.supabase.co", key, transport=emulator.transport())
    app, _ = workers.app(source=supabase, SOURCE_PAGE_SIZE="5")
    assert app.invoke(sqs_event(request()), FakeContext(), True) == {"batchItemFailures": []}
    page = run(cache_tools.cache.read_page("global", 0, 20))
    assert page is not None and len(page.entries) == 12
    # through PostgREST a short page is not the end (max rows may have cut it): 5, 5, 2, then an empty
    # page; and the feed's head before, the catch-up after
    assert rpc_calls(emulator) == {"leaderboard_page": 4, "leaderboard_changes": 2}


def test_pages_shorter_than_asked_for_do_not_end_the_board(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    # Given Supabase's max-rows of 4 while the worker asks for pages of 10
    seed(clean_db, 23)

    async def key() -> str:
        return "service-role-key"

    emulator = PostgrestEmulator(clean_db.uri, max_rows=4)
    supabase = SupabaseSource("https://project.supabase.co", key, transport=emulator.transport())
    app, _ = workers.app(source=supabase, SOURCE_PAGE_SIZE="10", LEADERBOARD_SIZE="0")
    # When it refreshes the whole board
    assert app.invoke(sqs_event(request()), FakeContext(), True) == {"batchItemFailures": []}
    # Then it kept paging until it had every player, not stopping at the first short page
    header = run(cache_tools.cache.read_header("global"))
    assert header is not None
    assert (header.size, header.total) == (23, 23)
    assert rpc_calls(emulator)["leaderboard_page"] == 7  # 4+4+4+4+4+3, and the empty page that ends it


def test_a_failing_message_reaches_the_dlq_after_max_receive_count(
    workers: WorkerHarness, sqs: SqsEngine, queues: Queues
) -> None:
    # Given a source that always fails, and the queue's redrive policy (maxReceiveCount 5, visibility 1 s)
    app, source = workers.app([fail(SourceError("down"))] * 100)
    client = sqs.client()
    client.send_message(QueueUrl=queues.queue_url, MessageBody=request())

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.invoke(event, FakeContext(), False)

    poller = SqsEventSource(client, queues.queue_url, queues.queue_arn, handler, wait_seconds=1)
    # When Lambda's event source keeps delivering it
    deadline = time.monotonic() + 30
    in_dlq: list[Any] = []
    while time.monotonic() < deadline and not in_dlq:
        poller.poll_once()
        in_dlq = client.receive_message(QueueUrl=queues.dlq_url, WaitTimeSeconds=0).get("Messages", [])
    # Then after 5 failed receives it is in the DLQ, intact
    assert len(in_dlq) == 1
    assert RefreshRequest.parse(in_dlq[0]["Body"]).board == "global"
    assert source.calls == {"global": 5}


def test_readers_during_rewrites_never_see_a_mix(cache_tools: CacheTools) -> None:
    # Given snapshots whose every entry carries its snapshot's version (in the username)
    def snapshot(version_tag: int, size: int) -> list[Entry]:
        return [e._replace(username=f"v{version_tag}") for e in make_entries(size)]

    cache = cache_tools.cache
    seen: list[int] = []

    async def writer() -> None:
        for tag in range(1, 16):
            lease = await cache_tools.lock.acquire("global", 10_000)
            assert lease is not None
            header = SnapshotHeader("global", lease.version, int(time.time() * 1000), 900, 900, str(tag))
            await cache.write_snapshot(header, snapshot(tag, 900), staging_ttl_ms=10_000, chunk=100)
            await cache_tools.lock.release(lease)

    async def reader(offset: int) -> None:
        for _ in range(150):
            page = await cache.read_page("global", offset, 50)
            if page is None:
                await asyncio.sleep(0)
                continue
            tags = {json.loads(e)["username"] for e in page.entries}
            # Then every page comes whole from the snapshot its header names
            assert tags == {f"v{page.header.source}"}, (tags, page.header)
            seen.append(page.header.version)
            window = await cache.read_user("global", str(uuid.UUID(int=500)), 5)
            assert window is not None and window.position == 499
            assert {json.loads(e)["username"] for e in window.entries} == {f"v{window.header.source}"}

    async def scenario() -> None:
        await asyncio.gather(writer(), reader(0), reader(400), reader(850))

    run(scenario())
    assert len(set(seen)) > 3  # the readers really did run across several rewrites


def test_size_zero_keeps_every_ranked_player(
    workers: WorkerHarness, cache_tools: CacheTools, clean_db: PostgresEngine
) -> None:
    # Given 2,500 players and LEADERBOARD_SIZE=0 (keep everyone, so everyone can find their rank)
    seed(clean_db, 2500)
    app, source = workers.app(LEADERBOARD_SIZE="0", SOURCE_PAGE_SIZE="1000")
    assert app.invoke(sqs_event(request()), FakeContext(), True) == {"batchItemFailures": []}
    header = run(cache_tools.cache.read_header("global"))
    assert header is not None
    assert (header.size, header.total) == (2500, 2500)
    assert source.calls == {"global": 3}
    # Then the last player finds their rank too
    window = run(cache_tools.cache.read_user("global", str(uuid.UUID(int=2500)), 0))
    assert window is not None
    assert window.position == 2499


def test_a_snapshot_whose_positions_were_evicted_is_not_swapped_in(cache_tools: CacheTools) -> None:
    # Given a staged list whose positions hash is gone (a volatile-lru policy may evict staged keys)
    old_version = cache_tools.write(make_entries(5))
    cache = cache_tools.cache

    async def scenario() -> bool:
        lease = await cache_tools.lock.acquire("global", 10_000)
        assert lease is not None
        header = SnapshotHeader("global", lease.version, int(time.time() * 1000), 7, 7, "test")
        keys = cache.keys("global")
        _, staging_positions = keys.staging(lease.version)
        client = await cache_tools.connection.client()
        original = client.invoke_script

        async def evicting(script: Any, keys: list[str] | None = None, args: list[str] | None = None) -> Any:
            if keys and keys[0] == cache.keys("global").snapshot:  # the commit: evict the hash first
                await client.delete([staging_positions])
            return await original(script, keys=keys, args=args)

        client.invoke_script = evicting
        try:
            return await cache.write_snapshot(header, make_entries(7), staging_ttl_ms=10_000)
        finally:
            del client.invoke_script
            await cache_tools.lock.release(lease)

    # When the worker tries to swap it in, Then the swap is refused and the old snapshot stays whole
    with pytest.raises(CacheUnavailable, match="gone at the swap"):
        run(scenario())
    header = run(cache.read_header("global"))
    assert header is not None and header.version == old_version
    window = run(cache.read_user("global", make_entries(5)[2].user_id, 0))
    assert window is not None and window.position == 2
