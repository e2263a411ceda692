"""The API function's container: settings, clients and the service, built once and reused, plus the
routes that turn a parsed request into one service call and its response."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from api_lambda.http import (
    ALLOW,
    ApiError,
    CachePolicy,
    Cors,
    Request,
    Response,
    bad_request,
    error_response,
    event_header,
    not_found,
    parse_event,
)
from api_lambda.service import (
    BoardView,
    LeaderboardService,
    SnapshotTooOld,
    UnknownBoard,
    UserNotRanked,
    WarmingUp,
)
from common.boards import GLOBAL, BoardSyntaxError, KeySpace, validate_board
from common.config import ApiSettings, ConfigError
from common.errors import CacheUnavailable
from common.known_reader import KnownBoardsReader
from common.logs import bind_invocation, get_logger
from common.metrics import Metrics
from common.models import USER_ID
from common.queue import BlockingRefreshQueue, SqsRefreshQueue
from common.snapshot_reader import SnapshotReader
from common.valkey_sync import SyncValkeyConnection

if TYPE_CHECKING:
    from common.queue import RefreshQueue

__all__ = ["ApiApp", "MisconfiguredApp", "build_app"]

log = get_logger(__name__)

_USER_PREFIX = "/leaderboard/users/"
# A UUID in any case: RFC 9562 makes them case-insensitive, and PostgreSQL stores and prints them in
# lower case, so a requested UUID is looked up in that canonical form. Other ids are compared exactly.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ANSWER_MARGIN_MS = 300  # what an answer needs after the wait: a last read, the response, the log
_COUNT_METRIC = {"HIT": "Hit", "STALE": "Stale", "MISS": "Miss"}
MAX_OFFSET = 10_000_000


def _one(request: Request, name: str, code: str, what: str) -> str | None:
    values = request.query.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise bad_request(code, f"{name} must be given once")
    return values[0]


def _integer(request: Request, name: str, code: str, default: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    what = f"{name} must be an integer {low}..{high}"
    raw = _one(request, name, code, what)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() alone accepts "٣" and "³", which int() then reads as 3.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise bad_request(code, what)
    return int(raw)


class ApiApp:
    def __init__(
        self,
        settings: ApiSettings,
        connection: SyncValkeyConnection,
        cache: SnapshotReader,
        queue: RefreshQueue,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.connection = connection
        self.cache = cache
        self.queue = queue
        self.metrics = metrics
        known = KnownBoardsReader(connection, settings.boards.key)  # common.known_boards explains
        self.service = LeaderboardService(settings, cache, BlockingRefreshQueue(queue), metrics, known=known)
        self.caching = CachePolicy(
            fresh_seconds=settings.boards.fresh_seconds,
            stale_max_age=settings.stale_max_age_seconds,
            stale_while_revalidate=settings.stale_while_revalidate_seconds,
            stale_if_error=settings.stale_if_error_seconds,
            max_stale_seconds=settings.max_stale_seconds,
        )
        self.cors = Cors(settings.cors_origins)

    # ---- the Lambda entry (sync) ----------------------------------------------------------------

    def invoke(self, event: Any, context: Any, cold_start: bool) -> dict[str, Any]:
        bind_invocation(
            service=self.settings.service,
            context=context,
            cold_start=cold_start,
            correlation_id=_request_id(event),
        )
        # From the raw event: a HEAD request that fails to parse must still get no body.
        head = _raw_method(event) == "HEAD"
        # When this invocation must have answered, from this invocation's context only (none: no bound).
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        deadline = time.monotonic() + (remaining() - ANSWER_MARGIN_MS) / 1000 if callable(remaining) else None
        try:
            request = parse_event(event)
            response = self.handle(request, deadline)
        except ApiError as error:
            log.warning("request_rejected", status=error.status, code=error.code, detail=error.message)
            response = error_response(error)
        except Exception:
            log.exception("request_failed")
            response = error_response(ApiError(500, "internal_error", "internal error"))
        finally:
            self.metrics.discard()  # counted before the board was known: nothing may reach the next one
        return self.cors.apply(response, event_header(event, "origin")).to_event(head=head)

    async def close(self) -> None:
        """Close the container's clients (tests and the local stack; Lambda just freezes the container)."""
        await self.queue.close()
        self.connection.close()

    # ---- routes ---------------------------------------------------------------------------------

    def handle(self, request: Request, deadline: float | None = None) -> Response:
        path = request.path
        user_id = path[len(_USER_PREFIX) :] if path.startswith(_USER_PREFIX) else ""
        if path == "/leaderboard":
            route = self._page
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
        return self._respond(request, view, self._body(request, board, view))

    def _board(self, request: Request) -> str:
        raw = _one(request, "board", "invalid_board", "board names a leaderboard")
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

    # ---- responses ------------------------------------------------------------------------------

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

    def _body(self, request: Request, board: str, view: BoardView) -> str:
        h = view.header
        entries = b",".join(view.entries).decode()
        common = (
            f'"count":{len(view.entries)},"offset":{view.offset},"total":{h.total},'
            f'"generated_at":"{h.generated_at}","version":{h.version}}}'
        )
        board_json = _json_string(board)
        if view.user_position is not None:
            user = view.entries[view.user_position - view.offset].decode()
            return f'{{"board":{board_json},"user":{user},"entries":[{entries}],{common}'
        end = view.offset + len(view.entries)
        if end < h.size and view.entries:
            # Built by hand: urlencode costs more than the rest of the response on the hot path.
            board_param = "" if board == GLOBAL else f"board={quote(board, safe='')}&"
            path = _json_string(request.raw_path)[1:-1]
            next_link = f'"{path}?{board_param}count={len(view.entries)}&offset={end}"'
        else:
            next_link = "null"
        return f'{{"board":{board_json},"entries":[{entries}],"next":{next_link},{common}'

    def _respond(self, request: Request, view: BoardView, body: str) -> Response:
        etag = f'"{view.header.version}"'
        # No `Age`: this answer was made now; the snapshot's age has its own header (CachePolicy says why).
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": (
                self.caching.cache_control_on_error(view.age_seconds)
                if view.served_on_error
                else self.caching.cache_control_closed()
                if view.header.closed
                else self.caching.cache_control(view.age_seconds)
            ),
            "ETag": etag,
            "X-Snapshot-Age": str(int(view.age_seconds)),
            "X-Cache": view.cache_status,
        }
        if _etag_matches(request.if_none_match, etag):
            del headers["Content-Type"]  # a 304 has no content (RFC 9110 15.4.5): only what caches update
            return Response(304, "", headers)
        return Response(200, body, headers)


@lru_cache(maxsize=256)
def _json_string(text: str) -> str:
    """`text` as a JSON string literal; the same few boards and paths come back on every request."""
    return json.dumps(text, ensure_ascii=False)


def _raw_method(event: Any) -> str | None:
    context = event.get("requestContext") if isinstance(event, dict) else None
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    if method is None and isinstance(event, dict):
        method = event.get("httpMethod")
    return method.upper() if isinstance(method, str) else None


def _request_id(event: Any) -> str | None:
    context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return request_id if isinstance(request_id, str) else None


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == etag for candidate in header.split(","))


class MisconfiguredApp:
    """Stands in when the configuration is invalid: every request gets a 500, the log names the variables."""

    def __init__(self, error: ConfigError) -> None:
        self.error = error

    def invoke(self, event: Any, context: Any, cold_start: bool) -> dict[str, Any]:
        bind_invocation(service="leaderboard-api", context=context, cold_start=cold_start)
        log.error("configuration_invalid", problems=self.error.problems)
        return error_response(
            ApiError(500, "misconfigured", "the service is misconfigured; the operator has been told")
        ).to_event(head=_raw_method(event) == "HEAD")


def build_app(environ: Mapping[str, str] | None = None) -> ApiApp | MisconfiguredApp:
    """Read and validate the environment once per container; nothing connects until the first request."""
    try:
        settings = ApiSettings.from_env(environ)
    except ConfigError as error:
        log.error("configuration_invalid", problems=error.problems)
        return MisconfiguredApp(error)
    connection = SyncValkeyConnection(settings.valkey)
    cache = SnapshotReader(connection, KeySpace(settings.boards.key))
    metrics = Metrics(settings.metrics_namespace, settings.service)
    return ApiApp(settings, connection, cache, SqsRefreshQueue(settings.queue_url), metrics)
