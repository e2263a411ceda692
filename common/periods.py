"""Calendar periods of the time boards: ISO weeks and months in UTC, as the SQL migration defines them.

`week:2026-W49` is ISO week 49 of ISO year 2026: Monday 2026-11-30 00:00 UTC up to (excluding) Monday
2026-12-07 00:00 UTC. The ISO year is not the calendar year at the edges: 2026 has 53 weeks, and
2027-01-01 (a Friday) belongs to `week:2026-W53`. `month:2026-12` is December 2026, UTC. Periods exist
for the years 1900..9998 (the same range the SQL aggregates).

A period's board stops changing when the period ends, except for results that commit late (a
transaction that began before the end, a result inserted with an earlier `submitted_at`). So a snapshot
is *final* only if it was generated at least `FINAL_GRACE_MS` after the end: such a snapshot answers
every later refresh request for the board (see docs/layout.md, "Time boards").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "FINAL_GRACE_MS",
    "MAX_YEAR",
    "MIN_YEAR",
    "MONTH",
    "WEEK",
    "Period",
    "PeriodError",
    "containing",
    "final_after_ms",
    "parse_period",
]

WEEK = "week"
MONTH = "month"
FINAL_GRACE_MS = 300_000
MIN_YEAR, MAX_YEAR = 1900, 9998

_WEEK_RE = re.compile(r"week:([0-9]{4})-W([0-9]{2})")
_MONTH_RE = re.compile(r"month:([0-9]{4})-([0-9]{2})")


class PeriodError(ValueError):
    """A week or month name that is well-formed but names no period (week 54, month 13, year 1800)."""


@dataclass(frozen=True, slots=True)
class Period:
    """One week or month; `start` and `end` are UTC instants, `end` excluded."""

    kind: str
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        if self.kind == WEEK:
            year, week, _ = self.start.isocalendar()
            return f"week:{year:04d}-W{week:02d}"
        return f"month:{self.start.year:04d}-{self.start.month:02d}"

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def previous(self) -> Period:
        return containing(self.kind, self.start - timedelta(microseconds=1))

    def next(self) -> Period:
        return containing(self.kind, self.end)


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _week(day: date) -> Period:
    monday = day - timedelta(days=day.weekday())
    return Period(WEEK, _utc(monday), _utc(monday + timedelta(days=7)))


def _month(year: int, month: int) -> Period:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return Period(MONTH, _utc(date(year, month, 1)), _utc(following))


def containing(kind: str, at: datetime) -> Period:
    """The week or month that contains the instant `at` (UTC boundaries, whatever `at`'s offset)."""
    if at.tzinfo is None:
        raise ValueError("a period needs an aware datetime")
    day = at.astimezone(UTC).date()
    if kind == WEEK:
        period = _week(day)
        year = day.isocalendar()[0]
    elif kind == MONTH:
        period = _month(day.year, day.month)
        year = day.year
    else:
        raise ValueError(f"unknown period kind {kind!r}")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"periods exist for the years {MIN_YEAR}..{MAX_YEAR}")
    return period


def parse_period(name: str) -> Period | None:
    """The period a `week:YYYY-Www` / `month:YYYY-MM` name denotes; None for other names.
    PeriodError when the name has the shape but no such period exists."""
    if match := _WEEK_RE.fullmatch(name):
        year, week = int(match[1]), int(match[2])
        if MIN_YEAR <= year <= MAX_YEAR:
            try:
                return _week(date.fromisocalendar(year, week, 1))
            except ValueError:
                pass
        raise PeriodError(
            f"{name!r} is not an ISO week: weeks run 01..52 (53 in long years), years {MIN_YEAR}..{MAX_YEAR}"
        )
    if match := _MONTH_RE.fullmatch(name):
        year, month = int(match[1]), int(match[2])
        if MIN_YEAR <= year <= MAX_YEAR and 1 <= month <= 12:
            return _month(year, month)
        raise PeriodError(f"{name!r} is not a month: months run 01..12, years {MIN_YEAR}..{MAX_YEAR}")
    return None


def final_after_ms(board: str) -> int | None:
    """From when on a snapshot of `board` is final (the period's end + the grace), or None: the board
    is not a week or month (global, challenges, seasons: their end is not in the name)."""
    try:
        period = parse_period(board)
    except PeriodError:
        return None
    return None if period is None else period.end_ms + FINAL_GRACE_MS
