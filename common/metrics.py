"""CloudWatch metrics in Embedded Metric Format: one JSON line on stdout, no API call, no extra latency.

Values are accumulated during an invocation (`add`) and written as one line per board (`flush`).
CloudWatch Logs turns the line into metrics in namespace `METRICS_NAMESPACE` with the dimensions
service and board. The line is assembled from pre-encoded pieces because it is written on the hot path.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import TextIO

__all__ = ["COUNT", "MILLISECONDS", "SECONDS", "Metrics"]

COUNT = "Count"
MILLISECONDS = "Milliseconds"
SECONDS = "Seconds"


class Metrics:
    def __init__(self, namespace: str, service: str, stream: TextIO | None = None) -> None:
        self._namespace = json.dumps(namespace)
        self._service = json.dumps(service)
        self._stream = stream
        self._values: dict[str, tuple[float, str]] = {}
        # The constant part of a line, per board and set of metric names (a handful in practice).
        self._heads: dict[tuple[str, tuple[str, ...]], str] = {}
        self._served: dict[tuple[str, str], str] = {}

    def child(self) -> Metrics:
        """An accumulator of its own (for work running concurrently), sharing configuration and templates."""
        other = Metrics.__new__(Metrics)
        other.__dict__.update(self.__dict__)
        other._values = {}
        return other

    def add(self, name: str, value: float = 1, unit: str = COUNT) -> None:
        """Add to a metric of this invocation (counts sum up; a timing or age is usually added once)."""
        previous = self._values.get(name)
        self._values[name] = (value + previous[0] if previous else value, unit)

    def discard(self) -> None:
        """Drop what was added and not flushed (the end of an invocation that never knew its board)."""
        self._values.clear()

    def flush(self, board: str) -> None:
        """Write what was added as one EMF line, and start over."""
        values, self._values = self._values, {}
        if not values:
            return
        names = tuple(values)
        key = (board, names)
        head = self._heads.get(key)
        if head is None:
            head = self._head(board, tuple((name, unit) for name, (_, unit) in values.items()))
            if len(self._heads) < 256:
                self._heads[key] = head
        fields = "".join(
            f',"{name}":{round(value, 3)!r}' if math.isfinite(value) else f',"{name}":0'
            for name, (value, _) in values.items()
        )
        self._write(f'{{"_aws":{{"Timestamp":{time.time_ns() // 1_000_000}{head}{fields}}}\n')

    def served(self, board: str, count_metric: str, age_seconds: float) -> None:
        """`flush(board)` after `add(count_metric)` and `add("SnapshotAge", age, SECONDS)`: the same line,
        from a template per (board, metric), because every cache hit writes one."""
        if self._values:  # something else was counted in this invocation: take the general path
            self.add(count_metric)
            self.add("SnapshotAge", age_seconds, SECONDS)
            self.flush(board)
            return
        key = (board, count_metric)
        head = self._served.get(key)
        if head is None:
            head = self._head(board, ((count_metric, COUNT), ("SnapshotAge", SECONDS)))
            head = f'{head},"{count_metric}":1,"SnapshotAge":'
            if len(self._served) < 256:
                self._served[key] = head
        age = round(age_seconds, 3) if math.isfinite(age_seconds) else 0
        # One write and one flush, inline: every cache hit writes this line.
        stream = self._stream or sys.stdout
        stream.write(f'{{"_aws":{{"Timestamp":{time.time_ns() // 1_000_000}{head}{age}}}\n')
        stream.flush()

    def _head(self, board: str, metrics: tuple[tuple[str, str], ...]) -> str:
        definitions = ",".join(f'{{"Name":"{name}","Unit":"{unit}"}}' for name, unit in metrics)
        return (
            f',"CloudWatchMetrics":[{{"Namespace":{self._namespace},"Dimensions":[["service","board"]],'
            f'"Metrics":[{definitions}]}}]}},"service":{self._service},"board":{json.dumps(board)}'
        )

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(line)
        stream.flush()
