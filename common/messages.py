"""The refresh request: the one message the API, the schedule, the ops CLI and the worker exchange.

    {"type": "refresh", "board": "global", "reason": "stale", "requested_at": "2026-11-29T16:00:00.000Z"}

`board` is a board name, or `"*"` for "every board in the worker's LEADERBOARD_SCHEDULED_BOARDS" (what the
EventBridge schedule sends, since its message is fixed in the template). An alias (`week:current`) means
the period that contained `requested_at`; parsing turns it into that concrete name. Unknown extra fields
are ignored so that newer senders can add some without breaking older workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from common.boards import ALIASES, BoardSyntaxError, validate_board
from common.errors import InvalidMessage
from common.timeutil import iso_from_datetime, parse_iso

__all__ = ["ALL_SCHEDULED", "MAX_BODY_BYTES", "REASONS", "RefreshRequest"]

REASONS = ("stale", "miss", "schedule", "manual", "replay")
ALL_SCHEDULED = "*"
MAX_BODY_BYTES = 4096


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    board: str
    reason: str
    requested_at: datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": "refresh",
                "board": self.board,
                "reason": self.reason,
                "requested_at": iso_from_datetime(self.requested_at),
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, body: str | bytes | None) -> RefreshRequest:
        """Validate a message body; InvalidMessage says exactly what is wrong (it ends up in the logs)."""
        if body is None or len(body) == 0:
            raise InvalidMessage("empty body")
        if len(body) > MAX_BODY_BYTES:
            raise InvalidMessage(f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidMessage("body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidMessage("body is not a JSON object")
        if data.get("type") != "refresh":
            raise InvalidMessage("type is not 'refresh'")
        board = data.get("board")
        if not isinstance(board, str):
            raise InvalidMessage("board is missing or not a string")
        if board != ALL_SCHEDULED:
            try:
                validate_board(board)
            except BoardSyntaxError as exc:
                raise InvalidMessage(str(exc)) from None
        reason = data.get("reason")
        if reason not in REASONS:
            raise InvalidMessage("reason must be one of " + ", ".join(REASONS))
        requested_at = data.get("requested_at")
        if not isinstance(requested_at, str):
            raise InvalidMessage("requested_at is missing or not a string")
        try:
            when = parse_iso(requested_at)
        except ValueError:
            raise InvalidMessage("requested_at is not an ISO-8601 timestamp with a UTC offset") from None
        return cls(board=_concrete(board, when), reason=str(reason), requested_at=when)


def _concrete(board: str, requested_at: datetime) -> str:
    if board not in ALIASES:
        return board
    try:
        return validate_board(board, requested_at)
    except BoardSyntaxError as exc:
        raise InvalidMessage(str(exc)) from None
