"""The results: classification.v1 items in the results table, keyed by message id, and
JSON Lines in the results bucket. Stored once per e-mail, read back one or all.

`store` writes new results to the bucket first, one JSON Lines object per call under
`results/date=YYYY-MM-DD/` (a failure there raises, so nothing is lost), then to DynamoDB
with a conditional put keyed by message id, so a re-delivered e-mail never gives a second
result (that conditional put is the idempotency: no extra table, unlike Powertools'
idempotency utility). A line can repeat only when a DynamoDB write failed and its record was
retried.

A result to be routed is stored marked UNROUTED; routing.route_stored clears the mark once
EventBridge took its event, so a retry can tell a stored result that still waits for its
event from one that is done.
"""

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import TypeVar

from aws_lambda_powertools import Logger
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from services import clients, storage
from services.records import ClassificationV1

UNROUTED = "unrouted"  # on a stored result until EventBridge took its event
WRITERS = 16  # concurrent DynamoDB writes, where a transaction was cancelled
MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit (and 4 MB: a result is ~1 KB)
ABSENT = "attribute_not_exists(message_id)"  # one result per e-mail
EXISTED = "existed"  # put_once: another call stored this e-mail's result meanwhile
SERIALIZER = TypeSerializer()

Outcome = TypeVar("Outcome")
logger = Logger(child=True)


@dataclass
class Stored:
    """What one `store` did."""

    new: list[ClassificationV1]  # stored by this call
    failed: dict[str, Exception]  # write errors by message id
    unrouted: list[ClassificationV1]  # stored before, and still marked UNROUTED


def store(
    table: str,
    bucket: str,
    results: list[ClassificationV1],
    key_prefix: str = "",
    mark_unrouted: bool = False,
) -> Stored:
    """New results to the bucket, then to DynamoDB, once per message id; `mark_unrouted`:
    each marked UNROUTED until routing clears it."""
    dynamodb = clients.client("dynamodb")  # a client: thread-safe, where resources are not
    first = {}  # one write per message id: a batch may hold the same e-mail twice
    for result in results:
        first.setdefault(result.message_id, result)
    done_before = already_stored(dynamodb, table, list(first))
    new = [result for message_id, result in first.items() if message_id not in done_before]
    write_lines(bucket, new, key_prefix)
    puts = [{"Put": {"TableName": table, "Item": dynamodb_item(result, mark_unrouted),
                     "ConditionExpression": ABSENT}} for result in new]  # fmt: skip
    written = in_transactions(dynamodb, puts, partial(put_once, dynamodb))
    outcomes = {new[i].message_id: outcome for i, outcome in written.items()}
    failed = {m: error for m, error in outcomes.items() if isinstance(error, Exception)}
    unrouted = [get(table, m) for m, marked in done_before.items() if marked]
    return Stored([r for r in new if outcomes.get(r.message_id) is None], failed, unrouted)


def clear_marks(table: str, message_ids: list[str]) -> bool:
    """The UNROUTED mark removed from these results; False when a removal failed."""
    dynamodb = clients.client("dynamodb")
    removals = [{"Update": {"TableName": table, "Key": {"message_id": {"S": message_id}},
                            "UpdateExpression": f"REMOVE {UNROUTED}"}}
                for message_id in message_ids]  # fmt: skip
    return all(in_transactions(dynamodb, removals, partial(clear_mark, dynamodb)).values())


def clear_mark(dynamodb, action: dict) -> bool:
    try:
        dynamodb.update_item(**action["Update"])
    except (ClientError, BotoCoreError):
        return False
    return True


def already_stored(dynamodb, table_name: str, message_ids: list[str]) -> dict[str, bool]:
    """The message ids that have a result already (a retried or re-delivered batch), and
    whether that result still waits to be routed."""
    found: dict[str, bool] = {}
    for start in range(0, len(message_ids), 100):  # BatchGetItem's limit
        keys = [{"message_id": {"S": m}} for m in message_ids[start : start + 100]]
        request = {table_name: {"Keys": keys, "ProjectionExpression": f"message_id, {UNROUTED}"}}
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table_name, []):
                found[item["message_id"]["S"]] = item.get(UNROUTED, {}).get("BOOL", False)
            request = answer.get("UnprocessedKeys") or None
    return found


def in_transactions(
    dynamodb, actions: list[dict], one_by_one: Callable[[dict], Outcome]
) -> dict[int, Outcome]:
    """The actions in TransactWriteItems of up to 100 (a tenth of the requests' cost to the
    backend, and to the caller, of one call per item; on AWS twice the write capacity).
    The actions of a cancelled transaction, none of whose writes happened (a condition
    failed, a conflict, throttling), go through `one_by_one`, WRITERS at a time; returns
    their outcomes by position."""
    left = []
    for start in range(0, len(actions), MAX_TRANSACTION_ITEMS):
        chunk = actions[start : start + MAX_TRANSACTION_ITEMS]
        try:
            dynamodb.transact_write_items(TransactItems=chunk)
        except ClientError as error:
            logger.info("transaction cancelled: item by item", code=error.response["Error"]["Code"])
            left += range(start, start + len(chunk))
    with ThreadPoolExecutor(WRITERS) as pool:  # DynamoDB round trips overlap
        return dict(zip(left, pool.map(one_by_one, [actions[i] for i in left]), strict=True))


def dynamodb_item(result: ClassificationV1, unrouted: bool) -> dict:
    document = json.loads(result.model_dump_json(by_alias=True), parse_float=Decimal)
    item = {key: SERIALIZER.serialize(value) for key, value in document.items()}
    return item | ({UNROUTED: {"BOOL": True}} if unrouted else {})


def put_once(dynamodb, action: dict) -> Exception | str | None:
    """The action's conditional put on its own: None when this call stored the result,
    EXISTED when it was stored meanwhile, or the error."""
    try:
        dynamodb.put_item(**action["Put"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            return error
        return EXISTED
    return None


def write_lines(bucket: str, results: list[ClassificationV1], key_prefix: str = "") -> None:
    """One JSON Lines object for the new results, partitioned by date."""
    if not results:
        return
    now = datetime.now(UTC)
    key = f"results/date={now:%Y-%m-%d}/{key_prefix}{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl"
    body = "".join(result.model_dump_json(by_alias=True) + "\n" for result in results)
    storage.write(bucket, key, body.encode())


def plain(item: dict) -> dict:
    """A DynamoDB item with its Decimals as floats."""
    return json.loads(json.dumps(item, default=float))


def scan(table_name: str) -> list[ClassificationV1]:
    table = clients.table(table_name)
    items, page = [], {}
    while True:
        answer = table.scan(**page)
        items += [ClassificationV1.model_validate(plain(item)) for item in answer["Items"]]
        if "LastEvaluatedKey" not in answer:
            return items
        page = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}


def get(table_name: str, message_id: str) -> ClassificationV1 | None:
    table = clients.table(table_name)
    found = table.get_item(Key={"message_id": message_id}, ConsistentRead=True).get("Item")
    return ClassificationV1.model_validate(plain(found)) if found else None
