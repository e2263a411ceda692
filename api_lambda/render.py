"""Rendering: the body and the headers of a successful read, from what the service returned.

The bodies are built by hand from the stored entry bytes (the scripts already serve each entry as
JSON; decoding and re-encoding them would cost more than the rest of a hit). The headers say how long
caches may keep the answer (`CachePolicy`, api_lambda/http.py), and an `If-None-Match` that names the
snapshot's version gets a 304. Errors are rendered by `api_lambda.http.error_response`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote

from api_lambda.http import JSON_TYPE, CachePolicy, Request, Response
from common.boards import GLOBAL

if TYPE_CHECKING:
    from api_lambda.service import BoardView

__all__ = ["Renderer", "etag_matches", "json_string"]


class Renderer:
    """Turns a BoardView into the Response of its route (a page, a user's window, some users)."""

    def __init__(self, caching: CachePolicy) -> None:
        self.caching = caching

    def respond(self, request: Request, board: str, view: BoardView) -> Response:
        return self.response(request, view, self.body(request, board, view))

    def body(self, request: Request, board: str, view: BoardView) -> str:
        h = view.header
        if view.missing is not None:  # GET /leaderboard/users
            return (
                f'{{"board":{json_string(board)},"entries":[{b",".join(view.entries).decode()}],'
                f'"missing":{json.dumps(view.missing, ensure_ascii=False, separators=(",", ":"))},'
                f'"version":{h.version},"generated_at":"{h.generated_at}"}}'
            )
        entries = b",".join(view.entries).decode()
        common = (
            f'"count":{len(view.entries)},"offset":{view.offset},"total":{h.total},'
            f'"generated_at":"{h.generated_at}","version":{h.version}}}'
        )
        board_json = json_string(board)
        if view.user_position is not None:
            user = view.entries[view.user_position - view.offset].decode()
            return f'{{"board":{board_json},"user":{user},"entries":[{entries}],{common}'
        end = view.offset + len(view.entries)
        if end < h.size and view.entries:
            # Built by hand: urlencode costs more than the rest of the response on the hot path.
            board_param = "" if board == GLOBAL else f"board={quote(board, safe='')}&"
            path = json_string(request.raw_path)[1:-1]
            next_link = f'"{path}?{board_param}count={len(view.entries)}&offset={end}"'
        else:
            next_link = "null"
        return f'{{"board":{board_json},"entries":[{entries}],"next":{next_link},{common}'

    def response(self, request: Request, view: BoardView, body: str) -> Response:
        """`body` with the caching headers of `view`, or a 304 when the client has this version."""
        etag = f'"{view.header.version}"'
        # No `Age`: this answer was made now; the snapshot's age has its own header (CachePolicy says why).
        headers = {
            "Content-Type": JSON_TYPE,
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
        if etag_matches(request.if_none_match, etag):
            del headers["Content-Type"]  # a 304 has no content (RFC 9110 15.4.5): only what caches update
            return Response(304, "", headers)
        return Response(200, body, headers)


@lru_cache(maxsize=256)
def json_string(text: str) -> str:
    """`text` as a JSON string literal; the same few boards and paths come back on every request."""
    return json.dumps(text, ensure_ascii=False)


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == etag for candidate in header.split(","))
