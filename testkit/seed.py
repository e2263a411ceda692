"""A realistic, deterministic sample of challenge results, and a fast loader for it.

The same parameters and random seed always give the same rows, so a ranking seen once can be seen again.
The shape is what a coding-challenge platform looks like:

- skill is skewed (a beta distribution): a few strong players, a long tail, and ~8% of players who
  never solve anything (every submission scores 0);
- strong players submit more often, easy challenges are attempted more often, and players get better
  over the weeks the sample spans;
- scores are multiples of a tenth of the challenge's points, so equal totals are common; a few
  "pair-programming" twins copy another player's submissions exactly (same challenge, score and
  second), so some players tie on score *and* time and share a rank;
- usernames mix scripts and accents (Zoë, Łukasz, 山田, Nguyễn, Ἀλέξανδρος...).

Rows are generated in chunks and streamed into one COPY (`copy_records_to_table` with an async
iterable): memory stays flat whatever the size, and the statement-level triggers of the migration run
once per COPY. `python -m testkit.seed --help` loads a sample into any PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "COLUMNS",
    "Challenge",
    "Player",
    "Row",
    "SeedReport",
    "SeedSpec",
    "generate",
    "load",
    "players",
    "username",
]

COLUMNS = ("user_id", "username", "challenge_id", "score", "submitted_at")
Row = tuple[uuid.UUID, str, str, int, datetime]

_FIRST = (
    "Zoë", "José", "Łukasz", "Søren", "Ana", "Chen", "Ayşe", "Björn", "François", "Mia", "Olu", "Priya",
    "Ángel", "Дмитрий", "Ingrid", "Kenji", "Fatima", "Mateo", "Noa", "Émile", "Siobhán", "Raúl", "Yuki",
    "Ἀλέξανδρος", "Astrid", "Kwame", "Leila", "Tomás", "Hana", "Jürgen", "Amara", "Nikolai", "Chloé",
)  # fmt: skip
_LAST = (
    "Nguyễn", "García", "Müller", "Kowalski", "Öztürk", "Silva", "Rossi", "Andersson", "Dubois", "Ivanova",
    "Okafor", "Patel", "Kim", "O'Brien", "Fernández", "Novák", "Yamada", "Haddad", "Lindqvist", "Çelik",
    "Mbeki", "Santos", "Kuznetsov", "Ahmed", "Schröder", "Jensen", "Ng", "Wójcik", "Papadopoulos",
)  # fmt: skip
_CJK = ("山田太郎", "李小龙", "王芳", "佐藤花子", "김민준", "이서연", "陈伟", "田中一郎", "박지훈", "张伟")
_HANDLES = (
    "ninja", "bytewitch", "segfault", "λ-lover", "tabs_not_spaces", "rustacean", "gopher", "off_by_one",
    "🚀rocket", "null_ptr", "heapster", "☕coffee", "bitflip", "recursion", "monad", "ŝtelisto", "pixel",
)  # fmt: skip
_SLUGS = (
    "two-sum", "fizz-buzz", "reverse-string", "valid-parens", "binary-search", "merge-intervals",
    "lru-cache", "word-ladder", "n-queens", "sudoku-solver", "dijkstra", "topo-sort", "trie-autocomplete",
    "rate-limiter", "matrix-spiral", "edit-distance", "knapsack", "regex-match", "median-stream",
    "skyline", "bloom-filter", "consistent-hash", "raft-election", "json-parser", "bigint-mul",
    "sliding-window-max", "union-find", "kmp-search", "max-flow", "suffix-array", "rope-editor",
    "interval-tree", "skip-list", "b-tree-insert", "huffman", "lz77", "game-of-life", "mandelbrot",
    "ray-tracer", "sat-solver", "unification", "type-inference", "garbage-collector", "vm-bytecode",
    "crdt-counter", "paxos", "mvcc", "wal-replay", "query-planner", "btree-split",
)  # fmt: skip
_POINTS = (100, 200, 300, 500)


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """What to generate. The defaults are `make dev`'s sample."""

    users: int = 2_000
    challenges: int = 50
    results: int = 50_000
    seed: int = 42
    start: datetime = datetime(2026, 9, 1, tzinfo=UTC)
    days: int = 60
    chunk: int = 10_000  # rows generated (and held in memory) at a time

    def __post_init__(self) -> None:
        if self.users < 1 or self.challenges < 1 or self.results < 0 or self.chunk < 1 or self.days < 1:
            raise ValueError("users, challenges, chunk and days must be >= 1 and results >= 0")


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    points: int
    difficulty: float  # 0 (easy) .. 1 (hard)


@dataclass(frozen=True, slots=True)
class Player:
    user_id: uuid.UUID
    username: str
    skill: float  # 0 (never solves) .. 1
    activity: float  # relative submission rate
    twin_of: int | None = None  # index of the player whose submissions this one copies


@dataclass(frozen=True, slots=True)
class SeedReport:
    rows: int
    users: int
    challenges: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": self.rows,
            "users": self.users,
            "challenges": self.challenges,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"seeded {self.rows:,} results for {self.users:,} players on {self.challenges} challenges "
            f"in {self.seconds:.1f} s ({rate:,.0f} rows/s)"
        )


def challenges(spec: SeedSpec) -> list[Challenge]:
    """Challenge ids are slugs (the SQL accepts [A-Za-z0-9][A-Za-z0-9_.-]*); easier ones come first."""
    out = []
    for i in range(spec.challenges):
        base = _SLUGS[i % len(_SLUGS)]
        slug = base if i < len(_SLUGS) else f"{base}-{i // len(_SLUGS) + 1}"
        difficulty = i / max(1, spec.challenges - 1)
        out.append(
            Challenge(slug, _POINTS[min(len(_POINTS) - 1, int(difficulty * len(_POINTS)))], difficulty)
        )
    return out


def username(rng: random.Random, i: int) -> str:
    """A display name: accented Latin, CJK or Hangul, or a handle (some with emoji)."""
    kind = rng.random()
    if kind < 0.55:
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if kind < 0.7:
        return rng.choice(_CJK)
    return f"{rng.choice(_HANDLES)}_{i % 1000}"


def players(spec: SeedSpec) -> list[Player]:
    """The players, in a fixed order. Names repeat (real platforms have several "Ana Silva"s)."""
    rng = random.Random(f"players:{spec.seed}")
    out: list[Player] = []
    for i in range(spec.users):
        user_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        lurker = rng.random() < 0.08
        skill = 0.0 if lurker else rng.betavariate(1.1, 4.0)
        activity = (0.3 + 6 * skill) * rng.lognormvariate(0, 0.6)
        twin_of: int | None = None
        if i > 0 and not lurker and rng.random() < 0.005:
            original = rng.randrange(i)
            twin_of = out[original].twin_of if out[original].twin_of is not None else original
        out.append(Player(user_id, username(rng, i), skill, activity, twin_of))
    return out


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def generate(spec: SeedSpec) -> Iterator[list[Row]]:
    """Yield the sample's rows in chunks of at most `spec.chunk`; exactly `spec.results` rows in all.

    A twin's copy of a submission counts towards `results` like any other row.
    """
    rng = random.Random(f"results:{spec.seed}")
    roster = players(spec)
    board = challenges(spec)
    twins: dict[int, list[int]] = {}
    for index, player in enumerate(roster):
        if player.twin_of is not None:
            twins.setdefault(player.twin_of, []).append(index)
    # Twins submit through their original; they are never drawn on their own.
    drawable = [i for i, p in enumerate(roster) if p.twin_of is None]
    user_weights = _cumulative([roster[i].activity for i in drawable])
    challenge_weights = _cumulative([1.0 / (1 + 0.08 * i) for i in range(len(board))])
    span = spec.days * 86_400
    chunk: list[Row] = []
    produced = 0
    while produced < spec.results:
        index = drawable[bisect.bisect_left(user_weights, rng.random() * user_weights[-1])]
        player = roster[index]
        challenge = board[
            min(len(board) - 1, bisect.bisect_left(challenge_weights, rng.random() * challenge_weights[-1]))
        ]
        offset = rng.randrange(span)
        progress = offset / span
        skill = player.skill * (0.7 + 0.3 * progress)  # players improve over time
        solve_chance = skill * (1.1 - 0.6 * challenge.difficulty) + (0.05 if skill else 0.0)
        if rng.random() < solve_chance:
            quality = min(1.0, max(0.1, skill + rng.gauss(0.15, 0.2)))
            score = max(1, round(quality * 10)) * challenge.points // 10
        else:
            score = 0
        when = spec.start + timedelta(seconds=offset)
        for who in (index, *twins.get(index, ())):
            if produced == spec.results:
                break
            chunk.append((roster[who].user_id, roster[who].username, challenge.id, score, when))
            produced += 1
            if len(chunk) >= spec.chunk:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


async def _stream(spec: SeedSpec) -> AsyncIterator[Row]:
    """Rows for COPY, one chunk generated at a time; yields to the loop between chunks."""
    for chunk in generate(spec):
        for row in chunk:
            yield row
        await asyncio.sleep(0)


async def load(conn: Any, spec: SeedSpec, *, table: str = "challenge_results") -> SeedReport:
    """Stream the sample into `table` with one COPY (asyncpg connection). Returns counts and timing."""
    started = time.perf_counter()
    await conn.copy_records_to_table(table, records=_stream(spec), columns=list(COLUMNS))
    seconds = time.perf_counter() - started
    return SeedReport(rows=spec.results, users=spec.users, challenges=spec.challenges, seconds=seconds)


def _parser() -> argparse.ArgumentParser:
    d = SeedSpec()
    parser = argparse.ArgumentParser(
        prog="python -m testkit.seed",
        description="Load a deterministic sample of challenge results into a PostgreSQL database that has "
        "the supabase/migrations schema (one streamed COPY; triggers maintain the derived tables).",
    )
    parser.add_argument("--database-url", required=True, help="postgresql://... (the schema must exist)")
    parser.add_argument("--users", type=int, default=d.users)
    parser.add_argument("--challenges", type=int, default=d.challenges)
    parser.add_argument("--results", type=int, default=d.results)
    parser.add_argument("--random-seed", type=int, default=d.seed)
    parser.add_argument("--chunk", type=int, default=d.chunk, help="rows generated at a time")
    parser.add_argument(
        "--truncate", action="store_true", help="empty challenge_results and the derived tables first"
    )
    return parser


async def _main(args: argparse.Namespace) -> SeedReport:
    import asyncpg

    spec = SeedSpec(args.users, args.challenges, args.results, args.random_seed, chunk=args.chunk)
    conn = await asyncpg.connect(args.database_url, timeout=10)
    try:
        if args.truncate:
            await conn.execute(
                "truncate public.challenge_results, public.challenge_best, public.leaderboard_totals "
                "restart identity"
            )
        return await load(conn, spec)
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        report = asyncio.run(_main(args))
    except ValueError as exc:
        print(f"testkit.seed: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as exc:
        print(f"testkit.seed: error: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - asyncpg's errors have no common base worth importing here
        print(f"testkit.seed: error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
