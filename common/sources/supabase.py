"""The `leaderboard_page` and `leaderboard_changes` RPCs through supabase-py
(POST {SUPABASE_URL}/rest/v1/rpc/<function>).

- supabase-py's own retries are off: our tenacity policy owns retries and the deadline (two stacked
  retry layers multiply the wait; supabase-py's alone sleeps 1+2+4 s on a GET).
- We inject our own httpx.AsyncClient with explicit timeouts (supabase-py then ignores its own timeout
  setting). Tests inject an httpx transport that answers like PostgREST.
- The client is created once per container (creating one costs ~50 ms for its SSL context).
- The key comes from SUPABASE_KEY, or from Secrets Manager (SUPABASE_KEY_SECRET_ARN), fetched once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from common.errors import PositionLost, SourceError, SourceUnavailable
from common.runtime import Lazy
from common.sources.base import (
    BoardPeriod,
    ChangePage,
    Cursor,
    SourcePage,
    change_page_from_reply,
    known_boards_from_reply,
    one_attempt,
    page_from_rows,
    period_from_reply,
)

if TYPE_CHECKING:
    import httpx

    from common.config import SourceSettings

__all__ = ["SupabaseSource", "secret_from_secrets_manager"]

KeyProvider = Callable[[], Awaitable[str]]

# supabase-py's APIError carries PostgREST's error code but not the HTTP status; we need both to tell a
# transient failure (5xx, 429) from a permanent one. The response hook runs in the task that fetches
# the page, so a context variable keeps the status of each board's request apart when boards are
# refreshed concurrently.
_last_status: ContextVar[int] = ContextVar("supabase_last_status", default=0)


async def _remember_status(response: httpx.Response) -> None:
    _last_status.set(response.status_code)


async def secret_from_secrets_manager(arn: str) -> str:
    """Read a secret string once (plain text, or JSON with a `key` / `SUPABASE_KEY` field)."""
    import aioboto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        async with aioboto3.Session().client("secretsmanager") as client:
            reply = await client.get_secret_value(SecretId=arn)
    except (BotoCoreError, ClientError) as exc:
        raise SourceUnavailable(f"secrets manager: {type(exc).__name__}") from None
    secret = reply.get("SecretString") or ""
    if secret.startswith("{"):
        try:
            data = json.loads(secret)
        except ValueError:
            raise SourceError("the Supabase key secret is not valid JSON") from None
        secret = data.get("key") or data.get("SUPABASE_KEY") or ""
    if not secret:
        raise SourceError("the Supabase key secret is empty")
    return str(secret)


class SupabaseSource:
    name = "supabase"
    has_feed = True

    def __init__(
        self,
        url: str,
        key: KeyProvider,
        *,
        timeout_ms: int = 5000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._key = key
        self._timeout_ms = timeout_ms
        self._transport = transport
        self._client: Lazy[Any] = Lazy(self._create_client)
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(
        cls, settings: SourceSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> SupabaseSource:
        assert settings.supabase_url is not None
        static_key = settings.supabase_key
        arn = settings.supabase_key_secret_arn

        async def key() -> str:
            if static_key:
                return static_key
            assert arn is not None
            return await secret_from_secrets_manager(arn)

        return cls(settings.supabase_url, key, timeout_ms=settings.timeout_ms, transport=transport)

    async def _create_client(self) -> Any:
        """Once per container (boards refreshed concurrently share it), and only when first needed."""
        import httpx

        from common.secret_registry import register_secret
        from supabase import AsyncClientOptions, acreate_client

        key = await self._key()
        register_secret(key)
        seconds = self._timeout_ms / 1000
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(seconds, connect=min(seconds, 3.0)),
            transport=self._transport,
            event_hooks={"response": [_remember_status]},
        )
        return await acreate_client(
            self._url,
            key,
            options=AsyncClientOptions(
                httpx_client=self._http,
                postgrest_client_retry=False,
                auto_refresh_token=False,
                persist_session=False,
            ),
        )

    async def _rpc(self, function: str, params: dict[str, Any]) -> Any:
        """One attempt: a first client (and its key), the request and the whole reply share one
        deadline (httpx's own timeouts are per read, so a reply that trickles in would never time out)."""
        return await one_attempt("supabase", self._timeout_ms, self._call(function, params))

    async def _call(self, function: str, params: dict[str, Any]) -> Any:
        import httpx
        from postgrest.exceptions import APIError

        _last_status.set(0)
        try:
            client = await self._client.get()
            reply = await client.rpc(function, params).execute()
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(f"supabase: timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnavailable(f"supabase: {type(exc).__name__}") from None
        except APIError as exc:
            raise _classify(exc, _last_status.get()) from None
        except ValueError:
            raise SourceError("supabase: the reply is not valid JSON") from None
        return reply.data

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        params: dict[str, Any] = {"p_board": board, "p_limit": limit}
        if after is not None:
            params.update(
                p_after_score=after.score,
                p_after_time=after.last_solved_at,
                p_after_user=after.user_id,
                p_after_rank=after.rank,
                p_after_position=after.position,
            )
        # PostgREST caps the rows of a response (max rows): a short page is not the end, an empty one is.
        return page_from_rows(await self._rpc("leaderboard_page", params), limit)

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        params: dict[str, Any] = {"p_board": board, "p_after": after, "p_limit": limit}
        if with_total:
            params["p_with_total"] = True
        # One jsonb value, not rows: max rows does not cut it; the function itself returns <= 1000 changes.
        return change_page_from_reply(await self._rpc("leaderboard_changes", params))

    async def known_boards(self) -> frozenset[str]:
        # One jsonb array: max rows does not cut it, however many challenges there are.
        return known_boards_from_reply(await self._rpc("leaderboard_known_boards", {}))

    async def board_period(self, board: str) -> BoardPeriod:
        return period_from_reply(await self._rpc("leaderboard_board_period", {"p_board": board}))

    async def close(self) -> None:
        self._client.take()
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()


# SQLSTATE classes and PostgREST codes that mean "try again later": connection problems, resources,
# cancelled statements (statement_timeout), serialization failures and deadlocks.
_TRANSIENT_CODES = ("PGRST000", "PGRST001", "PGRST002", "PGRST003", "08", "53", "57", "40001", "40P01")


def _classify(exc: Any, status: int) -> Exception:
    """PostgREST errors: 5xx and 429 (or a transient code) are worth retrying; the rest are permanent."""
    code = str(getattr(exc, "code", "") or "")
    message = str(getattr(exc, "message", "") or "")[:200]
    what = f"supabase: HTTP {status or '?'} {code} {message}".rstrip()
    if code == "LB001":
        return PositionLost(what)
    if status >= 500 or status == 429 or code.startswith(_TRANSIENT_CODES):
        return SourceUnavailable(what)
    return SourceError(what)
