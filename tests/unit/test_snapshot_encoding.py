"""The v2 layout's bytes (common.snapshot), without Valkey: rank keys order exactly as SQL does, stored
values and headers round-trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.models import Entry
from common.snapshot import MAX_SCORE, SnapshotHeader, encode_value, member, micros, rankkey, served_entry

T0 = datetime(2026, 11, 1, tzinfo=UTC)
players = st.lists(
    st.tuples(
        st.integers(0, MAX_SCORE),
        st.one_of(st.none(), st.integers(0, 10**16)),  # µs since 1970, or never solved
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, blacklist_characters="/"), min_size=1,
                max_size=20),
    ),
    max_size=60,
    unique_by=lambda p: p[2],
)  # fmt: skip


@given(players)
def test_member_bytes_sort_exactly_like_the_sql_order(rows: list[tuple[int, int | None, str]]) -> None:
    # SQL: score desc, last_solved_at asc nulls last, user_id asc (byte order of the id, as Valkey sorts)
    expected = sorted(rows, key=lambda r: (-r[0], r[1] is None, r[1] or 0, r[2].encode()))
    by_member = sorted(rows, key=lambda r: member(rankkey(r[0], r[1]), r[2]))
    assert by_member == expected


def test_scores_beyond_a_double_stay_exact() -> None:
    big = 2**62
    assert rankkey(big + 1, None) < rankkey(big, None)  # a float would make these equal
    assert rankkey(MAX_SCORE, 0) < rankkey(0, 0)
    for bad in (-1, MAX_SCORE + 1):
        with pytest.raises(ValueError, match="score"):
            rankkey(bad, None)


def test_times_are_ranked_and_shown_at_microseconds() -> None:
    assert micros("2026-11-01T00:00:00.000001Z") == micros("2026-11-01T00:00:00Z") + 1  # type: ignore[operator]
    assert micros("2026-11-01T01:00:00+01:00") == micros("2026-11-01T00:00:00.000000Z")
    assert rankkey(5, 1) < rankkey(5, 2) < rankkey(5, None)
    # a millisecond-precision input is shown with six digits, like everything else
    value = encode_value(Entry(0, "u", "n", 1, 1, "2026-11-01T10:00:00.123Z"))
    assert json.loads(served_entry(1, "u", value))["last_solved_at"] == "2026-11-01T10:00:00.123000Z"
    # times before 1970 sort as 1970 (clamped) but are shown as they are
    old = encode_value(Entry(0, "u", "n", 1, 1, "1969-12-31T23:59:59.000000Z"))
    assert old[:16] == rankkey(1, 0)
    assert json.loads(served_entry(1, "u", old))["last_solved_at"] == "1969-12-31T23:59:59.000000Z"


def test_a_stored_value_serves_the_entry_with_any_user_id_and_name() -> None:
    entry = Entry(0, 'we"ird\\id', 'Zoë "the" \\ 山田 🚀\u2028', 12345678901234567, 3,
                  (T0 + timedelta(microseconds=7)).isoformat())  # fmt: skip
    value = encode_value(entry)
    assert value[:16] == rankkey(entry.score, micros(entry.last_solved_at))
    assert json.loads(served_entry(4, entry.user_id, value)) == {
        "rank": 4, "user_id": 'we"ird\\id', "username": 'Zoë "the" \\ 山田 🚀\u2028',
        "score": 12345678901234567, "solved": 3, "last_solved_at": "2026-11-01T00:00:00.000007Z",
    }  # fmt: skip
    never = encode_value(Entry(0, "u", "n", 0, 0, None))
    assert json.loads(served_entry(1, "u", never))["last_solved_at"] is None


def test_the_header_round_trips_and_starts_with_the_fencing_fields() -> None:
    header = SnapshotHeader("challenge:a", 17, 1_800_000_000_000, 30, 10, "postgres", 99, 1_799_999_999_000,
                            b"\x00\xffabc")  # fmt: skip
    raw = header.encode()
    assert raw.startswith(b'{"format":2,"version":17,"position":99,')
    assert SnapshotHeader.decode(raw) == header
    plain = SnapshotHeader("global", 1, 0, 0, 0, "http")
    assert b'"position":null' in plain.encode() and SnapshotHeader.decode(plain.encode()) == plain
    # an older release's header, or garbage, is "no snapshot"
    old = b'{"format":1,"board":"global","version":3,"generated_at_ms":1,"total":1,"size":1}'
    for raw in (old, b"", b"{", b'{"format":2}'):
        assert SnapshotHeader.decode(raw) is None
