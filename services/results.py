"""The results table, read: every result, or one by message id (classification.v1)."""

import json

import boto3

from services.records import ClassificationV1


def plain(item: dict) -> dict:
    """A DynamoDB item with its Decimals as floats."""
    return json.loads(json.dumps(item, default=float))


def scan(table_name: str) -> list[ClassificationV1]:
    table = boto3.resource("dynamodb").Table(table_name)
    items, page = [], {}
    while True:
        answer = table.scan(**page)
        items += [ClassificationV1.model_validate(plain(item)) for item in answer["Items"]]
        if "LastEvaluatedKey" not in answer:
            return items
        page = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}


def get(table_name: str, message_id: str) -> ClassificationV1 | None:
    table = boto3.resource("dynamodb").Table(table_name)
    found = table.get_item(Key={"message_id": message_id}, ConsistentRead=True).get("Item")
    return ClassificationV1.model_validate(plain(found)) if found else None
