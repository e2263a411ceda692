"""What the stack prints once it is ready: where everything is, requests to try, how to operate it.

Built from the same `info` dict that goes to the info file and the JSON `ready` line, so the banner can
never say something the info file does not.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.options import DEFAULT_INFO_FILE, Options

__all__ = ["banner", "examples", "export_block", "ops_command"]


def examples(url: str, example: Mapping[str, Any]) -> list[str]:
    user = example.get("user_id") or "<user-id>"
    challenge = example.get("challenge") or "<challenge-id>"
    return [
        f"curl -s '{url}/leaderboard?count=10'",
        f"curl -s '{url}/leaderboard?offset=20&count=5'",
        f"curl -s '{url}/leaderboard/users/{user}?around=2'",
        f"curl -s '{url}/leaderboard?board=challenge:{challenge}&count=5'",
    ]


def ops_command(info_file: Path) -> str:
    """How leaderboard-ops finds this stack by itself (its info file)."""
    if info_file == DEFAULT_INFO_FILE:
        return "leaderboard-ops --dev"
    return f"leaderboard-ops --dev-info {shlex.quote(str(info_file))}"


def export_block(ops_env: Mapping[str, str]) -> list[str]:
    """`export NAME=value \\` lines a shell can take as they are (values quoted for the shell)."""
    pairs = [f"{name}={shlex.quote(value)}" for name, value in ops_env.items()]
    return [("export " if i == 0 else "       ") + pair + (" \\" if i < len(pairs) - 1 else "")
            for i, pair in enumerate(pairs)]  # fmt: skip


def banner(info: Mapping[str, Any], opt: Options, *, seeded: str, source_name: str) -> list[str]:
    url, sqs, valkey = info["url"], info["sqs"], info["valkey"]
    if opt.keep_data:
        where = f"kept in {opt.data_dir} (reused next time)"
    else:
        where = "temporary (--keep-data keeps it under .devstack/)"
    database = info["database_url"]
    postgres = f"{database}  ({seeded})" if database else f"not used ({source_name})"
    if sqs["embedded"]:
        queue = f"(moto; visibility {opt.visibility_timeout} s, DLQ after {opt.max_receive_count})"
    else:
        queue = "(REFRESH_QUEUE_URL)"
    refresh = f"fresh for {info['fresh_seconds']} s; "
    refresh += f"scheduled every {opt.schedule_seconds} s" if opt.schedule_seconds else "no schedule"
    refresh += "; simulating new results" if opt.simulate else ""
    ops = ops_command(opt.info_file)
    valkey_from = "embedded" if valkey["embedded"] else "VALKEY_HOST"
    return [
        "",
        f"  Leaderboard dev stack ready in {info['ready_seconds']:.1f} s",
        "",
        f"  API         {url}  ({opt.api_workers} API processes and 1 worker, handlers unchanged)",
        f"  Valkey      {valkey['host']}:{valkey['port']}  ({valkey_from})",
        f"  PostgreSQL  {postgres}",
        f"  SQS         {sqs['queue_url']}  {queue}",
        f"  Refresh     {refresh}",
        f"  Data        {where}",
        "",
        "  Try:",
        *(f"    {line}" for line in examples(url, info["example"])),
        "",
        f"  Operate it: {ops} dlq stats   (also dlq peek|replay, refresh --wait 30, cache show)",
        "  or from any shell, after:",
        *(f"    {line}" for line in export_block(info["ops_env"])),
        "",
        "  Ctrl-C stops everything.",
        "",
    ]
