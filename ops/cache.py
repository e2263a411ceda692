"""What the cache holds for one board, and waiting for a refresh to land.

The snapshot header (the v2 layout's `meta` key, docs/layout.md) is read with the API's own code
(LeaderboardCache.read_header). The ranking's sorted set and entry hash are counted (ZCARD, HLEN: they
must both equal the header's size), an older release's LIST snapshot is recognised, and the helper keys
(lock, refresh marker, absent marker, version counter) are plain strings with expiries, read with GET
and PTTL: this is the one ops module that talks to GLIDE directly.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from glide import GlideError

from common.boards import BoardKeys
from common.cache import LeaderboardCache, SnapshotHeader
from common.errors import CacheUnavailable
from common.timeutil import iso_from_ms, now_ms
from common.valkey import ValkeyConnection, describe_error
from ops.dlq import format_age

__all__ = ["BoardState", "KeyState", "inspect", "render", "wait_for_new_version"]

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class KeyState:
    value: str | None  # None: the key does not exist
    ttl_ms: int | None  # None: no expiry (or no key)

    @property
    def exists(self) -> bool:
        return self.value is not None


@dataclass(frozen=True, slots=True)
class Stored:
    """What the snapshot's keys hold: the key type of the ranking and the counts of both structures."""

    kind: str  # "zset" (v2), "list" (v1), "none"
    members: int
    entries: int


@dataclass(frozen=True, slots=True)
class BoardState:
    keys: BoardKeys
    header: SnapshotHeader | None
    stored: Stored
    lock: KeyState
    refresh_marker: KeyState
    absent: KeyState
    version_counter: KeyState


async def _key(connection: ValkeyConnection, key: str) -> KeyState:
    client = await connection.client()
    try:
        raw = await client.get(key)
        ttl = await client.pttl(key)
    except GlideError as exc:
        raise CacheUnavailable(f"reading {key}: {describe_error(exc)}") from None
    value = raw.decode(errors="replace") if isinstance(raw, bytes) else None
    return KeyState(value, int(ttl) if value is not None and int(ttl) >= 0 else None)


async def _stored(connection: ValkeyConnection, keys: BoardKeys) -> Stored:
    client = await connection.client()
    try:
        kind = (await client.type(keys.snapshot)).decode()
        members = await client.zcard(keys.snapshot) if kind == "zset" else 0
        if kind == "list":
            members = await client.llen(keys.snapshot)
        entries = await client.hlen(keys.entries)
    except GlideError as exc:
        raise CacheUnavailable(f"reading {keys.snapshot}: {describe_error(exc)}") from None
    return Stored(kind, int(members), int(entries))


async def inspect(connection: ValkeyConnection, cache: LeaderboardCache, board: str) -> BoardState:
    keys = cache.keys(board)
    return BoardState(
        keys=keys,
        header=await cache.read_header(board),
        stored=await _stored(connection, keys),
        lock=await _key(connection, keys.lock),
        refresh_marker=await _key(connection, keys.refresh_marker),
        absent=await _key(connection, keys.absent),
        version_counter=await _key(connection, keys.version),
    )


def _expiry(state: KeyState) -> str:
    return "no expiry" if state.ttl_ms is None else f"expires in {state.ttl_ms / 1000:.1f} s"


def render(state: BoardState, *, fresh_seconds: int | None) -> list[str]:
    """The report `cache show` prints: one `name  value` line each. With no `fresh_seconds` (the API's
    window is not known here) the age is shown without a fresh/STALE verdict."""
    h = state.header
    stored = state.stored
    rows: list[tuple[str, str]] = [("board", state.keys.board), ("key", state.keys.snapshot)]
    if h is None:
        rows.append(("snapshot", "none (reads answer 503 warming_up until the worker writes one)"))
        if stored.kind == "list":
            rows.append(
                ("layout", f"v1 list of {stored.members} (an older release's; the next refresh replaces it)")
            )
    else:
        age = (now_ms() - h.generated_at_ms) / 1000
        if fresh_seconds is None:
            verdict = (
                "freshness unknown: set LEADERBOARD_FRESH_SECONDS to the API's value, or --fresh-seconds"
            )
        else:
            verdict = f"{'fresh' if age < fresh_seconds else 'STALE'}, fresh for {fresh_seconds} s"
        rows += [
            ("version", str(h.version)),
            ("generated_at", f"{h.generated_at} (age {format_age(age)}; {verdict})"),
            ("entries", str(h.size)),
            ("total", str(h.total)),
            ("source", h.source or "-"),
            ("position", "none (the source has no change feed)" if h.position is None else str(h.position)),
            ("rebuilt_at", iso_from_ms(h.rebuilt_at_ms) if h.rebuilt_at_ms else "-"),
        ]
        consistent = stored.kind in ("zset", "none") and stored.members == stored.entries == h.size
        layout = f"v2 (sorted set of {stored.members}, hash of {stored.entries})"
        rows.append(
            (
                "layout",
                layout
                if consistent
                else f"{layout}: INCONSISTENT with the header, rebuilt on the next refresh",
            )
        )
        if h.boundary is not None:
            rows.append(
                ("capped", "yes: LEADERBOARD_SIZE cut the board; players below the last one are not stored")
            )
    lock = state.lock
    if lock.value is None:
        rows.append(("lock", "free"))
    else:
        holder = lock.value.rpartition("/")[0] or lock.value
        rows.append(("lock", f"held by {holder} ({_expiry(lock)})"))
    marker = state.refresh_marker
    rows.append(("refresh pending", f"yes ({_expiry(marker)})" if marker.exists else "no"))
    if state.absent.exists:
        rows.append(("absent", f"yes: the source has no such board ({_expiry(state.absent)})"))
    if state.version_counter.value is not None:
        rows.append(("version counter", state.version_counter.value))
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows]


async def wait_for_new_version(
    cache: LeaderboardCache,
    board: str,
    before: int | None,
    *,
    within: float,
    sleep: Sleep,
    interval: float = 0.5,
) -> SnapshotHeader | None:
    """The first header newer than `before` (any header if there was none), or None after `within` s."""
    deadline = time.monotonic() + within
    while True:
        await sleep(interval)
        header = await cache.read_header(board)
        if header is not None and (before is None or header.version > before):
            return header
        if time.monotonic() >= deadline:
            return None
