"""`python -m devstack` (what `make dev` runs): the whole service on this machine. See docs/local.md."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from devstack.options import UsageError, parse_options
from devstack.output import Output
from devstack.stack import Stack


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_options(argv)
    except UsageError as exc:
        print(f"devstack: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(Stack(options, Output(options.pretty)).run())
    except KeyboardInterrupt:  # Ctrl-C before the stack installed its own handler: nothing runs yet
        return 130


if __name__ == "__main__":
    sys.exit(main())
