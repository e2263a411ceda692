"""The `context` object Lambda passes to a handler, as far as our handlers use it.

`get_remaining_time_in_millis()` counts down from the function's timeout from the moment the context is
made (one context per invocation, as in Lambda): the worker sizes its lock and its retries from it.
"""

from __future__ import annotations

import time
import uuid

__all__ = ["LambdaContext"]


class LambdaContext:
    def __init__(self, function_name: str, timeout_seconds: float, memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "devstack"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
