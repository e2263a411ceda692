"""Build one Lambda artifact per function: its runtime dependencies plus our own packages, nothing else.

    python -m deploy.package api worker --out build --zip     # what `make package` runs
    python -m deploy.package api --into "$ARTIFACTS_DIR"       # what `sam build` runs (BuildMethod: makefile)
    python -m deploy.package api worker --out DIR --local --check   # the test: this machine, no network

Each function gets the base dependencies of pyproject.toml plus its own extra (`api` or `worker`), so
the API artifact has no Supabase client, no asyncpg and no tenacity: fewer bytes, a faster cold start,
and no code for credentials it must not have. The Lambda build asks pip for wheels of the template's
runtime and architecture (CPython 3.13, manylinux2014_aarch64) whatever machine it runs on; a
dependency without such a wheel fails the build with pip's message, never with a source build for
the wrong platform.

Lambda's /var/task is read-only, so Python cannot cache bytecode there and would compile every module
it imports on every cold start. When a Python 3.13 is at hand (`--compile-with`, else one found on the
PATH or in pyenv's or uv's installs) the artifact is byte-compiled with it, with hash-checked-free
.pyc files (`unchecked-hash`: the artifact is immutable, so there is nothing to re-validate).

Only the standard library (and pip) is needed, so that `sam build` can run this with any Python 3.11+.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The template's Globals: Runtime python3.13, Architectures [arm64]. tests/infrastructure checks that
# these agree with template.yaml.
PYTHON_VERSION = "3.13"
PLATFORM = "manylinux2014_aarch64"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
MARKER = ".leaderboard-artifact"

__all__ = ["FUNCTIONS", "PLATFORM", "PYTHON_VERSION", "Artifact", "Function", "build", "main", "pip_command"]


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    logical_id: str  # in template.yaml
    handler: str
    extra: str  # the pyproject extra on top of the base dependencies
    packages: tuple[str, ...]  # ours, copied from the repository
    lazy_imports: tuple[str, ...]  # imported at run time, not at module load: checked separately
    forbidden: tuple[str, ...]  # top-level names that must not be in the artifact


FUNCTIONS = {
    "api": Function(
        name="api",
        logical_id="ApiFunction",
        handler="api_lambda.handler.lambda_handler",
        extra="api",
        packages=("common", "api_lambda"),
        lazy_imports=("aioboto3", "botocore.config", "botocore.exceptions", "structlog", "asyncio"),
        forbidden=(
            "glide",  # the async client: the API reads with glide_sync
            "supabase",
            "postgrest",
            "asyncpg",
            "tenacity",
            "refresh_worker",
            "ops",
            "devstack",
            "testkit",
        ),
    ),
    "worker": Function(
        name="worker",
        logical_id="RefreshWorkerFunction",
        handler="refresh_worker.handler.lambda_handler",
        extra="worker",
        packages=("common", "refresh_worker"),
        lazy_imports=(
            "aioboto3",
            "botocore.exceptions",
            "supabase",
            "postgrest.exceptions",
            "httpx",
            "tenacity",
            "asyncpg",
        ),
        forbidden=("api_lambda", "ops", "devstack", "testkit", "moto", "pytest"),
    ),
}


class BuildError(Exception):
    """The artifact could not be built; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Artifact:
    function: Function
    path: Path
    size: int
    files: int
    compiled_with: str | None  # the Python 3.13 that wrote the .pyc files; None: none shipped
    platform: str
    zip_path: Path | None = None
    zip_size: int | None = None


def requirements(function: Function, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The base dependencies plus the function's extra, as pyproject.toml declares them."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][function.extra]]


def pip_command(function: Function, target: Path, *, python: str = sys.executable) -> list[str]:
    """pip for the Lambda platform: binary wheels only, whatever this machine is."""
    return [
        python, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target),
        "--platform", PLATFORM,
        "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        "--constraint", str(ROOT / "constraints.txt"),
        *requirements(function),
    ]  # fmt: skip


def _install_for_lambda(function: Function, target: Path) -> None:
    result = subprocess.run(pip_command(function, target), check=False)  # noqa: S603 - our own argv
    if result.returncode != 0:
        raise BuildError(
            f"pip could not install the {function.name} dependencies as CPython {PYTHON_VERSION} wheels "
            f"for {PLATFORM} (see pip's message above): a dependency without such a wheel cannot run "
            "on the Lambda runtime; pin a version that has one or change the template's Architectures"
        )


def _copy_from_environment(function: Function, target: Path) -> None:
    """The dependency closure as installed in this interpreter's environment (tests: no network).

    Same requirements, same resolution rules (markers, extras) as pip, but for this machine's platform.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = [(Requirement(r), "") for r in requirements(function)]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = requirement.name.lower().replace("_", "-")
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise BuildError(f"{requirement.name} is not installed here: run `make venv`") from None
        for wanted in requirement.extras:
            pending.extend((Requirement(r), wanted) for r in dist.requires or [])
        if name in seen:
            continue
        seen.add(name)
        pending.extend((Requirement(r), "") for r in dist.requires or [])
        base = Path(str(dist.locate_file("")))
        for file in dist.files or []:
            source = Path(str(file.locate()))
            relative = Path(os.path.relpath(source, base))
            if relative.parts[0] == ".." or "__pycache__" in relative.parts or not source.is_file():
                continue  # scripts in bin/, bytecode of this interpreter
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _copy_our_packages(function: Function, target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in function.packages:
        shutil.copytree(ROOT / package, target / package, ignore=ignore)


def _prune(target: Path) -> None:
    """Console scripts (shebangs of the build machine) are useless in Lambda."""
    shutil.rmtree(target / "bin", ignore_errors=True)


def _check_forbidden(function: Function, target: Path) -> None:
    present = [name for name in function.forbidden if (target / name).exists()]
    if present:
        raise BuildError(f"the {function.name} artifact must not contain {', '.join(present)}")


def _python_313(explicit: str | None) -> str | None:
    """A Python 3.13 to byte-compile with: the one given, else the first of `_candidates()` that runs."""
    for candidate in [explicit] if explicit else _candidates():
        try:
            version = subprocess.run(  # noqa: S603 - the interpreter the operator named, or a known install
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            ).stdout.strip()
        except OSError:
            version = ""
        if version == PYTHON_VERSION:
            return candidate
    if explicit:
        raise BuildError(f"--compile-with {explicit} is not a working Python {PYTHON_VERSION}")
    return None


def _candidates() -> list[str]:
    """Where a Python 3.13 usually is: `python3.13` on the PATH, then pyenv's and uv's own installs (a
    pyenv shim on the PATH fails unless 3.13 is a selected version), then the usual prefixes."""
    home = Path.home()
    found = [shutil.which("python3.13") or ""]
    for root, pattern in (
        (os.environ.get("PYENV_ROOT") or home / ".pyenv", "versions/3.13*/bin/python3.13"),
        (
            os.environ.get("UV_PYTHON_INSTALL_DIR") or home / ".local/share/uv/python",
            "cpython-3.13*/bin/python3.13",
        ),
    ):
        found += sorted((str(path) for path in Path(root).glob(pattern)), reverse=True)
    found += ["/usr/local/bin/python3.13", "/opt/homebrew/bin/python3.13", "/usr/bin/python3.13"]
    return [path for path in dict.fromkeys(found) if path and os.access(path, os.X_OK)]


def _compile(python: str, target: Path) -> None:
    result = subprocess.run(  # noqa: S603 - the interpreter the operator named
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
        check=False,
    )
    if result.returncode != 0:
        raise BuildError("byte-compiling the artifact failed (see above)")


def _tree_size(target: Path) -> tuple[int, int]:
    files = [p for p in target.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def _zip(target: Path, zip_path: Path, level: int) -> int:
    """Sorted entries with their permissions: the same tree gives the same archive content."""
    zip_path.unlink(missing_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for path in sorted(p for p in target.rglob("*") if p.is_file()):
            if path.name == MARKER:
                continue
            info = zipfile.ZipInfo(str(path.relative_to(target)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777 | 0o444) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return zip_path.stat().st_size


def _prepare(target: Path) -> None:
    """Start from an empty directory; only ever wipe one that an earlier build of ours made."""
    if target.exists():
        if any(target.iterdir()) and not (target / MARKER).exists():
            raise BuildError(f"{target} is not empty and was not made by this script: refusing to wipe it")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / MARKER).write_text("built by python -m deploy.package\n")


def build(
    function: Function,
    target: Path,
    *,
    local: bool = False,
    zip_path: Path | None = None,
    zip_level: int = 6,
    compile_with: str | None = None,
) -> Artifact:
    _prepare(target)
    if local:
        _copy_from_environment(function, target)
    else:
        _install_for_lambda(function, target)
    _copy_our_packages(function, target)
    _prune(target)
    _check_forbidden(function, target)
    if compile_with is not None:
        _compile(compile_with, target)
    size, files = _tree_size(target)
    if size > LAMBDA_UNZIPPED_LIMIT:
        raise BuildError(
            f"the {function.name} artifact is {size / 1e6:.1f} MB unzipped; Lambda allows 250 MB "
            "(a container image allows 10 GB: see deploy/*.Dockerfile)"
        )
    zip_size = _zip(target, zip_path, zip_level) if zip_path is not None else None
    platform = "this machine" if local else f"cp{PYTHON_VERSION.replace('.', '')}-{PLATFORM}"
    return Artifact(function, target, size, files, compile_with, platform, zip_path, zip_size)


_CHECK = """
import importlib, json, sys
sys.path[0:0] = [sys.argv[1]]
module, _, attribute = sys.argv[2].rpartition(".")
assert callable(getattr(importlib.import_module(module), attribute))
for name in sys.argv[3:]:
    importlib.import_module(name)
outside = sorted(
    name for name, m in sys.modules.items()
    if getattr(m, "__file__", None) and "." not in name
    and not m.__file__.startswith(sys.argv[1]) and not m.__file__.startswith(sys.base_prefix)
)
print(json.dumps({"outside": outside, "modules": sorted(n for n in sys.modules if "." not in n)}))
"""


def check_imports(artifact: Artifact, python: str = sys.executable) -> list[str]:
    """Import the handler and the lazy imports with nothing but the artifact and the standard library
    on sys.path (-I: no environment, no user site; -S: no site-packages; -B: leave the tree as built).
    Returns the top-level modules loaded. Meaningful only for an artifact built for this machine."""
    f = artifact.function
    result = subprocess.run(  # noqa: S603 - our own argv
        [python, "-I", "-S", "-B", "-c", _CHECK, str(artifact.path), f.handler, *f.lazy_imports],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise BuildError(f"the {f.name} artifact does not import on its own:\n{result.stderr[-2000:]}")
    import json

    report = json.loads(result.stdout.splitlines()[-1])
    if report["outside"]:
        raise BuildError(f"the {f.name} artifact imported modules from outside itself: {report['outside']}")
    modules: list[str] = report["modules"]
    return modules


def _describe(artifact: Artifact) -> str:
    line = (
        f"{artifact.function.name:<7} [{artifact.platform}] {artifact.path}  "
        f"{artifact.size / 1e6:.1f} MB unzipped "
        f"({artifact.size / LAMBDA_UNZIPPED_LIMIT:.0%} of Lambda's 250 MB), {artifact.files} files"
    )
    if artifact.zip_path is not None and artifact.zip_size is not None:
        line += f"; {artifact.zip_path} {artifact.zip_size / 1e6:.1f} MB"
    if artifact.compiled_with:
        line += f"; .pyc by {artifact.compiled_with}"
    elif artifact.platform != "this machine":
        line += f"; no .pyc (no Python {PYTHON_VERSION} found to compile with: see --compile-with)"
    return line


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.package", description="Build the Lambda artifacts (see the module docstring)."
    )
    parser.add_argument("functions", nargs="+", choices=sorted(FUNCTIONS), help="which artifacts to build")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="parent directory: one subdirectory per function")
    where.add_argument("--into", type=Path, help="the artifact directory itself (one function; sam build)")
    parser.add_argument("--zip", action="store_true", help="also write <dir>.zip beside each artifact")
    parser.add_argument(
        "--local",
        action="store_true",
        help="copy dependencies from this environment (this machine's platform; for tests, no network)",
    )
    parser.add_argument("--check", action="store_true", help="import each handler from its artifact alone")
    parser.add_argument(
        "--compile-with",
        metavar="PYTHON",
        help=f"a Python {PYTHON_VERSION} to byte-compile the artifact with",
    )
    args = parser.parse_args(argv)
    if args.into is not None and len(args.functions) != 1:
        parser.error("--into builds exactly one function")
    if args.check and not args.local:
        parser.error(f"--check needs --local: a {PLATFORM} artifact cannot be imported on this machine")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        compile_with = None if args.local else _python_313(args.compile_with)
        artifacts: list[Artifact] = []
        for name in args.functions:
            function = FUNCTIONS[name]
            target = args.into if args.into is not None else args.out / name
            zip_path = target.with_name(target.name + ".zip") if args.zip else None
            artifact = build(function, target, local=args.local, zip_path=zip_path, compile_with=compile_with)
            if args.check:
                check_imports(artifact)
            artifacts.append(artifact)
            print(_describe(artifact), flush=True)
    except BuildError as exc:
        print(f"deploy.package: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
