"""What a failed read of the layout means, written once for both readers (the async `common.cache`
and the sync `common.snapshot_reader`).

A key of the wrong type (`WRONGTYPE`: an older release's LIST or STRING under a v2 name) counts as no
snapshot (docs/layout.md): the next refresh replaces it, nobody reads it. Any other failure is
CacheUnavailable, saying what we were doing and why. Unlike the rest of `common.snapshot`, this module
leans on `common.valkey_setup` for the wording of GLIDE's errors (both clients share it).
"""

from __future__ import annotations

from common.valkey_setup import unavailable

__all__ = ["read_failure", "wrong_type"]


def wrong_type(exc: BaseException) -> bool:
    """True when the server refused a command because a key holds another type."""
    return "WRONGTYPE" in str(exc)


def read_failure(exc: BaseException, what: str) -> None:
    """Return (the caller answers "no snapshot") on WRONGTYPE; else raise CacheUnavailable for `what`."""
    if wrong_type(exc):
        return
    raise unavailable(exc, what) from None
