"""The API's EMF lines on real engines: cache status, snapshot age, and refresh requests sent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emf import emf_documents, metric_values
from tests.harness import ApiHarness, CacheTools
from tests.support import make_entries

pytestmark = pytest.mark.usefixtures("sqs")


def test_a_stale_read_counts_the_refresh_request_it_sent(
    api: ApiHarness, cache_tools: CacheTools, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stale snapshot
    cache_tools.write(make_entries(5), age_seconds=300)
    capsys.readouterr()
    # When two clients read it (only the first one sends a refresh request)
    api.get()
    api.get()
    # Then each read wrote one EMF line for the board, and exactly one counted a refresh request
    documents = [d for d in emf_documents(capsys.readouterr().out) if d["board"] == "global"]
    assert len(documents) == 2
    first, second = (metric_values(d) for d in documents)
    assert first["Stale"] == 1
    assert first["RefreshRequests"] == 1
    assert first["SnapshotAge"] >= 299
    assert second["Stale"] == 1
    assert "RefreshRequests" not in second
    assert documents[0]["service"] == "leaderboard-api"
    assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Leaderboard"
    assert len(api.messages()) == 1


def test_a_failed_send_is_not_counted_as_a_refresh_request(
    api_factory: Any, cache_tools: CacheTools, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    api: ApiHarness = api_factory(REFRESH_QUEUE_URL=f"{sqs.endpoint}/123456789012/no-such-queue")
    cache_tools.write(make_entries(5), age_seconds=300)
    capsys.readouterr()
    api.get()
    (document,) = [d for d in emf_documents(capsys.readouterr().out) if d["board"] == "global"]
    values = metric_values(document)
    assert values["Stale"] == 1
    assert "RefreshRequests" not in values


def test_a_fresh_hit_counts_a_hit_and_the_age(
    api: ApiHarness, cache_tools: CacheTools, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_tools.write(make_entries(5))
    capsys.readouterr()
    api.get()
    (document,) = emf_documents(capsys.readouterr().out)
    values = metric_values(document)
    assert values["Hit"] == 1
    assert 0 <= values["SnapshotAge"] < 60
    assert "RefreshRequests" not in values


def test_what_an_invocation_counted_before_it_failed_is_written_in_that_invocation(
    api: ApiHarness,
    cache_tools: CacheTools,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a stale snapshot, and a fresh one on another board
    cache_tools.write(make_entries(5), age_seconds=300)
    cache_tools.write(make_entries(5), board="challenge:two-sum")
    capsys.readouterr()

    def broken(*args: object) -> str:
        raise RuntimeError("a bug after the read")

    # When a request sends a refresh request, then fails while its answer is built (a 500)
    with monkeypatch.context() as patch:
        patch.setattr(api.app.render, "body", broken)
        failed = api.get()
    assert failed["statusCode"] == 500
    first = emf_documents(capsys.readouterr().out)
    # Then that invocation wrote what it counted, under its own board
    assert [(d["board"], metric_values(d).get("RefreshRequests")) for d in first] == [("global", 1)]
    # And the next invocation, on another board, writes only its own metrics
    api.get(query={"board": "challenge:two-sum"})
    [document] = emf_documents(capsys.readouterr().out)
    assert document["board"] == "challenge:*"
    assert set(metric_values(document)) == {"Hit", "SnapshotAge"}


def test_a_rejected_request_after_counting_writes_its_line_too(
    api: ApiHarness, cache_tools: CacheTools, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stale board, when a "my rank" request for a user it does not hold sends a refresh
    # request and is then answered 404 user_not_ranked
    cache_tools.write(make_entries(5), age_seconds=300)
    capsys.readouterr()
    response = api.get("/leaderboard/users/nobody-here")
    assert response["statusCode"] == 404
    # Then one line holds both, for this board; the next hit's line holds only its own
    [document] = emf_documents(capsys.readouterr().out)
    assert metric_values(document)["RefreshRequests"] == 1
    assert metric_values(document)["UserNotRanked"] == 1
    api.get()
    [document] = emf_documents(capsys.readouterr().out)
    assert set(metric_values(document)) == {"Stale", "SnapshotAge"}
