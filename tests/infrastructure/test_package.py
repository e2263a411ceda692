"""The Lambda artifacts: each function gets only its own dependencies, and its handler imports from the
artifact alone.

The artifacts are built for this machine (`--local`: the same requirement lists and resolution as the
Lambda build, copied from this environment, no network), since an arm64 artifact cannot be imported
here. `make package` builds the real ones with pip for python3.13/arm64. This module takes
~15 s on an idle machine (`pytest --durations=5 tests/infrastructure`): copying two ~100 MB trees,
zipping one, importing both.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy.package import FUNCTIONS, PLATFORM, PYTHON_VERSION, Artifact, build, check_imports, pip_command
from tests.infrastructure.cfn import ROOT, load_template

SUPABASE_ONLY = ("supabase", "postgrest", "asyncpg", "tenacity", "supabase_auth", "storage3", "realtime")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    out = tmp_path_factory.mktemp("artifacts")
    # One zip (level 1) is enough: the archive's content is tested, not the compression.
    return {
        "api": build(FUNCTIONS["api"], out / "api", local=True, zip_path=out / "api.zip", zip_level=1),
        "worker": build(FUNCTIONS["worker"], out / "worker", local=True),
    }


def top_level(artifact: Artifact) -> set[str]:
    return {p.name for p in artifact.path.iterdir()}


def test_the_api_artifact_has_no_source_client(artifacts: dict[str, Artifact]) -> None:
    names = top_level(artifacts["api"])
    assert {"api_lambda", "common", "glide_sync", "structlog", "aioboto3"} <= names
    assert not names & {*SUPABASE_ONLY, "glide", "refresh_worker", "ops", "devstack", "tests", "moto"}


def test_the_worker_artifact_has_its_sources(artifacts: dict[str, Artifact]) -> None:
    names = top_level(artifacts["worker"])
    assert {"refresh_worker", "common", "glide", "structlog", "aioboto3", *SUPABASE_ONLY} <= names
    assert not names & {"api_lambda", "ops", "devstack", "tests", "moto", "pytest", "bin"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_handler_imports_from_the_artifact_alone(artifacts: dict[str, Artifact], name: str) -> None:
    # Given only the artifact and the standard library on sys.path (python -I -S),
    # when the handler module and every lazily imported library are imported,
    # then all of them load, and none from outside the artifact (check_imports raises otherwise)
    modules = check_imports(artifacts[name])
    assert ("glide_sync" if name == "api" else "glide") in modules
    assert ("supabase" in modules) == (name == "worker")


def test_the_zip_holds_the_tree(artifacts: dict[str, Artifact]) -> None:
    artifact = artifacts["api"]
    assert artifact.zip_path is not None
    with zipfile.ZipFile(artifact.zip_path) as archive:
        names = archive.namelist()
    handler_file = artifact.function.handler.rpartition(".")[0].replace(".", "/") + ".py"
    assert handler_file in names
    assert len(names) == artifact.files - 1  # all but the build marker
    assert not any("__pycache__" in n for n in names)  # no bytecode of the build machine's Python


def test_the_lambda_build_asks_pip_for_the_templates_runtime_and_architecture() -> None:
    template = load_template()
    runtime = template["Globals"]["Function"]["Runtime"]
    (architecture,) = template["Globals"]["Function"]["Architectures"]
    assert runtime == f"python{PYTHON_VERSION}"
    assert {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}[architecture] == PLATFORM
    command = pip_command(FUNCTIONS["api"], Path("/tmp/x"))
    for flag, value in [
        ("--platform", PLATFORM),
        ("--python-version", PYTHON_VERSION),
        ("--implementation", "cp"),
        ("--target", "/tmp/x"),
    ]:
        assert command[command.index(flag) + 1] == value
    assert "--only-binary=:all:" in command
    assert str(ROOT / "constraints.txt") in command
    assert any(r.startswith("valkey-glide-sync") for r in command)
    assert not any(r.startswith(("supabase", "asyncpg", "tenacity")) for r in command)


def test_sam_builds_each_function_with_the_same_script() -> None:
    template = load_template()
    makefile = (ROOT / "Makefile").read_text()
    for name, function in FUNCTIONS.items():
        resource = template["Resources"][function.logical_id]
        assert resource["Properties"]["Handler"] == function.handler
        assert resource["Metadata"]["BuildMethod"] == "makefile"
        recipe = re.search(rf"^build-{function.logical_id}:\n\t(.+)$", makefile, re.MULTILINE)
        assert recipe is not None, f"Makefile has no build-{function.logical_id} target for sam build"
        assert f'-m deploy.package {name} --into "$(ARTIFACTS_DIR)"' in recipe.group(1)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_dockerfile_is_the_artifact_on_the_lambda_base_image(name: str) -> None:
    dockerfile = (ROOT / "deploy" / f"{name}.Dockerfile").read_text()
    assert f"FROM public.ecr.aws/lambda/python:{PYTHON_VERSION}\n" in dockerfile
    assert f"COPY build/{name}/ ${{LAMBDA_TASK_ROOT}}/\n" in dockerfile
    assert f'CMD ["{FUNCTIONS[name].handler}"]' in dockerfile


def test_a_foreign_directory_is_never_wiped(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "deploy.package", "api", "--into", str(tmp_path), "--local"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "refusing to wipe it" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_check_needs_a_local_build() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.package", "api", "--out", "build", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--check needs --local" in result.stderr
