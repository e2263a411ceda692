"""Structured logs: the Lambda context keys on every line, and secrets redacted wherever they appear."""

from __future__ import annotations

import json

import pytest

from common.config import register_secret
from common.logs import bind_invocation, get_logger
from tests.support import FakeContext, log_lines


def test_every_line_carries_the_invocation_keys(capsys: pytest.CaptureFixture[str]) -> None:
    context = FakeContext(function_name="leaderboard-api", aws_request_id="req-1")
    bind_invocation(service="leaderboard-api", context=context, cold_start=True, correlation_id="corr-1")
    get_logger("t").info("something_happened", board="global")
    (line,) = log_lines(capsys.readouterr().out)
    assert line["message"] == "something_happened"
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")
    assert line["service"] == "leaderboard-api"
    assert line["cold_start"] is True
    assert line["function_name"] == "leaderboard-api"
    assert line["function_request_id"] == "req-1"
    assert line["correlation_id"] == "corr-1"
    assert line["board"] == "global"


def test_the_next_invocation_starts_clean(capsys: pytest.CaptureFixture[str]) -> None:
    bind_invocation(service="s", context=FakeContext(), cold_start=True, correlation_id="first")
    bind_invocation(service="s", context=FakeContext(), cold_start=False)
    get_logger("t").info("x")
    (line,) = log_lines(capsys.readouterr().out)
    assert "correlation_id" not in line
    assert line["cold_start"] is False


def test_registered_secrets_are_redacted_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sb-secret-9f8e7d6c5b4a"
    register_secret(secret)
    log = get_logger("t")
    log.info("oops", detail=f"connecting with {secret}", nested={"key": secret}, number=5)
    try:
        raise RuntimeError(f"auth failed for {secret}")
    except RuntimeError:
        log.exception("failed")
    output = capsys.readouterr().out
    assert secret not in output
    first, second = log_lines(output)
    assert first["detail"] == "connecting with ***"
    assert "***" in str(first["nested"])
    assert first["number"] == 5
    assert "***" in json.dumps(second["exception"])


def test_very_short_values_are_not_treated_as_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    # A one-letter "key" (as in some configs under test) would otherwise turn every "k" into "***".
    register_secret("k")
    get_logger("t").info("keep calm", word="bookkeeping")
    (line,) = log_lines(capsys.readouterr().out)
    assert line["word"] == "bookkeeping"
