"""Routing: which resource a request names and its parameters, validated; then one service call, and
the domain outcomes mapped to HTTP errors. The answer's body and headers are api_lambda/render.py's.

Every bad parameter is a 400 that names it (never a traceback); an unknown path or board is a 404.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from api_lambda.http import ALLOW, ApiError, Request, Response, bad_request, not_found
from api_lambda.service import SnapshotTooOld, UnknownBoard, UserNotRanked, WarmingUp
from common.boards import GLOBAL, BoardSyntaxError, validate_board
from common.errors import CacheUnavailable
from common.logs import get_logger
from common.models import USER_ID

if TYPE_CHECKING:
    from api_lambda.http import Cors
    from api_lambda.render import Renderer
    from api_lambda.service import BoardView, LeaderboardService
    from common.config import ApiSettings
    from common.metrics import Metrics

__all__ = ["MAX_IDS", "MAX_IDS_LENGTH", "MAX_OFFSET", "Routes", "user_ids"]

log = get_logger(__name__)

_USERS = "/leaderboard/users"
_USER_PREFIX = _USERS + "/"
MAX_IDS = 100  # ids in one /leaderboard/users request
# ...and their characters, commas included: 100 UUIDs. Bounded here (not only by the query string's
# 4096) so that openapi.yaml can state the bound exactly, and 100 UUIDs still fit in a query string.
MAX_IDS_LENGTH = 3700
# A UUID in any case: RFC 9562 makes them case-insensitive, and PostgreSQL stores and prints them in
# lower case, so a requested UUID is looked up in that canonical form. Other ids are compared exactly.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A list of UUIDs only (the usual friends list): checked by one match, folded to lower case at once.
_UUID_LIST = re.compile(rf"{_UUID.pattern}(?:,{_UUID.pattern})*")
_COUNT_METRIC = {"HIT": "Hit", "STALE": "Stale", "MISS": "Miss"}
MAX_OFFSET = 10_000_000

Route = Callable[[Request, str, "float | None"], "BoardView"]


def _one(request: Request, name: str, code: str) -> str | None:
    values = request.query.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise bad_request(code, f"{name} must be given once")
    return values[0]


def _integer(request: Request, name: str, code: str, default: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    raw = _one(request, name, code)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() alone accepts "٣" and "³", which int() then reads as 3.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise bad_request(code, f"{name} must be an integer {low}..{high}")
    return int(raw)


def _canonical_id(user_id: str) -> str:
    """A requested id as it is looked up (a UUID in lower case), or a 400 naming it."""
    if not USER_ID.fullmatch(user_id):
        shown = json.dumps(user_id if len(user_id) <= 130 else user_id[:128] + "…", ensure_ascii=False)
        raise bad_request("invalid_user_id", f"{shown} is not a user id (1 to 128 visible characters)")
    return user_id.lower() if _UUID.fullmatch(user_id) else user_id


def user_ids(raw: str | None) -> tuple[str, ...]:
    """The `ids` of GET /leaderboard/users: 1..MAX_IDS comma-separated ids, duplicates folded (the first
    one's place is kept). The bound counts the ids as given, so that openapi.yaml can state it exactly.
    An id that contains a comma cannot be named here (GET /leaderboard/users/{id} can)."""
    if not raw:
        raise bad_request("invalid_ids", f"ids must list 1 to {MAX_IDS} user ids, separated by commas")
    if len(raw) > MAX_IDS_LENGTH:
        raise bad_request("invalid_ids", f"ids is longer than {MAX_IDS_LENGTH} characters")
    parts = raw.split(",")
    if len(parts) > MAX_IDS:
        raise bad_request("invalid_ids", f"ids lists {len(parts)} user ids; at most {MAX_IDS}")
    if _UUID_LIST.fullmatch(raw):
        return tuple(dict.fromkeys(raw.lower().split(",")))
    return tuple(dict.fromkeys(_canonical_id(part) for part in parts))


@dataclass(frozen=True, slots=True)
class Routes:
    settings: ApiSettings
    service: LeaderboardService
    metrics: Metrics
    render: Renderer
    cors: Cors

    def handle(self, request: Request, deadline: float | None = None) -> Response:
        path = request.path
        user_id = path[len(_USER_PREFIX) :] if path.startswith(_USER_PREFIX) else ""
        route: Route
        if path == "/leaderboard":
            route = self._page
        elif path == _USERS:
            route = self._users
        elif user_id and "/" not in user_id:  # its syntax is checked in _user: a bad id is a 400
            route = self._user
        else:
            raise not_found("not_found", "no such resource; try GET /leaderboard")
        if request.method == "OPTIONS":
            return self.cors.options(request)
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "method_not_allowed", "only GET and HEAD are allowed", {"Allow": ALLOW})
        board = self._board(request)
        dimension = self.settings.boards.boards.metric_dimension(board)
        try:
            view = route(request, board, deadline)
            self.metrics.served(dimension, _COUNT_METRIC[view.cache_status], view.age_seconds)
        except (CacheUnavailable, WarmingUp, SnapshotTooOld, UnknownBoard, UserNotRanked) as exc:
            raise self._domain_error(exc, board) from None
        finally:
            # Whatever the outcome (a late 400 included), what this invocation counted is written now,
            # under this board: never in the next invocation's line.
            self.metrics.flush(dimension)
        return self.render.respond(request, board, view)

    def _board(self, request: Request) -> str:
        raw = _one(request, "board", "invalid_board")
        if raw is None:
            return GLOBAL
        try:
            board = validate_board(raw)
        except BoardSyntaxError as exc:
            raise bad_request("invalid_board", str(exc)) from None
        if not self.settings.boards.boards.allows(board):
            raise not_found("unknown_board", "this service has no such leaderboard")
        return board

    def _page(self, request: Request, board: str, deadline: float | None) -> BoardView:
        s = self.settings
        count = _integer(request, "count", "invalid_count", s.default_count, (1, s.max_count))
        # Past the last stored entry the page is empty (entries [], next null), not an error: the
        # contract (openapi.yaml) can state that rule, and it does not depend on the board's size.
        offset = _integer(request, "offset", "invalid_offset", 0, (0, MAX_OFFSET))
        return self.service.page(board, offset, count, deadline=deadline)

    def _user(self, request: Request, board: str, deadline: float | None) -> BoardView:
        user_id = request.path[len(_USER_PREFIX) :]
        if not USER_ID.fullmatch(user_id):
            raise bad_request("invalid_user_id", "user_id must be 1 to 128 visible characters")
        if _UUID.fullmatch(user_id):
            user_id = user_id.lower()
        around = _integer(request, "around", "invalid_around", 0, (0, self.settings.max_around))
        return self.service.user(board, user_id, around, deadline=deadline)

    def _users(self, request: Request, board: str, deadline: float | None) -> BoardView:
        return self.service.users(board, user_ids(_one(request, "ids", "invalid_ids")), deadline=deadline)

    def _domain_error(self, exc: Exception, board: str) -> ApiError:
        """The one mapping from domain outcomes to HTTP errors."""
        # ValkeyAuthError is a CacheUnavailable too: one metric name per documented error code.
        self.metrics.add("CacheUnavailable" if isinstance(exc, CacheUnavailable) else type(exc).__name__)
        if isinstance(exc, CacheUnavailable):
            log.error("cache_unavailable", board=board, error=str(exc))
            return ApiError(
                503,
                "cache_unavailable",
                "the leaderboard cache is unavailable; retry shortly",
                {"Retry-After": "1"},
            )
        if isinstance(exc, WarmingUp):
            return ApiError(
                503, "warming_up", "the leaderboard is being computed; retry shortly", {"Retry-After": "2"}
            )
        if isinstance(exc, SnapshotTooOld):
            return ApiError(
                503,
                "snapshot_too_old",
                "the leaderboard is being refreshed; retry shortly",
                {"Retry-After": "5"},
            )
        if isinstance(exc, UnknownBoard):
            return not_found("unknown_board", "this service has no such leaderboard")
        return not_found("user_not_ranked", "this user is not on the leaderboard")
