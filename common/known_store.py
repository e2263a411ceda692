"""The writes of the known-boards set (`common.known_boards` explains it): the worker publishes it and
keeps it current, `leaderboard-ops boards show|publish` reads when it was published. Async GLIDE, like
the rest of the worker's store; each write is one script on keys of one hash tag.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from glide import GlideError

from common.known_boards import PUBLICATION_TTL_MS, PUBLISHED, KnownBoardKeys
from common.timeutil import now_ms
from common.valkey import lua
from common.valkey_setup import unavailable

if TYPE_CHECKING:
    from common.valkey import ValkeyConnection

__all__ = ["KnownBoardsStore", "Publication"]

# KEYS: known set, meta. ARGV: ttl ms, meta JSON, board names... (SADD in slices: Lua's unpack has a
# stack limit of a few thousand values).
_PUBLISH = lua(
    r"""
local known, meta = KEYS[1], KEYS[2]
redis.call('DEL', known)
local n = #ARGV
local i = 3
while i <= n do
  local j = math.min(i + 999, n)
  redis.call('SADD', known, unpack(ARGV, i, j))
  i = j + 1
end
redis.call('SADD', known, ARGV_PUBLISHED)
redis.call('PEXPIRE', known, ARGV[1])
redis.call('SET', meta, ARGV[2], 'PX', ARGV[1])
return redis.call('SCARD', known) - 1
""".replace("ARGV_PUBLISHED", json.dumps(PUBLISHED))
)
# KEYS: known set. ARGV: "add" or "remove", board. Only into an existing publication: adding to no set
# would create one that looks published and holds a single board (every other board would be a 404).
_AMEND = lua(
    r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[1] == 'add' then return redis.call('SADD', KEYS[1], ARGV[2]) end
return redis.call('SREM', KEYS[1], ARGV[2])
"""
)


@dataclass(frozen=True, slots=True)
class Publication:
    published_at_ms: int
    boards: int
    ttl_ms: int | None


class KnownBoardsStore:
    def __init__(self, connection: ValkeyConnection, prefix: str) -> None:
        self._connection = connection
        self.keys = KnownBoardKeys.for_prefix(prefix)

    async def publish(self, boards: Iterable[str], *, ttl_ms: int = PUBLICATION_TTL_MS) -> int:
        """Replace the published set with `boards` (atomically); returns how many it holds."""
        names = sorted(set(boards))
        meta = json.dumps({"published_at_ms": now_ms(), "boards": len(names)}, separators=(",", ":"))
        client = await self._connection.client()
        try:
            reply: Any = await client.invoke_script(
                _PUBLISH, keys=[self.keys.known, self.keys.meta], args=[str(ttl_ms), meta, *names]
            )
        except GlideError as exc:
            raise unavailable(exc, "publishing the known boards") from None
        return int(reply)

    async def amend(self, board: str, *, present: bool) -> bool | None:
        """Add (`present`) or remove one board in the published set; None when nothing is published,
        else whether the set changed."""
        client = await self._connection.client()
        try:
            reply: Any = await client.invoke_script(
                _AMEND, keys=[self.keys.known], args=["add" if present else "remove", board]
            )
        except GlideError as exc:
            raise unavailable(exc, "updating the known boards") from None
        return None if int(reply) < 0 else bool(int(reply))

    async def publication(self) -> Publication | None:
        """When the set was last published and how many boards it held; None if it is not there."""
        client = await self._connection.client()
        try:
            raw = await client.get(self.keys.meta)
            exists = await client.exists([self.keys.known])
            ttl = await client.pttl(self.keys.known)
        except GlideError as exc:
            raise unavailable(exc, "reading the known boards") from None
        if not raw or not exists:
            return None
        try:
            data = json.loads(raw)
            published_at_ms, boards = int(data["published_at_ms"]), int(data["boards"])
        except (ValueError, KeyError, TypeError):
            return None
        return Publication(published_at_ms, boards, int(ttl) if int(ttl) >= 0 else None)

    async def contains(self, board: str) -> bool:
        client = await self._connection.client()
        try:
            return bool(await client.sismember(self.keys.known, board))
        except GlideError as exc:
            raise unavailable(exc, "reading the known boards") from None
