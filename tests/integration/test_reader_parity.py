"""The API's synchronous reader (common/snapshot_reader.py, glide-sync) answers exactly what the async
store (common/cache.py, the worker's and the ops CLI's) answers, on the same v2 board, standalone and
cluster: the pages the top list does not cover, the fallback when the top list is gone, user windows.

Both sides run the same scripts and the same reply parsers, but the commands, key lists and arguments
are written twice (once per client): this is what keeps the twins from drifting apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from common.cache import LeaderboardCache
from common.config import ValkeySettings
from common.runtime import run
from common.snapshot import TOP_ENTRIES, Page, UserWindow
from common.snapshot_reader import SnapshotReader
from common.valkey_sync import SyncValkeyConnection
from tests.harness import CacheTools
from tests.support import make_entries

BOARD = "global"
PLAYERS = 250  # more than TOP_ENTRIES, in tie groups of 3 (competition ranks 1, 1, 1, 4, ...)


@pytest.fixture
def reader(cache_tools: CacheTools) -> Iterator[SnapshotReader]:
    target = cache_tools.target
    connection = SyncValkeyConnection(
        ValkeySettings(
            host=target.host, port=target.port, cluster_mode=target.cluster, request_timeout_ms=5000
        )
    )
    yield SnapshotReader(connection, cache_tools.keys)
    connection.close()


T = TypeVar("T", Page, UserWindow)


def _same(async_reply: T | None, sync_reply: T | None) -> T:
    """What both clients answered, after checking it is the same (and not "no snapshot")."""
    assert sync_reply == async_reply
    assert sync_reply is not None
    return sync_reply


def _both_pages(cache: LeaderboardCache, reader: SnapshotReader, offset: int, count: int) -> Page:
    return _same(run(cache.read_page(BOARD, offset, count)), reader.read_page(BOARD, offset, count))


def _both_windows(cache: LeaderboardCache, reader: SnapshotReader, user_id: str, around: int) -> UserWindow:
    return _same(run(cache.read_user(BOARD, user_id, around)), reader.read_user(BOARD, user_id, around))


def test_pages_past_the_top_list_are_the_same_on_both_clients(
    cache_tools: CacheTools, reader: SnapshotReader
) -> None:
    # Given a board of 250 players, ranked with ties
    entries = make_entries(PLAYERS, tie_groups=3)
    version = cache_tools.write(entries)
    # When both clients read a page at an offset, and pages longer than the top list holds
    at_offset = _both_pages(cache_tools.cache, reader, 37, 20)
    long_page = _both_pages(cache_tools.cache, reader, 0, TOP_ENTRIES + 50)
    across_the_end = _both_pages(cache_tools.cache, reader, PLAYERS - 5, TOP_ENTRIES + 1)
    past_the_end = _both_pages(cache_tools.cache, reader, PLAYERS + 10, 5)
    # Then they got the same bytes, and those bytes are the right players
    assert at_offset.header.version == version
    assert at_offset.offset == 37
    assert [e.split(b'"user_id":"')[1][:36].decode() for e in at_offset.entries] == [
        e.user_id for e in entries[37:57]
    ]
    assert b'"rank":37,' in at_offset.entries[0]  # 37th position, first of its tie group of 3 (37..39)
    assert len(long_page.entries) == TOP_ENTRIES + 50
    assert long_page.entries[-1].startswith(b'{"rank":148,')
    assert len(across_the_end.entries) == 5
    assert past_the_end.entries == []


def test_without_the_top_list_both_clients_fall_back_to_the_same_page(
    cache_tools: CacheTools, reader: SnapshotReader
) -> None:
    # Given a board whose first page was read from its top list
    cache_tools.write(make_entries(PLAYERS, tie_groups=3))
    from_top = _both_pages(cache_tools.cache, reader, 0, 10)
    # When the top list is gone (an older release wrote the board, or it was evicted)
    top = cache_tools.keys(BOARD).top
    assert cache_tools.command("DEL", top) == 1
    # Then both clients read the same first page through the page script, equal to the top list's
    from_script = _both_pages(cache_tools.cache, reader, 0, 10)
    assert from_script == from_top
    assert not cache_tools.exists(top)


def test_user_windows_are_the_same_on_both_clients(cache_tools: CacheTools, reader: SnapshotReader) -> None:
    # Given a board of 250 players
    entries = make_entries(PLAYERS, tie_groups=3)
    cache_tools.write(entries)
    # When both clients read windows in the middle, at the top edge and for a player not on the board
    middle = _both_windows(cache_tools.cache, reader, entries[120].user_id, 2)
    first = _both_windows(cache_tools.cache, reader, entries[0].user_id, 2)
    unranked = _both_windows(cache_tools.cache, reader, "nobody-here", 2)
    # Then the windows are the same and hold the right players
    assert (middle.offset, middle.position, len(middle.entries)) == (118, 120, 5)
    assert entries[120].user_id.encode() in middle.entries[2]
    assert (first.offset, first.position, len(first.entries)) == (0, 0, 5)  # 2·around+1 at the edge
    assert unranked.position is None
    assert unranked.entries == []


def test_a_board_without_a_snapshot_is_none_on_both_clients(
    cache_tools: CacheTools, reader: SnapshotReader
) -> None:
    # Given a prefix nobody wrote to; then both clients see no snapshot at all
    assert run(cache_tools.cache.read_page(BOARD, 0, 10)) is None
    assert reader.read_page(BOARD, 0, 10) is None
    assert reader.read_page(BOARD, 5, 200) is None
    assert run(cache_tools.cache.read_user(BOARD, "someone", 2)) is None
    assert reader.read_user(BOARD, "someone", 2) is None
