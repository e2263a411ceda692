"""The CLI's configuration: the functions' own environment variables, overridable by flags.

Each command asks only for what it uses (`dlq stats` needs no Valkey, `cache show` no queue), so an
operator can run one without setting up everything. Missing pieces are a UsageError naming both the
variable and the flag. What can be derived is derived: the DLQ from the queue's RedrivePolicy, the
queue from the DLQ's single source queue.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from common.boards import BoardRegistry
from common.config import BoardSettings, EnvReader, ValkeySettings
from common.queue import region_from_queue_url
from common.settings import OPS
from ops.errors import UsageError

__all__ = ["OpsConfig"]


@dataclass(frozen=True, slots=True)
class OpsConfig:
    environ: Mapping[str, str]
    queue_url: str | None
    dlq_url: str | None
    boards: BoardSettings

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, *, queue_url: str | None, dlq_url: str | None
    ) -> OpsConfig:
        env_map = os.environ if environ is None else environ
        env = EnvReader(env_map)
        from_env_queue = env.url("REFRESH_QUEUE_URL", schemes=("https", "http"))
        from_env_dlq = env.url("REFRESH_DLQ_URL", schemes=("https", "http"))
        boards = BoardSettings.read(env)
        for flag, value in (("--queue-url", queue_url), ("--dlq-url", dlq_url)):
            if value is not None and not value.startswith(("https://", "http://")):
                env.problems.append(f"{flag} must be a URL starting with https:// or http://")
        _check(env)
        return cls(
            environ=env_map,
            queue_url=queue_url or from_env_queue,
            dlq_url=dlq_url or from_env_dlq,
            boards=boards,
        )

    @property
    def key_prefix(self) -> str:
        return self.boards.key

    @property
    def fresh_seconds(self) -> int | None:
        """The API's fresh window when the environment names it (the functions' LEADERBOARD_FRESH_SECONDS),
        else None: the code's own default need not be what the deployment runs with."""
        return (
            self.boards.fresh_seconds if self.environ.get("LEADERBOARD_FRESH_SECONDS", "").strip() else None
        )

    @property
    def registry(self) -> BoardRegistry:
        return self.boards.boards

    def region(self) -> str | None:
        """AWS_REGION, else the region in a queue URL, else None (the SDK then reads the profile)."""
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if self.environ.get(name):
                return self.environ[name]
        for url in (self.queue_url, self.dlq_url):
            region = region_from_queue_url(url) if url else None
            if region:
                return region
        return None

    def sqs_attempts(self) -> int:
        """AWS_MAX_ATTEMPTS, the AWS SDKs' own setting, else 3: tries per SQS call, the first included."""
        env = EnvReader(self.environ)
        attempts = env.int_setting("AWS_MAX_ATTEMPTS")
        _check(env)
        return attempts

    def require_queue_url(self) -> str:
        if self.queue_url is None:
            raise UsageError("the refresh queue is not configured: set REFRESH_QUEUE_URL or pass --queue-url")
        return self.queue_url

    def valkey(self) -> ValkeySettings:
        """Valkey settings as the functions read them, with the worker's patient timeouts."""
        env = EnvReader(self.environ)
        settings = ValkeySettings.read(env, reader=OPS, client_name="leaderboard-ops")
        _check(env)
        return settings


def _check(env: EnvReader) -> None:
    if env.problems:
        raise UsageError("configuration: " + "; ".join(env.problems))
