"""Sending refresh requests to SQS.

aioboto3 costs about half a second to import, so it is imported on the first send, not at cold start:
most API invocations are cache hits that never send anything. The client is then kept open for the life
of the container. The endpoint comes from the standard `AWS_ENDPOINT_URL_SQS` (moto in tests and the
local stack), the region from `AWS_REGION`, else from the queue URL.
"""

from __future__ import annotations

import os
import re
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol

from common.errors import LeaderboardError

if TYPE_CHECKING:
    from common.messages import RefreshRequest

__all__ = [
    "BlockingRefreshQueue",
    "QueueUnavailable",
    "RefreshQueue",
    "SqsRefreshQueue",
    "deduplication_id",
    "region_from_queue_url",
    "sqs_client_config",
]

_REGION_IN_URL = re.compile(r"sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


class QueueUnavailable(LeaderboardError):
    """The refresh request could not be sent (unreachable, throttled, access denied)."""


class RefreshQueue(Protocol):
    async def send(self, request: RefreshRequest) -> None: ...

    async def close(self) -> None: ...


def deduplication_id(body: str) -> str:
    """For FIFO queues (one message group per board). The body carries its millisecond `requested_at`,
    so distinct requests are never dropped as duplicates, while an SDK retry of the same send is."""
    import hashlib  # on the first send only: ~5 ms of the API's cold import

    return hashlib.sha256(body.encode()).hexdigest()


def region_from_queue_url(url: str) -> str | None:
    match = _REGION_IN_URL.search(url)
    return match.group(1) if match else None


def sqs_client_config(*, connect_timeout: float = 1.0, read_timeout: float = 2.0, attempts: int = 2) -> Any:
    """Short timeouts and few retries: the API sends from a user's request and must not hang on it."""
    from botocore.config import Config

    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )


class SqsRefreshQueue:
    def __init__(self, queue_url: str, *, region: str | None = None) -> None:
        self.queue_url = queue_url
        self._region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or region_from_queue_url(queue_url)
            or "us-east-1"
        )
        self._fifo = queue_url.endswith(".fifo")
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def _sqs(self) -> Any:
        if self._client is None:
            import aioboto3

            stack = AsyncExitStack()
            session = aioboto3.Session()
            self._client = await stack.enter_async_context(
                session.client("sqs", region_name=self._region, config=sqs_client_config())
            )
            self._stack = stack
        return self._client

    async def send(self, request: RefreshRequest) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        body = request.to_json()
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": body}
        if self._fifo:
            kwargs["MessageGroupId"] = request.board
            kwargs["MessageDeduplicationId"] = deduplication_id(body)
        try:
            sqs = await self._sqs()
            await sqs.send_message(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise QueueUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None

    async def send_later(self, body: str, *, delay_seconds: int, attributes: dict[str, str]) -> None:
        """Send `body` again, invisible for `delay_seconds` (standard queues only: FIFO queues have no
        per-message delay, and their deduplication would drop an identical body)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._fifo:
            raise QueueUnavailable("a FIFO queue cannot delay one message")
        try:
            sqs = await self._sqs()
            await sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=body,
                DelaySeconds=delay_seconds,
                MessageAttributes={
                    name: {"DataType": "Number", "StringValue": value} for name, value in attributes.items()
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise QueueUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


class BlockingRefreshQueue:
    """A RefreshQueue for synchronous callers (the API's read path): each send runs the async client on
    the process's one long-lived loop (common.runtime), so only a stale or missing snapshot ever starts
    an event loop; a cache hit never does."""

    def __init__(self, queue: RefreshQueue) -> None:
        self.queue = queue

    def send(self, request: RefreshRequest) -> None:
        from common.runtime import run

        run(self.queue.send(request))
