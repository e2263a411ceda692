"""An upstream leaderboard API over HTTP (the seed's LEADERBOARD_API_URL), read with httpx.

Contract (documented in README, "Upstream HTTP source"):

    GET {LEADERBOARD_API_URL}?board=<board>&limit=<n>&offset=<m>
    Authorization: Bearer <LEADERBOARD_API_TOKEN>          (only when the token is set)
    200 {"total": <players on the board>,
         "entries": [{"rank": 1, "user_id": "...", "username": "...", "score": 10, "solved": 1,
                      "last_solved_at": "2026-11-29T16:00:00Z" | null}, ...]}   in rank order
    404 → the board does not exist.

Every reply is validated (types, ranks in order); anything else is a SourceError. 5xx, 429, timeouts
and connection errors are SourceUnavailable, retried by the worker's policy.

No change feed: such an upstream says nothing about what changed, so every refresh of an HTTP-sourced
board reads it whole (pages by offset) and `position` stays null in the snapshot header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.errors import SourceError, SourceUnavailable
from common.sources.base import ChangePage, Cursor, SourcePage, entry_from_row, one_attempt

if TYPE_CHECKING:
    import httpx

    from common.config import SourceSettings

__all__ = ["HttpSource"]


class HttpSource:
    name = "http"
    has_feed = False

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_ms: int = 5000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._timeout_ms = timeout_ms
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(
        cls, settings: SourceSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> HttpSource:
        assert settings.api_url is not None
        return cls(
            settings.api_url, token=settings.api_token, timeout_ms=settings.timeout_ms, transport=transport
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            seconds = self._timeout_ms / 1000
            headers = {"Accept": "application/json", "User-Agent": "leaderboard-worker"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(seconds, connect=min(seconds, 3.0)),
                headers=headers,
                transport=self._transport,
            )
        return self._http

    async def fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        """One attempt: connecting, sending and reading the whole reply share one deadline (httpx's own
        timeouts are per read, so a reply that trickles in would never time out)."""
        return await one_attempt("upstream API", self._timeout_ms, self._fetch_page(board, limit, after))

    async def _fetch_page(self, board: str, limit: int, after: Cursor | None) -> SourcePage:
        import httpx

        offset = after.position if after else 0
        try:
            response = await self._client().get(
                self._url, params={"board": board, "limit": limit, "offset": offset}
            )
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(f"upstream API: timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnavailable(f"upstream API: {type(exc).__name__}") from None
        status = response.status_code
        if status == 404 and after is None:
            return SourcePage(entries=[], total=0, cursor=None)
        if status >= 500 or status == 429:
            raise SourceUnavailable(f"upstream API: HTTP {status}")
        if status != 200:
            raise SourceError(f"upstream API: HTTP {status}")
        try:
            body: Any = response.json()
        except ValueError:
            raise SourceError("upstream API: the reply is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
            raise SourceError("upstream API: the reply must be an object with an 'entries' array")
        total = body.get("total")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise SourceError("upstream API: 'total' must be a non-negative integer")
        entries = [entry_from_row(row) for row in body["entries"]]
        previous = after.rank if after else 1
        for position, entry in enumerate(entries, start=offset + 1):
            if entry.rank < previous or entry.rank > position:
                raise SourceError("upstream API: ranks are not in competition-rank order")
            previous = entry.rank
        cursor = None
        if entries:
            last = entries[-1]
            cursor = Cursor(last.score, last.last_solved_at, last.user_id, last.rank, offset + len(entries))
        return SourcePage(entries=entries, total=total if after is None else None, cursor=cursor)

    async def fetch_changes(
        self, board: str, after: int | None, limit: int, *, with_total: bool = False
    ) -> ChangePage:
        raise SourceError("the upstream HTTP source has no change feed")

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
