"""The worker's half of the known boards (`common.known_boards` explains the set and who reads it).

- `publish()`: on every schedule message (`"board": "*"`: the EventBridge schedule, and
  `leaderboard-ops boards publish`), one `leaderboard_known_boards()` call and one script replace the set.
- `observed(board, outcome)`: a refresh that found a challenge or season board adds it to the set (a
  board created since the last publication and refreshed anyway: listed by name, or asked for by the
  operator), one that found it absent removes it. Only into an existing publication.

Neither may fail a refresh: the set is an optimisation of the API's miss path, and without it the API
behaves as before the set existed. Failures are logged and counted (`KnownBoardsFailures`), and the
next schedule message tries again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from common.errors import LeaderboardError
from common.known_boards import CHECKED_KINDS
from common.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from common.sources.base import BoardCatalog

__all__ = ["KnownBoardsPublisher"]

log = get_logger(__name__)


class KnownStore(Protocol):
    async def publish(self, boards: Iterable[str]) -> int: ...

    async def amend(self, board: str, *, present: bool) -> bool | None: ...


class MetricSink(Protocol):
    def add(self, name: str, value: float = ..., unit: str = ...) -> None: ...


class KnownBoardsPublisher:
    def __init__(self, catalog: BoardCatalog, store: KnownStore) -> None:
        self._catalog = catalog
        self._store = store

    async def publish(self, metrics: MetricSink | None = None) -> int | None:
        """Read the source's boards and replace the published set; the number published, or None if
        that failed (logged)."""
        try:
            boards = await self._catalog.known_boards()
            count = await self._store.publish(boards)
        except LeaderboardError as exc:
            log.error("known_boards_publish_failed", error=str(exc), error_type=type(exc).__name__)
            if metrics is not None:
                metrics.add("KnownBoardsFailures")
            return None
        log.info("known_boards_published", boards=count)
        return count

    async def observed(self, board: str, *, present: bool) -> None:
        """A refresh found `board` (present) or found it absent: keep the published set in step."""
        if not board.startswith(CHECKED_KINDS):
            return
        try:
            changed = await self._store.amend(board, present=present)
        except LeaderboardError as exc:
            log.warning("known_boards_amend_failed", board=board, error=str(exc))
            return
        if changed:
            log.info("known_boards_amended", board=board, present=present)
