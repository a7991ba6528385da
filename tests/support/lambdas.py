"""Lambda contract helpers: AWS-shaped events and a Lambda context for in-process calls."""

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from postwerk.pipeline import s3_notification

EVENT_TIME = datetime(2026, 11, 27, tzinfo=UTC)


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-central-1:000000000000:function:test"
    aws_request_id: str = "request-1"
    remaining_ms: int = 300_000  # what get_remaining_time_in_millis answers

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def s3_event(bucket: str, *keys: str) -> dict:
    """An S3 ObjectCreated notification as Lambda receives it (keys URL-encoded)."""
    objects = [{"Key": key, "Size": 1} for key in keys]
    return s3_notification(bucket, objects, EVENT_TIME, "eu-central-1")


def kinesis_event(*payloads: bytes, stream: str = "emails") -> dict:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"k{i}",
                    "sequenceNumber": f"{1000 + i}",
                    "data": base64.b64encode(p).decode(),
                    "approximateArrivalTimestamp": 1795000000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{1000 + i}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "eu-central-1",
                "eventSourceARN": f"arn:aws:kinesis:eu-central-1:000000000000:stream/{stream}",
            }
            for i, p in enumerate(payloads)
        ]
    }


def sqs_event(*bodies: str, queue: str = "postwerk-incoming") -> dict:
    """An SQS batch as Lambda receives it."""
    return {
        "Records": [
            {
                "messageId": f"message-{i}",
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795000000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:eu-central-1:000000000000:{queue}",
                "awsRegion": "eu-central-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def http_event(method, path, body: dict | str | None = None, query=None, headers=None) -> dict:
    """An API Gateway HTTP API (payload 2.0) event, body base64 as the emulators send it."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "queryStringParameters": query,
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "127.0.0.1"},
            "requestId": "r",
            "stage": "$default",
        },
        "body": base64.b64encode(raw.encode()).decode() if raw is not None else None,
        "isBase64Encoded": raw is not None,
    }
