"""The stack's terminal output: every process's lines, labelled with the process they come from.

Children write to pipes that the supervisor reads line by line (devstack/stack.py); this module decides
how a line looks on the supervisor's stdout.

- console (stdout is a terminal, or LOG_FORMAT=console): `api-1    | <line>` with a colour per process;
  children render their own lines with structlog's ConsoleRenderer. CloudWatch metric lines (EMF JSON,
  one per request) are left out: they are noise in a terminal.
- json (anything else): one JSON object per line, always. A child's JSON line gets a `"process"` key;
  a line that is not JSON (a traceback, uvicorn's plain logging) is wrapped as a message.

Every line written, to stdout or stderr, the children's included, goes through the services' own
redaction (common.logs.redact_text): a child's traceback or a library's plain-text line is not redacted
by the child's structlog, and the supervisor's own lines name engines and URLs.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from common.logs import redact_text

__all__ = ["Output"]

_COLOURS = {"devstack": "1", "worker": "35", "schedule": "34", "simulate": "33"}
_API_COLOUR = "36"
_RESET = "\x1b[0m"
_EMF_PREFIX = '{"_aws"'


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Output:
    def __init__(
        self, pretty: bool, stream: TextIO | None = None, error_stream: TextIO | None = None
    ) -> None:
        self.pretty = pretty
        self._stream = stream
        self._error_stream = error_stream
        self._lock = threading.Lock()  # moto's and pgserver's threads may report too
        self._renderer = structlog.dev.ConsoleRenderer(event_key="message") if pretty else None

    def _write(self, text: str, stream: TextIO | None = None) -> None:
        stream = stream or self._stream or sys.stdout
        text = redact_text(text)
        with self._lock:
            try:
                stream.write(text + "\n")
                stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # whoever read our output is gone; keep shutting down cleanly

    def _label(self, process: str) -> str:
        colour = _API_COLOUR if process.startswith("api") else _COLOURS.get(process, "37")
        return f"\x1b[{colour}m{process:<8} |{_RESET} "

    def child_line(self, process: str, line: str) -> None:
        """One line a child printed (without its newline)."""
        if not line.strip():
            return
        if self.pretty:
            if not line.startswith(_EMF_PREFIX):
                self._write(self._label(process) + line)
            return
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            inner = stripped[1:-1].strip()
            self._write(f'{{"process":{json.dumps(process)}' + (f",{inner}}}" if inner else "}"))
        else:
            self.event("info", line, process=process, raw=True)

    def event(self, level: str, message: str, *, process: str = "devstack", **fields: Any) -> None:
        """A line of the supervisor's own (or a wrapped raw line of a child's)."""
        if self._renderer is not None:
            rendered = self._renderer(
                None, level, {"timestamp": _timestamp(), "level": level, "message": message, **fields}
            )
            self._write(self._label(process) + str(rendered))
            return
        record = {"process": process, "level": level, "timestamp": _timestamp(), "message": message, **fields}
        self._write(json.dumps(record, default=str, ensure_ascii=False))

    def block(self, lines: Iterable[str]) -> None:
        """Plain text for people (the ready banner); console mode only."""
        self._write("\n".join(lines))

    def stderr(self, line: str) -> None:
        """A line for whoever started the stack (errors, the ready hint), on stderr."""
        self._write(line, self._error_stream or sys.stderr)
