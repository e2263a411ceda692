"""Time helpers: one ISO-8601 format everywhere (UTC, milliseconds, trailing Z)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["iso_from_datetime", "iso_from_ms", "now_ms", "parse_iso"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_from_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse ISO-8601 with an explicit offset (a naive timestamp is ambiguous and rejected)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return value
