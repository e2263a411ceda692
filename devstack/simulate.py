"""`--simulate`: new results every second, so the board visibly changes while you watch.

Each tick inserts a few results of plausible players getting better. Most go to a handful of "climbers"
picked from just below the top 10, so the top of the board reshuffles within a minute; the rest go to
other players of the upper board, and now and then a newcomer appears. An improvement raises a player's
best on a challenge where they have room to grow, never beyond the best score anyone has there (or 100).
All rows of a tick go in one INSERT, so the migration's statement-level trigger runs once per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from testkit.seed import username

__all__ = ["Simulator"]

_INSERT = """
insert into public.challenge_results (user_id, username, challenge_id, score, submitted_at)
select * from unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[])
"""
_CANDIDATES = """
select user_id, username from public.leaderboard_totals
 order by -score, last_solved_at, user_id limit $1
"""
_CHALLENGES = "select challenge_id, max(best_score) as top from public.challenge_best group by challenge_id"
_BEST = "select challenge_id, best_score from public.challenge_best where user_id = $1"
_STEPS = (1, 2, 3, 5)  # tenths of the challenge's best score

Report = Callable[..., None]


@dataclass(slots=True)
class _Player:
    user_id: uuid.UUID
    name: str


class Simulator:
    def __init__(self, dsn: str, *, rate: float = 3.0, seed: int = 7, report: Report | None = None) -> None:
        self._dsn = dsn
        self._rate = max(0.1, rate)
        self._rng = random.Random(seed)
        self._report = report or (lambda *_a, **_k: None)
        self._conn: Any = None
        self._players: list[_Player] = []
        self._tops: dict[str, int] = {}
        self._newcomers = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Insert until `stop` is set. A database error is reported and retried on the next tick."""
        tick = 0
        while not stop.is_set():
            try:
                await self._tick(refresh=tick % 30 == 0)
            except Exception as exc:  # noqa: BLE001 - connection and asyncpg errors alike: keep simulating
                self._report("warning", "simulate_failed", error=f"{type(exc).__name__}: {exc}")
                await self._disconnect()
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        await self._disconnect()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close(timeout=2)

    async def _tick(self, *, refresh: bool) -> None:
        import asyncpg

        if self._conn is None:
            self._conn = await asyncpg.connect(self._dsn, timeout=5)
            refresh = True
        conn = self._conn
        if refresh or not self._players:
            rows = await conn.fetch(_CANDIDATES, 300)
            self._players = [_Player(r["user_id"], r["username"]) for r in rows]
            self._tops = {r["challenge_id"]: max(100, r["top"]) for r in await conn.fetch(_CHALLENGES)}
        if not self._tops:
            return  # an empty database: nothing plausible to improve on
        count = self._rng.randint(1, max(1, round(2 * self._rate) - 1))
        now = datetime.now(UTC)
        batch: list[tuple[uuid.UUID, str, str, int, datetime]] = []
        for _ in range(count):
            player = self._pick()
            bests = {r["challenge_id"]: r["best_score"] for r in await conn.fetch(_BEST, player.user_id)}
            room = {c: top - bests.get(c, 0) for c, top in self._tops.items() if bests.get(c, 0) < top}
            if not room:
                continue  # a perfect player: nothing left to improve
            challenge = self._rng.choices(sorted(room), weights=[room[c] for c in sorted(room)])[0]
            step = self._rng.choice(_STEPS) * self._tops[challenge] // 10
            score = min(self._tops[challenge], bests.get(challenge, 0) + max(10, step))
            batch.append((player.user_id, player.name, challenge, score, now))
        if not batch:
            return
        await conn.execute(_INSERT, *map(list, zip(*batch, strict=True)))
        shown = ", ".join(f"{name} {score} on {challenge}" for _, name, challenge, score, _ in batch)
        self._report("info", "simulated_results", results=len(batch), detail=shown)

    def _pick(self) -> _Player:
        roll = self._rng.random()
        if not self._players or roll < 0.05:
            self._newcomers += 1
            user_id = uuid.UUID(int=self._rng.getrandbits(128), version=4)
            player = _Player(user_id, username(self._rng, self._newcomers))
            self._players.append(player)
            return player
        if roll < 0.75 and len(self._players) > 12:
            climbers = self._players[10 : min(len(self._players), 16)]
            return self._rng.choice(climbers)
        return self._rng.choice(self._players)
