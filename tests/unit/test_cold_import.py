"""What the API handler's module load imports (cold starts count: README "Performance", P3).

A cache hit needs glide_sync and our own modules; the libraries only a miss, a refresh request or a log
line needs are imported when that first happens. This pins the lazy imports: one module-level import
of any of them would add its whole cost to every cold start again.
"""

from __future__ import annotations

import json
import subprocess
import sys

LOADED_ON_FIRST_USE = (
    "structlog", "asyncio", "logging", "aioboto3", "botocore", "glide", "secrets", "ssl", "socket", "hashlib",
)  # fmt: skip


def _loaded_after(statements: str) -> list[str]:
    code = f"import json, sys; {statements}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules: list[str] = json.loads(out.splitlines()[-1])
    return modules


def test_importing_the_api_handler_loads_none_of_the_first_use_libraries() -> None:
    modules = _loaded_after("import api_lambda.handler")
    assert "glide_sync" in modules
    assert [name for name in LOADED_ON_FIRST_USE if name in modules] == []


def test_the_first_log_line_loads_structlog_and_is_written() -> None:
    # Given the handler's modules loaded, when a module's logger writes its first line
    statements = (
        "import api_lambda.handler; from common.logs import get_logger; "
        "assert 'structlog' not in sys.modules; get_logger('x').warning('first_line', n=1)"
    )
    code = f"import sys; {statements}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # Then structlog rendered it as one JSON line, with our keys
    line = json.loads(out.splitlines()[-1])
    assert line["message"] == "first_line"
    assert line["n"] == 1
    assert line["level"] == "warning"
