"""Configuration: defaults, and errors that name the variable but never echo its value."""

from __future__ import annotations

import pytest

from common.config import ApiSettings, ConfigError, WorkerSettings

BASE = {"VALKEY_HOST": "cache.local", "REFRESH_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123/refresh"}


def test_api_defaults_are_the_documented_ones() -> None:
    settings = ApiSettings.from_env(BASE)
    assert settings.valkey.port == 6379
    assert settings.valkey.request_timeout_ms == 250  # fail fast on the request path
    assert settings.max_count == 100
    assert settings.default_count == 10
    assert settings.miss_wait_ms == 2000
    assert settings.boards.fresh_seconds == 60
    assert settings.boards.key == "active_leaderboard"
    assert settings.max_stale_seconds is None
    assert settings.near_cache_ms == 1000
    assert settings.near_cache_max_entries == 1000
    assert settings.near_cache_max_bytes == 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VALKEY_PORT", "70000"),
        ("VALKEY_PORT", "six"),
        ("LEADERBOARD_MAX_COUNT", "-5"),
        ("LEADERBOARD_FRESH_SECONDS", "-1"),
        ("VALKEY_TLS", "maybe"),
        ("REFRESH_QUEUE_URL", "ftp://nope"),
        ("LEADERBOARD_BOARDS", "global,{evil}"),
        ("LEADERBOARD_KEY", "has{brace}"),
        ("LEADERBOARD_NEAR_CACHE_MS", "61000"),
        ("LEADERBOARD_NEAR_CACHE_MAX_ENTRIES", "-1"),
        ("LEADERBOARD_NEAR_CACHE_MAX_BYTES", "lots"),
    ],
)
def test_a_bad_value_is_named_but_not_echoed(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({**BASE, name: value})
    assert name in str(caught.value)
    assert value not in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({"VALKEY_PORT": "x"})
    names = " ".join(caught.value.problems)
    for name in ("VALKEY_HOST", "VALKEY_PORT", "REFRESH_QUEUE_URL"):
        assert name in names


def test_password_never_appears_in_errors_or_repr() -> None:
    secret = "s3cr3t-valkey-password"
    settings = ApiSettings.from_env({**BASE, "VALKEY_PASSWORD": secret, "VALKEY_USERNAME": "app"})
    assert secret not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        ApiSettings.from_env({"VALKEY_PASSWORD": secret, "VALKEY_PORT": secret})
    assert secret not in str(caught.value)


def test_acl_username_needs_a_password() -> None:
    with pytest.raises(ConfigError, match="VALKEY_USERNAME"):
        ApiSettings.from_env({**BASE, "VALKEY_USERNAME": "app"})


def test_tls_ca_file_must_exist_and_needs_tls(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ConfigError, match="VALKEY_TLS_CA_FILE"):
        ApiSettings.from_env({**BASE, "VALKEY_TLS": "true", "VALKEY_TLS_CA_FILE": "/nonexistent/ca.pem"})
    with pytest.raises(ConfigError, match="VALKEY_TLS is not true"):
        ApiSettings.from_env({**BASE, "VALKEY_TLS_CA_FILE": "/etc/hostname"})


WORKER = {"VALKEY_HOST": "cache.local"}


def test_worker_infers_the_only_configured_source() -> None:
    settings = WorkerSettings.from_env({**WORKER, "DATABASE_URL": "postgresql://u:p@db/x"})
    assert settings.source.kind == "postgres"
    assert settings.valkey.request_timeout_ms == 2000  # headroom on the worker
    assert settings.leaderboard_size == 0  # everyone: a refresh costs what changed, not the board's size
    assert (settings.delta_max_rows, settings.rebuild_seconds) == (10_000, 3_600)


def test_worker_refuses_to_guess_between_sources() -> None:
    env = {**WORKER, "DATABASE_URL": "postgresql://u:p@db/x", "SUPABASE_URL": "https://x.supabase.co",
           "SUPABASE_KEY": "k"}  # fmt: skip
    with pytest.raises(ConfigError, match="LEADERBOARD_SOURCE must be set"):
        WorkerSettings.from_env(env)
    assert WorkerSettings.from_env({**env, "LEADERBOARD_SOURCE": "supabase"}).source.kind == "supabase"


def test_worker_without_a_source_says_which_variables_to_set() -> None:
    with pytest.raises(ConfigError, match="SUPABASE_URL") as caught:
        WorkerSettings.from_env(WORKER)
    assert "DATABASE_URL" in str(caught.value)


def test_supabase_source_needs_a_key_or_a_secret() -> None:
    with pytest.raises(ConfigError, match="SUPABASE_KEY"):
        WorkerSettings.from_env({**WORKER, "SUPABASE_URL": "https://x.supabase.co"})
    settings = WorkerSettings.from_env(
        {
            **WORKER,
            "SUPABASE_URL": "https://x.supabase.co",
            "SUPABASE_KEY_SECRET_ARN": "arn:aws:secretsmanager:x",
        }
    )
    assert settings.source.supabase_key is None


def test_database_url_is_never_echoed() -> None:
    url = "mysql://user:hunter2@db/x"
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({**WORKER, "DATABASE_URL": url})
    assert "DATABASE_URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_scheduled_boards_must_be_served() -> None:
    env = {**WORKER, "DATABASE_URL": "postgresql://db/x", "LEADERBOARD_BOARDS": "global"}
    with pytest.raises(ConfigError, match="LEADERBOARD_SCHEDULED_BOARDS"):
        WorkerSettings.from_env({**env, "LEADERBOARD_SCHEDULED_BOARDS": "global,challenge:two-sum"})
    env = {**env, "LEADERBOARD_BOARDS": "global,challenge:*"}
    settings = WorkerSettings.from_env({**env, "LEADERBOARD_SCHEDULED_BOARDS": "global,challenge:two-sum"})
    assert settings.scheduled_boards == ("global", "challenge:two-sum")


def test_the_client_log_level_is_validated() -> None:
    assert ApiSettings.from_env(BASE).valkey.client_log_level == "off"
    assert ApiSettings.from_env({**BASE, "VALKEY_CLIENT_LOG_LEVEL": "WARN"}).valkey.client_log_level == "warn"
    with pytest.raises(ConfigError, match="VALKEY_CLIENT_LOG_LEVEL must be one of"):
        ApiSettings.from_env({**BASE, "VALKEY_CLIENT_LOG_LEVEL": "loud"})
