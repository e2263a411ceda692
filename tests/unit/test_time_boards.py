"""Time board names: ISO weeks and months in UTC, aliases, the served window, the schedule, finality."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from common.boards import (
    BoardRegistry,
    BoardSyntaxError,
    KeySpace,
    empty_means_absent,
    parse_board_list,
    resolve_schedule,
    validate_board,
)
from common.config import ConfigError, WorkerSettings
from common.errors import InvalidMessage
from common.messages import RefreshRequest
from common.periods import FINAL_GRACE_MS, MONTH, WEEK, containing, final_after_ms, parse_period
from refresh_worker.app import wanted_since_ms

# Tuesday 2026-12-01, 20:00 UTC: inside 2026-W49 and 2026-12
NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "week", "month"),
    [
        (utc(2026, 12, 1, 20), "week:2026-W49", "month:2026-12"),
        # the last instant of a week and the first of the next
        (utc(2026, 12, 6, 23, 59, 59, 999_999), "week:2026-W49", "month:2026-12"),
        (utc(2026, 12, 7), "week:2026-W50", "month:2026-12"),
        # ISO years: 2026 has 53 weeks; its last week holds the first days of 2027
        (utc(2026, 12, 31, 12), "week:2026-W53", "month:2026-12"),
        (utc(2027, 1, 1), "week:2026-W53", "month:2027-01"),
        (utc(2027, 1, 3, 23, 59, 59), "week:2026-W53", "month:2027-01"),
        (utc(2027, 1, 4), "week:2027-W01", "month:2027-01"),
        # and the other way round: 2025-12-29 (a Monday) is in 2026-W01
        (utc(2025, 12, 29), "week:2026-W01", "month:2025-12"),
        (utc(2025, 12, 28, 23, 59), "week:2025-W52", "month:2025-12"),
        # a leap day, a month end
        (utc(2028, 2, 29, 23, 59), "week:2028-W09", "month:2028-02"),
        (utc(2027, 1, 31, 23, 59, 59), "week:2027-W04", "month:2027-01"),
    ],
)
def test_an_instant_lies_in_exactly_one_week_and_one_month(at: datetime, week: str, month: str) -> None:
    assert containing(WEEK, at).name == week
    assert containing(MONTH, at).name == month
    for period in (containing(WEEK, at), containing(MONTH, at)):
        assert period.start <= at < period.end
        assert parse_period(period.name) == period


def test_boundaries_are_utc_whatever_the_offset_of_the_instant() -> None:
    # Monday 00:30 in Paris is still Sunday in UTC
    paris = timezone(timedelta(hours=1))
    assert containing(WEEK, datetime(2026, 12, 7, 0, 30, tzinfo=paris)).name == "week:2026-W49"
    assert containing(MONTH, datetime(2027, 1, 1, 0, 30, tzinfo=paris)).name == "month:2026-12"
    with pytest.raises(ValueError, match="aware"):
        containing(WEEK, datetime(2026, 12, 7))


def test_a_period_knows_its_range_and_neighbours() -> None:
    week = parse_period("week:2026-W53")
    assert week is not None
    assert (week.start, week.end) == (utc(2026, 12, 28), utc(2027, 1, 4))
    assert week.next().name == "week:2027-W01"
    assert week.previous().name == "week:2026-W52"
    month = parse_period("month:2026-12")
    assert month is not None
    assert (month.start, month.end) == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert month.next().name == "month:2027-01"
    assert month.previous().name == "month:2026-11"


@pytest.mark.parametrize(
    "name",
    [
        "week:2026-49",
        "week:2026-w49",
        "week:26-W49",
        "week:२०२६-W49",  # Devanagari digits are digits to Python's \d, not to us
        "week:",
        "week:now",
        "month:2026-1",
        "season:",
        "season:{x}",
        "season:" + "x" * 65,
        "year:2026",
    ],
)
def test_malformed_time_board_names_are_rejected(name: str) -> None:
    with pytest.raises(BoardSyntaxError):
        validate_board(name)


NO_SUCH_PERIOD = ["week:2027-W53", "week:2026-W00", "week:2026-W54", "week:1899-W52", "month:2026-13",
                  "month:2026-00", "month:9999-01"]  # fmt: skip


@pytest.mark.parametrize("name", NO_SUCH_PERIOD)
def test_a_well_formed_name_of_no_period_is_no_board(name: str) -> None:
    # a request for it is a 404 (not served), like any board that does not exist; 2027 has 52 weeks
    assert validate_board(name) == name
    assert not BoardRegistry.parse("week:*,month:*", keep_weeks=5200, keep_months=1200).allows(name, NOW)
    with pytest.raises(BoardSyntaxError, match="period that does not exist") as caught:
        BoardRegistry.parse(f"global,{name}")
    assert name not in str(caught.value)
    with pytest.raises(BoardSyntaxError):
        parse_board_list(name)


@pytest.mark.parametrize(
    "name", ["week:2026-W49", "week:2026-W53", "week:2020-W53", "month:2026-12", "season:spring-2027"]
)
def test_concrete_time_board_names_are_their_own_name(name: str) -> None:
    assert validate_board(name) == name


def test_aliases_resolve_to_the_period_containing_the_instant() -> None:
    assert validate_board("week:current", NOW) == "week:2026-W49"
    assert validate_board("month:current", NOW) == "month:2026-12"
    assert validate_board("week:current", utc(2027, 1, 1)) == "week:2026-W53"
    assert validate_board("week:current", utc(2026, 12, 6, 23, 59, 59)) == "week:2026-W49"
    assert validate_board("week:current", utc(2026, 12, 7)) == "week:2026-W50"
    assert validate_board("week:current").startswith("week:20")  # now, by default


def test_the_served_window_is_the_current_period_and_the_kept_ones() -> None:
    registry = BoardRegistry.parse("global,week:*,month:*", keep_weeks=12, keep_months=12)
    assert registry.allows("week:2026-W49", NOW)
    assert registry.allows("week:2026-W37", NOW)  # 12 weeks back
    assert not registry.allows("week:2026-W36", NOW)
    assert not registry.allows("week:2026-W50", NOW)  # the future: nothing to show, and unbounded
    assert registry.allows("month:2026-12", NOW)
    assert registry.allows("month:2025-12", NOW)  # 12 months back
    assert not registry.allows("month:2025-11", NOW)
    assert not registry.allows("month:2027-01", NOW)
    assert not registry.allows("season:x", NOW)
    assert not registry.allows("challenge:x", NOW)
    # across the turn of the ISO year: 2027-W03 minus 12 weeks is 2026-W44 (2026 has a week 53)
    assert registry.allows("week:2026-W44", utc(2027, 1, 20))
    assert not registry.allows("week:2026-W43", utc(2027, 1, 20))


def test_listed_periods_are_served_whatever_their_age() -> None:
    registry = BoardRegistry.parse("week:2020-W53,season:*", keep_weeks=0)
    assert registry.allows("week:2020-W53", NOW)
    assert not registry.allows("week:2026-W48", NOW)
    assert registry.allows("season:anything", NOW)
    assert registry.metric_dimension("week:2020-W53") == "week:2020-W53"
    assert registry.metric_dimension("season:anything") == "season:*"


def test_patterns_and_aliases_in_board_lists() -> None:
    registry = BoardRegistry.parse("global, challenge:*, week:*, month:*, season:*")
    assert registry.patterns == frozenset({"challenge", "week", "month", "season"})
    assert registry.metric_dimension("week:2026-W49") == "week:*"
    assert registry.metric_dimension("month:2026-12") == "month:*"
    with pytest.raises(BoardSyntaxError, match=r"week:\*"):
        BoardRegistry.parse("global,week:current")  # an alias is no set of boards: use week:*
    with pytest.raises(BoardSyntaxError):
        BoardRegistry.parse("year:*")
    assert parse_board_list("global, week:current,month:current") == (
        "global",
        "week:current",
        "month:current",
    )


def test_the_schedule_refreshes_the_current_periods_and_the_one_just_closed() -> None:
    names = ("global", "week:current", "month:current")
    assert resolve_schedule(names, NOW) == ("global", "week:2026-W49", "month:2026-12")
    # Monday 00:10: the week that just ended still gets its final refresh; the month did not end
    monday = utc(2026, 12, 7, 0, 10)
    assert resolve_schedule(names, monday) == ("global", "week:2026-W50", "week:2026-W49", "month:2026-12")
    assert resolve_schedule(names, utc(2026, 12, 7, 1, 0)) == ("global", "week:2026-W50", "month:2026-12")
    new_year = utc(2027, 1, 1, 0, 30)
    assert resolve_schedule(names, new_year) == ("global", "week:2026-W53", "month:2027-01", "month:2026-12")


def test_a_past_period_asks_only_for_a_final_snapshot() -> None:
    end = utc(2026, 12, 7)
    final = int(end.timestamp() * 1000) + FINAL_GRACE_MS
    assert final_after_ms("week:2026-W49") == final
    assert final_after_ms("month:2026-12") == int(utc(2027, 1, 1).timestamp() * 1000) + FINAL_GRACE_MS
    for board in ("global", "challenge:x", "season:x", "week:2027-W53"):
        assert final_after_ms(board) is None

    def request(reason: str, at: datetime) -> RefreshRequest:
        return RefreshRequest("week:2026-W49", reason, at)

    at = int(utc(2026, 12, 20).timestamp() * 1000)
    assert wanted_since_ms("week:2026-W49", request("stale", utc(2026, 12, 20))) == final
    assert wanted_since_ms("week:2026-W49", request("manual", utc(2026, 12, 20))) == at
    during = utc(2026, 12, 3)
    assert wanted_since_ms("week:2026-W49", request("schedule", during)) == int(during.timestamp() * 1000)
    assert wanted_since_ms("global", RefreshRequest("global", "stale", utc(2026, 12, 20))) == at


def test_a_message_for_an_alias_names_the_period_of_its_request_time() -> None:
    body = json.dumps(
        {
            "type": "refresh",
            "board": "week:current",
            "reason": "stale",
            "requested_at": "2026-12-06T23:59:59.000Z",
        }
    )
    assert RefreshRequest.parse(body).board == "week:2026-W49"
    with pytest.raises(InvalidMessage, match="board"):
        RefreshRequest.parse(body.replace("week:current", "week:2026-W4"))


def test_only_challenges_and_seasons_are_absent_when_empty() -> None:
    assert empty_means_absent("challenge:x")
    assert empty_means_absent("season:x")
    assert not empty_means_absent("global")
    assert not empty_means_absent("week:2026-W49")
    assert not empty_means_absent("month:2026-12")


def test_time_board_keys_share_one_slot_tag() -> None:
    keys = KeySpace("lb")("week:2026-W49")
    assert keys.snapshot == "lb:week:2026-W49"
    assert keys.lock == "{lb:week:2026-W49}:lock"


WORKER = {"VALKEY_HOST": "localhost", "DATABASE_URL": "postgresql://db/x"}


def test_worker_settings_accept_period_patterns_and_aliases() -> None:
    settings = WorkerSettings.from_env(
        {
            **WORKER,
            "LEADERBOARD_BOARDS": "global,week:*,month:*,season:*",
            "LEADERBOARD_SCHEDULED_BOARDS": "global,week:current,month:current",
            "LEADERBOARD_KEEP_WEEKS": "4",
        }
    )
    assert settings.scheduled_boards == ("global", "week:current", "month:current")
    assert settings.boards.boards.keep_weeks == 4
    assert settings.boards.boards.keep_months == 12
    with pytest.raises(ConfigError, match="LEADERBOARD_SCHEDULED_BOARDS"):
        WorkerSettings.from_env({**WORKER, "LEADERBOARD_SCHEDULED_BOARDS": "global,week:current"})
    with pytest.raises(ConfigError, match="LEADERBOARD_KEEP_MONTHS"):
        WorkerSettings.from_env({**WORKER, "LEADERBOARD_KEEP_MONTHS": "-1"})


def test_the_documented_board_pattern_accepts_what_the_service_accepts() -> None:
    from tests.openapi import spec

    pattern = re.compile(spec()["components"]["parameters"]["board"]["schema"]["pattern"])
    accepted = ["global", "challenge:two-sum", "season:cup-1", "week:2026-W49", "week:current"]
    for name in [*accepted, "month:2026-12", "month:current"]:
        validate_board(name)
        assert pattern.fullmatch(name), name
    for name in ("week:2026", "month:current:x", "season:{x}", "year:2026"):
        assert not pattern.fullmatch(name), name
