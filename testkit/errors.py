"""Why an engine did not start."""

from __future__ import annotations

__all__ = ["EngineError", "EngineMissing"]


class EngineError(RuntimeError):
    """An engine could not start; the message says what and how to fix it."""


class EngineMissing(EngineError):
    """A program an engine needs is not installed on this machine; the message says how to install it."""
