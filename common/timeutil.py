"""Time helpers: ISO-8601 in UTC with a trailing Z. Snapshot times (generated_at, requested_at) have
milliseconds; a player's last_solved_at has microseconds, the precision players are ranked at."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = [
    "iso_from_datetime",
    "iso_from_micros",
    "iso_from_ms",
    "iso_micros_from_datetime",
    "now_ms",
    "parse_iso",
]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_from_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_micros_from_datetime(value: datetime) -> str:
    """`2026-11-30T12:00:00.123456Z`: always six digits, so equal strings mean equal instants."""
    if value.tzinfo is not UTC:  # asyncpg's values are UTC already: this runs once per player
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def iso_from_micros(us: int) -> str:
    return iso_micros_from_datetime(_EPOCH + timedelta(microseconds=us))


def parse_iso(text: str) -> datetime:
    """Parse ISO-8601 with an explicit offset (a naive timestamp is ambiguous and rejected)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return value
