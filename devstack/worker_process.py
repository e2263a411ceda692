"""The refresh worker's "container": Lambda's SQS event source driving `refresh_worker.handler`.

Long-polls the queue (testkit/event_source.py), calls the handler with one SQS event per batch and a
context whose remaining time counts down from the function timeout, and deletes only what the handler
did not report in `batchItemFailures`. The rest reappears after the queue's visibility timeout and, after
maxReceiveCount receives, SQS moves it to the DLQ.

SIGTERM/SIGINT end the process after the current poll or batch; the supervisor kills it if a batch runs
long (as Lambda would: an unfinished batch simply becomes visible again).

    python -m devstack.worker_process --queue-url URL [--timeout 60] [--wait 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

from devstack.children import announce_ready, watch_parent

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.worker_process")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--timeout", type=float, default=60.0, help="the function's timeout in seconds")
    parser.add_argument("--wait", type=int, default=2, help="long-poll wait in seconds")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--function-name", default="leaderboard-worker")
    args = parser.parse_args(argv)

    stopping = threading.Event()
    in_handler = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if not in_handler:
            raise _Stopped  # idle in a long poll: leave now (nothing was received, nothing is lost)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watch_parent()

    import boto3

    from common.logs import get_logger
    from refresh_worker.handler import lambda_handler  # Lambda's init phase: import, connect later
    from testkit.event_source import SqsEventSource
    from testkit.lambda_context import LambdaContext

    log = get_logger("devstack.worker")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    sqs = boto3.client("sqs", region_name=region)  # the endpoint comes from AWS_ENDPOINT_URL_SQS
    queue_arn = sqs.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        nonlocal in_handler
        # The clock starts when the batch is delivered, not when the long poll began.
        context = LambdaContext(args.function_name, args.timeout)
        in_handler = True
        try:
            return lambda_handler(event, context)
        except Exception:
            log.exception("handler_raised", records=len(event.get("Records", [])))
            raise
        finally:
            in_handler = False

    source = SqsEventSource(
        sqs,
        args.queue_url,
        queue_arn,
        handler,
        batch_size=args.batch_size,
        wait_seconds=args.wait,
        region=region,
    )
    announce_ready()
    while not stopping.is_set():
        try:
            result = source.poll_once()
        except Exception:
            if stopping.is_set():  # the stop signal interrupted a long poll (botocore wraps what it raised)
                break
            # As Lambda's event source does: keep polling; what was received becomes visible again.
            log.exception("sqs_poll_failed")
            time.sleep(1)
            continue
        if result.received:
            log.info("sqs_batch", received=result.received, failed=result.failed, deleted=result.deleted)
    return 0


class _Stopped(Exception):
    """Raised by the signal handler to leave a long poll early."""


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except _Stopped:  # stopped while still starting (importing the handler)
        raise SystemExit(0) from None
