"""The event shapes Lambda receives from Kinesis and SQS mappings, and AWS's on-failure
record (where the records are, not the records themselves)."""

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from emulation.esm.mapping import Mapping


def lambda_record(mapping: Mapping, shard: str, record: dict) -> dict[str, Any]:
    """One record of the Kinesis event as Lambda receives it."""
    region = mapping.source_arn.split(":")[3]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": mapping.function_arn,
        "awsRegion": region,
        "eventSourceARN": mapping.source_arn,
    }


def queue_record(mapping: Mapping, message: dict) -> dict[str, Any]:
    """One record of the SQS event as Lambda receives it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": mapping.source_arn,
        "awsRegion": mapping.source_arn.split(":")[3],
    }


def on_failure_record(mapping, shard, records, condition, attempts, error="") -> dict[str, Any]:
    """AWS's on-failure record for Kinesis records that could not be delivered."""
    arrival = [r["ApproximateArrivalTimestamp"] for r in records]
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": mapping.function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled" if error else "",
        },
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": records[0]["SequenceNumber"],
            "endSequenceNumber": records[-1]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": min(arrival).isoformat(),
            "approximateArrivalOfLastRecord": max(arrival).isoformat(),
            "batchSize": len(records),
            "streamArn": mapping.source_arn,
        },
    }
