"""The stack's engines: each one embedded (started here from testkit.engines) unless the environment
names one (VALKEY_HOST, REFRESH_QUEUE_URL, a source), which is then only checked for reachability.

Embedded engines start in parallel threads; each start runs to its end even when Ctrl-C arrives
meanwhile (a half-abandoned start would leave a process behind), and `stop()` stops whatever started,
in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from devstack.environment import MOTO_CREDENTIALS, Endpoints, Environment
from devstack.errors import StartupError
from devstack.options import Options
from devstack.output import Output
from testkit.engines import EngineError, PostgresEngine, SqsEngine, ValkeyServer

__all__ = ["QUEUE_NAME", "Engines"]

T = TypeVar("T")

QUEUE_NAME = "leaderboard-refresh"


async def _blocking(what: Callable[[], T]) -> T:
    """Run a blocking start in a thread and let it finish even if we are cancelled meanwhile."""
    future = asyncio.get_running_loop().run_in_executor(None, what)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise


class Engines:
    def __init__(self, opt: Options, environment: Environment, endpoints: Endpoints) -> None:
        self.opt = opt
        self.environment = environment
        self.env = environment.env
        self.endpoints = endpoints
        self.valkey: ValkeyServer | None = None
        self.postgres: PostgresEngine | None = None
        self.sqs: SqsEngine | None = None
        self._cleanups: list[tuple[str, Callable[[], None]]] = []

    async def start(self, data: Path) -> None:
        starts: list[Awaitable[None]] = []
        if self.environment.external_valkey:
            self._check_external_valkey()
        else:
            starts.append(_blocking(lambda: self._start_valkey(data / "valkey")))
        if not self.environment.external_source:
            starts.append(_blocking(lambda: self._start_postgres(data / "pg")))
        if self.environment.external_queue:
            self._check_external_queue()
        else:
            starts.append(_blocking(self._start_sqs))
        results = await asyncio.gather(*starts, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def stop(self, out: Output) -> None:
        for name, stop in reversed(self._cleanups):
            try:
                await asyncio.get_running_loop().run_in_executor(None, stop)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                out.event("warning", "stop_failed", engine=name, error=str(exc))

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
        self.endpoints.database_url = engine.uri

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
        os.environ.update(AWS_ENDPOINT_URL_SQS=engine.endpoint, AWS_REGION=SqsEngine.REGION)
        os.environ.update(MOTO_CREDENTIALS)
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
