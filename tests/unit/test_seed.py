"""The sample generator of the local stack: deterministic, the documented shape, generated in chunks."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from testkit.seed import Row, SeedSpec, challenges, generate, players

SPEC = SeedSpec(users=400, challenges=12, results=6000, seed=3, chunk=700)
CHALLENGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def rows(spec: SeedSpec = SPEC) -> list[Row]:
    return [row for chunk in generate(spec) for row in chunk]


def test_the_same_spec_gives_the_same_rows_and_another_seed_others() -> None:
    assert rows() == rows()
    assert rows() != rows(SeedSpec(users=400, challenges=12, results=6000, seed=4, chunk=700))


def test_exactly_the_requested_rows_in_chunks_no_larger_than_asked() -> None:
    chunks = list(generate(SPEC))
    assert sum(map(len, chunks)) == 6000
    assert max(map(len, chunks)) <= 700
    assert list(generate(SeedSpec(results=0))) == []


def test_rows_fit_the_schema() -> None:
    points = {c.id: c.points for c in challenges(SPEC)}
    for _user_id, username, challenge_id, score, submitted_at in rows():
        assert 1 <= len(str(username)) <= 64
        assert CHALLENGE_ID.fullmatch(str(challenge_id))
        assert 0 <= score <= points[challenge_id]
        assert SPEC.start <= submitted_at < SPEC.start + timedelta(days=SPEC.days)
        assert submitted_at.microsecond == 0


def test_the_sample_has_the_documented_shape() -> None:
    sample = rows()
    totals: dict[uuid.UUID, int] = defaultdict(int)
    for user_id, _name, _challenge, score, _at in sample:
        totals[user_id] += score
    ordered = sorted(totals.values(), reverse=True)
    # a few strong players far ahead of the median, and players who never scored
    assert ordered[0] > 5 * ordered[len(ordered) // 2]
    assert ordered[-1] == 0
    # zero-score submissions are common, names are not all ASCII, names repeat
    assert sum(1 for r in sample if r[3] == 0) > len(sample) // 10
    names = [p.username for p in players(SPEC)]
    assert any(not n.isascii() for n in names)
    # twins: two players with identical submissions (same challenge, score and second), so equal ranks
    by_user: dict[uuid.UUID, list[tuple[str, int, datetime]]] = defaultdict(list)
    for user_id, _name, challenge, score, at in sample:
        by_user[user_id].append((challenge, score, at))
    twins = [p for p in players(SPEC) if p.twin_of is not None]
    assert twins
    twin = twins[0]
    assert twin.twin_of is not None
    assert by_user[twin.user_id] == by_user[players(SPEC)[twin.twin_of].user_id]


def test_an_impossible_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="must be"):
        SeedSpec(users=0)
