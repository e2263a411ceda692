"""Lambda entry point of the refresh worker (SQS events, ReportBatchItemFailures)."""

from __future__ import annotations

from typing import Any

from common.runtime import ContainerScoped
from refresh_worker.app import build_app

__all__ = ["lambda_handler", "reset"]

_app = ContainerScoped(build_app)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    app, cold_start = _app.get()
    return app.invoke(event, context, cold_start)


def reset() -> None:
    """Forget this container's app (tests and the local stack use it after changing the environment)."""
    _app.reset()
