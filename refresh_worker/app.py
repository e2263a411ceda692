"""The worker's container (settings, clients, refresher) and the SQS batch: parse every record, coalesce
requests per board, refresh each board once, and report the records that failed.

A past week or month stops changing once it has ended (common.periods): a request for it asks only for
a snapshot generated after its end plus a grace, so once such a *final* snapshot exists every later
request is already satisfied (the refresher skips it) and the closed period is refreshed at most once
after it closes. Manual requests (`leaderboard-ops cache refresh`) always refresh.

Lambda's SQS event source deletes the records not listed in `batchItemFailures`
(ReportBatchItemFailures); listed ones reappear after the visibility timeout, and after maxReceiveCount
receives SQS moves them to the DLQ. A poison record is reported as a failure with its reason logged; it
never stops the valid records of the same batch. A record whose board was locked is re-sent with a short
delay and then acknowledged (`refresh_worker.redelivery`), so it is asked again without counting toward
maxReceiveCount.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.boards import KeySpace, resolve_schedule
from common.cache import LeaderboardCache
from common.config import ConfigError, WorkerSettings
from common.errors import InvalidMessage, LeaderboardError
from common.lock import RefreshLock
from common.logs import bind_invocation, get_logger
from common.messages import ALL_SCHEDULED, RefreshRequest
from common.metrics import MILLISECONDS, Metrics
from common.periods import final_after_ms
from common.queue import SqsRefreshQueue
from common.runtime import run
from common.sources import Source, create_source
from common.sources.base import catalog_of
from common.valkey import ValkeyConnection
from refresh_worker.known import KnownBoardsPublisher
from refresh_worker.redelivery import Pending, Redelivery
from refresh_worker.refresher import Mode, Outcome, Refresher

__all__ = ["WorkerApp", "build_app"]

log = get_logger(__name__)

MAX_PARALLEL_BOARDS = 4
DEFAULT_REMAINING_MS = 60_000  # when invoked without a Lambda context (tools, tests)


@dataclass
class _BoardWork:
    board: str
    reasons: set[str] = field(default_factory=set)
    requested_at_ms: int = 0
    messages: list[Pending] = field(default_factory=list)

    @property
    def message_ids(self) -> list[str]:
        return [message.message_id for message in self.messages]


class WorkerApp:
    def __init__(
        self,
        settings: WorkerSettings,
        connection: ValkeyConnection,
        cache: LeaderboardCache,
        lock: RefreshLock,
        source: Source,
        metrics: Metrics,
        redelivery: Redelivery | None = None,
        known: KnownBoardsPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.known = known  # None: the source cannot list its boards; nothing is published
        self.redelivery = redelivery or Redelivery(None, settings.locked_retry_seconds)
        self.connection = connection
        self.cache = cache
        self.source = source
        self.metrics = metrics
        self.refresher = Refresher(settings, cache, lock, source)

    async def close(self) -> None:
        await self.redelivery.close()
        await self.source.close()
        await self.connection.close()

    def invoke(self, event: Any, context: Any, cold_start: bool) -> dict[str, Any]:
        bind_invocation(service=self.settings.service, context=context, cold_start=cold_start)
        records = event.get("Records") if isinstance(event, dict) else None
        if not isinstance(records, list):
            log.error("event_not_sqs", event_type=type(event).__name__)
            return {"batchItemFailures": []}

        def remaining_ms() -> int:
            getter = getattr(context, "get_remaining_time_in_millis", None)
            return int(getter()) if callable(getter) else DEFAULT_REMAINING_MS

        failures = run(self.process(records, remaining_ms))
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}

    async def process(self, records: list[Any], remaining_ms: Callable[[], int]) -> list[str]:
        """Returns the message ids to report as failed."""
        failures: list[str] = []
        work: dict[str, _BoardWork] = {}
        scheduled = False
        for record in records:
            message_id = record.get("messageId") if isinstance(record, dict) else None
            if not isinstance(message_id, str):
                log.error("record_without_message_id")
                continue
            try:
                request = RefreshRequest.parse(record.get("body"))
                boards = self._boards_of(request)
            except InvalidMessage as exc:
                log.error(
                    "message_rejected",
                    message_id=message_id,
                    reason=str(exc),
                    receive_count=(record.get("attributes") or {}).get("ApproximateReceiveCount"),
                )
                self.metrics.add("MessagesRejected")
                failures.append(message_id)
                continue
            scheduled = scheduled or request.board == ALL_SCHEDULED
            for board in boards:
                item = work.setdefault(board, _BoardWork(board))
                item.reasons.add(request.reason)
                item.requested_at_ms = max(item.requested_at_ms, wanted_since_ms(board, request))
                item.messages.append(Pending.of(message_id, record))
        if failures:
            self.metrics.flush("-")
        if scheduled and self.known is not None:
            # Once per batch that holds a schedule message, before its refreshes (common.known_boards).
            metrics = self.metrics.child()
            await self.known.publish(metrics)
            metrics.flush(ALL_SCHEDULED)
        semaphore = asyncio.Semaphore(MAX_PARALLEL_BOARDS)

        async def one(item: _BoardWork) -> tuple[list[str], list[Pending]]:
            async with semaphore:
                return await self._refresh_board(item, remaining_ms())

        later: dict[str, Pending] = {}
        for failed, locked in await asyncio.gather(*(one(item) for item in work.values())):
            failures.extend(failed)
            later.update((message.message_id, message) for message in locked)
        # A message that named several boards ("*") fails if any of them failed (then it is retried as
        # a whole anyway), else it is asked again once if any of them was locked; reported once.
        failures.extend(await self.redelivery.retry([m for i, m in later.items() if i not in failures]))
        return list(dict.fromkeys(failures))

    def _boards_of(self, request: RefreshRequest) -> tuple[str, ...]:
        registry = self.settings.boards.boards
        if request.board == ALL_SCHEDULED:
            now = datetime.now(UTC)
            boards = resolve_schedule(self.settings.scheduled_boards, now)
            return tuple(board for board in boards if registry.allows(board, now))
        # Served when it was asked for: a period at the edge of the kept window stays refreshable.
        if not registry.allows(request.board, request.requested_at):
            raise InvalidMessage(
                f"board {request.board!r} is not served by this deployment (LEADERBOARD_BOARDS)"
            )
        return (request.board,)

    async def _refresh_board(self, item: _BoardWork, remaining_ms: int) -> tuple[list[str], list[Pending]]:
        """The message ids that failed, and the messages to ask again shortly (locked board)."""
        reason = ",".join(sorted(item.reasons))
        # Boards are refreshed concurrently: each counts into its own line, or they would mix.
        metrics = self.metrics.child()
        try:
            result = await self.refresher.refresh(item.board, reason, item.requested_at_ms, remaining_ms)
        except Exception as exc:
            if isinstance(exc, LeaderboardError):
                log.error("refresh_failed", board=item.board, reason=reason, error=str(exc),
                          error_type=type(exc).__name__, messages=len(item.message_ids))  # fmt: skip
            else:  # a bug: the traceback, and the messages go back to the queue
                log.exception(
                    "refresh_crashed", board=item.board, reason=reason, messages=len(item.message_ids)
                )
            metrics.add("RefreshFailures")
            metrics.flush(self.settings.boards.boards.metric_dimension(item.board))
            return item.message_ids, []
        if self.known is not None and result.outcome in (Outcome.REFRESHED, Outcome.ABSENT):
            await self.known.observed(item.board, present=result.outcome is Outcome.REFRESHED)
        if result.outcome is not Outcome.REFRESHED:
            log.info("refresh_skipped", board=item.board, reason=reason, outcome=str(result.outcome),
                     version=result.version, messages=len(item.message_ids))  # fmt: skip
        if result.attempts:
            metrics.add("SourceAttempts", result.attempts)
            metrics.add("SourceDuration", result.source_ms, MILLISECONDS)
            metrics.add("SourceRows", result.rows_read)  # what the refresh cost the database
        if result.mode is Mode.REBUILD:
            metrics.add("FullRebuilds")  # frequent ones mean deltas are not possible: see rebuild_reason
        if result.write_ms:
            metrics.add("CacheWriteDuration", result.write_ms, MILLISECONDS)
        metrics.add("Refreshes" if result.outcome is Outcome.REFRESHED else "RefreshesSkipped")
        locked = result.outcome in (Outcome.LOCKED, Outcome.LEASE_LOST)
        if locked:
            metrics.add("LockedRetries", len(item.messages))
        metrics.flush(self.settings.boards.boards.metric_dimension(item.board))
        return [], item.messages if locked else []


def wanted_since_ms(board: str, request: RefreshRequest) -> int:
    """The oldest snapshot that satisfies `request` for `board` (its generated_at_ms lower bound): the
    request time, or for a past week or month at most the moment its snapshot became final."""
    requested_ms = int(request.requested_at.timestamp() * 1000)
    final_ms = final_after_ms(board)
    if final_ms is None or request.reason == "manual":
        return requested_ms
    return min(requested_ms, final_ms)


def build_app(environ: Mapping[str, str] | None = None) -> WorkerApp:
    """Read and validate the environment once per container. A bad configuration raises: the batch
    fails, its messages return to the queue (nothing is lost) and the log names the variables."""
    try:
        settings = WorkerSettings.from_env(environ)
    except ConfigError as error:
        log.error("configuration_invalid", problems=error.problems)
        raise
    connection = ValkeyConnection(settings.valkey)
    keys = KeySpace(settings.boards.key)
    url = settings.queue_url
    sender = SqsRefreshQueue(url) if url and not url.endswith(".fifo") else None
    source = create_source(settings.source)
    catalog = catalog_of(source)
    known = None
    if catalog is not None:
        from common.known_store import KnownBoardsStore

        known = KnownBoardsPublisher(catalog, KnownBoardsStore(connection, settings.boards.key))
    return WorkerApp(
        settings,
        connection,
        LeaderboardCache(connection, keys),
        RefreshLock(connection, keys),
        source,
        Metrics(settings.metrics_namespace, settings.service),
        Redelivery(sender, settings.locked_retry_seconds),
        known,
    )
