"""What reaches a log call, seen before redaction could hide it (used by the autouse fixture in
tests/conftest.py).

Redaction (common.logs) replaces every registered secret in every line, so a check on written lines can
only fail if redaction itself breaks. The watch sits where redaction runs, just before rendering, and
keeps the text of everything the line will carry: the call's fields, the bound context, exception
texts already rendered into fields. Records of the standard `logging` module (libraries: botocore,
asyncpg, httpx...), at the levels in force, are kept too: the Lambda runtime writes them to the same
log stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["LogWatch", "texts_of"]

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


def texts_of(value: Any) -> Iterable[str]:
    """Every piece of text a value can turn into on a log line (str() and repr() alike)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from texts_of(key)
            yield from texts_of(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from texts_of(item)
    elif not isinstance(value, int | float | bool | type(None)):
        yield str(value)
        yield repr(value)


class LogWatch(logging.Handler):
    """Keeps, per log event, one text to search for secrets afterwards (secrets may be registered
    after the line was logged, so the search runs at the end of the test)."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.events: list[tuple[str, str]] = []  # (what logged it, its texts joined)

    def wrap(self, redact: Processor) -> Processor:
        """A processor that records the event, then redacts it as `redact` does."""

        def watch_then_redact(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
            name = str(event_dict.get("message", event_dict.get("event", "?")))
            self.events.append((f"structlog event {name!r}", "\x00".join(texts_of(dict(event_dict)))))
            return redact(logger, method, event_dict)

        return watch_then_redact

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a library's malformed log call: keep its raw parts
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\x00" + logging.Formatter().formatException(record.exc_info)
        self.events.append((f"logging record from {record.name!r}", text))

    def leaks(self, secrets: Iterable[str]) -> list[str]:
        """What logged a secret (never the secret itself)."""
        secrets = list(secrets)
        return [what for what, text in self.events if any(secret in text for secret in secrets)]
