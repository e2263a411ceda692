"""Reading CloudWatch Embedded Metric Format lines back, and checking them as CloudWatch would.

CloudWatch Logs silently ignores a line that is not valid EMF (no error anywhere), so a typo in the
format would lose every metric without a single failing request. These checks are the safety net.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["check_emf", "emf_documents", "metric_values"]


def emf_documents(output: str) -> list[dict[str, Any]]:
    """Every stdout line that claims to be EMF (has an `_aws` object), parsed, each checked."""
    documents = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if isinstance(document, dict) and "_aws" in document:
            check_emf(document)
            documents.append(document)
    return documents


def check_emf(document: dict[str, Any]) -> None:
    """The structure CloudWatch requires: a millisecond timestamp, one directive with a namespace,
    dimension sets whose keys are top-level strings, and every metric a top-level number."""
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int)
    assert meta["Timestamp"] > 1_600_000_000_000  # milliseconds, not seconds
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert len(directives) == 1
    directive = directives[0]
    assert isinstance(directive["Namespace"], str)
    assert directive["Namespace"]
    dimension_sets = directive["Dimensions"]
    assert isinstance(dimension_sets, list)
    assert dimension_sets
    for dimension_set in dimension_sets:
        assert 1 <= len(dimension_set) <= 30
        for key in dimension_set:
            assert isinstance(document[key], str), f"dimension {key} is not a top-level string"
    metrics = directive["Metrics"]
    assert metrics
    assert len(metrics) <= 100
    for metric in metrics:
        name = metric["Name"]
        assert isinstance(name, str)
        assert metric["Unit"] in ("Count", "Milliseconds", "Seconds")
        value = document[name]
        assert isinstance(value, int | float)
        assert not isinstance(value, bool)


def metric_values(document: dict[str, Any]) -> dict[str, float]:
    """The metrics of one EMF document, by name."""
    return {m["Name"]: document[m["Name"]] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
