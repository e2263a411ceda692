"""The near-cache's bounds and its rule about versions, on a clock the test moves."""

from __future__ import annotations

from api_lambda.near_cache import RecentReads
from common.snapshot import Page, SnapshotHeader


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def page(board: str = "global", version: int = 1, entries: int = 2, size: int = 10) -> Page:
    header = SnapshotHeader(board, version, 1_796_000_000_000, entries, entries, "test")
    return Page(header, 0, [b"x" * size for _ in range(entries)])


def recent(
    clock: Clock, near_ms: int = 1000, entries: int = 10, max_bytes: int = 1 << 20
) -> RecentReads[Page]:
    return RecentReads(near_ms, entries, max_bytes, clock=clock)


def test_a_read_is_served_near_only_within_the_window() -> None:
    clock = Clock()
    reads = recent(clock)
    first = page()
    reads.remember("a", first)
    clock.now += 0.999
    assert reads.near("a") is first
    clock.now += 0.001
    assert reads.near("a") is None
    # but it is still the last copy, for stale-if-error
    assert reads.last("a") is first


def test_a_newer_version_of_the_board_retires_older_near_entries() -> None:
    # Given page a read at version 1, then page b of the same board at version 2
    clock = Clock()
    reads = recent(clock)
    old_a = page(version=1)
    reads.remember("a", old_a)
    reads.remember("b", page(version=2))
    # Then a is not served near any more (a reader must not go back from version 2 to 1)
    assert reads.near("a") is None
    assert reads.near("b") is not None
    assert reads.last("a") is old_a
    # And other boards are not affected
    reads.remember("c", page(board="challenge:x", version=1))
    assert reads.near("c") is not None


def test_a_version_going_backwards_drops_the_boards_entries() -> None:
    clock = Clock()
    reads = recent(clock)
    reads.remember("a", page(version=5))
    reads.remember("b", page(version=5))
    reads.remember("other", page(board="challenge:x", version=9))
    # When Valkey answers with an older version (a failover to a lagging replica)
    older = page(version=4)
    reads.remember("b", older)
    # Then nothing of the newer state is served, not even as a last copy
    assert reads.near("a") is None
    assert reads.last("a") is None
    assert reads.near("b") is older
    assert reads.near("other") is not None


def test_memory_is_bounded_by_entries_least_recently_used_first() -> None:
    clock = Clock()
    reads = recent(clock, entries=2)
    reads.remember("a", page())
    reads.remember("b", page())
    assert reads.near("a") is not None  # a is now the most recently used
    reads.remember("c", page())
    assert len(reads) == 2
    assert reads.last("b") is None
    assert reads.last("a") is not None
    assert reads.last("c") is not None


def test_memory_is_bounded_by_bytes() -> None:
    clock = Clock()
    reads = recent(clock, max_bytes=3000)
    reads.remember("a", page(size=500))
    reads.remember("b", page(size=500))
    assert reads.size_bytes <= 3000
    reads.remember("c", page(size=500))
    assert reads.size_bytes <= 3000
    assert reads.last("a") is None
    # a read larger than the whole budget is not kept at all
    reads.remember("huge", page(size=5000))
    assert reads.last("huge") is None
    assert reads.last("c") is not None


def test_zero_entries_keeps_nothing() -> None:
    reads = recent(Clock(), entries=0)
    reads.remember("a", page())
    assert reads.last("a") is None
    assert len(reads) == 0


def test_the_same_read_again_renews_the_entry_and_a_changed_one_replaces_it() -> None:
    # Given a page remembered once
    clock = Clock()
    reads = recent(clock)
    first = page(entries=2, size=10)
    reads.remember("a", first)
    size = reads.size_bytes
    # When the same snapshot's same bytes are read again later (the reader's one header object)
    clock.now += 0.9
    again = Page(first.header, 0, [bytes(e) for e in first.entries])
    reads.remember("a", again)
    # Then the entry is the new read, near for a full window from now, and its size is unchanged
    clock.now += 0.9
    assert reads.near("a") is again
    assert reads.size_bytes == size
    # When the same header comes back with other bytes, the entry and its size follow them
    changed = Page(first.header, 0, [b"y" * 50, b"y" * 50])
    reads.remember("a", changed)
    assert reads.last("a") is changed
    assert reads.size_bytes == size + 80
