"""The function processes of the stack, supervised: start, labelled output, readiness, first exit, stop.

Each child is `python -m <module>` in a session of its own (Ctrl-C reaches the supervisor only; it
stops the children in order), with stdout and stderr on one pipe that is read line by line and
printed through `Output` with the child's name. A child is ready once it printed `READY_LINE`
(devstack/children.py). Stopping is SIGTERM to each child's process group, at most `grace` seconds,
then SIGKILL; `hurry()` (a second Ctrl-C) skips the waiting.

Why not honcho: its Manager blocks in its own loop and owns SIGINT/SIGTERM, forks one extra Python
process per child, starts children through a shell with `close_fds` (the API processes inherit the
listening socket) and has no JSON output. Measured in docs/local.md ("How the stack is built").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.children import READY_LINE
from devstack.errors import StartupError
from devstack.output import Output

__all__ = ["Child", "Supervisor"]

_LINE_LIMIT = 1 << 20


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def drained(self) -> None:
        """Wait (2 s at most) until the last lines of a child that exited are printed."""
        if self.pump is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.pump), 2)


class Supervisor:
    def __init__(self, output: Output) -> None:
        self.out = output
        self.children: list[Child] = []
        self._hurry = False

    async def spawn(
        self, name: str, args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()
    ) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            pass_fds=pass_fds,
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        child = Child(name, process)
        child.pump = asyncio.create_task(self._pump(child))
        self.children.append(child)
        return child

    async def _pump(self, child: Child) -> None:
        stream = child.process.stdout
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the limit: asyncio dropped it
                self.out.child_line(child.name, "(a line longer than 1 MiB was dropped)")
                continue
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == READY_LINE:
                child.ready.set()
                continue
            child.tail.append(line)
            self.out.child_line(child.name, line)

    async def wait_ready(self, within: float, check: Callable[[], None]) -> None:
        """Until every child announced itself; `check` raises to give up (a stop signal). A child that
        exits meanwhile is a StartupError quoting its last line."""
        deadline = time.monotonic() + within
        while not all(child.ready.is_set() for child in self.children):
            check()
            for child in self.children:
                if child.process.returncode is not None:
                    await child.drained()
                    last = child.tail[-1] if child.tail else "no output"
                    code = child.process.returncode
                    raise StartupError(f"{child.name} exited while starting (code {code}): {last[:300]}")
            if time.monotonic() > deadline:
                raise StartupError(f"the functions did not start within {within:.0f} s")
            await asyncio.sleep(0.05)

    async def first_exit(self, stop: asyncio.Event) -> Child | None:
        """The first child to exit, or None when `stop` is set first."""
        stopping = asyncio.create_task(stop.wait())
        exits = {asyncio.create_task(child.process.wait()): child for child in self.children}
        done, _ = await asyncio.wait({stopping, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopping, *exits):
            task.cancel()
        if stopping in done:
            return None
        child = next(exits[task] for task in done if task in exits)
        await child.drained()
        return child

    def hurry(self) -> None:
        """Skip the grace period of a stop in progress (a second Ctrl-C)."""
        self._hurry = True

    async def stop(self, grace: float) -> None:
        live = [c for c in self.children if c.process.returncode is None]
        self._signal(live, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.process.returncode is None for c in live) and time.monotonic() < deadline:
            if self._hurry:
                break
            await asyncio.sleep(0.05)
        self._signal([c for c in live if c.process.returncode is None], signal.SIGKILL)
        for child in self.children:
            await child.process.wait()
            await child.drained()
            if child.pump is not None:
                child.pump.cancel()

    @staticmethod
    def _signal(children: list[Child], signum: int) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signum)
