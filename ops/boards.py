"""`leaderboard-ops boards show|publish`: the published set of known boards (`common.known_boards`).

    leaderboard-ops boards show [--board B]     when it was published, how many boards, whether B is in it
    leaderboard-ops boards publish [--wait S]   ask the worker to publish it now (a challenge created since
                                                the last schedule run becomes readable), optionally wait

`publish` sends the schedule's own message (`"board": "*"`, reason `manual`) to the refresh queue: the
worker, which holds the source's credentials, reads `leaderboard_known_boards()` and replaces the set
(and refreshes its scheduled boards, as the schedule does). So the operator needs only the queue and,
for `--wait` and `show`, Valkey.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common.boards import BoardSyntaxError, validate_board
from common.known_boards import checked_against_catalog
from common.messages import ALL_SCHEDULED, RefreshRequest
from common.queue import deduplication_id
from common.timeutil import iso_from_ms, now_ms
from ops.dlq import format_age
from ops.errors import OperationFailed, UsageError
from ops.shell import Sleep, sqs_admin

if TYPE_CHECKING:
    from common.known_store import KnownBoardsStore, Publication
    from ops.config import OpsConfig

__all__ = ["add_parser", "command"]

Echo = Callable[[str], None]


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The `boards` command and its actions, under the CLI's sub-commands."""
    boards = commands.add_parser("boards", parents=parents, help="the published set of known boards")
    actions = boards.add_subparsers(dest="boards_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=parents, help="when the set was published, and its size")
    show.add_argument("--board", help="also say whether this board is in the set, and what the API does")
    publish = actions.add_parser(
        "publish", parents=parents, help="ask the worker to publish the set now (through the refresh queue)"
    )
    publish.add_argument("--queue-url", metavar="URL", help="the refresh queue (default: $REFRESH_QUEUE_URL)")
    publish.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="then wait up to SECONDS for the new publication and print it (needs VALKEY_*)",
    )


async def command(args: argparse.Namespace, config: OpsConfig, sleep: Sleep, echo: Echo) -> int:
    if args.boards_command == "publish":
        return await _publish(args, config, sleep, echo)
    return await _show(args, config, echo)


def _describe(publication: Publication | None) -> str:
    if publication is None:
        return (
            "none (never published, or expired: the API asks the source about every board, as without "
            "the set; the worker publishes it on every schedule message)"
        )
    age = format_age((now_ms() - publication.published_at_ms) / 1000)
    expiry = "" if publication.ttl_ms is None else f", expires in {format_age(publication.ttl_ms / 1000)}"
    return (
        f"{publication.boards} board(s), published {iso_from_ms(publication.published_at_ms)} "
        f"(age {age}{expiry})"
    )


async def _with_store(config: OpsConfig, use: Callable[[KnownBoardsStore], Awaitable[Any]]) -> Any:
    from common.known_store import KnownBoardsStore
    from common.valkey import ValkeyConnection

    connection = ValkeyConnection(config.valkey())
    try:
        return await use(KnownBoardsStore(connection, config.key_prefix))
    finally:
        await connection.close()


async def _show(args: argparse.Namespace, config: OpsConfig, echo: Echo) -> int:
    board = None
    if args.board is not None:
        try:
            board = validate_board(args.board)
        except BoardSyntaxError as exc:
            raise UsageError(f"--board: {exc}") from None

    async def read(store: KnownBoardsStore) -> tuple[Publication | None, bool]:
        publication = await store.publication()
        return publication, board is not None and publication is not None and await store.contains(board)

    publication, member = await _with_store(config, read)
    echo(f"known boards  {_describe(publication)}")
    if board is not None:
        if not config.registry.allows(board):
            verdict = "not served (not among LEADERBOARD_BOARDS): 404"
        elif not checked_against_catalog(board, config.registry):
            verdict = "not checked against the set (global, a week or month, or listed by name)"
        elif publication is None:
            verdict = "no set to check against: a cold miss asks the worker"
        else:
            verdict = "in the set: served" if member else "NOT in the set: 404 unknown_board until published"
        echo(f"{board}  {verdict}")
    return 0


async def _publish(args: argparse.Namespace, config: OpsConfig, sleep: Sleep, echo: Echo) -> int:
    if args.wait is not None and not 0 <= args.wait < float("inf"):
        raise UsageError("--wait must be 0 or more")
    queue_url = args.queue_url or config.require_queue_url()
    before = None
    if args.wait is not None:
        before = await _with_store(config, lambda store: store.publication())
    body = RefreshRequest(ALL_SCHEDULED, "manual", datetime.now(UTC)).to_json()
    async with sqs_admin(config) as sqs:
        await sqs.send(queue_url, body, group_id="schedule", dedup_id=deduplication_id(body))
    echo(f"sent {body} to {queue_url}")
    if args.wait is None:
        return 0
    echo(f"waiting up to {args.wait:g} s for a publication newer than: {_describe(before)}")
    since = before.published_at_ms if before is not None else -1
    deadline = time.monotonic() + args.wait

    async def newer(store: KnownBoardsStore) -> Publication | None:
        while True:
            await sleep(0.5)
            publication = await store.publication()
            if publication is not None and publication.published_at_ms > since:
                return publication
            if time.monotonic() >= deadline:
                return None

    publication = await _with_store(config, newer)
    if publication is None:
        raise OperationFailed(
            f"no new publication within {args.wait:g} s: check the worker's logs "
            "(known_boards_publish_failed) and `leaderboard-ops dlq stats`"
        )
    echo(f"published: {_describe(publication)}")
    return 0
