"""Plain data shared by the sources, the cache and the worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["BoardData", "Entry"]


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


@dataclass(frozen=True, slots=True)
class BoardData:
    """A ranked board as fetched: the first entries in rank order and how many players it has in all.

    `exists` is False when the source knows no such board (a challenge nobody has submitted to).
    """

    entries: list[Entry]
    total: int
    exists: bool = True
