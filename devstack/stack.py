"""The supervisor behind `make dev`: engines, sample data, the Lambda "containers", the schedule.

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
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from common.config import ApiSettings, ConfigError, WorkerSettings
from devstack.children import READY_LINE
from devstack.options import Options
from devstack.output import Output
from testkit.engines import EngineError, PostgresEngine, SqsEngine, ValkeyServer, migrations
from testkit.seed import SeedReport, SeedSpec

__all__ = ["Stack", "StartupError"]

T = TypeVar("T")

QUEUE_NAME = "leaderboard-refresh"
READY_TIMEOUT_SECONDS = 90
STOP_GRACE_SECONDS = 3.0
DEV_FRESH_SECONDS = "10"
_SOURCE_VARS = ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_KEY", "SUPABASE_KEY_SECRET_ARN",
                "LEADERBOARD_API_URL", "LEADERBOARD_API_TOKEN", "LEADERBOARD_SOURCE")  # fmt: skip
_VALKEY_VARS = (
    "VALKEY_CLUSTER_MODE",
    "VALKEY_TLS",
    "VALKEY_TLS_CA_FILE",
    "VALKEY_USERNAME",
    "VALKEY_PASSWORD",
)
_AWS_VARS = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


class StartupError(Exception):
    """The stack cannot start; the message says what and how to fix it (one line)."""


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


@dataclass
class _Child:
    name: str
    process: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    pump: asyncio.Task[None] | None = None


@dataclass
class _Endpoints:
    """Where the children find the engines (placeholders while validating the configuration)."""

    valkey: tuple[str, int] | None = None  # None: VALKEY_* from the environment
    queue_url: str | None = None  # None: REFRESH_QUEUE_URL from the environment
    sqs_endpoint: str | None = None
    dlq_url: str | None = None
    database_url: str | None = None  # the embedded PostgreSQL; None: the configured source


class Stack:
    def __init__(self, options: Options, output: Output, environ: dict[str, str] | None = None) -> None:
        self.opt = options
        self.out = output
        self.env = dict(os.environ if environ is None else environ)
        self.started = time.monotonic()
        self._stop = asyncio.Event()
        self._signals = 0
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self._children: list[_Child] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._listener: socket.socket | None = None
        self._temp_dir: Path | None = None
        self.endpoints = _Endpoints()
        self.valkey: ValkeyServer | None = None
        self.postgres: PostgresEngine | None = None
        self.sqs: SqsEngine | None = None
        self.seeded: SeedReport | None = None
        self.example: dict[str, Any] = {}

    # ---- what is embedded and what comes from the environment ----------------------------------

    def _set(self, name: str) -> bool:
        return bool(self.env.get(name, "").strip())

    @property
    def external_valkey(self) -> bool:
        return self._set("VALKEY_HOST")

    @property
    def external_queue(self) -> bool:
        return self._set("REFRESH_QUEUE_URL")

    @property
    def external_source(self) -> bool:
        return any(self._set(name) for name in ("DATABASE_URL", "SUPABASE_URL", "LEADERBOARD_API_URL"))

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL database the stack may seed and simulate into (embedded, or DATABASE_URL)."""
        if self.postgres is not None:
            return self.postgres.uri
        return self.env.get("DATABASE_URL", "").strip() or None

    def child_env(self, role: str, ep: _Endpoints) -> dict[str, str]:
        """A function's environment. The API gets no database credentials: it never reads the source."""
        env = dict(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        env["LOG_FORMAT"] = "console" if self.out.pretty else "json"
        env.setdefault("LEADERBOARD_FRESH_SECONDS", DEV_FRESH_SECONDS)
        if ep.valkey is not None:
            for name in _VALKEY_VARS:
                env.pop(name, None)
            env["VALKEY_HOST"], env["VALKEY_PORT"] = ep.valkey[0], str(ep.valkey[1])
        if ep.queue_url is not None:
            for name in _AWS_VARS:
                env.pop(name, None)
            env.update(REFRESH_QUEUE_URL=ep.queue_url, AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=SqsEngine.REGION,  # noqa: S106 - moto's dummies
                       AWS_DEFAULT_REGION=SqsEngine.REGION)  # fmt: skip
            if ep.sqs_endpoint:
                env["AWS_ENDPOINT_URL_SQS"] = ep.sqs_endpoint
        if role == "api" or ep.database_url is not None:
            for name in _SOURCE_VARS:
                env.pop(name, None)
        if role == "worker" and ep.database_url is not None:
            env["DATABASE_URL"] = ep.database_url
        return env

    def validate(self) -> None:
        """Check both functions' configuration before anything starts (with placeholder addresses)."""
        placeholders = _Endpoints(
            valkey=None if self.external_valkey else ("127.0.0.1", 6379),
            queue_url=None if self.external_queue else "http://127.0.0.1:1/000000000000/q",
            database_url=None if self.external_source else "postgresql://localhost/postgres",
        )
        problems: list[str] = []
        for role, settings in (("api", ApiSettings), ("worker", WorkerSettings)):
            try:
                settings.from_env(self.child_env(role, placeholders))
            except ConfigError as error:
                problems += [p for p in error.problems if p not in problems]
        if problems:
            raise StartupError("invalid configuration: " + "; ".join(problems))
        if self.opt.migrate and not self._set("DATABASE_URL"):
            raise StartupError(
                "--migrate applies supabase/migrations to DATABASE_URL, which is not set (the embedded "
                "PostgreSQL is always migrated; for a Supabase project use `supabase db push`)"
            )
        if (self.opt.seed or self.opt.simulate) and self.external_source and not self._set("DATABASE_URL"):
            flag = "--seed" if self.opt.seed else "--simulate"
            raise StartupError(
                f"{flag} writes to PostgreSQL: set DATABASE_URL (or unset the source variables to use "
                "the embedded PostgreSQL)"
            )

    # ---- the run ---------------------------------------------------------------------------------

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            self.out.event("info", "stopping", hint="Ctrl-C again to stop at once")
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal)
        code = 0
        try:
            self.validate()
            await self._start()
            self._announce()
            code = await self._serve()
        except _Interrupted:
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
        print(f"devstack: error: {message}".splitlines()[0], file=sys.stderr, flush=True)
        return 1

    def _check(self) -> None:
        if self._stop.is_set():
            raise _Interrupted

    async def _blocking(self, what: Callable[[], T]) -> T:
        """Run a blocking start in a thread and let it finish even if we are interrupted meanwhile (a
        half-abandoned engine start would leave a process behind); then honour the interruption."""
        future = asyncio.get_running_loop().run_in_executor(None, what)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await future
            raise

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
            raise _Interrupted
        return task.result()

    async def _start(self) -> None:
        self._listener = self._bind()
        if self.opt.keep_data:
            self.opt.data_dir.mkdir(parents=True, exist_ok=True)
            data = self.opt.data_dir
        else:
            data = self._temp_dir = Path(tempfile.mkdtemp(prefix="devstack-"))
        starts: list[Awaitable[None]] = []
        if self.external_valkey:
            self._check_external_valkey()
        else:
            starts.append(self._blocking(lambda: self._start_valkey(data / "valkey")))
        if not self.external_source:
            starts.append(self._blocking(lambda: self._start_postgres(data / "pg")))
        if self.external_queue:
            self._check_external_queue()
        else:
            starts.append(self._blocking(self._start_sqs))
        failures = [
            r for r in await asyncio.gather(*starts, return_exceptions=True) if isinstance(r, BaseException)
        ]
        if failures:
            raise failures[0]
        self._check()
        if self.opt.migrate and self.postgres is None:
            await self._interruptible(self._migrate_external())
        await self._interruptible(self._seed())
        self._check()
        await self._spawn_children()
        self._listener.close()  # the API processes hold it now
        self._listener = None
        await self._interruptible(self._lookup_examples())

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

    def _start_valkey(self, data: Path) -> None:
        data.mkdir(parents=True, exist_ok=True)
        server = ValkeyServer(self.opt.valkey_port, data_dir=data)
        server.start()
        self._cleanups.append(("valkey-server", server.stop))
        self.valkey = server
        self.endpoints.valkey = (server.host, server.port)

    def _check_external_valkey(self) -> None:
        host = self.env["VALKEY_HOST"].strip()
        port = int(self.env.get("VALKEY_PORT", "").strip() or 6379)
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as exc:
            raise StartupError(
                f"nothing answers at VALKEY_HOST={host} VALKEY_PORT={port} ({exc.strerror or exc}): "
                "start it, or unset VALKEY_HOST to use the embedded valkey-server"
            ) from None

    def _start_postgres(self, data: Path) -> None:
        data.mkdir(parents=True, exist_ok=True)
        engine = PostgresEngine(data)
        engine.start()
        self._cleanups.append(("postgresql", engine.stop))
        engine.apply_migrations()
        self.postgres = engine

    def _start_sqs(self) -> None:
        try:
            engine = SqsEngine(self.opt.sqs_port)
        except ImportError:
            raise EngineError(
                "moto is not installed: run `make venv` (or pip install 'moto[server]')"
            ) from None
        engine.start()
        self._cleanups.append(("moto", engine.stop))
        queues = engine.create_queues(
            QUEUE_NAME,
            max_receive_count=self.opt.max_receive_count,
            visibility_timeout=self.opt.visibility_timeout,
        )
        self.sqs = engine
        self.endpoints.queue_url = queues.queue_url
        self.endpoints.dlq_url = queues.dlq_url
        self.endpoints.sqs_endpoint = engine.endpoint
        # This process sends the scheduled refreshes through the same client code as the API.
        os.environ.update(AWS_ENDPOINT_URL_SQS=engine.endpoint, AWS_ACCESS_KEY_ID="testing",
                          AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=SqsEngine.REGION)  # noqa: S106  # fmt: skip
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)

    def _check_external_queue(self) -> None:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        url = self.env["REFRESH_QUEUE_URL"].strip()
        try:
            boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        except (BotoCoreError, ClientError) as exc:
            raise StartupError(
                f"REFRESH_QUEUE_URL={url} is not reachable ({type(exc).__name__}): check it and "
                "AWS_ENDPOINT_URL_SQS, or unset REFRESH_QUEUE_URL to use the embedded moto SQS"
            ) from None
        self.endpoints.dlq_url = self.env.get("REFRESH_DLQ_URL", "").strip() or None

    async def _connect(self) -> Any:
        import asyncpg

        url = self.database_url
        assert url is not None
        try:
            return await asyncpg.connect(url, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise StartupError(f"cannot connect to DATABASE_URL ({type(exc).__name__}: {exc})") from None

    async def _migrate_external(self) -> None:
        import asyncpg

        conn = await self._connect()
        try:
            for path in migrations():
                try:
                    await conn.execute(path.read_text())
                except asyncpg.PostgresError as exc:
                    raise EngineError(
                        f"migration {path.name} failed on DATABASE_URL: {exc.sqlstate} {exc}".splitlines()[0]
                    ) from None
                self.out.event("info", "migration_applied", migration=path.name)
        finally:
            await conn.close()

    async def _seed(self) -> None:
        import asyncpg

        embedded = self.postgres is not None
        if self.database_url is None or self.opt.seed is False or (not embedded and not self.opt.seed):
            return
        conn = await self._connect()
        try:
            await self._seed_into(conn, embedded)
        except asyncpg.PostgresError as exc:
            hint = "" if embedded or self.opt.migrate else " (--migrate creates the schema)"
            raise StartupError(f"seeding failed: {exc.sqlstate} {exc}{hint}") from None
        finally:
            await conn.close()

    async def _seed_into(self, conn: Any, embedded: bool) -> None:
        from testkit.seed import load

        existing = await conn.fetchval("select count(*) from public.challenge_results")
        if existing:
            where = self.opt.data_dir if embedded else "DATABASE_URL"
            self.out.event("info", "seed_skipped", reason=f"{where} already has {existing:,} results")
            return
        spec = SeedSpec(self.opt.users, self.opt.challenges, self.opt.results, self.opt.random_seed)
        self.out.event("info", "seeding", users=spec.users, challenges=spec.challenges, results=spec.results)
        self.seeded = await load(conn, spec)
        self.out.event("info", self.seeded.summary(), seconds=round(self.seeded.seconds, 2))

    async def _lookup_examples(self) -> None:
        """A real user id and a busy challenge for the example requests (best effort)."""
        if self.database_url is None:
            return
        import asyncpg

        try:
            conn = await asyncpg.connect(self.database_url, timeout=3)
        except Exception:  # noqa: BLE001 - an unreachable source only costs the examples
            return
        try:
            user = await conn.fetchval(
                "select user_id::text from public.leaderboard_totals"
                " order by -score, last_solved_at, user_id"
                " offset least(41, greatest((select count(*) from public.leaderboard_totals) - 1, 0)) limit 1"
            )
            challenge = await conn.fetchval(
                "select challenge_id from public.challenge_best group by 1 order by count(*) desc, 1 limit 1"
            )
            results = await conn.fetchval("select count(*) from public.challenge_results")
            players = await conn.fetchval("select count(*) from public.leaderboard_totals")
            self.example = {"user_id": user, "challenge": challenge, "results": results, "players": players}
        except Exception:  # noqa: BLE001 - best effort, as above
            return
        finally:
            await conn.close()

    # ---- children --------------------------------------------------------------------------------

    async def _spawn(
        self, name: str, args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()
    ) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            pass_fds=pass_fds,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the children in order
            limit=1 << 20,
        )
        child = _Child(name, process)
        child.pump = asyncio.create_task(self._pump(child))
        self._children.append(child)

    async def _pump(self, child: _Child) -> None:
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

    async def _spawn_children(self) -> None:
        ep = self.endpoints
        if self.postgres is not None:
            ep.database_url = self.postgres.uri
        queue_url = ep.queue_url or self.env["REFRESH_QUEUE_URL"].strip()
        await self._spawn(
            "worker",
            [
                "-m",
                "devstack.worker_process",
                "--queue-url",
                queue_url,
                "--timeout",
                str(self.opt.worker_timeout),
            ],
            self.child_env("worker", ep),
        )
        assert self._listener is not None
        fd = self._listener.fileno()
        for i in range(1, self.opt.api_workers + 1):
            await self._spawn(
                f"api-{i}",
                ["-m", "devstack.api_process", "--fd", str(fd), "--timeout", str(self.opt.api_timeout)],
                self.child_env("api", ep),
                pass_fds=(fd,),
            )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(child.ready.is_set() for child in self._children):
            self._check()
            for child in self._children:
                if child.process.returncode is not None:
                    if child.pump is not None:  # let its last lines through first
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(child.pump), 2)
                    last = child.tail[-1] if child.tail else "no output"
                    code = child.process.returncode
                    raise StartupError(f"{child.name} exited while starting (code {code}): {last[:300]}")
            if time.monotonic() > deadline:
                raise StartupError(f"the functions did not start within {READY_TIMEOUT_SECONDS} s")
            await asyncio.sleep(0.05)

    async def _stop_children(self) -> None:
        live = [c for c in self._children if c.process.returncode is None]
        for child in live:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(c.process.returncode is None for c in live) and time.monotonic() < deadline:
            if self._signals > 1:
                break
            await asyncio.sleep(0.05)
        for child in live:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
        for child in self._children:
            await child.process.wait()
            if child.pump is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(child.pump, 2)

    # ---- running ---------------------------------------------------------------------------------

    async def _serve(self) -> int:
        if self.opt.schedule_seconds:
            self._tasks.append(asyncio.create_task(self._schedule()))
        if self.opt.simulate and self.database_url is not None:
            from devstack.simulate import Simulator

            def report(level: str, message: str, **fields: Any) -> None:
                self.out.event(level, message, process="simulate", **fields)

            simulator = Simulator(self.database_url, rate=self.opt.simulate_rate, report=report)
            self._tasks.append(asyncio.create_task(simulator.run(self._stop)))
        stop = asyncio.create_task(self._stop.wait())
        exits = {asyncio.create_task(child.process.wait()): child for child in self._children}
        done, _ = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stop, *exits):
            task.cancel()
        if stop in done:
            return 0
        child = next(exits[task] for task in done if task in exits)
        if child.pump is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(child.pump), 2)
        message = (
            f"{child.name} exited unexpectedly (code {child.process.returncode}); its last lines are above"
        )
        self.out.event("error", "child_exited", child=child.name, code=child.process.returncode)
        print(f"devstack: error: {message}", file=sys.stderr, flush=True)
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
        child_env = self.child_env("worker", self.endpoints)
        return {
            "url": f"http://127.0.0.1:{self.opt.port}",
            "port": self.opt.port,
            "pid": os.getpid(),
            "api_pids": [c.process.pid for c in self._children if c.name.startswith("api")],
            "worker_pid": next(c.process.pid for c in self._children if c.name == "worker"),
            "valkey": {
                "host": valkey_host,
                "port": valkey_port,
                "embedded": self.valkey is not None,
                "pid": self.valkey.pid if self.valkey else None,
            },
            "database_url": self.database_url,
            "postgres_pid": self.postgres.pid if self.postgres else None,
            "sqs": {
                "endpoint": child_env.get("AWS_ENDPOINT_URL_SQS"),
                "queue_url": child_env["REFRESH_QUEUE_URL"],
                "dlq_url": self.endpoints.dlq_url,
                "embedded": self.sqs is not None,
            },
            "fresh_seconds": int(child_env.get("LEADERBOARD_FRESH_SECONDS", DEV_FRESH_SECONDS)),
            "schedule_seconds": self.opt.schedule_seconds,
            "data_dir": str(self.opt.data_dir if self.opt.keep_data else self._temp_dir),
            "seeded": None if self.seeded is None else self.seeded.as_dict(),
            "example": self.example,
            "ready_seconds": round(time.monotonic() - self.started, 2),
        }

    def examples(self, url: str) -> list[str]:
        user = self.example.get("user_id") or "<user-id>"
        challenge = self.example.get("challenge") or "<challenge-id>"
        return [
            f"curl -s '{url}/leaderboard?count=10'",
            f"curl -s '{url}/leaderboard?offset=20&count=5'",
            f"curl -s '{url}/leaderboard/users/{user}?around=2'",
            f"curl -s '{url}/leaderboard?board=challenge:{challenge}&count=5'",
        ]

    def _announce(self) -> None:
        info = self.info()
        if self.opt.info_file is not None:
            tmp = self.opt.info_file.with_name(self.opt.info_file.name + ".tmp")
            tmp.write_text(json.dumps(info, indent=2) + "\n")
            tmp.replace(self.opt.info_file)
        url = info["url"]
        if not self.out.pretty:
            self.out.event("info", "ready", curl=self.examples(url), **info)
            # stdout is a file or a pipe (JSON lines); whoever started us may be looking at stderr.
            hint = f"devstack: ready at {url} (JSON logs on stdout; try: {self.examples(url)[0]})"
            print(hint, file=sys.stderr, flush=True)
            return
        sqs = info["sqs"]
        if self.seeded:
            data = f"seeded {self.seeded.rows:,} results in {self.seeded.seconds:.1f} s"
        else:
            data = f"{self.example.get('results') or 0:,} results" if self.example else "not readable here"
        if self.opt.keep_data:
            where = f"kept in {self.opt.data_dir} (reused next time)"
        else:
            where = "temporary (--keep-data keeps it under .devstack/)"
        valkey = f"{info['valkey']['host']}:{info['valkey']['port']}"
        postgres = (
            f"{self.database_url}  ({data})" if self.database_url else f"not used ({self._source_name()})"
        )
        if self.sqs:
            queue = (
                f"(moto; visibility {self.opt.visibility_timeout} s, DLQ after {self.opt.max_receive_count})"
            )
        else:
            queue = "(REFRESH_QUEUE_URL)"
        refresh = f"fresh for {info['fresh_seconds']} s; "
        refresh += (
            f"scheduled every {self.opt.schedule_seconds} s" if self.opt.schedule_seconds else "no schedule"
        )
        refresh += "; simulating new results" if self.opt.simulate else ""
        lines = [
            "",
            f"  Leaderboard dev stack ready in {info['ready_seconds']:.1f} s",
            "",
            f"  API         {url}  ({self.opt.api_workers} API processes and 1 worker, handlers unchanged)",
            f"  Valkey      {valkey}  ({'embedded' if self.valkey else 'VALKEY_HOST'})",
            f"  PostgreSQL  {postgres}",
            f"  SQS         {sqs['queue_url']}  {queue}",
            f"  Refresh     {refresh}",
            f"  Data        {where}",
            "",
            "  Try:",
            *(f"    {line}" for line in self.examples(url)),
            "",
            "  Ctrl-C stops everything.",
            "",
        ]
        self.out.block(lines)

    def _source_name(self) -> str:
        kind = self.env.get("LEADERBOARD_SOURCE") or ("supabase" if self._set("SUPABASE_URL") else "http")
        return f"the worker reads the {kind} source"

    # ---- shutdown ---------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2)
        await self._stop_children()
        if self._listener is not None:
            self._listener.close()
        for name, stop in reversed(self._cleanups):
            try:
                await asyncio.get_running_loop().run_in_executor(None, stop)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                self.out.event("warning", "stop_failed", engine=name, error=str(exc))
        if self.opt.info_file is not None:
            self.opt.info_file.unlink(missing_ok=True)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
