"""Lambda's SQS event source, for the local stack and the tests: long-poll the queue, hand batches to
the worker's handler as SQS events, delete only what it did not report in `batchItemFailures`.

What is not deleted becomes visible again after the queue's visibility timeout, and SQS itself (moto
honours RedrivePolicy) moves a message to the DLQ after maxReceiveCount receives: the same path a
failed message takes in AWS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PollResult", "SqsEventSource"]

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class PollResult:
    received: int
    failed: int
    deleted: int


def _lambda_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """ReceiveMessage's `{"StringValue", "DataType"}` in the lower camel case Lambda's records use."""
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "dataType": value.get("DataType"),
            "stringListValues": [],
            "binaryListValues": [],
        }
        for name, value in attributes.items()
    }


class SqsEventSource:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        wait_seconds: int = 1,
        region: str = "us-east-1",
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.region = region

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda would deliver for these received messages."""
        records = []
        for message in messages:
            body = message.get("Body", "")
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": body,
                    "attributes": dict(message.get("Attributes", {})),
                    "messageAttributes": _lambda_attributes(message.get("MessageAttributes", {})),
                    "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }
            )
        return {"Records": records}

    def poll_once(self, context: Any = None) -> PollResult:
        reply = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            return PollResult(0, 0, 0)
        try:
            result = self.handler(self.event(messages), context)
        except Exception:  # noqa: BLE001 - a raising handler fails the whole batch, as in Lambda
            return PollResult(len(messages), len(messages), 0)
        failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return PollResult(len(messages), len(messages) - len(done), len(done))
