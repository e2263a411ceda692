"""The API's reads of the snapshot layout (v2, docs/layout.md) on the synchronous client: which command
or script, with which keys and arguments, and then `common.snapshot.replies` parses the reply. The
scripts are `common.snapshot.scripts`, the same sources `common.cache` (async) sends, so both clients
read the layout alike; nothing else lives here.

Also the two writes the read path makes, the "refresh requested" marker (SET NX PX) and its
compare-and-delete. Every Valkey failure surfaces as CacheUnavailable, whose text says what to check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from glide_sync import ConditionalChange, ExpirySet, ExpiryType, GlideError

from common.snapshot import (
    TOP_ENTRIES,
    HeaderCache,
    Page,
    SnapshotHeader,
    UserSet,
    UserWindow,
    page_from_reply,
    scripts,
    user_from_reply,
    users_from_reply,
)
from common.snapshot.failures import read_failure
from common.valkey_setup import DELETE_IF_EQUAL_LUA, unavailable
from common.valkey_sync import sync_lua

if TYPE_CHECKING:
    from common.boards import KeySpace
    from common.valkey_sync import SyncValkeyConnection

__all__ = ["SnapshotReader"]

_READ_PAGE = sync_lua(scripts.READ_PAGE.source)
_READ_USER = sync_lua(scripts.READ_USER.source)
_READ_USERS = sync_lua(scripts.READ_USERS.source)
_DELETE_IF_EQUAL = sync_lua(DELETE_IF_EQUAL_LUA)


class SnapshotReader:
    """Fits `api_lambda.service.SnapshotStore`; mirrors `LeaderboardCache`'s reads command for command."""

    def __init__(self, connection: SyncValkeyConnection, keys: KeySpace) -> None:
        self.connection = connection
        self.keys = keys
        self._header = HeaderCache()

    def read_page(self, board: str, offset: int, count: int) -> Page | None:
        """Header and entries [offset, offset+count) of the current snapshot; None if there is none.

        A first page of up to TOP_ENTRIES is one LRANGE of the top list (header + served entries, kept by
        the same scripts as every change); other pages, or a missing top list, take READ_PAGE, so that
        the header and the page come from the same snapshot."""
        keys = self.keys(board)
        try:
            client = self.connection.ready or self.connection.client()
            if offset == 0 and count <= TOP_ENTRIES:
                top = client.lrange(keys.top, 0, count)
                if top:
                    return page_from_reply(top, 0, self._header)
            raw = client.invoke_script(
                _READ_PAGE, scripts.READ_PAGE.key_list(keys), [str(offset), str(count)]
            )
        except GlideError as exc:
            read_failure(exc, "reading the leaderboard")
            return None
        return page_from_reply(cast("list[bytes]", raw), offset, self._header)

    def read_user(self, board: str, user_id: str, around: int) -> UserWindow | None:
        """The window around a user in the current snapshot; None when there is no snapshot."""
        keys = self.keys(board)
        try:
            client = self.connection.ready or self.connection.client()
            raw = client.invoke_script(_READ_USER, scripts.READ_USER.key_list(keys), [user_id, str(around)])
        except GlideError as exc:
            read_failure(exc, "reading a user's rank")
            return None
        return user_from_reply(cast("list[bytes]", raw), self._header)

    def read_users(self, board: str, user_ids: Sequence[str]) -> UserSet | None:
        """Some users' entries in rank order, and who is not on the board, from one snapshot state in
        one script (READ_USERS); None when there is no snapshot. `user_ids`: 1..100, distinct."""
        keys = self.keys(board)
        try:
            client = self.connection.ready or self.connection.client()
            raw = client.invoke_script(_READ_USERS, scripts.READ_USERS.key_list(keys), ["\n".join(user_ids)])
        except GlideError as exc:
            read_failure(exc, "reading users' ranks")
            return None
        return users_from_reply(cast("list[bytes]", raw), self._header)

    def read_header(self, board: str) -> SnapshotHeader | None:
        """The current snapshot's header alone (its `meta` key); None when there is none."""
        try:
            raw = self.connection.client().get(self.keys(board).meta)
        except GlideError as exc:
            read_failure(exc, "reading the snapshot header")
            return None
        return SnapshotHeader.decode(raw) if raw else None

    def is_absent(self, board: str) -> bool:
        try:
            return bool(self.connection.client().exists([self.keys(board).absent]))
        except GlideError as exc:
            raise unavailable(exc, "checking for an unknown board") from None

    def mark_refresh_requested(self, board: str, token: str, ttl_ms: int) -> bool:
        """True for exactly one caller per stale episode (SET NX PX): that caller sends the message."""
        try:
            result = self.connection.client().set(
                self.keys(board).refresh_marker,
                token,
                conditional_set=ConditionalChange.ONLY_IF_DOES_NOT_EXIST,
                expiry=ExpirySet(ExpiryType.MILLSEC, ttl_ms),
            )
        except GlideError as exc:
            raise unavailable(exc, "marking a refresh as requested") from None
        return result is not None

    def clear_refresh_request(self, board: str, token: str) -> None:
        """Undo our own marker (the send failed), so that the next stale read tries again."""
        try:
            self.connection.client().invoke_script(
                _DELETE_IF_EQUAL, [self.keys(board).refresh_marker], [token]
            )
        except GlideError as exc:
            raise unavailable(exc, "clearing the refresh marker") from None
