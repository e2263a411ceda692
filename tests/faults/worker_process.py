"""A refresh worker in its own process, for tests that kill it (`python -m tests.faults.worker_process`).

argv: a JSON object of environment variables, then the mode:
- `before-write`: the worker kills itself (SIGKILL) after fetching and staging, just before it swaps the
  new snapshot in (or applies a delta);
- `normal`: the worker runs; the test kills it from outside whenever it likes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from common.messages import RefreshRequest
from refresh_worker.app import WorkerApp, build_app
from tests.support import FakeContext, sqs_event


class DieBeforeWrite:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        return self._die()

    async def apply_changes(self, *args: Any, **kwargs: Any) -> Any:
        return self._die()

    def _die(self) -> Any:
        print("about-to-write", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


def main() -> None:
    env, mode = json.loads(sys.argv[1]), sys.argv[2]
    os.environ.update(env)
    app = build_app()
    assert isinstance(app, WorkerApp)
    if mode == "before-write":
        app.refresher._cache = DieBeforeWrite(app.refresher._cache)  # type: ignore[assignment]
    print("started", flush=True)
    event = sqs_event(RefreshRequest("global", "stale", datetime.now(UTC)).to_json())
    print(json.dumps(app.invoke(event, FakeContext(), True)), flush=True)


if __name__ == "__main__":
    main()
