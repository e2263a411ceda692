"""Plain data shared by the sources, the cache and the worker."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Entry"]


class Entry(NamedTuple):
    """One ranked row, as every source returns it (ranks are computed by the source, never in Python).

    `last_solved_at` is an ISO-8601 UTC string, or None for a player who has not solved anything yet.
    """

    rank: int
    user_id: str
    username: str
    score: int
    solved: int
    last_solved_at: str | None
