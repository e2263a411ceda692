"""The source's replies about its boards are validated before they reach Valkey or a header."""

from __future__ import annotations

from typing import Any

import pytest

from common.boards import BoardRegistry
from common.errors import SourceError
from common.known_boards import PUBLISHED, checked_against_catalog
from common.sources.base import BoardPeriod, known_boards_from_reply, period_from_reply


def test_a_known_boards_reply_holds_only_well_formed_challenge_and_season_names() -> None:
    assert known_boards_from_reply(["challenge:a", "season:cup", "challenge:a"]) == {
        "challenge:a",
        "season:cup",
    }
    assert known_boards_from_reply([]) == frozenset()


@pytest.mark.parametrize(
    "reply",
    [{"challenge:a": 1}, ["global"], ["week:2026-W49"], ["challenge:{tag}"], [PUBLISHED], [1], None],
)
def test_anything_else_is_a_source_error(reply: Any) -> None:
    with pytest.raises(SourceError):
        known_boards_from_reply(reply)


def test_a_board_period_reply() -> None:
    known = {"board": "season:cup", "known": True, "starts_at": "2026-12-01T00:00:00.000000Z",
             "ends_at": "2026-12-08T00:00:00.000000Z"}  # fmt: skip
    assert period_from_reply(known) == BoardPeriod("season:cup", True, 1796083200000, 1796688000000)
    unknown = {"board": "season:no", "known": False, "starts_at": None, "ends_at": None}
    assert period_from_reply(unknown) == BoardPeriod("season:no", False, None, None)
    for bad in ({**known, "known": "yes"}, {**known, "ends_at": "soon"}, {**known, "ends_at": None}, []):
        with pytest.raises(SourceError):
            period_from_reply(bad)


def test_only_pattern_allowed_challenges_and_seasons_are_checked_against_the_set() -> None:
    registry = BoardRegistry.parse("global,challenge:listed,challenge:*,season:*,week:*")
    assert checked_against_catalog("challenge:x", registry) and checked_against_catalog("season:x", registry)
    for board in ("global", "challenge:listed", "week:2026-W49"):
        assert not checked_against_catalog(board, registry)
