"""EMF lines as the functions write them: structure, values, and what is left out."""

from __future__ import annotations

import math

import pytest

from common.metrics import MILLISECONDS, SECONDS, Metrics
from tests.emf import emf_documents, metric_values

# What the dashboards and alarms of docs/deploy.md read.
API_METRICS = ["Hit", "Stale", "Miss", "SnapshotAge", "RefreshRequests", "CacheUnavailable", "WarmingUp"]
WORKER_METRICS = [
    "SourceAttempts",
    "SourceDuration",
    "CacheWriteDuration",
    "Refreshes",
    "RefreshesSkipped",
    "RefreshFailures",
    "MessagesRejected",
]


def test_one_flush_is_one_valid_emf_line_per_board(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an invocation that counted, timed and aged things
    metrics = Metrics("Leaderboard", "leaderboard-worker")
    for name in WORKER_METRICS + API_METRICS:
        metrics.add(name)
    metrics.add("SourceAttempts")
    metrics.add("SourceDuration", 12.5, MILLISECONDS)
    metrics.add("SnapshotAge", 3.25, SECONDS)
    # When it flushes for a board
    metrics.flush("challenge:two-sum")
    # Then stdout holds exactly one EMF document with the namespace, both dimensions and every metric
    documents = emf_documents(capsys.readouterr().out)
    assert len(documents) == 1
    document = documents[0]
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Leaderboard"
    assert directive["Dimensions"] == [["service", "board"]]
    assert document["service"] == "leaderboard-worker"
    assert document["board"] == "challenge:two-sum"
    values = metric_values(document)
    assert set(values) == set(WORKER_METRICS + API_METRICS)
    assert values["SourceAttempts"] == 2
    assert values["SourceDuration"] == 13.5
    assert values["SnapshotAge"] == 4.25
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["Hit"] == "Count"


def test_flush_starts_over_and_an_empty_flush_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics("Leaderboard", "leaderboard-api")
    metrics.add("Hit")
    metrics.flush("global")
    metrics.flush("global")
    metrics.add("Stale")
    metrics.flush("global")
    documents = emf_documents(capsys.readouterr().out)
    assert [metric_values(d) for d in documents] == [{"Hit": 1}, {"Stale": 1}]


def test_a_value_that_is_not_finite_is_written_as_zero(capsys: pytest.CaptureFixture[str]) -> None:
    # CloudWatch rejects the whole line for one NaN (JSON has no NaN): the line must stay valid.
    metrics = Metrics("Leaderboard", "leaderboard-api")
    metrics.add("SnapshotAge", math.nan, SECONDS)
    metrics.add("Hit")
    metrics.flush("global")
    (document,) = emf_documents(capsys.readouterr().out)
    assert metric_values(document) == {"SnapshotAge": 0, "Hit": 1}
