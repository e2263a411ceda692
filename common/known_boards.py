"""Known boards (#14): the set of challenge and season boards the source has, published to Valkey by the
refresh worker, so that the API answers a request for any other name with 404 `unknown_board` at once:
no refresh request, no source query, no wait.

One SET per deployment, `{<LEADERBOARD_KEY>}:known` (the global board's hash tag, so one cluster slot,
one key): the board names (`challenge:two-sum`, `season:cup-2026`) plus the member `#`, which no board
name can be, so that "published, but not a member" and "never published" (or evicted, or expired) are
told apart by one SMISMEMBER. Beside it, `{<LEADERBOARD_KEY>}:known-meta` says when it was published
and how many boards it holds (for `leaderboard-ops boards show|publish`). Both expire after
PUBLICATION_TTL_MS unless published again: a worker that stops publishing (a source that cannot list
its boards, a rollback) lets the API fall back to asking the source, rather than 404 new boards forever.

Who is checked: only challenge and season boards that `LEADERBOARD_BOARDS` allows through a pattern
(`challenge:*`, `season:*`), and only on a cold miss (no snapshot, no absent marker): the hit path is
unchanged, the miss path has one more round trip. `global`, weeks and months (which exist by the
calendar) and boards listed by name (the operator vouches for them) are never checked.

The worker publishes the whole set on every schedule message (`"board": "*"`; the schedule and
`leaderboard-ops boards publish` send one), and adds a board to the published set when a refresh finds
it non-empty (a listed or manually refreshed challenge), or removes it when a refresh finds it absent.
So a challenge created after the last publication is readable within one schedule period
(RefreshScheduleMinutes, 5 by default) plus one refresh.

This module holds the keys and the rules and imports no client (the worker imports it too); the API's
lookup is `common.known_reader` (synchronous client), the worker's and the CLI's writes
`common.known_store` (async client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from common.boards import BoardRegistry

__all__ = [
    "PUBLICATION_TTL_MS",
    "PUBLISHED",
    "KnownBoardKeys",
    "checked_against_catalog",
]

PUBLISHED = "#"  # the member every publication holds; never a board name (common.boards)
PUBLICATION_TTL_MS = 24 * 3_600_000  # unpublished this long: the API asks the source again
CHECKED_KINDS = ("challenge:", "season:")


@dataclass(frozen=True, slots=True)
class KnownBoardKeys:
    known: str
    meta: str

    @classmethod
    def for_prefix(cls, prefix: str) -> KnownBoardKeys:
        tag = "{" + prefix + "}"
        return cls(known=f"{tag}:known", meta=f"{tag}:known-meta")


def checked_against_catalog(board: str, registry: BoardRegistry) -> bool:
    """Whether a cold miss of `board` must be in the published set to be waited for: challenge and
    season boards that only a pattern allows."""
    return board.startswith(CHECKED_KINDS) and board not in registry.names
