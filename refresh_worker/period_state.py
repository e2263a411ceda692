"""What a refresh needs to know about a period board for its header (docs/layout.md, "Closed boards"):
whether the period exists and when it ends. Weeks and months from their name; seasons from the source
(`leaderboard_board_period`, one call per season refresh), when it can say (`BoardCatalog`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.periods import FINAL_GRACE_MS, PeriodError, parse_period

if TYPE_CHECKING:
    from common.sources.base import BoardCatalog
    from refresh_worker.fetching import SourceCalls

__all__ = ["PeriodState", "period_state"]


@dataclass(frozen=True, slots=True)
class PeriodState:
    known: bool | None  # None: not a period board, or the source cannot say
    ends_at_ms: int | None

    def header_fields(self, generated_at_ms: int) -> tuple[int | None, bool]:
        """(ends_at_ms, closed) for a snapshot generated at `generated_at_ms` (data read after it)."""
        end = self.ends_at_ms
        return end, end is not None and generated_at_ms >= end + FINAL_GRACE_MS


async def period_state(board: str, calls: SourceCalls, catalog: BoardCatalog | None) -> PeriodState:
    if board.startswith(("week:", "month:")):
        try:
            period = parse_period(board)
        except PeriodError:
            return PeriodState(False, None)
        return PeriodState(True, None if period is None else period.end_ms)
    if board.startswith("season:") and catalog is not None:
        info = await calls.period(catalog)  # retried like every source call, inside the deadline
        return PeriodState(info.known, info.ends_at_ms)
    return PeriodState(None, None)
