"""The API handler as it was before the synchronous read path (P1x), measured in the same run.

The old handler is the code of commit PREVIOUS (main just before issue 15), checked out into a
temporary git worktree. Both handlers define the same module names, so the old one runs in a child
process (same Python, same virtualenv, pinned to the same CPU) that times rounds of calls on request:
the rounds alternate with the new handler's, so machine noise hits both alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.fixtures import ROOT

__all__ = ["PREVIOUS", "PreviousHandler", "previous_checkout", "previous_handler"]

PREVIOUS = "020bb538f0394f3f971bf1084401499ce20a56d1"

# Runs in the child, with the old checkout first on sys.path: one warm container, timed on request.
_CHILD = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
out = sys.stdout
sys.stdout = open(os.devnull, "w")  # its EMF lines, as in the parent
import api_lambda.app
assert api_lambda.app.__file__.startswith(sys.argv[1]), api_lambda.app.__file__
from api_lambda.app import build_app
from bench.fixtures import Context, api_event
config = json.loads(sys.argv[2])
app = build_app(config["env"])
event, context = api_event(query=config["query"]), Context()
app.invoke(event, context, True)
out.write("ready\\n"); out.flush()
for line in sys.stdin:
    n = int(line)
    clock = time.perf_counter_ns
    values = []
    for _ in range(n):
        start = clock()
        app.invoke(event, context, False)
        values.append((clock() - start) / 1000)
    out.write(json.dumps(values) + "\\n"); out.flush()
"""


class PreviousHandler:
    """The old handler in its child process: `time(n)` runs n invocations there and returns µs each."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    def time(self, n: int) -> list[float]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f"{n}\n")
        self._process.stdin.flush()
        values: list[float] = json.loads(self._process.stdout.readline())
        return values


@contextlib.contextmanager
def previous_checkout() -> Iterator[Path | None]:
    """A temporary git worktree of PREVIOUS, or None when this is no git checkout that has it."""
    known = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"], check=False, capture_output=True
    )
    if known.returncode != 0:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-previous-") as tmp:
        checkout = Path(tmp) / "previous"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(checkout), PREVIOUS],
            check=True,
        )
        try:
            yield checkout
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=False
            )


@contextlib.contextmanager
def previous_handler(env: dict[str, str], query: str, cpu: int | None) -> Iterator[PreviousHandler | None]:
    """The old handler serving `query` on `env`, or None when there is no PREVIOUS to check out."""
    with previous_checkout() as checkout:
        if checkout is None:
            yield None
            return
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(checkout), json.dumps({"env": env, "query": query})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": f"{checkout}{os.pathsep}{ROOT}"},
        )
        try:
            if cpu is not None:
                os.sched_setaffinity(process.pid, {cpu})
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("the previous handler did not start")
            yield PreviousHandler(process)
        finally:
            process.kill()
            process.wait()
