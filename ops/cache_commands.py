"""`leaderboard-ops refresh` and `cache show`: ask for a refresh now, look at what Valkey holds."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from common.messages import ALL_SCHEDULED, RefreshRequest
from common.queue import deduplication_id
from ops.config import OpsConfig
from ops.errors import OperationFailed, UsageError

if TYPE_CHECKING:
    from ops.sqs import SqsAdmin

from ops.shell import Sleep, board_of, echo, sqs_admin

__all__ = ["cache_command", "refresh_command"]


async def refresh_command(args: argparse.Namespace, config: OpsConfig, sleep: Sleep) -> int:

    board = board_of(config, args.board, allow_all=True)
    if args.wait is not None and board == ALL_SCHEDULED:
        raise UsageError("--wait needs one board: '*' names the worker's scheduled boards")
    queue_url = config.require_queue_url()
    if args.wait is None:
        async with sqs_admin(config) as sqs:
            await _send_refresh(sqs, queue_url, board)
        return 0
    settings = config.valkey()
    from common.boards import KeySpace
    from common.cache import LeaderboardCache
    from common.valkey import ValkeyConnection
    from ops.cache import wait_for_new_version

    connection = ValkeyConnection(settings)
    try:
        cache = LeaderboardCache(connection, KeySpace(config.key_prefix))
        before = await cache.read_header(board)
        async with sqs_admin(config) as sqs:
            await _send_refresh(sqs, queue_url, board)
        version = before.version if before else None
        echo(f"waiting up to {args.wait:g} s for a snapshot newer than version {version or 'none'}")
        header = await wait_for_new_version(cache, board, version, within=args.wait, sleep=sleep)
    finally:
        await connection.close()
    if header is None:
        raise OperationFailed(
            f"no new snapshot of {board} within {args.wait:g} s (still version {version or 'none'}): "
            "check the worker's logs and `leaderboard-ops dlq stats`"
        )
    echo(
        f"new snapshot: version {header.version}, generated_at {header.generated_at}, "
        f"{header.size} entries (total {header.total})"
    )
    return 0


async def _send_refresh(sqs: SqsAdmin, queue_url: str, board: str) -> None:
    body = RefreshRequest(board=board, reason="manual", requested_at=datetime.now(UTC)).to_json()
    await sqs.send(queue_url, body, group_id=board, dedup_id=deduplication_id(body))
    echo(f"sent {body} to {queue_url}")


async def cache_command(args: argparse.Namespace, config: OpsConfig) -> int:
    board = board_of(config, args.board)
    settings = config.valkey()
    from common.boards import KeySpace
    from common.cache import LeaderboardCache
    from common.valkey import ValkeyConnection
    from ops.cache import inspect, render

    connection = ValkeyConnection(settings)
    try:
        state = await inspect(connection, LeaderboardCache(connection, KeySpace(config.key_prefix)), board)
    finally:
        await connection.close()
    for line in render(state, fresh_seconds=args.fresh_seconds or config.fresh_seconds):
        echo(line)
    return 0
