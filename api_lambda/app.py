"""The API function's container: settings, clients and the service, built once and reused, and the
Lambda entry that turns an event into a request and any failure into the documented error body.

What a request means is api_lambda/routes.py's (routing, validation, the service call, domain errors);
what the answer looks like is api_lambda/render.py's (body, caching headers, ETag).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from api_lambda.http import (
    ApiError,
    CachePolicy,
    Cors,
    Request,
    Response,
    error_response,
    event_header,
    parse_event,
)
from api_lambda.render import Renderer
from api_lambda.routes import Routes
from api_lambda.service import LeaderboardService
from common.boards import KeySpace
from common.config import ApiSettings, ConfigError
from common.known_reader import KnownBoardsReader
from common.logs import bind_invocation, get_logger
from common.metrics import Metrics
from common.queue import BlockingRefreshQueue, SqsRefreshQueue
from common.snapshot_reader import SnapshotReader
from common.valkey_sync import SyncValkeyConnection

if TYPE_CHECKING:
    from common.queue import RefreshQueue

__all__ = ["ApiApp", "MisconfiguredApp", "build_app"]

log = get_logger(__name__)

ANSWER_MARGIN_MS = 300  # what an answer needs after the wait: a last read, the response, the log


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
        caching = CachePolicy(
            fresh_seconds=settings.boards.fresh_seconds,
            stale_max_age=settings.stale_max_age_seconds,
            stale_while_revalidate=settings.stale_while_revalidate_seconds,
            stale_if_error=settings.stale_if_error_seconds,
            max_stale_seconds=settings.max_stale_seconds,
        )
        self.cors = Cors(settings.cors_origins)
        self.render = Renderer(caching)
        self.routes = Routes(settings, self.service, metrics, self.render, self.cors)

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

    def handle(self, request: Request, deadline: float | None = None) -> Response:
        """A parsed request's answer (errors raise ApiError); `deadline` as in `invoke`."""
        return self.routes.handle(request, deadline)


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
