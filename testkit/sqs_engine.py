"""moto's SQS server, reached over HTTP as in production, and a queue with its DLQ."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from testkit.errors import EngineError
from testkit.ports import port_in_use

__all__ = ["Queues", "SqsEngine"]


@dataclass(frozen=True, slots=True)
class Queues:
    queue_url: str
    dlq_url: str
    queue_arn: str
    dlq_arn: str


class SqsEngine:
    """moto's HTTP server (ThreadedMotoServer) reached over HTTP by aioboto3, exactly as in production."""

    REGION = "us-east-1"

    def __init__(self, port: int | None = None) -> None:
        self.port = port
        self._server: Any = None

    def start(self) -> SqsEngine:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", self.REGION)):  # fmt: skip
            os.environ.setdefault(name, value)
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per SQS call otherwise

        if self.port and port_in_use(self.port):
            raise EngineError(
                f"port {self.port} is already in use: stop what listens there or choose another port"
            )
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port or 0, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        # moto accepts any credentials; these dummies keep a developer's real ones out of the picture.
        return boto3.client("sqs", endpoint_url=self.endpoint, region_name=self.REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106  # fmt: skip

    def create_queues(self, name: str, *, max_receive_count: int = 5, visibility_timeout: int = 30) -> Queues:
        import json

        sqs = self.client()
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})[
            "QueueUrl"
        ]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
                ),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return Queues(queue_url, dlq_url, queue_arn, dlq_arn)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
