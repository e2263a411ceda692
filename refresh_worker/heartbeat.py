"""Keeping a refresh lease alive while the refresh works, and knowing when it is gone.

The lock is a short lease (REFRESH_LOCK_TTL_MS, 10 s by default) so that a worker that dies mid-refresh
frees its board within one TTL. While the worker lives, a background task renews it every third of its
TTL (compare-and-renew by token; the renewal also extends the lease's staging keys). Two renewals may
fail in a row (a Valkey hiccup) before the lease can lapse.

`check()` is called just before the final write: it raises `LeaseLost` when the lease is known to be
another worker's (a renewal found a different token), or when no renewal has been confirmed for a whole
TTL (Valkey unreachable, or this process was paused: it cannot tell whether the lease still exists).
That is an early exit, not the safety net: a worker that stalls between `check()` and its write can
still write late, and the version fence in the write scripts refuses it if a newer snapshot exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Protocol

from common.errors import LeaderboardError
from common.logs import get_logger

if TYPE_CHECKING:
    from types import TracebackType

    from common.lock import Lease

__all__ = ["Heartbeat", "LeaseLost", "Renewer"]

log = get_logger(__name__)

RENEWALS_PER_TTL = 3
STAGING_MARGIN_MS = 1_000  # staged keys outlive the lease a little: the commit renames them


class LeaseLost(LeaderboardError):
    """The refresh lease lapsed or was taken by another worker: stop before writing."""


class Renewer(Protocol):
    async def renew(self, lease: Lease, staging_ttl_ms: int) -> bool: ...


class Heartbeat:
    """`async with Heartbeat(lock, lease):` renews the lease until the block ends."""

    def __init__(self, lock: Renewer, lease: Lease) -> None:
        self._lock = lock
        self._lease = lease
        self._confirmed_at = time.monotonic()  # the lease was taken (or last renewed) at this time
        self._lost: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.renewals = 0

    @property
    def staging_ttl_ms(self) -> int:
        return self._lease.ttl_ms + STAGING_MARGIN_MS

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.ensure_future(self._beat())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def check(self) -> None:
        """Raise LeaseLost unless the lease is ours and confirmed within its TTL."""
        if self._lost is None and (time.monotonic() - self._confirmed_at) * 1000 >= self._lease.ttl_ms:
            self._lost = "not confirmed for a whole TTL"
        if self._lost is not None:
            raise LeaseLost(f"refresh lease of {self._lease.board!r} lost: {self._lost}")

    async def _beat(self) -> None:
        interval = self._lease.ttl_ms / RENEWALS_PER_TTL / 1000
        lease = self._lease
        while True:
            await asyncio.sleep(interval)
            started = time.monotonic()
            try:
                renewed = await self._lock.renew(lease, self.staging_ttl_ms)
            except LeaderboardError as exc:
                log.warning("lease_renewal_failed", board=lease.board, version=lease.version, error=str(exc))
                continue
            if not renewed:
                self._lost = "another worker holds it, or it lapsed"
                log.warning("lease_lost", board=lease.board, version=lease.version)
                return
            # The renewal took effect somewhere between sending and the reply: count from the send.
            self._confirmed_at = started
            self.renewals += 1
