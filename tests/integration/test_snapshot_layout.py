"""The v2 layout's scripts on real Valkey (standalone and cluster): what the read scripts build equals
`common.snapshot.served_entry`, ranks are competition ranks at every page boundary, and a partly evicted
or foreign snapshot reads as "no snapshot" instead of a wrong answer."""

from __future__ import annotations

import json

from common.cache import SnapshotHeader
from common.models import Entry
from common.runtime import run
from common.snapshot import encode_value, served_entry
from tests.harness import CacheTools
from tests.support import make_entries


def test_the_scripts_serve_exactly_the_python_rendering(cache_tools: CacheTools) -> None:
    # Given players whose ids and names need JSON escaping, and ties
    entries = [
        Entry(0, 'we"ird\\id', 'Zoë "q" \\ 山田', 70, 2, "2026-11-01T10:00:00.000001Z"),
        Entry(0, "a-plain-id", "🚀", 70, 2, "2026-11-01T10:00:00.000001Z"),
        Entry(0, "ünïcode-id", "x", 70, 1, None),
        Entry(0, "z", "never", 0, 0, None),
    ]
    cache_tools.write(entries)
    page = run(cache_tools.cache.read_page("global", 0, 10))
    assert page is not None
    ordered = sorted(entries, key=lambda e: (-e.score, e.last_solved_at is None, e.user_id.encode()))
    ranks = [1, 1, 3, 4]
    assert page.entries == [
        served_entry(r, e.user_id, encode_value(e)) for r, e in zip(ranks, ordered, strict=True)
    ]
    for raw in page.entries:
        json.loads(raw)


def test_ranks_are_right_on_every_page_and_window_boundary(cache_tools: CacheTools) -> None:
    # Given 1,200 players in tie groups of 3 (ranks 1,1,1,4,4,4,...), read in pages that cut groups
    entries = make_entries(1200, tie_groups=3)
    cache_tools.write(entries)
    cache = cache_tools.cache
    served: list[dict[str, object]] = []
    for offset in range(0, 1200, 7):
        page = run(cache.read_page("global", offset, 7))
        assert page is not None
        served.extend(json.loads(e) for e in page.entries)
    assert [e["rank"] for e in served] == [e.rank for e in entries]
    assert [e["user_id"] for e in served] == [e.user_id for e in entries]
    # a page larger than the scripts' 500-id chunks
    big = run(cache.read_page("global", 100, 1000))
    assert big is not None and [json.loads(e)["rank"] for e in big.entries] == [
        e.rank for e in entries[100:1100]
    ]
    # windows at both edges keep 2*around+1 entries
    first = run(cache.read_user("global", entries[0].user_id, 3))
    last = run(cache.read_user("global", entries[-1].user_id, 3))
    assert first is not None and (first.offset, first.position, len(first.entries)) == (0, 0, 7)
    assert last is not None and (last.offset, last.position, len(last.entries)) == (1193, 1199, 7)
    # past the end: the header alone
    past = run(cache.read_page("global", 5000, 10))
    assert past is not None and past.entries == [] and past.header.size == 1200


def test_a_partly_evicted_or_foreign_snapshot_reads_as_no_snapshot(cache_tools: CacheTools) -> None:
    entries = make_entries(20)
    cache_tools.write(entries)
    keys = cache_tools.keys("global")
    cache = cache_tools.cache
    # When one player's stored value is evicted (and the top list with it), Then pages and windows that
    # need it are a miss
    cache_tools.command("HDEL", keys.entries, entries[4].user_id)
    cache_tools.command("DEL", keys.top)
    assert run(cache.read_page("global", 0, 10)) is None
    assert run(cache.read_user("global", entries[6].user_id, 2)) is None
    assert run(cache.read_page("global", 10, 10)) is not None  # pages without that player still serve
    # When the sorted set is evicted while the header stays, Then it is a miss, not an empty board
    cache_tools.command("DEL", keys.snapshot)
    assert run(cache.read_page("global", 0, 10)) is None
    # When the header is an older release's, Then there is no snapshot
    cache_tools.command("SET", keys.meta, '{"format":1,"version":1}')
    assert run(cache.read_header("global")) is None
    assert run(cache.read_page("global", 0, 10)) is None
    assert run(cache.read_user("global", entries[0].user_id, 0)) is None


def test_an_empty_board_is_a_snapshot_with_no_entries(cache_tools: CacheTools) -> None:
    lease = run(cache_tools.lock.acquire("challenge:a", 5000))
    assert lease is not None
    header = SnapshotHeader("challenge:a", lease.version, 1_800_000_000_000, 0, 0, "test", position=3)
    assert run(cache_tools.cache.write_snapshot(header, [], staging_ttl_ms=5000))
    page = run(cache_tools.cache.read_page("challenge:a", 0, 10))
    assert page is not None and page.entries == [] and page.header.position == 3
    window = run(cache_tools.cache.read_user("challenge:a", "anyone", 2))
    assert window is not None and window.position is None


def test_the_top_list_serves_the_same_first_pages_as_the_script(cache_tools: CacheTools) -> None:
    from common.snapshot import TOP_ENTRIES
    from common.snapshot import scripts as lua

    # Given a board of 150 players in tie groups (more than the top list holds)
    cache_tools.write(make_entries(150, tie_groups=4))
    keys = cache_tools.keys("global")
    assert int(cache_tools.command("LLEN", keys.top)) == TOP_ENTRIES + 1  # the header, then 100 entries
    for count in (1, 10, 37, TOP_ENTRIES):
        # When a first page is read (one LRANGE), Then it is exactly what the page script returns
        page = run(cache_tools.cache.read_page("global", 0, count))
        scripted = cache_tools.command("EVAL", lua.READ_PAGE.source, "3", *lua.READ_PAGE.key_list(keys),
                                       "0", str(count))  # fmt: skip
        assert page is not None and [page.header.encode(), *page.entries] == scripted
    # and a first page longer than the top list, or a deeper one, takes the script
    long = run(cache_tools.cache.read_page("global", 0, 120))
    assert long is not None and len(long.entries) == 120
