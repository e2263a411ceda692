"""Measuring helpers: interleaved rounds so that machine noise hits both sides of a ratio alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Sample", "compare", "percentile", "summary"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Sample:
    """Latencies in microseconds."""

    values: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.values)

    @property
    def p99(self) -> float:
        return percentile(self.values, 99)

    def as_dict(self) -> dict[str, Any]:
        return {"p50_us": round(self.p50, 1), "p99_us": round(self.p99, 1), "n": len(self.values)}


def time_calls(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        fn()
        out.append((clock() - start) / 1000)
    return out


def compare(
    subjects: dict[str, Callable[[], object]], *, warmup: int = 500, rounds: int = 10, per_round: int = 1000
) -> dict[str, Sample]:
    """Run each subject `rounds` times `per_round` calls, interleaved (A, B, A, B, ...)."""
    for fn in subjects.values():
        time_calls(fn, warmup)
    samples = {name: Sample() for name in subjects}
    for _ in range(rounds):
        for name, fn in subjects.items():
            samples[name].values.extend(time_calls(fn, per_round))
    return samples


def summary(ratio: float, target: float | None, **raw: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"ratio": round(ratio, 3)}
    if target is not None:
        result["target"] = target
        result["met"] = ratio <= target
    result.update(raw)
    return result
