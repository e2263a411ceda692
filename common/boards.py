"""Board names, which boards a deployment serves, and the Valkey key names of one board.

A board is `global`, `challenge:<challenge_id>`, a time board `week:<ISO year>-W<ww>` /
`month:<YYYY-MM>` (UTC, see common.periods) or `season:<season_id>`. `week:current` and
`month:current` are aliases: `validate_board` turns them into the period containing the given instant
(now, by default), so a request, a message and a snapshot always carry the concrete name. Names are
validated before they are used in a key, so a request can never smuggle a hash tag (`{`/`}`),
whitespace or an unbounded string into Valkey.

Every key of one board shares one cluster hash slot: the ranking (a sorted set, docs/layout.md) keeps
the plain name (`active_leaderboard`, as the seed's consumers expect) and each helper key uses that name
as its hash tag (`{active_leaderboard}:entries`). CRC16 of the tag equals CRC16 of the plain key, so
reads, deltas, the lock, the version counter and the atomic swap run as one script on a Valkey cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common.periods import MAX_YEAR, MIN_YEAR, MONTH, WEEK, PeriodError, containing, parse_period

__all__ = [
    "ALIASES",
    "GLOBAL",
    "BoardKeys",
    "BoardRegistry",
    "BoardSyntaxError",
    "KeySpace",
    "empty_means_absent",
    "parse_board_list",
    "resolve_schedule",
    "validate_board",
]

GLOBAL = "global"
ALIASES = {"week:current": WEEK, "month:current": MONTH}
_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_BOARD_RE = re.compile(
    rf"global|challenge:{_ID}|season:{_ID}|week:[0-9]{{4}}-W[0-9]{{2}}|month:[0-9]{{4}}-[0-9]{{2}}"
    r"|week:current|month:current"
)
_PATTERN_RE = re.compile(r"(challenge|week|month|season):\*")
MAX_BOARD_LENGTH = 74
_SYNTAX = (
    "board must be 'global', 'challenge:<id>', 'season:<id>' (id: letters, digits, '_', '.', '-'; at most "
    "64), 'week:<ISO year>-W<ww>', 'month:<YYYY-MM>', 'week:current' or 'month:current'"
)
# After a period ends, the schedule keeps refreshing it this long (so that one refresh lands after
# FINAL_GRACE_MS and makes its snapshot final); later requests for it find that final snapshot.
CLOSING_WINDOW_MS = 3_600_000


class BoardSyntaxError(ValueError):
    pass


def _check(name: str) -> str:
    """The shape only: `week:2027-W53` is well-formed but names no week (2027 has 52), so a request for it
    is a 404 like any board that does not exist, not a 400."""
    if len(name) > MAX_BOARD_LENGTH or not _BOARD_RE.fullmatch(name):
        raise BoardSyntaxError(_SYNTAX)
    return name


def _check_listed(name: str) -> str:
    """A name in the configuration must also exist (the message never repeats the configured value)."""
    try:
        parse_period(_check(name))
    except PeriodError:
        raise BoardSyntaxError(
            "names a period that does not exist (weeks 01..52, or 53 in long ISO years; months 01..12; "
            f"years {MIN_YEAR}..{MAX_YEAR})"
        ) from None
    return name


def validate_board(name: str, at: datetime | None = None) -> str:
    """The concrete board `name` denotes: `name` itself when it is a well-formed board name, the period
    containing `at` (default: now) for an alias; BoardSyntaxError otherwise."""
    kind = ALIASES.get(_check(name))
    if kind is None:
        return name
    try:
        return containing(kind, at or datetime.now(UTC)).name
    except PeriodError as exc:
        raise BoardSyntaxError(str(exc)) from None


def empty_means_absent(board: str) -> bool:
    """Whether a source's empty first page means "no such board" (challenges nobody has submitted to,
    unknown seasons) rather than an empty board (global; a week or month without results yet)."""
    return board.startswith(("challenge:", "season:"))


def parse_board_list(spec: str) -> tuple[str, ...]:
    """Parse a comma-separated list of board names (no patterns); aliases are kept as aliases, to be
    resolved when used (`resolve_schedule`)."""
    names = tuple(dict.fromkeys(part.strip() for part in spec.split(",") if part.strip()))
    if not names:
        raise BoardSyntaxError("must name at least one board")
    for name in names:
        try:
            _check_listed(name)
        except BoardSyntaxError:
            raise BoardSyntaxError(
                "must list board names such as global,challenge:two-sum,week:current"
            ) from None
    return names


def resolve_schedule(names: Iterable[str], now: datetime) -> tuple[str, ...]:
    """The boards a scheduled refresh covers at `now`: aliases become the current period, and also
    the previous one during the first CLOSING_WINDOW_MS after it ended (its last results arrive)."""
    out: list[str] = []
    for name in names:
        kind = ALIASES.get(name)
        if kind is None:
            out.append(name)
            continue
        current = containing(kind, now)
        out.append(current.name)
        previous = current.previous()
        if now.timestamp() * 1000 < previous.end_ms + CLOSING_WINDOW_MS:
            out.append(previous.name)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class BoardRegistry:
    """The boards a deployment serves: exact names, plus patterns for a whole kind.

    `challenge:*` and `season:*` allow every id (the source says whether it exists). `week:*` and
    `month:*` allow the current period and the `keep_weeks` / `keep_months` before it: the retention
    the database keeps (`leaderboard_prune_periods`, same defaults), so that older and future periods
    are a 404 without a round trip, and callers cannot make the cache hold a board per period ever.
    """

    names: frozenset[str]
    patterns: frozenset[str] = frozenset()
    keep_weeks: int = 12
    keep_months: int = 12

    @classmethod
    def parse(cls, spec: str, *, keep_weeks: int = 12, keep_months: int = 12) -> BoardRegistry:
        names: set[str] = set()
        patterns: set[str] = set()
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if match := _PATTERN_RE.fullmatch(part):
                patterns.add(match[1])
                continue
            try:
                if _check(part) in ALIASES:
                    raise BoardSyntaxError(part)
            except BoardSyntaxError:
                raise BoardSyntaxError(
                    "must list board names, or challenge:*, week:*, month:*, season:* for a whole kind"
                ) from None
            names.add(_check_listed(part))
        if not names and not patterns:
            raise BoardSyntaxError("must name at least one board")
        return cls(frozenset(names), frozenset(patterns), keep_weeks, keep_months)

    def allows(self, board: str, now: datetime | None = None) -> bool:
        """Whether `board` (a concrete name, as validate_board returns it) is served."""
        if board in self.names:
            return True
        kind = board.partition(":")[0]
        if kind not in self.patterns:
            return False
        return kind not in (WEEK, MONTH) or self._in_window(board, now or datetime.now(UTC))

    def _in_window(self, board: str, now: datetime) -> bool:
        try:
            period = parse_period(board)
        except PeriodError:
            return False
        if period is None:
            return False
        current = containing(period.kind, now)
        if period.kind == WEEK:
            return current.start - timedelta(weeks=self.keep_weeks) <= period.start <= current.start
        months_back = (current.start.year - period.start.year) * 12 + current.start.month - period.start.month
        return 0 <= months_back <= self.keep_months

    def metric_dimension(self, board: str) -> str:
        """The board's name for metrics: listed boards by name; boards allowed only by a pattern as that
        pattern (`challenge:*`, `week:*`...), so that callers cannot create a CloudWatch metric per name."""
        return board if board in self.names else board.partition(":")[0] + ":*"


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
