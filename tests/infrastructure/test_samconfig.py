"""samconfig.example.toml: an example that would deploy as written, and that never deploys by accident."""

from __future__ import annotations

import subprocess
import tomllib

from common.config import ApiSettings, WorkerSettings
from tests.infrastructure.cfn import ROOT, Resolver, load_template

EXAMPLE = tomllib.loads((ROOT / "samconfig.example.toml").read_text())


def overrides() -> dict[str, str]:
    pairs = EXAMPLE["default"]["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_example_sets_only_template_parameters_to_values_both_functions_accept() -> None:
    # Given the example's parameter overrides
    template = load_template()
    parameters = overrides()
    # Then each names a parameter of template.yaml
    assert set(parameters) <= set(template["Parameters"])
    # And the functions' resolved environments are configurations our code accepts
    resolver = Resolver(template, parameters)
    api = ApiSettings.from_env(resolver.function_environment("ApiFunction"))
    worker = WorkerSettings.from_env(resolver.function_environment("RefreshWorkerFunction"))
    assert api.valkey.tls and api.valkey.cluster_mode  # the serverless cache it asks for
    assert worker.source.kind == "supabase"


def test_no_real_samconfig_is_committed_and_git_ignores_one() -> None:
    # SAM reads samconfig.toml by default (the example has another name): a real one stays local
    tracked = subprocess.run(
        ["git", "ls-files", "samconfig.toml"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert tracked.stdout == ""
    assert "samconfig.toml" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_example_builds_the_fast_way() -> None:
    build = EXAMPLE["default"]["build"]["parameters"]
    assert build == {"build_in_source": True, "parallel": True}
