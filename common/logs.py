"""Structured logging: one JSON object per line on stdout, with the Lambda context keys.

Context (request id, correlation id, cold start, service) travels in contextvars, bound once per
invocation, so logic code just calls `log.info("event", key=value)`. A redaction processor replaces every
configured secret wherever it appears; code must still never log one, this is the second line of defence.

structlog (and the standard library's `logging` and `asyncio`, which it imports) is loaded when the first
line is written, not at import: an API container whose requests are cache hits never writes one, and
`import structlog` was about a third of the API handler's cold import on top of its GLIDE client
(`make bench`, P3).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO, cast

from common.config import registered_secrets

if TYPE_CHECKING:
    import structlog

__all__ = ["bind_invocation", "configure_logging", "get_logger", "redact_text"]

_configured = False
# The current invocation, set once per invocation as one tuple and turned into log keys only when a line
# is actually written: most API invocations (cache hits) log nothing, and this is on their path.
# asyncio tasks started by the handler inherit it.
_invocation: ContextVar[tuple[str, Any, bool, str | None] | None] = ContextVar(
    "leaderboard_invocation", default=None
)


class _StdoutLogger:
    """Writes to whatever sys.stdout is *now* (so pytest's capture and Lambda's stream both work)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _merge_invocation(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    invocation = _invocation.get()
    if invocation is None:
        return event_dict
    service, context, cold_start, correlation_id = invocation
    values: dict[str, Any] = {
        "service": service,
        "cold_start": cold_start,
        "function_name": getattr(context, "function_name", None),
        "function_request_id": getattr(context, "aws_request_id", None),
    }
    trace = os.environ.get("_X_AMZN_TRACE_ID")  # set by the Lambda runtime for each invocation
    if trace:
        values["xray_trace_id"] = trace
    if correlation_id:
        values["correlation_id"] = correlation_id
    for key, value in values.items():
        event_dict.setdefault(key, value)
    return event_dict


def redact_text(text: str, secrets: frozenset[str] | None = None) -> str:
    """`text` with every registered secret replaced by `***` (the local stack's output uses this too).
    Longer secrets first: a URL is hidden whole rather than around its password."""
    found = [secret for secret in (registered_secrets() if secrets is None else secrets) if secret in text]
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    secrets = registered_secrets()
    if not secrets:
        return event_dict
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact_text(value, secrets)
        elif not isinstance(value, int | float | bool | type(None)):
            text = repr(value)
            if any(secret in text for secret in secrets):
                event_dict[key] = redact_text(text, secrets)
    return event_dict


def _redaction(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # `_redact` is looked up on every call, not bound at configuration, so that the test suite can watch
    # what reaches redaction (tests/conftest.py proves that no code logs a secret in the first place).
    return _redact(logger, method, event_dict)


def configure_logging(level: str | None = None, *, pretty: bool | None = None) -> None:
    """Configure structlog once per process. `LOG_LEVEL` and `LOG_FORMAT` (json|console) apply."""
    global _configured  # noqa: PLW0603 - process-wide, set once
    if _configured:
        return
    import logging

    import structlog

    level_name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    if pretty is None:
        pretty = os.environ.get("LOG_FORMAT", "json").lower() == "console"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(event_key="message")
        if pretty
        else structlog.processors.JSONRenderer(sort_keys=False, default=str)
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _merge_invocation,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.EventRenamer("message"),
    ]
    if not pretty:
        processors.append(structlog.processors.dict_tracebacks)
    # Last before rendering, so that it also sees exception texts turned into fields just above.
    processors += [_redaction, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_: _StdoutLogger(),
        cache_logger_on_first_use=True,
    )
    _configured = True


class _LazyLogger:
    """A module's logger that imports and configures structlog on its first call, then hands every
    call to structlog's own logger for that name (the same object `structlog.get_logger(name)` gives)."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        logger = self._logger
        if logger is None:
            configure_logging()
            import structlog

            logger = self._logger = structlog.get_logger(self._name) if self._name else structlog.get_logger()
        return getattr(logger, method)


def get_logger(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    return cast("structlog.typing.FilteringBoundLogger", _LazyLogger(name))


def bind_invocation(
    *, service: str, context: Any, cold_start: bool, correlation_id: str | None = None
) -> None:
    """Bind what every line of this invocation carries: Powertools' key names (so dashboards match),
    `service`, `cold_start`, `function_name`, `function_request_id`, `xray_trace_id`, `correlation_id`."""
    _invocation.set((service, context, cold_start, correlation_id))
