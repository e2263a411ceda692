"""The API's lookup in the published set of known boards (`common.known_boards` explains it), on the
synchronous client the read path uses: one SMISMEMBER, on the miss path only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from glide_sync import GlideError

from common.known_boards import PUBLISHED, KnownBoardKeys
from common.valkey_setup import unavailable

if TYPE_CHECKING:
    from common.valkey_sync import SyncValkeyConnection

__all__ = ["KnownBoardsReader"]


class KnownBoardsReader:
    """Fits `api_lambda.service.KnownBoards`."""

    def __init__(self, connection: SyncValkeyConnection, prefix: str) -> None:
        self._connection = connection
        self._key = KnownBoardKeys.for_prefix(prefix).known

    def lookup(self, board: str) -> bool | None:
        """True: the source has the board; False: it has not (as of the last publication); None: no
        publication to go by (never published, expired, evicted): ask the source as before."""
        try:
            member, published = self._connection.client().smismember(self._key, [board, PUBLISHED])
        except GlideError as exc:
            raise unavailable(exc, "checking the known boards") from None
        if not published:
            return None
        return bool(member)
