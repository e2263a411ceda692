"""A real Varnish (Debian's `varnish`) and an upstream leaderboard that the e2e tests can switch off.

`Varnish` runs `varnishd -F` on a free loopback port with its own work directory (`-n`), so that
several can run beside each other and nothing system-wide is touched; `backend_requests()` reads what
it asked the origin for from its shared-memory log (varnishncsa in backend mode), `counter()` reads
varnishstat. `UpstreamSource` is the worker's `http` source (README "Sources"): a real HTTP server
whose answers the test changes, or turns into 503s to play a source outage.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from testkit.engines import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_VCL = ROOT / "deploy" / "varnish" / "leaderboard.vcl"


def varnishd_binary() -> str | None:
    return shutil.which("varnishd") or next(
        (str(p) for p in (Path("/usr/sbin/varnishd"),) if p.is_file()), None
    )


@dataclass(frozen=True)
class BackendRequest:
    at: float  # epoch seconds, when Varnish sent it
    method: str
    url: str  # path and query
    status: int


class Varnish:
    """One varnishd in the foreground; `vcl=None` runs the built-in VCL with `-b`."""

    def __init__(self, work_dir: Path, backend_port: int, vcl: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.work_dir = work_dir
        self.name = str(work_dir / "varnish")
        work_dir.mkdir(parents=True, exist_ok=True)
        command = [varnishd_binary() or "varnishd", "-F", "-j", "none", "-n", self.name,
                   "-a", f"127.0.0.1:{self.port}", "-s", "malloc,32m", "-T", "127.0.0.1:0",
                   "-p", "vsl_space=16m"]  # fmt: skip
        if vcl is None:
            command += ["-b", f"127.0.0.1:{backend_port}"]
        else:
            config = work_dir / vcl.name
            text = vcl.read_text()
            assert '.port = "8000";' in text, "the sample VCL's backend is no longer make dev's port"
            config.write_text(text.replace('.port = "8000";', f'.port = "{backend_port}";'))
            command += ["-f", str(config)]
        self._log = open(work_dir / "varnishd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 20) -> Varnish:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.work_dir / "varnishd.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"varnishd exited with {self.process.returncode}: {log}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"varnishd did not listen on {self.port} within {timeout} s")

    def counter(self, name: str = "MAIN.backend_req") -> int:
        out = subprocess.run(["varnishstat", "-n", self.name, "-1", "-j", "-f", name],
                             check=True, capture_output=True, text=True, timeout=10).stdout  # fmt: skip
        counters: dict[str, Any] = json.loads(out)
        counters = counters.get("counters", counters)
        return int(counters[name]["value"])

    def backend_requests(self) -> list[BackendRequest]:
        """Every request Varnish sent to the origin so far (background fetches included)."""
        out = subprocess.run(["varnishncsa", "-n", self.name, "-b", "-d",
                              "-F", "%{sec}t.%{msec_frac}t %m %U%q %s"],
                             check=True, capture_output=True, text=True, timeout=10).stdout  # fmt: skip
        requests = []
        for line in out.splitlines():
            at, method, url, status = line.split(" ")
            requests.append(BackendRequest(float(at), method, url, int(status) if status.isdigit() else 0))
        return requests

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


class UpstreamSource:
    """The worker's upstream HTTP API (`GET ?board=&limit=&offset=`): `players` in rank order."""

    def __init__(self, players: int = 40) -> None:
        self.down = False
        self.fetches = 0
        self.entries = [
            {"rank": n, "user_id": f"00000000-0000-4000-8000-{n:012d}", "username": f"player {n}",
             "score": 1000 - n, "solved": 1, "last_solved_at": "2026-11-01T10:00:00.000Z"}
            for n in range(1, players + 1)
        ]  # fmt: skip
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source.fetches += 1
                query = parse_qs(urlsplit(self.path).query)
                if source.down:
                    self._send(503, {"error": "down for the test"})
                elif query.get("board") != ["global"]:
                    self._send(404, {"error": "no such board"})
                else:
                    offset, limit = int(query["offset"][0]), int(query["limit"][0])
                    page = source.entries[offset : offset + limit]
                    self._send(200, {"total": len(source.entries), "entries": page})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/leaderboard"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def bump(self) -> None:
        """New results upstream: the leader gains a point (the next refresh shows it)."""
        self.entries[0] = {**self.entries[0], "score": self.entries[0]["score"] + 1}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
