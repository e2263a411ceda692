"""Lambda entry point of the API function (API Gateway HTTP API v2 or REST API v1 proxy events).

Module load stays light on purpose: configuration is read here, clients connect on first use, and
aioboto3 is imported only when a refresh is first requested. Cold starts count.
"""

from __future__ import annotations

from typing import Any

from api_lambda.app import build_app
from common.runtime import ContainerScoped

__all__ = ["lambda_handler", "reset"]

_app = ContainerScoped(build_app)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    app, cold_start = _app.get()
    return app.invoke(event, context, cold_start)


def reset() -> None:
    """Forget this container's app (tests and the local stack use it after changing the environment)."""
    _app.reset()
