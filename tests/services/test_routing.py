"""Routing against the embedded backend's EventBridge: the template's own rules and queues,
results published by classify once, corrections routed again."""

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from services import classify, results, routing
from services.records import ClassificationV1, InputSummary, Label, ModelIdentity, Source
from services.settings import FunctionSettings
from tests.support.aws import drain
from tests.support.review import call
from tests.support.template import template

BUS = "postwerk-routing"


@pytest.fixture
def bus(aws, monkeypatch) -> dict[str, str]:
    """The template's routing bus, queues and rules (the queue targets), created as the
    stack would; returns queue URLs by queue name."""
    resources = template()["Resources"]
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    urls = {}
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule" or "EventBusName" not in resource["Properties"]:
            continue
        properties = resource["Properties"]
        [queue_target] = [t for t in properties["Targets"] if t.get("Id") == "queue"]
        queue = resources[queue_target["Arn"]["!GetAtt"].split(".")[0]]["Properties"]["QueueName"]
        urls[queue] = sqs.create_queue(QueueName=queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=urls[queue], AttributeNames=["QueueArn"])
        events.put_rule(Name=name, EventBusName=BUS,
                        EventPattern=json.dumps(properties["EventPattern"]))  # fmt: skip
        events.put_targets(Rule=name, EventBusName=BUS, Targets=[
            {"Id": "queue", "Arn": arn["Attributes"]["QueueArn"]}])  # fmt: skip
    default_table = template()["Parameters"]["RoutingTable"]["Default"]
    monkeypatch.setenv("POSTWERK_EVENT_BUS", BUS)
    monkeypatch.setenv("POSTWERK_ROUTING", default_table)
    return urls


def routed(urls: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """(message id, reason) per queue."""
    return {
        queue: [(e["detail"]["message_id"], e["detail"]["routing"]["reason"]) for e in drain(url)]
        for queue, url in urls.items()
    }


def result(message_id: str, label: str, needs_review: bool) -> ClassificationV1:
    return ClassificationV1(
        message_id=message_id, label=label, score=0.5, top_k=[Label(label=label, score=0.5)],
        needs_review=needs_review, model=ModelIdentity(name="n", version="v"),
        classified_at=datetime.now(UTC),
        input=InputSummary(subject="s", language="de", length=1,
                           source=Source(bucket="raw", key=f"incoming/{message_id}", sha256="0")),
    )  # fmt: skip


@pytest.fixture
def results_table(bus, monkeypatch):
    monkeypatch.setenv("POSTWERK_RESULTS_TABLE", "results")
    monkeypatch.setenv("POSTWERK_RESULTS_BUCKET", "results")
    boto3.client("s3").create_bucket(
        Bucket="results", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    boto3.client("dynamodb").create_table(
        TableName="results", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
    )  # fmt: skip
    return bus


def test_new_results_reach_their_teams_queue_once_also_when_the_batch_is_retried(results_table):
    bus = results_table
    batch = [
        result("a", "billing_question", False),
        result("b", "complaint", True),
        result("c", "never_seen_label", False),
        result("d", "offer_request", False),
    ]
    items = [classify.Item(str(n), result=r) for n, r in enumerate(batch)]
    classify.store(FunctionSettings(), items)
    classify.store(FunctionSettings(), items)  # the mapping retries the whole batch
    queues = routed(bus)
    assert sorted(queues.pop("postwerk-autoreply")) == [
        ("a", "classified"), ("c", "classified"), ("d", "classified")]  # fmt: skip
    assert queues == {
        "postwerk-review": [("b", "classified")],
        "postwerk-team-accounts": [("a", "classified")],
        "postwerk-team-care": sorted([("b", "classified"), ("c", "classified")]),
        "postwerk-team-sales": [("d", "classified")],
    }, "the default team takes unknown categories"


def refusing(message_id: str, publish=routing.publish):
    """routing.publish as it answers when EventBridge keeps refusing this e-mail's event."""

    def partly(bus, table, results, reason="classified") -> list[str]:
        kept = [r for r in results if r.message_id != message_id]
        return publish(bus, table, kept, reason) + [message_id] * (len(kept) < len(results))

    return partly


def unrouted_mark(message_id: str) -> dict | None:
    key = {"message_id": {"S": message_id}}
    return boto3.client("dynamodb").get_item(TableName="results", Key=key)["Item"].get("unrouted")


def test_a_refused_event_fails_its_record_and_the_retry_routes_it_once(results_table, monkeypatch):
    items = [classify.Item("1", result=result("a", "complaint", False)),
             classify.Item("2", result=result("b", "complaint", False))]  # fmt: skip
    publish = routing.publish
    monkeypatch.setattr(routing, "publish", refusing("a"))
    classify.store(FunctionSettings(), items)
    assert "EventBridge did not take" in str(items[0].error) and items[1].error is None
    assert unrouted_mark("a") == {"BOOL": True}
    monkeypatch.setattr(routing, "publish", publish)  # EventBridge answers again
    classify.store(FunctionSettings(), items)  # the mapping's retry
    classify.store(FunctionSettings(), items)  # and a re-delivery
    assert [item.error for item in items] == [None, None]
    assert sorted(routed(results_table)["postwerk-team-care"]) == [
        ("a", "classified"), ("b", "classified")]  # fmt: skip
    assert unrouted_mark("a") is None


def test_a_result_stored_meanwhile_is_neither_stored_again_nor_routed(results_table, monkeypatch):
    first = [classify.Item("1", result=result("a", "complaint", False))]
    classify.store(FunctionSettings(), first)
    routed(results_table)  # drained
    both = [classify.Item("1", result=result("a", "offer_request", False)),
            classify.Item("2", result=result("b", "complaint", False))]  # fmt: skip
    monkeypatch.setattr(results, "already_stored", lambda *_: {})  # as if "a" came meanwhile
    classify.store(FunctionSettings(), both)  # its transaction is cancelled: one by one
    assert [item.error for item in both] == [None, None]
    queues = routed(results_table)
    assert queues["postwerk-team-care"] == [("b", "classified")]
    assert queues["postwerk-team-sales"] == [], "the result stored meanwhile is not routed"
    kept = boto3.client("dynamodb").get_item(TableName="results", Key={"message_id": {"S": "a"}})
    assert kept["Item"]["label"] == {"S": "complaint"}, "the first result stays"


class Died(Exception):
    """The function died between DynamoDB and EventBridge."""


class UnreachableEvents:
    def put_events(self, **_):
        raise EndpointConnectionError(endpoint_url="http://events.example")


def die(*_, **__):
    raise Died


@pytest.mark.parametrize("fault", ["EventBridge unreachable", "the function died"])
def test_a_result_stored_but_never_published_is_routed_by_the_retry(
    results_table, monkeypatch, fault
):
    items = [classify.Item("1", result=result("a", "complaint", False))]
    publish, client = routing.publish, routing.clients.client
    if fault == "EventBridge unreachable":
        monkeypatch.setattr(routing.clients, "client", lambda name: UnreachableEvents()
                            if name == "events" else client(name))  # fmt: skip
        classify.store(FunctionSettings(), items)
        assert items[0].error is not None
    else:
        monkeypatch.setattr(routing, "publish", die)
        with pytest.raises(Died):
            classify.store(FunctionSettings(), items)  # the whole batch is retried
    assert unrouted_mark("a") == {"BOOL": True}
    monkeypatch.setattr(routing.clients, "client", client)
    monkeypatch.setattr(routing, "publish", publish)
    classify.store(FunctionSettings(), items)
    assert items[0].error is None and unrouted_mark("a") is None
    assert routed(results_table)["postwerk-team-care"] == [("a", "classified")]


def test_a_correction_routes_the_email_again_marked_as_such(stored, bus):
    status, answer = call("POST", "/api/results/m0/review",
                          {"label": "billing_question", "reviewer": "anna"})  # fmt: skip
    assert status == 200 and answer["routed"] is True
    confirmed = call("POST", "/api/results/m1/review", {"label": "complaint", "reviewer": "jo"})
    assert confirmed[1]["routed"] is False, "a confirmation changes no team"
    queues = routed(bus)
    assert queues["postwerk-team-accounts"] == [("m0", "correction")]
    assert queues["postwerk-review"] == [] and queues["postwerk-team-care"] == []
    assert queues["postwerk-autoreply"] == [], "a correction is never answered automatically"


def test_the_detail_is_the_result_plus_the_decision(bus):
    table = FunctionSettings().routing
    document = routing.detail(result("a", "address_change", False), table, "classified")
    assert ClassificationV1.model_validate(document).label == "address_change"
    assert document["routing"] == {"team": "accounts", "reason": "classified"}


class RefusingEvents:
    """PutEvents that refuses every entry with these message ids, and counts its calls."""

    def __init__(self, refused: set[str]):
        self.refused, self.calls = refused, []

    def put_events(self, Entries: list[dict]) -> dict:
        self.calls.append(len(Entries))
        ids = [json.loads(entry["Detail"])["message_id"] for entry in Entries]
        outcomes = [{"ErrorCode": "InternalFailure"} if i in self.refused else {"EventId": i}
                    for i in ids]  # fmt: skip
        return {"FailedEntryCount": sum("ErrorCode" in o for o in outcomes), "Entries": outcomes}


def test_ten_events_a_call_and_what_stays_refused_is_returned(monkeypatch):
    events = RefusingEvents({"3", "11"})
    monkeypatch.setattr(routing.clients, "client", lambda service: events)
    refused = routing.publish("bus", FunctionSettings().routing,
                              [result(str(n), "other", False) for n in range(12)])  # fmt: skip
    assert refused == ["3", "11"]
    assert events.calls == [10, 1, 1, 2, 1, 1], "refused entries are sent again, twice"


def test_queue_depth_per_team(bus):
    routing.publish(BUS, FunctionSettings().routing, [result("a", "complaint", True)])
    assert routing.queue_depths() == {
        "postwerk-review": 1,
        "postwerk-team-accounts": 0,
        "postwerk-team-care": 1,
        "postwerk-team-sales": 0,
    }
