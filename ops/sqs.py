"""SQS for the operator: the one ops module that talks to aioboto3/botocore (imported on first use).

Every call goes through `_call`, which turns the SDK's exceptions into UsageError (exit 2: no
credentials, no region, no such queue) or OperationFailed (exit 1: unreachable, denied, throttled),
each with a one-line message. The endpoint comes from the standard `AWS_ENDPOINT_URL_SQS` (moto in
tests), credentials and region from the usual AWS chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.queue import sqs_client_config
from ops.errors import OperationFailed, OpsError, UsageError

__all__ = ["Message", "QueueAdmin", "QueueCounts", "SqsAdmin", "queue_name_from_arn"]

# Error codes that mean "this queue URL names nothing" (the query and JSON protocols spell it differently).
_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "ExpiredToken"}
)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    visible: int
    in_flight: int
    delayed: int


@dataclass(frozen=True, slots=True)
class Message:
    message_id: str
    receipt: str
    body: str
    receive_count: int
    sent_at_ms: int | None
    group_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # the sender's MessageAttributes


class QueueAdmin(Protocol):
    async def counts(self, url: str) -> QueueCounts: ...

    async def receive(self, url: str, *, max_messages: int, visibility: int, wait: int) -> list[Message]: ...

    async def send(
        self,
        url: str,
        body: str,
        *,
        attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> None: ...

    async def delete(self, url: str, receipt: str) -> None: ...

    async def set_visibility(self, url: str, receipt: str, seconds: int) -> None: ...


def queue_name_from_arn(arn: str) -> tuple[str, str]:
    """(account id, queue name) of `arn:aws:sqs:<region>:<account>:<name>`."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise UsageError(f"{arn!r} is not an SQS queue ARN")
    return parts[4], parts[5]


def _client_error(error: Mapping[str, Any], what: str, url: str) -> OpsError:
    code = str(error.get("Code", ""))
    message = str(error.get("Message", ""))[:200]
    if code in _NO_QUEUE:
        return UsageError(f"{what}: the queue {url} does not exist")
    if code in _BAD_CREDENTIALS:
        return UsageError(f"{what}: the AWS credentials were rejected ({code})")
    return OperationFailed(f"{what}: {code}: {message}".rstrip(": "))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SqsAdmin:
    """One SQS client for one command; use as `async with SqsAdmin(region) as sqs:`."""

    def __init__(self, region: str | None, *, attempts: int = 3) -> None:
        self._region = region
        self._attempts = attempts
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> SqsAdmin:
        import aioboto3
        from botocore.exceptions import BotoCoreError

        # Long polls wait up to 20 s, so reads get more time than the API's send-only client.
        config = sqs_client_config(connect_timeout=3.0, read_timeout=30.0, attempts=self._attempts)
        try:
            self._client = await self._stack.enter_async_context(
                aioboto3.Session().client("sqs", region_name=self._region, config=config)
            )
        except BotoCoreError as exc:
            raise self._translate(exc, "creating the SQS client", "") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._client = None
        await self._stack.aclose()

    async def _call(self, what: str, url: str, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await getattr(self._client, operation)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, what, url) from None

    @staticmethod
    def _translate(exc: Exception, what: str, url: str) -> OpsError:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
        )

        if isinstance(exc, ClientError):
            return _client_error(exc.response.get("Error", {}), what, url)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return UsageError(
                f"{what}: no AWS credentials "
                "(set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            )
        if isinstance(exc, NoRegionError):
            return UsageError(f"{what}: no AWS region (set AWS_REGION)")
        if isinstance(exc, ConnectionError | HTTPClientError):  # refused, reset, closed, timed out
            return OperationFailed(f"{what}: cannot reach SQS ({type(exc).__name__}: {str(exc)[:200]})")
        return OperationFailed(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")

    # ---- queue-level ----------------------------------------------------------------------------

    async def _attributes(self, what: str, url: str, names: list[str]) -> dict[str, str]:
        reply = await self._call(what, url, "get_queue_attributes", QueueUrl=url, AttributeNames=names)
        attributes: dict[str, str] = reply.get("Attributes", {})
        return attributes

    async def counts(self, url: str) -> QueueCounts:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        a = await self._attributes("reading the queue's counters", url, names)
        return QueueCounts(
            visible=_int(a.get(names[0])) or 0,
            in_flight=_int(a.get(names[1])) or 0,
            delayed=_int(a.get(names[2])) or 0,
        )

    async def dead_letter_target(self, url: str) -> str | None:
        """The ARN of the queue's DLQ (its RedrivePolicy), or None."""
        import json

        a = await self._attributes("reading the queue's redrive policy", url, ["RedrivePolicy"])
        policy = a.get("RedrivePolicy")
        if not policy:
            return None
        target = json.loads(policy).get("deadLetterTargetArn")
        return str(target) if target else None

    async def url_of(self, arn: str) -> str:
        account, name = queue_name_from_arn(arn)
        reply = await self._call(
            "finding the queue's URL", arn, "get_queue_url", QueueName=name, QueueOwnerAWSAccountId=account
        )
        return str(reply["QueueUrl"])

    async def dead_letter_sources(self, dlq_url: str) -> list[str]:
        reply = await self._call(
            "finding the queues that use this DLQ",
            dlq_url,
            "list_dead_letter_source_queues",
            QueueUrl=dlq_url,
        )
        return [str(u) for u in reply.get("queueUrls", [])]

    # ---- messages -------------------------------------------------------------------------------

    async def receive(self, url: str, *, max_messages: int, visibility: int, wait: int) -> list[Message]:
        reply = await self._call(
            "receiving messages",
            url,
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=max_messages,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = []
        for raw in reply.get("Messages", []):
            system = raw.get("Attributes", {})
            messages.append(
                Message(
                    message_id=str(raw["MessageId"]),
                    receipt=str(raw["ReceiptHandle"]),
                    body=str(raw.get("Body", "")),
                    receive_count=_int(system.get("ApproximateReceiveCount")) or 0,
                    sent_at_ms=_int(system.get("SentTimestamp")),
                    group_id=system.get("MessageGroupId"),
                    attributes=raw.get("MessageAttributes", {}),
                )
            )
        return messages

    async def send(
        self,
        url: str,
        body: str,
        *,
        attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            # What receive returns, minus the list fields that send does not accept.
            kwargs["MessageAttributes"] = {
                name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
                for name, value in attributes.items()
            }
        if url.endswith(".fifo"):
            kwargs["MessageGroupId"] = group_id or "leaderboard"
            if dedup_id:
                kwargs["MessageDeduplicationId"] = dedup_id
        await self._call("sending the message", url, "send_message", **kwargs)

    async def delete(self, url: str, receipt: str) -> None:
        await self._call("deleting the message", url, "delete_message", QueueUrl=url, ReceiptHandle=receipt)

    async def set_visibility(self, url: str, receipt: str, seconds: int) -> None:
        await self._call(
            "changing the message's visibility",
            url,
            "change_message_visibility",
            QueueUrl=url,
            ReceiptHandle=receipt,
            VisibilityTimeout=seconds,
        )
