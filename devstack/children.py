"""What every child process of the stack shares: the readiness line and the parent watch.

The supervisor reads each child's stdout. A child prints `READY_LINE` once it can serve (its handler is
loaded); the supervisor swallows that line and counts the child as up.

A child whose supervisor died (SIGKILL, a crash) must not live on holding ports: a daemon thread notices
that the parent changed and ends the process.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["READY_LINE", "announce_ready", "watch_parent"]

READY_LINE = "@@devstack:ready"


def announce_ready() -> None:
    sys.stdout.write(READY_LINE + "\n")
    sys.stdout.flush()


def watch_parent(interval: float = 0.5) -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
