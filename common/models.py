"""Plain data shared by the sources, the cache and the worker."""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["USER_ID", "Change", "Entry"]

# A user id as stored and as requested in /leaderboard/users/{id}: 1..128 visible characters, no "/".
# One rule for both sides, so that every stored player can be looked up.
USER_ID = re.compile(r"[^\x00-\x20\x7f/]{1,128}")


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


class Change(NamedTuple):
    """One entry of a source's change feed: the player's state now (`entry`, rank 0: ranks are derived
    from the snapshot), or None when they left the board; `seq` is the feed position of the change."""

    user_id: str
    entry: Entry | None
    seq: int
