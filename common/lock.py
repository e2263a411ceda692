"""The refresh lock and the fencing version, taken together in one atomic step.

Acquire: `SET {board}:lock <token> NX PX <ttl>`, and only if that succeeded, bump the board's version
counter to max(counter + 1, server time in ms). The version is the fencing token: the snapshot swap
accepts a write only if its version is newer than the stored one, so a worker that stalled past its
lock's expiry can finish, but can never overwrite what a later worker wrote.

Renew: the lock is a short lease (REFRESH_LOCK_TTL_MS, 10 s by default) that the worker renews while it
works (`refresh_worker.heartbeat`), so a worker that dies (SIGKILL, out of memory, Lambda timeout) frees the
board within one TTL instead of holding it for the whole refresh budget. Renewal is compare-and-renew by
token in one script, and extends the lease's staging keys with it: a dead worker's staged copies lapse
with its lease. Renewal never touches the version: fencing is exactly as before.

Release: one compare-and-delete script (Valkey 8.1 has no DELIFEQ). Never GET then DEL: between the
two, the lock may have expired and been taken by someone else.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from glide import GlideError

from common.errors import CacheUnavailable
from common.valkey import DELETE_IF_EQUAL, describe_error, lua

if TYPE_CHECKING:
    from common.boards import KeySpace
    from common.valkey import ValkeyConnection

__all__ = ["Lease", "RefreshLock"]

# KEYS: lock, version   ARGV: token, ttl ms   Returns the new version, or 0 when the lock is held.
_ACQUIRE = lua(
    """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local version = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if version < now_ms then
  version = now_ms
  redis.call('SET', KEYS[2], version)
end
return version
"""
)

# KEYS: lock, staging, staging entries   ARGV: token, ttl ms, staging ttl ms
# Returns 1 if the lease was ours and is renewed, 0 if it had lapsed (maybe taken by another worker).
_RENEW = lua(
    """
local lock, staging, staging_entries = KEYS[1], KEYS[2], KEYS[3]
local token, ttl, staging_ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', lock) ~= token then return 0 end
redis.call('PEXPIRE', lock, ttl)
redis.call('PEXPIRE', staging, staging_ttl)
redis.call('PEXPIRE', staging_entries, staging_ttl)
return 1
"""
)


@dataclass(frozen=True, slots=True)
class Lease:
    board: str
    token: str
    version: int
    ttl_ms: int


class RefreshLock:
    def __init__(self, connection: ValkeyConnection, keys: KeySpace, holder: str | None = None) -> None:
        self._connection = connection
        self._keys = keys
        # The token names its holder so that `leaderboard-ops cache show` can say who has the lock.
        self._holder = holder or os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME") or os.uname().nodename

    async def acquire(self, board: str, ttl_ms: int) -> Lease | None:
        """A lease with a fresh fencing version, or None when another worker holds the lock."""
        keys = self._keys(board)
        token = f"{self._holder}/{secrets.token_hex(8)}"
        client = await self._connection.client()
        try:
            version = await client.invoke_script(
                _ACQUIRE, keys=[keys.lock, keys.version], args=[token, str(ttl_ms)]
            )
        except GlideError as exc:
            raise CacheUnavailable(f"taking the refresh lock: {describe_error(exc)}") from None
        if not version:
            return None
        return Lease(board=board, token=token, version=int(cast("int", version)), ttl_ms=ttl_ms)

    async def renew(self, lease: Lease, staging_ttl_ms: int) -> bool:
        """True if the lease was still ours (now extended by its TTL); False if it had lapsed."""
        keys = self._keys(lease.board)
        client = await self._connection.client()
        try:
            renewed = await client.invoke_script(
                _RENEW,
                keys=[keys.lock, *keys.staging(lease.version)],
                args=[lease.token, str(lease.ttl_ms), str(staging_ttl_ms)],
            )
        except GlideError as exc:
            raise CacheUnavailable(f"renewing the refresh lock: {describe_error(exc)}") from None
        return bool(renewed)

    async def release(self, lease: Lease) -> bool:
        """True if we still held the lock; False if it had expired (and maybe been taken by another)."""
        client = await self._connection.client()
        try:
            released = await client.invoke_script(
                DELETE_IF_EQUAL, keys=[self._keys(lease.board).lock], args=[lease.token]
            )
        except GlideError as exc:
            raise CacheUnavailable(f"releasing the refresh lock: {describe_error(exc)}") from None
        return bool(released)
