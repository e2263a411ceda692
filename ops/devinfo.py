"""`leaderboard-ops --dev`: the environment of a running `make dev` stack, from its info file.

The stack writes `ops_env` there once it is ready (devstack/environment.py: queue URLs, the moto
endpoint and its dummy credentials, Valkey, the fresh window the API uses) and removes the file when
it stops. A file left behind by a stack that was killed names a pid that is gone: that is an error
too, not a silent connection timeout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ops.errors import UsageError

__all__ = ["default_info_file", "dev_environment"]


def default_info_file() -> Path:
    from devstack.options import DEFAULT_INFO_FILE

    return DEFAULT_INFO_FILE


def dev_environment(path: Path) -> dict[str, str]:
    """The variables leaderboard-ops needs for the stack that wrote `path`."""
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no running dev stack: {path} does not exist (start one with `make dev`)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a dev stack's info file ({type(exc).__name__})") from None
    env = info.get("ops_env") if isinstance(info, dict) else None
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise UsageError(f"{path} has no ops_env: it was written by an older `make dev`; restart the stack")
    pid = info.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        raise UsageError(
            f"the dev stack that wrote {path} (pid {pid}) is not running: start one with `make dev`"
        )
    return {str(name): value for name, value in env.items()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
