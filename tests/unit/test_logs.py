"""Structured logs: the Lambda context keys on every line, and secrets redacted wherever they appear."""

from __future__ import annotations

import json
import logging

import pytest

from common.config import WorkerSettings
from common.logs import bind_invocation, get_logger, redact_text
from common.secret_registry import register_secret, registered_secrets
from tests.log_watch import LogWatch
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


@pytest.mark.logs_secrets_on_purpose
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


@pytest.mark.logs_secrets_on_purpose
def test_the_log_watch_sees_a_secret_that_redaction_hides_from_the_line(
    no_secret_in_any_log_line: LogWatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a registered secret logged in a field, inside an object and in an exception
    secret = "sb-secret-watched-5e6f7a8b"
    register_secret(secret)
    log = get_logger("t")
    log.info("oops", detail=f"key {secret}", nested=[{"key": secret}])
    try:
        raise RuntimeError(f"auth failed for {secret}")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("some.library").warning("connecting with %s", secret)
    # Then no written line holds it (redaction works)...
    assert secret not in capsys.readouterr().out
    # ...and yet the autouse watch saw every one of those calls carry it: it would fail the test
    leaks = no_secret_in_any_log_line.leaks(registered_secrets())
    assert leaks == [
        "structlog event 'oops'",
        "structlog event 'failed'",
        "logging record from 'some.library'",
    ]


def test_a_line_without_a_secret_is_not_a_leak(no_secret_in_any_log_line: LogWatch) -> None:
    register_secret("sb-secret-not-logged-1a2b3c")
    get_logger("t").info("fine", detail="nothing to hide", number=3)
    assert no_secret_in_any_log_line.leaks(registered_secrets()) == []


def test_a_database_url_password_is_a_secret_and_a_url_without_one_is_not() -> None:
    env = {"VALKEY_HOST": "127.0.0.1"}
    WorkerSettings.from_env({**env, "DATABASE_URL": "postgresql://app:p%40ss-word-7@db.example:5432/x"})
    assert {"p%40ss-word-7", "p@ss-word-7"} <= registered_secrets()
    assert redact_text("password authentication failed for p@ss-word-7") == (
        "password authentication failed for ***"
    )
    WorkerSettings.from_env({**env, "DATABASE_URL": "postgresql://app@db.example:5432/no-password-here"})
    assert not any("no-password-here" in secret for secret in registered_secrets())


def test_the_watch_reads_every_kind_of_value() -> None:
    watch = LogWatch()
    redact = watch.wrap(lambda _logger, _method, event: event)
    redact(None, "info", {"message": "m", "a": ("x", {"k": b"raw-bytes"}), "n": 1, "o": ValueError("boom")})
    ((what, text),) = watch.events
    assert what == "structlog event 'm'"
    assert "raw-bytes" in text and "boom" in text and "x" in text
