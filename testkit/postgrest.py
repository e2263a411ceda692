"""An httpx transport that answers supabase-py the way PostgREST does (tests and benchmarks).

`rpc/leaderboard_page`, `rpc/leaderboard_changes` and `rpc/leaderboard_known_boards` are executed on the
real PostgreSQL (so the SQL under test is the SQL that ships). Rows come back serialized as PostgREST
serializes them (uuid and timestamptz as strings; `max_rows` cuts row sets as Supabase's "max rows"
does); a function returning one jsonb value comes back as that JSON value, uncut. SQL errors come back as
PostgREST reports them: HTTP 400 with the SQLSTATE as `code` (so LB001, "position too old", reaches the
client as code LB001). Faults can be scripted per request: HTTP errors with PostgREST-shaped bodies, HTML
error pages, timeouts, refused connections, malformed JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx

ARGS = [
    "p_board",
    "p_limit",
    "p_after_score",
    "p_after_time",
    "p_after_user",
    "p_after_rank",
    "p_after_position",
]
# Every argument arrives as JSON; bind them as text and let PostgreSQL cast, as PostgREST does.
SQL = (
    "select * from public.leaderboard_page($1::text, $2::text::int, $3::text::bigint, $4::text::timestamptz, "
    "$5::text::uuid, $6::text::bigint, coalesce($7::text::bigint, 0))"
)
CHANGES_ARGS = ["p_board", "p_after", "p_limit", "p_with_total"]
CHANGES_SQL = (
    "select public.leaderboard_changes($1::text, $2::text::bigint, coalesce($3::text::int, 1000), "
    "coalesce($4::text::boolean, false))::text"
)
KNOWN_SQL = "select public.leaderboard_known_boards()::text"
PERIOD_SQL = "select public.leaderboard_board_period($1::text)::text"
FUNCTIONS = {
    "leaderboard_page": (ARGS, SQL),
    "leaderboard_changes": (CHANGES_ARGS, CHANGES_SQL),
    "leaderboard_known_boards": ([], KNOWN_SQL),
    "leaderboard_board_period": (["p_board"], PERIOD_SQL),
}
# One jsonb value each, never cut by max rows.
JSON_VALUED = ("leaderboard_changes", "leaderboard_known_boards", "leaderboard_board_period")

Fault = Callable[[httpx.Request], httpx.Response]


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _text(value: Any) -> str:
    """A JSON argument as PostgREST hands it to PostgreSQL: booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def postgrest_error(status: int, code: str, message: str) -> Fault:
    def reply(request: httpx.Request) -> httpx.Response:
        body = {"code": code, "details": None, "hint": None, "message": message}
        return httpx.Response(status, json=body, request=request)

    return reply


def html_error(status: int) -> Fault:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="<html><body>Bad gateway</body></html>", request=request)

    return reply


def malformed_json(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b'[{"rank": 1, "user_', headers={"content-type": "application/json"})


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def connect_refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


@dataclass
class PostgrestEmulator:
    dsn: str
    # Consumed one per request; None = answer normally.
    faults: list[Fault | None] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    # Keep one connection (as PostgREST's pool does) instead of opening one per request.
    pooled: bool = False
    # PostgREST's max-rows (Supabase's "max rows" setting): at most this many rows per response.
    max_rows: int | None = None
    _conn: Any = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            if fault is not None:
                return fault(request)
        function = request.url.path.rpartition("/rest/v1/rpc/")[2]
        if request.method != "POST" or function not in FUNCTIONS:
            return postgrest_error(404, "PGRST202", "Could not find the function")(request)
        names, sql = FUNCTIONS[function]
        params = json.loads(request.content or b"{}")
        if not isinstance(params, dict) or set(params) - set(names):
            return postgrest_error(404, "PGRST202", "No function matches these arguments")(request)
        args = [None if params.get(a) is None else _text(params[a]) for a in names]
        conn = self._conn or await asyncpg.connect(self.dsn)
        try:
            if function in JSON_VALUED:
                value = await conn.fetchval(sql, *args)
                return httpx.Response(
                    200, content=value.encode(), headers={"content-type": "application/json"}, request=request
                )
            rows = await conn.fetch(sql, *args)
        except asyncpg.PostgresError as exc:
            return postgrest_error(400, exc.sqlstate or "XX000", str(exc))(request)
        finally:
            if self.pooled:
                self._conn = conn
            else:
                await conn.close()
        if self.max_rows is not None:
            rows = rows[: self.max_rows]
        body = [
            {k: (v if isinstance(v, int | type(None)) else _json(v)) for k, v in dict(r).items()}
            for r in rows
        ]
        return httpx.Response(200, json=body, request=request)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
