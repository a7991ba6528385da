"""Routing: each new result, and each correction, as an event on the pipeline's bus.

The event (PutEvents, at most 10 entries per call):
  Source      "postwerk"
  DetailType  "email.classified"
  Detail      the classification.v1 result plus `routing`: {"team", "reason"}, where reason
              is "classified" (classify stored a new result) or "correction" (a reviewer
              changed the label on the review page: the e-mail is routed again).

The rules in infra/template.yaml send each event to its team's SQS queue by
`detail.routing.team`, and new results that need review to the review queue. The team comes
from the routing table (category -> team, with a default team: FunctionSettings.routing),
the stack's RoutingTable parameter, so the table lives in one place and the rules only read
its decision.

A new result is stored marked unrouted (services/results.py); `route_stored` clears the mark
once EventBridge took the event, so classify's retry routes exactly those it did not take.
"""

import json

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from services import clients, results
from services.records import ClassificationV1, chunked
from services.settings import RoutingTable

SOURCE = "postwerk"
DETAIL_TYPE = "email.classified"
QUEUE_PREFIXES = ("postwerk-team-", "postwerk-review")  # the template's routing queues
MAX_ENTRIES = 10  # PutEvents' limits per call
MAX_BYTES = 200 * 1024  # of 256 KB: room for the envelope
ATTEMPTS = 3  # entries EventBridge failed (throttled, internal) are sent again

logger = Logger(service="routing")


def detail(result: ClassificationV1, table: RoutingTable, reason: str) -> dict:
    document = json.loads(result.model_dump_json(by_alias=True))
    return document | {"routing": {"team": table.team(result.label), "reason": reason}}


def publish(
    bus: str, table: RoutingTable, results: list[ClassificationV1], reason: str = "classified"
) -> list[str]:
    """One event per result; returns the message ids EventBridge kept refusing (logged)."""
    entries = [
        {
            "EventBusName": bus,
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(detail(result, table, reason), ensure_ascii=False),
        }
        for result in results
    ]
    refused = []
    for chunk in chunked(entries, lambda entry: len(entry["Detail"]), MAX_BYTES, MAX_ENTRIES):
        refused += [json.loads(entry["Detail"])["message_id"] for entry in send(chunk)]
    if refused:
        logger.error("not routed", bus=bus, message_ids=refused)
    return refused


def route_stored(
    bus: str, table: RoutingTable, results_table: str, stored: list[ClassificationV1]
) -> list[str]:
    """Publish the stored results (each marked unrouted) and clear the mark of those
    EventBridge accepted. A refused one keeps its mark, so the next try routes it, and only
    it, again; returns their message ids."""
    refused = set(publish(bus, table, stored))
    routed = [result.message_id for result in stored if result.message_id not in refused]
    if not results.clear_marks(results_table, routed):  # only a re-delivery repeats them
        logger.warning("routed, mark not cleared", emails=len(routed))
    return sorted(refused)


def send(entries: list[dict]) -> list[dict]:
    """The entries still refused after ATTEMPTS calls (all of them if the call fails)."""
    events = clients.client("events")
    for _ in range(ATTEMPTS):
        try:
            answer = events.put_events(Entries=entries)
        except ClientError as error:  # no such bus, no permission: trying again won't help
            logger.error("PutEvents failed", error=error.response["Error"]["Code"])
            return entries
        except BotoCoreError as error:  # unreachable, timed out: botocore retried already
            logger.error("PutEvents failed", error=type(error).__name__)
            return entries
        entries = [
            entry
            for entry, outcome in zip(entries, answer["Entries"], strict=True)
            if "ErrorCode" in outcome
        ]
        if not entries:
            break
    return entries


def queue_depths() -> dict[str, int]:
    """Messages waiting per routing queue (a team's, or review), by queue name (for
    `postwerk status`)."""
    sqs = clients.client("sqs")
    urls = [
        url
        for prefix in QUEUE_PREFIXES
        for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    ]
    return {
        url.rsplit("/", 1)[-1]: int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        for url in urls
    }
