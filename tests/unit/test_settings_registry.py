"""The settings registry (common/settings.py) is the one description of every variable: README's table
is generated from it, and the functions' configuration reads its defaults and bounds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.config import ApiSettings, ConfigError, WorkerSettings
from common.settings import API, SETTINGS, WORKER, markdown_table, readme_table

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    API: {"VALKEY_HOST": "fake", "REFRESH_QUEUE_URL": "https://sqs.example/1/q"},
    WORKER: {"VALKEY_HOST": "fake", "DATABASE_URL": "postgresql://db/x"},
}
READ = {API: ApiSettings.from_env, WORKER: WorkerSettings.from_env}
BOUNDED = [
    (reader, name)
    for name, entry in SETTINGS.items()
    for reader in (API, WORKER)
    if reader in entry.readers and entry.minimum is not None
]


def test_readme_shows_the_registry_as_it_is() -> None:
    table = readme_table((ROOT / "README.md").read_text())
    assert table is not None, "README.md lost its settings-table markers"
    assert table == markdown_table(), "README is stale: run python -m common.settings --write"


def test_every_variable_the_configuration_reads_is_in_the_registry() -> None:
    # Given every upper-case name quoted in the configuration's modules
    sources = "".join((ROOT / "common" / name).read_text() for name in ("config.py", "env.py"))
    quoted = set(re.findall(r'"([A-Z][A-Z0-9_]{3,})"', sources))
    # Then each one is described in the registry
    assert quoted - set(SETTINGS) == set()


@pytest.mark.parametrize(("reader", "name"), BOUNDED)
def test_each_bound_is_the_one_enforced(reader: str, name: str) -> None:
    entry = SETTINGS[name]
    low, high = entry.bounds()
    # Given the bounds themselves: accepted
    for value in (low, high):
        READ[reader](BASE[reader] | {name: str(value)})
    # Given one past either bound: refused, naming the variable and not the value
    for value in (low - 1, high + 1):
        with pytest.raises(ConfigError) as raised:
            READ[reader](BASE[reader] | {name: str(value)})
        assert raised.value.problems == [f"{name} must be an integer between {low} and {high}"]


def test_with_nothing_set_each_reader_gets_the_registrys_defaults() -> None:
    api, worker = ApiSettings.from_env(BASE[API]), WorkerSettings.from_env(BASE[WORKER])
    assert api.valkey.request_timeout_ms == SETTINGS["VALKEY_REQUEST_TIMEOUT_MS"].default_for(API) == 250
    assert worker.valkey.request_timeout_ms == SETTINGS["VALKEY_REQUEST_TIMEOUT_MS"].default_for(WORKER)
    assert api.max_count == SETTINGS["LEADERBOARD_MAX_COUNT"].default
    assert api.near_cache_max_bytes == SETTINGS["LEADERBOARD_NEAR_CACHE_MAX_BYTES"].default
    assert (api.service, worker.service) == ("leaderboard-api", "leaderboard-worker")
    assert worker.lock_ttl_ms == SETTINGS["REFRESH_LOCK_TTL_MS"].default
    assert worker.source.page_size == SETTINGS["SOURCE_PAGE_SIZE"].default
    assert api.boards.key == worker.boards.key == SETTINGS["LEADERBOARD_KEY"].default
