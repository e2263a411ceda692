"""PostgreSQL 16 from the pgserver wheel, with the Supabase migrations applied."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testkit.errors import EngineError

__all__ = ["MIGRATIONS", "PostgresEngine", "migrations"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "supabase" / "migrations"


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
