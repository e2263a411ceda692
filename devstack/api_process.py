"""One API "container": uvicorn serving the API Gateway adapter on a listening socket it inherits.

The supervisor binds the port once and passes the socket to every API process (`--fd`), so N processes
accept on one port and the kernel spreads connections among them, as uvicorn's and gunicorn's own
workers do. Each process has its own handler thread, hence its own GLIDE loop (see devstack/gateway.py).

    python -m devstack.api_process --fd 3 [--timeout 10]
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

from devstack.children import announce_ready, watch_parent

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.api_process")
    parser.add_argument("--fd", type=int, required=True, help="an inherited, listening TCP socket")
    parser.add_argument("--timeout", type=float, default=10.0, help="the function's timeout in seconds")
    parser.add_argument("--function-name", default="leaderboard-api")
    args = parser.parse_args(argv)

    import uvicorn

    from devstack.gateway import HttpApiGateway

    watch_parent()
    # uvicorn's own lines (startup problems, graceful-shutdown notes) are plain stdlib logging.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    sock = socket.socket(fileno=args.fd)
    app = HttpApiGateway(
        "api_lambda.handler:lambda_handler",
        function_name=args.function_name,
        timeout_seconds=args.timeout,
        on_ready=announce_ready,
    )
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,  # the gateway logs one line per request, with its request id and X-Cache
        server_header=False,  # API Gateway sends no `server: uvicorn`
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
