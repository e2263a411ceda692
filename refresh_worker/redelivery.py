"""Requests that found their board locked: asked again in a few seconds, never silently dropped.

A request is acknowledged only once a refresh that started after its `requested_at` has committed (or the
board is known absent). When the board is locked, the refresh in progress may be that refresh, or an
older one, or its worker may be dead (its lease lapses within REFRESH_LOCK_TTL_MS): we cannot know, so the
request is asked again after REFRESH_LOCKED_RETRY_SECONDS (3 s). On that next delivery it is either
already honoured (the snapshot is at least as new as the request: acknowledged at no cost) or the board is
free and this worker refreshes it.

Why a re-send with DelaySeconds and not a failed record with a short visibility
(ChangeMessageVisibility): every receive counts toward the queue's maxReceiveCount (5), so retrying every
3 s would move valid requests to the DLQ after ~15 s behind one long refresh (a full rebuild can take the
worker's whole 120 s timeout), and a maxReceiveCount large enough for that (~45) would let genuinely
failing requests circle for hours. A re-sent copy starts at receive count 0 and carries a
`LockedRetries` message attribute instead; after MAX_LOCKED_RETRIES (100 x 3 s, more than two worst-case
refreshes back to back) the request is reported as failed and takes the ordinary path (visibility
timeout, maxReceiveCount, DLQ). If the re-send fails, the record is reported as failed too: nothing is
lost, it is only retried later. The original is acknowledged only after its copy was sent; a duplicate
(the delete failing afterwards) is harmless: refresh requests are idempotent.

FIFO queues have no per-message delay and would deduplicate the identical body: with a FIFO queue, or
without REFRESH_QUEUE_URL, a locked request is reported as failed (retried after the visibility timeout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import LeaderboardError
from common.logs import get_logger

__all__ = ["LOCKED_RETRIES", "MAX_LOCKED_RETRIES", "DelayedSender", "Pending", "Redelivery"]

log = get_logger(__name__)

LOCKED_RETRIES = "LockedRetries"
MAX_LOCKED_RETRIES = 100


class DelayedSender(Protocol):
    async def send_later(self, body: str, *, delay_seconds: int, attributes: dict[str, str]) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Pending:
    """A received record, as much of it as a re-send needs."""

    message_id: str
    body: str
    locked_retries: int

    @classmethod
    def of(cls, message_id: str, record: Mapping[str, Any]) -> Pending:
        attribute = (record.get("messageAttributes") or {}).get(LOCKED_RETRIES) or {}
        value = attribute.get("stringValue") if isinstance(attribute, dict) else None
        try:
            retries = max(0, int(value)) if value is not None else 0
        except ValueError:
            retries = 0
        body = record.get("body")
        return cls(message_id, body if isinstance(body, str) else "", retries)


class Redelivery:
    def __init__(self, sender: DelayedSender | None, delay_seconds: int) -> None:
        self._sender = sender
        self._delay = delay_seconds

    async def retry(self, messages: Sequence[Pending]) -> list[str]:
        """Re-send each message with a delay; returns the ids to report as failed (not re-sent)."""
        failed: list[str] = []
        for message in messages:
            if self._sender is None or message.locked_retries >= MAX_LOCKED_RETRIES:
                failed.append(message.message_id)
                continue
            try:
                await self._sender.send_later(
                    message.body,
                    delay_seconds=self._delay,
                    attributes={LOCKED_RETRIES: str(message.locked_retries + 1)},
                )
            except LeaderboardError as exc:
                log.warning("locked_retry_not_sent", message_id=message.message_id, error=str(exc))
                failed.append(message.message_id)
        return failed

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()
