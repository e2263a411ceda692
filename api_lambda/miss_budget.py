"""Fair waits (#14): how much of a container's time cold misses of unfamiliar boards may hold.

A cold miss (no snapshot) waits up to LEADERBOARD_MISS_WAIT_MS for the worker, and a Lambda container
answers one request at a time, so whoever makes it wait holds the container. The rule:

- `global`, boards listed by name in LEADERBOARD_BOARDS, and boards this container has already served
  (it read a snapshot of them: they exist, and their miss is a flush or an eviction) wait the full
  LEADERBOARD_MISS_WAIT_MS, as before;
- every other board (a name this container has never served, even one the source has) waits only out
  of a per-container budget: a token bucket that holds at most one LEADERBOARD_MISS_WAIT_MS and fills
  at SHARE (10 %) of elapsed time. With it empty the request still asks for the refresh and is answered
  at once: 503 `warming_up` with Retry-After.

So, over any interval of T seconds, waits for never-served names hold a container at most
LEADERBOARD_MISS_WAIT_MS + SHARE x T. Names the source does not have never wait at all once the
known-boards set is published (`common.known_boards`); the budget is what bounds the rest: the time
before the first publication, a source that cannot list its boards, and real but unread boards.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SHARE", "MissWaitBudget"]

SHARE = 0.1


class MissWaitBudget:
    """A token bucket of waiting time, in seconds (monotonic clock)."""

    def __init__(
        self, burst_s: float, share: float = SHARE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = burst_s
        self._share = share
        self._clock = clock
        self._tokens = burst_s
        self._at = clock()

    def _fill(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._share)
        self._at = now
        return self._tokens

    def take(self, wanted_s: float) -> float:
        """Reserve up to `wanted_s` of waiting; returns what was granted (0 when the budget is spent)."""
        granted = max(0.0, min(wanted_s, self._fill()))
        self._tokens -= granted
        return granted

    def give_back(self, unused_s: float) -> None:
        """Return what a wait did not use (the snapshot arrived early)."""
        if unused_s > 0:
            self._tokens = min(self._burst, self._fill() + unused_s)

    @property
    def available_s(self) -> float:
        return self._fill()
