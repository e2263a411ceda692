"""`make dev` from start to stop: engines, sample data, the Lambda "containers", the schedule.

Process model (each Lambda container is its own process, because valkey-glide serves one event loop per
process; see common/runtime.py):

    python -m devstack              this supervisor: binds the HTTP port, starts the engines, seeds,
    │                               sends the scheduled refresh, simulates players, prints every line
    ├── valkey-server               embedded, unless VALKEY_HOST is set
    ├── (moto SQS, a thread here)   embedded, unless REFRESH_QUEUE_URL is set
    ├── api-1 … api-N               devstack.api_process: uvicorn + the API Gateway adapter on the shared
    │                               socket, one handler thread each
    └── worker                      devstack.worker_process: Lambda's SQS event source + the worker handler
    PostgreSQL (pgserver)           embedded unless a source is configured; pg_ctl runs it in its own
                                    session, so it is stopped explicitly, never orphaned

The parts live beside this module: environment.py (what each process gets), embedded.py (the engines),
supervisor.py (the child processes), database.py (migrate, seed, examples), banner.py (the ready
message).

Shutdown (Ctrl-C, SIGTERM, or a child that dies): children get SIGTERM and at most a few seconds, then
SIGKILL; engines stop in reverse order; temporary data is removed. A second Ctrl-C skips the waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import time
import traceback
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from common.secret_registry import url_without_password
from devstack import database
from devstack.banner import banner, examples
from devstack.embedded import Engines
from devstack.environment import DEV_FRESH_SECONDS, Endpoints, Environment
from devstack.errors import Interrupted, StartupError
from devstack.options import Options
from devstack.output import Output
from devstack.supervisor import Supervisor
from testkit.engines import EngineError
from testkit.seed import SeedReport, SeedSpec

__all__ = ["Stack", "StartupError"]

T = TypeVar("T")

READY_TIMEOUT_SECONDS = 90
STOP_GRACE_SECONDS = 3.0


class Stack:
    def __init__(self, options: Options, output: Output, environ: Mapping[str, str] | None = None) -> None:
        self.opt = options
        self.out = output
        self.environment = Environment(os.environ if environ is None else environ, pretty=output.pretty)
        self.started = time.monotonic()
        self._stop = asyncio.Event()
        self._signals = 0
        self.children = Supervisor(output)
        self._tasks: list[asyncio.Task[Any]] = []
        self._listener: socket.socket | None = None
        self._temp_dir: Path | None = None
        self.endpoints = Endpoints()
        self.engines = Engines(options, self.environment, self.endpoints)
        self.seeded: SeedReport | None = None
        self.example: dict[str, Any] = {}

    @property
    def env(self) -> dict[str, str]:
        return self.environment.env

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL database the stack may seed and simulate into (embedded, or DATABASE_URL)."""
        if self.engines.postgres is not None:
            return self.engines.postgres.uri
        return self.env.get("DATABASE_URL", "").strip() or None

    # ---- the run ---------------------------------------------------------------------------------

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            self.out.event("info", "stopping", hint="Ctrl-C again to stop at once")
        else:
            self.children.hurry()
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal)
        code = 0
        try:
            self.environment.validate(self.opt)
            await self._start()
            self._announce()
            code = await self._serve()
        except Interrupted:
            code = 0
        except (StartupError, EngineError) as exc:
            code = self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: still one line, and everything is stopped
            if self.env.get("LOG_LEVEL", "").upper() == "DEBUG":
                traceback.print_exc()
            code = self._fail(f"unexpected {type(exc).__name__}: {exc} (LOG_LEVEL=DEBUG shows the traceback)")
        finally:
            await self._shutdown()
        if code == 0:
            self.out.event("info", "stopped", uptime_seconds=round(time.monotonic() - self.started, 1))
        return code

    def _fail(self, message: str) -> int:
        if not self.out.pretty:
            self.out.event("error", "failed", error=message)
        self.out.stderr(f"devstack: error: {message}".splitlines()[0])
        return 1

    def _check(self) -> None:
        if self._stop.is_set():
            raise Interrupted

    async def _interruptible(self, work: Awaitable[T]) -> T:
        """Await async work, cancelling it if a stop signal arrives first."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise Interrupted
        return task.result()

    async def _start(self) -> None:
        self._listener = self._bind()
        if self.opt.keep_data:
            self.opt.data_dir.mkdir(parents=True, exist_ok=True)
            data = self.opt.data_dir
        else:
            data = self._temp_dir = Path(tempfile.mkdtemp(prefix="devstack-"))
        await self.engines.start(data)
        self._check()
        if self.opt.migrate and self.engines.postgres is None:
            assert self.database_url is not None  # validate() checked DATABASE_URL
            await self._interruptible(database.migrate(self.database_url, self.out))
        await self._interruptible(self._seed())
        self._check()
        await self._spawn_children()
        self._listener.close()  # the API processes hold it now
        self._listener = None
        if self.database_url is not None:
            self.example = await self._interruptible(database.lookup_examples(self.database_url))

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.opt.port))
        except OSError:
            sock.close()
            raise StartupError(
                f"port {self.opt.port} is already in use: stop what listens there, or choose another "
                "port with --port or PORT=…"
            ) from None
        sock.listen(1024)
        sock.set_inheritable(True)
        return sock

    async def _seed(self) -> None:
        embedded = self.engines.postgres is not None
        if self.database_url is None or self.opt.seed is False or (not embedded and not self.opt.seed):
            return
        spec = SeedSpec(self.opt.users, self.opt.challenges, self.opt.results, self.opt.random_seed)
        where = self.opt.data_dir if embedded else "DATABASE_URL"
        self.seeded = await database.seed(
            self.database_url, spec, self.out, where=where, migrated=embedded or self.opt.migrate
        )

    # ---- the functions and the schedule ----------------------------------------------------------

    async def _spawn_children(self) -> None:
        ep = self.endpoints
        queue_url = ep.queue_url or self.env["REFRESH_QUEUE_URL"].strip()
        worker = ["-m", "devstack.worker_process", "--queue-url", queue_url]
        worker += ["--timeout", str(self.opt.worker_timeout)]
        await self.children.spawn("worker", worker, self.environment.child_env("worker", ep))
        assert self._listener is not None
        fd = self._listener.fileno()
        api = ["-m", "devstack.api_process", "--fd", str(fd), "--timeout", str(self.opt.api_timeout)]
        for i in range(1, self.opt.api_workers + 1):
            await self.children.spawn(f"api-{i}", api, self.environment.child_env("api", ep), pass_fds=(fd,))
        await self.children.wait_ready(READY_TIMEOUT_SECONDS, self._check)

    async def _serve(self) -> int:
        if self.opt.schedule_seconds:
            self._tasks.append(asyncio.create_task(self._schedule()))
        if self.opt.simulate and self.database_url is not None:
            from devstack.simulate import Simulator

            def report(level: str, message: str, **fields: Any) -> None:
                self.out.event(level, message, process="simulate", **fields)

            simulator = Simulator(self.database_url, rate=self.opt.simulate_rate, report=report)
            self._tasks.append(asyncio.create_task(simulator.run(self._stop)))
        child = await self.children.first_exit(self._stop)
        if child is None:
            return 0
        code = child.process.returncode
        self.out.event("error", "child_exited", child=child.name, code=code)
        message = f"{child.name} exited unexpectedly (code {code}); its last lines are above"
        self.out.stderr(f"devstack: error: {message}")
        return 1

    async def _schedule(self) -> None:
        """EventBridge Scheduler's job: one `{"board": "*", "reason": "schedule"}` message per period."""
        from common.messages import ALL_SCHEDULED, RefreshRequest
        from common.queue import QueueUnavailable, SqsRefreshQueue

        queue = SqsRefreshQueue(self.endpoints.queue_url or self.env["REFRESH_QUEUE_URL"].strip())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.opt.schedule_seconds)
                if self._stop.is_set():
                    return
                request = RefreshRequest(ALL_SCHEDULED, "schedule", datetime.now(UTC))
                try:
                    await queue.send(request)
                    self.out.event("info", "scheduled_refresh_sent", process="schedule", board=ALL_SCHEDULED)
                except QueueUnavailable as exc:
                    self.out.event("warning", "scheduled_refresh_failed", process="schedule", error=str(exc))
        finally:
            await queue.close()

    # ---- ready ------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        external = (self.env.get("VALKEY_HOST", ""), int(self.env.get("VALKEY_PORT", "").strip() or 6379))
        valkey_host, valkey_port = self.endpoints.valkey or external
        valkey, postgres = self.engines.valkey, self.engines.postgres
        child_env = self.environment.child_env("worker", self.endpoints)
        children = self.children.children
        return {
            "url": f"http://127.0.0.1:{self.opt.port}",
            "port": self.opt.port,
            "pid": os.getpid(),
            "api_pids": [c.pid for c in children if c.name.startswith("api")],
            "worker_pid": next(c.pid for c in children if c.name == "worker"),
            "valkey": {
                "host": valkey_host,
                "port": valkey_port,
                "embedded": valkey is not None,
                "pid": valkey.pid if valkey else None,
            },
            "database_url": url_without_password(self.database_url) if self.database_url else None,
            "postgres_pid": postgres.pid if postgres else None,
            "sqs": {
                "endpoint": child_env.get("AWS_ENDPOINT_URL_SQS"),
                "queue_url": child_env["REFRESH_QUEUE_URL"],
                "dlq_url": self.endpoints.dlq_url,
                "embedded": self.engines.sqs is not None,
            },
            "fresh_seconds": int(child_env.get("LEADERBOARD_FRESH_SECONDS", DEV_FRESH_SECONDS)),
            "schedule_seconds": self.opt.schedule_seconds,
            "data_dir": str(self.opt.data_dir if self.opt.keep_data else self._temp_dir),
            "seeded": None if self.seeded is None else self.seeded.as_dict(),
            "example": self.example,
            "ops_env": self.environment.ops_env(self.endpoints),
            "ready_seconds": round(time.monotonic() - self.started, 2),
        }

    def _announce(self) -> None:
        info = self.info()
        path = self.opt.info_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(path)
        url = info["url"]
        if not self.out.pretty:
            self.out.event("info", "ready", curl=examples(url, self.example), **info)
            # stdout is a file or a pipe (JSON lines); whoever started us may be looking at stderr.
            hint = f"devstack: ready at {url} (JSON logs on stdout; try: {examples(url, self.example)[0]})"
            self.out.stderr(hint)
            return
        if self.seeded:
            seeded = f"seeded {self.seeded.rows:,} results in {self.seeded.seconds:.1f} s"
        else:
            seeded = f"{self.example.get('results') or 0:,} results" if self.example else "not readable here"
        self.out.block(banner(info, self.opt, seeded=seeded, source_name=self.environment.source_name()))

    # ---- shutdown ---------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2)
        await self.children.stop(STOP_GRACE_SECONDS)
        if self._listener is not None:
            self._listener.close()
        await self.engines.stop(self.out)
        self._remove_info_file()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def _remove_info_file(self) -> None:
        """Remove the info file if it is ours (another stack may have started since and replaced it)."""
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.opt.info_file.read_text()).get("pid") == os.getpid():
                self.opt.info_file.unlink()
