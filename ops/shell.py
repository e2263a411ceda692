"""What the CLI's commands share: their output, their pause, the SQS client and the --board flag."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from common.boards import BoardSyntaxError, validate_board
from common.messages import ALL_SCHEDULED
from ops.config import OpsConfig
from ops.errors import UsageError

if TYPE_CHECKING:
    from ops.sqs import SqsAdmin

__all__ = ["Sleep", "board_of", "echo", "sqs_admin"]

Sleep = Callable[[float], Awaitable[None]]


def echo(line: str) -> None:
    print(line, flush=True)


def sqs_admin(config: OpsConfig) -> SqsAdmin:
    from ops.sqs import SqsAdmin

    return SqsAdmin(config.region(), attempts=config.sqs_attempts())


def board_of(config: OpsConfig, raw: str, *, allow_all: bool = False) -> str:
    if allow_all and raw == ALL_SCHEDULED:
        return raw
    try:
        board = validate_board(raw)
    except BoardSyntaxError as exc:
        raise UsageError(f"--board: {exc}") from None
    if not config.registry.allows(board):
        raise UsageError(f"--board: {board!r} is not among LEADERBOARD_BOARDS")
    return board
