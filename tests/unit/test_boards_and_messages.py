"""Board names, key layout (one hash slot per board) and the refresh message."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from common.boards import BoardKeys, BoardRegistry, BoardSyntaxError, KeySpace, validate_board
from common.errors import InvalidMessage
from common.messages import RefreshRequest


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), as Valkey's cluster uses for hash slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16(key.encode()) % 16384


@pytest.mark.parametrize("board", ["global", "challenge:two-sum", "challenge:A1.b_c-9"])
def test_every_key_of_a_board_shares_the_snapshot_key_slot(board: str) -> None:
    keys = BoardKeys.for_board("active_leaderboard", board)
    expected = slot(keys.snapshot)
    helper_keys = [
        keys.entries,
        keys.meta,
        keys.top,
        keys.legacy_positions,
        keys.lock,
        keys.version,
        keys.refresh_marker,
        keys.absent,
        *keys.staging(7),
    ]
    assert {slot(k) for k in helper_keys} == {expected}


def test_the_global_board_keeps_the_seed_key_name() -> None:
    keys = BoardKeys.for_board("active_leaderboard", "global")
    assert keys.snapshot == "active_leaderboard"
    assert keys.lock == "{active_leaderboard}:lock"


def test_boards_spread_over_slots() -> None:
    slots = {slot(BoardKeys.for_board("active_leaderboard", f"challenge:c{i}").snapshot) for i in range(50)}
    assert len(slots) > 40


@pytest.mark.parametrize(
    "name",
    ["", "Global", "challenge:", "challenge:{x}", "challenge:a b", "challenge:" + "x" * 65, "team:x", "-"],
)
def test_malformed_board_names_are_rejected(name: str) -> None:
    with pytest.raises(BoardSyntaxError):
        validate_board(name)


def test_registry_allows_listed_boards_and_the_challenge_pattern() -> None:
    registry = BoardRegistry.parse("global, challenge:*")
    assert registry.allows("global")
    assert registry.allows("challenge:anything")
    strict = BoardRegistry.parse("global,challenge:two-sum")
    assert strict.allows("challenge:two-sum")
    assert not strict.allows("challenge:other")


def test_refresh_request_round_trips() -> None:
    request = RefreshRequest("challenge:two-sum", "stale", datetime(2026, 11, 29, 16, 0, tzinfo=UTC))
    body = request.to_json()
    assert json.loads(body) == {
        "type": "refresh",
        "board": "challenge:two-sum",
        "reason": "stale",
        "requested_at": "2026-11-29T16:00:00.000Z",
    }
    assert RefreshRequest.parse(body) == request


def test_the_schedule_message_is_valid() -> None:
    # What the EventBridge schedule sends (its input is fixed in template.yaml).
    body = '{"type":"refresh","board":"*","reason":"schedule","requested_at":"2026-11-29T16:00:00Z"}'
    assert RefreshRequest.parse(body).board == "*"


T0 = '"requested_at": "2026-01-01T00:00:00Z"'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Hello from SQS!", "not JSON"),
        ("", "empty"),
        ("[1, 2]", "not a JSON object"),
        (
            '{"type": "delete", "board": "global", "reason": "stale", ' + T0 + "}",
            "type",
        ),
        ('{"type": "refresh", "reason": "stale", ' + T0 + "}", "board"),
        (
            '{"type": "refresh", "board": 7, "reason": "stale", ' + T0 + "}",
            "board",
        ),
        (
            '{"type": "refresh", "board": "x{y}", "reason": "stale", ' + T0 + "}",
            "board",
        ),
        (
            '{"type": "refresh", "board": "global", "reason": "why", ' + T0 + "}",
            "reason",
        ),
        ('{"type": "refresh", "board": "global", "reason": "stale"}', "requested_at"),
        (
            '{"type": "refresh", "board": "global", "reason": "stale", "requested_at": "yesterday"}',
            "requested_at",
        ),
        (
            '{"type": "refresh", "board": "global", "reason": "stale", "requested_at": "2026-01-01T00:00"}',
            "offset",
        ),
        ('{"type": "refresh", "pad": "' + "x" * 5000 + '"}', "larger than"),
    ],
)
def test_invalid_messages_say_why(body: str, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        RefreshRequest.parse(body)


def test_metrics_name_listed_boards_and_fold_pattern_boards() -> None:
    registry = BoardRegistry.parse("global,challenge:two-sum,challenge:*")
    assert registry.metric_dimension("global") == "global"
    assert registry.metric_dimension("challenge:two-sum") == "challenge:two-sum"
    assert registry.metric_dimension("challenge:made-up-by-a-caller") == "challenge:*"


def test_the_key_cache_of_a_container_is_bounded() -> None:
    keys = KeySpace("lb")
    for i in range(KeySpace.MAX_CACHED + 100):
        assert keys(f"challenge:c{i}").snapshot == f"lb:challenge:c{i}"
    assert len(keys._boards) == KeySpace.MAX_CACHED
