"""The CLI's two kinds of failure, each with its exit code. Everything that can go wrong is turned into
one of these (with a one-line message) before it reaches `main`, so an operator never sees a traceback."""

from __future__ import annotations

__all__ = ["OperationFailed", "OpsError", "UsageError"]


class OpsError(Exception):
    exit_code = 1


class UsageError(OpsError):
    """Bad flags or configuration (missing queue URL, no credentials, no such queue): exit 2."""

    exit_code = 2


class OperationFailed(OpsError):
    """The configuration is fine but something did not work (unreachable, denied, partial replay): exit 1."""

    exit_code = 1
