"""Board names, which boards a deployment serves, and the Valkey key names of one board.

A board is `global` or `challenge:<challenge_id>`. Names are validated before they are used in a key,
so a request can never smuggle a hash tag (`{`/`}`), whitespace or an unbounded string into Valkey.

Every key of one board shares one cluster hash slot: the ranking (a sorted set, docs/layout.md) keeps
the plain name (`active_leaderboard`, as the seed's consumers expect) and each helper key uses that name
as its hash tag (`{active_leaderboard}:entries`). CRC16 of the tag equals CRC16 of the plain key, so
reads, deltas, the lock, the version counter and the atomic swap run as one script on a Valkey cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "GLOBAL",
    "BoardKeys",
    "BoardRegistry",
    "BoardSyntaxError",
    "KeySpace",
    "parse_board_list",
    "validate_board",
]

GLOBAL = "global"
_CHALLENGE_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_BOARD_RE = re.compile(rf"global|challenge:{_CHALLENGE_ID}")
_PATTERN_RE = re.compile(r"challenge:\*")
MAX_BOARD_LENGTH = 74


class BoardSyntaxError(ValueError):
    pass


def validate_board(name: str) -> str:
    """Return `name` if it is a well-formed board name, else raise BoardSyntaxError."""
    if len(name) > MAX_BOARD_LENGTH or not _BOARD_RE.fullmatch(name):
        raise BoardSyntaxError(
            "board must be 'global' or 'challenge:<id>' (id: letters, digits, '_', '.', '-'; at most 64)"
        )
    return name


def parse_board_list(spec: str) -> tuple[str, ...]:
    """Parse a comma-separated list of concrete board names (no patterns)."""
    names = tuple(dict.fromkeys(part.strip() for part in spec.split(",") if part.strip()))
    if not names:
        raise BoardSyntaxError("must name at least one board")
    for name in names:
        try:
            validate_board(name)
        except BoardSyntaxError:
            raise BoardSyntaxError("must list board names such as global,challenge:two-sum") from None
    return names


@dataclass(frozen=True, slots=True)
class BoardRegistry:
    """The boards a deployment serves: exact names plus `challenge:*` for every challenge."""

    names: frozenset[str]
    any_challenge: bool

    @classmethod
    def parse(cls, spec: str) -> BoardRegistry:
        names: set[str] = set()
        any_challenge = False
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if _PATTERN_RE.fullmatch(part):
                any_challenge = True
                continue
            try:
                names.add(validate_board(part))
            except BoardSyntaxError:
                raise BoardSyntaxError("must list board names, or challenge:* for every challenge") from None
        if not names and not any_challenge:
            raise BoardSyntaxError("must name at least one board")
        return cls(frozenset(names), any_challenge)

    def allows(self, board: str) -> bool:
        return board in self.names or (self.any_challenge and board.startswith("challenge:"))

    def metric_dimension(self, board: str) -> str:
        """The board's name for metrics: listed boards by name; boards allowed only by `challenge:*` as
        one `challenge:*`, so that callers cannot create a CloudWatch metric per name they invent."""
        return board if board in self.names else "challenge:*"


@dataclass(frozen=True, slots=True)
class BoardKeys:
    """The Valkey keys of one board."""

    board: str
    snapshot: str
    entries: str
    meta: str
    top: str
    lock: str
    version: str
    refresh_marker: str
    absent: str
    legacy_positions: str  # the v1 layout's hash, deleted by the first v2 rebuild
    tag: str

    @classmethod
    def for_board(cls, prefix: str, board: str) -> BoardKeys:
        snapshot = prefix if board == GLOBAL else f"{prefix}:{board}"
        tag = "{" + snapshot + "}"
        return cls(
            board=board,
            snapshot=snapshot,
            entries=f"{tag}:entries",
            meta=f"{tag}:meta",
            top=f"{tag}:top",
            lock=f"{tag}:lock",
            version=f"{tag}:version",
            refresh_marker=f"{tag}:refresh",
            absent=f"{tag}:absent",
            legacy_positions=f"{tag}:positions",
            tag=tag,
        )

    def staging(self, version: int) -> tuple[str, str]:
        """The sorted set and hash a full rebuild fills before the swap; they expire on their own if the
        worker dies."""
        return f"{self.tag}:staging:{version}", f"{self.tag}:staging-entries:{version}"


class KeySpace:
    """BoardKeys for every board under one prefix (`LEADERBOARD_KEY`), built once per board.

    The cache is bounded: with `challenge:*` any caller can name a new board, and a container must not
    grow with every name it has been asked for.
    """

    MAX_CACHED = 4096

    def __init__(self, prefix: str = "active_leaderboard") -> None:
        self.prefix = prefix
        self._boards: dict[str, BoardKeys] = {}

    def __call__(self, board: str) -> BoardKeys:
        keys = self._boards.get(board)
        if keys is None:
            keys = BoardKeys.for_board(self.prefix, board)
            if len(self._boards) < self.MAX_CACHED:
                self._boards[board] = keys
        return keys
