"""The handful of domain errors. The API maps them to HTTP answers in one place (`Routes._domain_error`
in api_lambda/routes.py, rendered by `api_lambda.http.error_response`); the worker maps them to
batch-item failures."""

from __future__ import annotations

__all__ = [
    "CacheUnavailable",
    "InvalidMessage",
    "LeaderboardError",
    "PositionLost",
    "SourceError",
    "SourceUnavailable",
]


class LeaderboardError(Exception):
    """Base of every error this service raises on purpose."""


class CacheUnavailable(LeaderboardError):
    """Valkey did not answer in time, refused the connection, or rejected a write (e.g. maxmemory)."""


class SourceUnavailable(LeaderboardError):
    """A transient source failure (timeout, refused connection, 5xx, 429): worth retrying."""


class SourceError(LeaderboardError):
    """A permanent source failure (4xx, malformed reply): retrying now would get the same answer."""


class PositionLost(SourceError):
    """The change feed no longer covers a position (tombstones pruned, or a position from another
    database): the board must be read whole again. SQLSTATE LB001 from `leaderboard_changes`."""


class InvalidMessage(LeaderboardError):
    """A queue message that is not a valid refresh request. It goes to the DLQ with its reason logged."""
