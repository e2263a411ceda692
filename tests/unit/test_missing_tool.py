"""The TLS and Varnish tests skip on a machine without their system tool, and fail where CI installed it."""

from __future__ import annotations

import pytest

from tests.support import missing_tool


def test_a_missing_tool_skips_on_a_developers_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADERBOARD_TESTS_NEED_EVERY_TOOL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="varnishd"):
        missing_tool("varnishd is not installed")


def test_a_missing_tool_fails_where_every_tool_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADERBOARD_TESTS_NEED_EVERY_TOOL", "1")
    with pytest.raises(pytest.fail.Exception, match="required"):
        missing_tool("varnishd is not installed")
