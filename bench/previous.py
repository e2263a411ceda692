"""The API handler as it was before the synchronous read path (P1x), measured in the same run.

The old handler is the code of commit PREVIOUS, checked out into a temporary git worktree: main's last
commit before issue 15's synchronous read path landed (b19836b), i.e. the async GLIDE handler already
on the v2 snapshot layout with the top list. Both handlers define the same module names, so the old
one runs in a child process (same Python, same virtualenv, pinned to the same CPU) that times rounds
of calls on request: the rounds alternate with the new handler's, so machine noise hits both alike.

The child first serves the board the parent wrote (same board, same run). If its warm-up call is not
a cache HIT (a PREVIOUS whose layout cannot read today's board: an old handler then takes every call
as a MISS and waits for a refresh that never comes, which is how `python -m bench read` hung with a
v1 PREVIOUS), it writes a board of its own with its own writer (its `bench.fixtures.Snapshots`, same
rows) and serves that; the result says which (`previous_board`). Every reply from the child has a
deadline, so a child that stops answering fails the run instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.fixtures import ROOT

__all__ = ["PREVIOUS", "PreviousHandler", "previous_checkout", "previous_handler"]

# main's last commit before b19836b ("API read path on valkey-glide-sync").
PREVIOUS = "299e3666475cb02b58c024c1c67c11410f58a109"
REPLY_TIMEOUT_S = 120.0

# Runs in the child, with the old checkout first on sys.path: one warm container, timed on request.
_CHILD = """
import json, os, sys, time, types
sys.path.insert(0, sys.argv[1])
out = sys.stdout
sys.stdout = open(os.devnull, "w")  # its EMF lines, as in the parent
import api_lambda.app
assert api_lambda.app.__file__.startswith(sys.argv[1]), api_lambda.app.__file__
from api_lambda.app import build_app
from bench.fixtures import Context, api_event
config = json.loads(sys.argv[2])
event, context = api_event(query=config["query"]), Context()

def cache_status(response):
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response.get("statusCode"), headers.get("x-cache")

def warm(env):
    app = build_app(env)
    return app, cache_status(app.invoke(event, context, True))

env = dict(config["env"], LEADERBOARD_MISS_WAIT_MS="0")  # a miss must not wait for a refresh here
app, status = warm(env)
board = "shared"
if status != (200, "HIT"):
    from bench.fixtures import Snapshots, entries
    server = types.SimpleNamespace(host=env["VALKEY_HOST"], port=int(env["VALKEY_PORT"]))
    own = env["LEADERBOARD_KEY"] + "-previous"
    snapshots = Snapshots(server)
    snapshots.write(own, entries(config["entries"]))
    snapshots.close()
    app, status = warm(dict(env, LEADERBOARD_KEY=own))
    board = "own (its own writer: it could not read the shared board: %s %s)" % status
if status != (200, "HIT"):
    out.write(json.dumps({"error": "the previous handler answers %s %s, not 200 HIT" % status}) + "\\n")
    out.flush()
    sys.exit(1)
out.write(json.dumps({"ready": True, "board": board}) + "\\n"); out.flush()
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

    def __init__(self, process: subprocess.Popen[str], board: str) -> None:
        self._process = process
        self.board = board

    def time(self, n: int) -> list[float]:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{n}\n")
        self._process.stdin.flush()
        values: list[float] = _reply(self._process)
        return values


def _reply(process: subprocess.Popen[str], timeout_s: float = REPLY_TIMEOUT_S) -> Any:
    """The child's next line as JSON, or RuntimeError when it exits or says nothing within the timeout.

    The child writes exactly one line per request, so the text buffer is empty whenever we wait here and
    select() on the pipe sees everything."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    if not ready:
        raise RuntimeError(f"the previous handler did not answer within {timeout_s:.0f} s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the previous handler exited (code {process.wait()})")
    reply = json.loads(line)
    if isinstance(reply, dict) and "error" in reply:
        raise RuntimeError(reply["error"])
    return reply


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
def previous_handler(
    env: dict[str, str], query: str, cpu: int | None, entries: int
) -> Iterator[PreviousHandler | None]:
    """The old handler serving `query` on `env`'s board, or None when there is no PREVIOUS to check out.

    `entries` is the size of the board the child writes itself if it cannot read the shared one."""
    with previous_checkout() as checkout:
        if checkout is None:
            yield None
            return
        config = {"env": env, "query": query, "entries": entries}
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(checkout), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": f"{checkout}{os.pathsep}{ROOT}"},
        )
        try:
            if cpu is not None:
                os.sched_setaffinity(process.pid, {cpu})
            started = _reply(process)
            yield PreviousHandler(process, started["board"])
        finally:
            process.kill()
            process.wait()
