"""The two ways a start ends early. Both are turned into an exit status by `Stack.run`, never a traceback."""

from __future__ import annotations

__all__ = ["Interrupted", "StartupError"]


class StartupError(Exception):
    """The stack cannot start; the message says what and how to fix it (one line)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""
