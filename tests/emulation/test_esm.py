"""Conformance of the Kinesis event source mapping runner, one test per AWS setting.

Each test gets a clean MiniStack, a real Lambda function in it, a stream, a mapping created
disabled (as locally), and a runner with its own checkpoint folder.
"""

import base64
import io
import json
import time
import zipfile
from datetime import UTC, datetime

import boto3
import pytest

from emulation.esm.events import lambda_record
from emulation.esm.mapping import Mapping, partial_outcome
from emulation.esm.runner import MappingRunner

HANDLER = """
import base64

def handler(event, context):
    failures = []
    for record in event["Records"]:
        data = base64.b64decode(record["kinesis"]["data"]).decode()
        if data.startswith("poison"):
            raise ValueError("poison record " + record["kinesis"]["sequenceNumber"])
        if data.startswith("bad"):
            failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
    return {"batchItemFailures": failures}
"""
DLQ = "esm-dlq"


@pytest.fixture
def stream(aws):
    """A function, a 1-shard stream and a dead-letter queue; returns the stream's ARN."""
    create_function("consumer", HANDLER)
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="emails", ShardCount=1)
    boto3.client("sqs").create_queue(QueueName=DLQ)
    return kinesis.describe_stream(StreamName="emails")["StreamDescription"]["StreamARN"]


def create_function(name: str, code: str) -> None:
    """A Python function in the backend whose handler.py is `code`."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", code)
    boto3.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Handler="handler.handler",
        Role="arn:aws:iam::000000000000:role/consumer",
        Code={"ZipFile": archive.getvalue()},
    )


def create_mapping(stream_arn: str, **settings) -> str:
    defaults = {
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 100,
        "DestinationConfig": {
            "OnFailure": {"Destination": f"arn:aws:sqs:eu-central-1:000000000000:{DLQ}"}
        },
    }
    return boto3.client("lambda").create_event_source_mapping(
        FunctionName="consumer",
        EventSourceArn=stream_arn,
        Enabled=False,
        **(defaults | settings),
    )["UUID"]


def put(*payloads: str, key: str = "k") -> list[str]:
    kinesis = boto3.client("kinesis")
    return [
        kinesis.put_record(StreamName="emails", Data=p.encode(), PartitionKey=key)["SequenceNumber"]
        for p in payloads
    ]


@pytest.fixture
def runner(aws, tmp_path):
    runners = []

    def start(checkpoints=tmp_path / "checkpoints") -> MappingRunner:
        runners.append(MappingRunner(checkpoints, poll_seconds=0.05, discover_seconds=0.1).start())
        return runners[-1]

    yield start
    for started in runners:
        started.stop()


def settled(runner: MappingRunner, records: int, timeout: float = 30) -> list:
    """The journal once `records` records are done (ok, partial, exhausted or expired)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        final = [i for i in runner.invocations if i.outcome != "error"]
        if sum(len(i.sequence_numbers) for i in final) >= records:
            time.sleep(0.3)  # anything more would show up now
            return list(runner.invocations)
        time.sleep(0.05)
    raise AssertionError(f"not settled: {list(runner.invocations)}")


def dead_letters() -> list[dict]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_batch_size(stream, runner):
    sequence = put(*[f"r{i}" for i in range(10)])
    create_mapping(stream, BatchSize=4)
    journal = settled(runner(), 10)
    assert [i.sequence_numbers for i in journal] == [sequence[:4], sequence[4:8], sequence[8:]]
    assert {i.outcome for i in journal} == {"ok"}


def test_batching_window_gathers_records(stream, runner):
    create_mapping(stream, MaximumBatchingWindowInSeconds=2)
    started = runner()
    time.sleep(0.5)  # the runner is polling
    sequence = put("a")
    time.sleep(0.5)
    sequence += put("b", "c")
    journal = settled(started, 3)
    assert [i.sequence_numbers for i in journal] == [sequence], "one batch within the window"


def test_starting_positions(stream, runner):
    before = put("before")
    latest = create_mapping(stream, StartingPosition="LATEST")
    trim = create_mapping(stream, StartingPosition="TRIM_HORIZON")
    started = runner()
    time.sleep(1)  # the runner has seen the mappings: LATEST is fixed
    after = put("after")
    journal = settled(started, 1 + 2)
    delivered = {}
    for invocation in journal:
        delivered.setdefault(invocation.mapping, []).extend(invocation.sequence_numbers)
    assert delivered[trim] == before + after
    assert delivered[latest] == after


def test_at_timestamp(stream, tmp_path):
    """MiniStack drops StartingPositionTimestamp, so the mapping is built as AWS lists it."""
    put("earlier")
    time.sleep(1.1)
    moment = datetime.now(UTC)
    later = put("later")
    mapping = Mapping.from_api(
        {
            "UUID": "at",
            "FunctionArn": "consumer",
            "EventSourceArn": stream,
            "StartingPosition": "AT_TIMESTAMP",
            "StartingPositionTimestamp": moment,
        }
    )
    runner = MappingRunner(tmp_path)
    worker = runner.shard_worker(mapping, "shardId-000000000000")
    worker.deliver(worker.next_batch())
    assert [i.sequence_numbers for i in runner.invocations] == [later]


def test_order_per_shard(aws, stream, runner):
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="wide", ShardCount=2)
    wide = kinesis.describe_stream(StreamName="wide")["StreamDescription"]["StreamARN"]
    put_order = {}
    for i in range(40):
        key = f"key-{i % 4}"
        answer = kinesis.put_record(StreamName="wide", Data=f"{key}/{i}".encode(), PartitionKey=key)
        put_order.setdefault(answer["ShardId"], []).append(answer["SequenceNumber"])
    assert len(put_order) == 2, "both shards are used"
    create_mapping(wide, BatchSize=3)
    journal = settled(runner(), 40)
    for shard, sequence in put_order.items():
        delivered = [s for i in journal if i.shard == shard for s in i.sequence_numbers]
        assert delivered == sequence, f"{shard}: in order, each record once"


def test_partial_batch_response_retries_from_the_first_failure(stream, runner):
    sequence = put("r0", "r1", "bad", "r3", "r4")
    create_mapping(
        stream, FunctionResponseTypes=["ReportBatchItemFailures"], MaximumRetryAttempts=1
    )
    journal = settled(runner(), 5)
    assert (journal[0].outcome, journal[0].sequence_numbers) == ("partial", sequence[:2])
    assert (journal[-1].outcome, journal[-1].sequence_numbers) == ("exhausted", sequence[2:])
    [letter] = dead_letters()
    assert letter["KinesisBatchInfo"]["startSequenceNumber"] == sequence[2]
    assert letter["KinesisBatchInfo"]["batchSize"] == 3


def test_malformed_partial_response_fails_the_whole_batch():
    assert partial_outcome(b'{"batchItemFailures": [{"itemIdentifier": ""}]}', ["1"]).ok is False
    assert partial_outcome(b'{"batchItemFailures": [{"itemIdentifier": "9"}]}', ["1"]).ok is False
    assert partial_outcome(b'{"batchItemFailures": []}', ["1"]).ok is True
    outcome = partial_outcome(b'{"batchItemFailures": [{"itemIdentifier": "2"}]}', ["1", "2"])
    assert outcome.failed_from == 1


def test_bisect_isolates_a_poison_record(stream, runner):
    sequence = put("r0", "r1", "r2", "r3", "r4", "poison", "r6", "r7")
    create_mapping(stream, BisectBatchOnFunctionError=True, MaximumRetryAttempts=0)
    journal = settled(runner(), 8)
    ok = [s for i in journal if i.outcome == "ok" for s in i.sequence_numbers]
    assert ok == [s for s in sequence if s != sequence[5]], "every other record once, in order"
    [letter] = dead_letters()
    assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert letter["KinesisBatchInfo"]["startSequenceNumber"] == sequence[5]
    assert letter["KinesisBatchInfo"]["batchSize"] == 1


def test_retry_limit_then_on_failure_record(stream, runner):
    sequence = put("poison-a", "poison-b")
    create_mapping(stream, MaximumRetryAttempts=2)
    journal = settled(runner(), 2)
    assert [i.outcome for i in journal] == ["error", "error", "error", "exhausted"]
    [letter] = dead_letters()
    assert letter["requestContext"]["approximateInvokeCount"] == 3
    assert letter["responseContext"]["functionError"] == "Unhandled"
    info = letter["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (sequence[0], sequence[1])
    assert info["streamArn"] == stream and info["shardId"] == "shardId-000000000000"


def test_records_past_their_age_are_not_delivered(stream, runner):
    put("old-1", "old-2")
    create_mapping(stream, MaximumRecordAgeInSeconds=1)
    time.sleep(1.5)
    journal = settled(runner(), 2)
    assert [i.outcome for i in journal] == ["expired"]
    [letter] = dead_letters()
    assert letter["requestContext"]["condition"] == "RecordAgeExceeded"
    assert letter["KinesisBatchInfo"]["batchSize"] == 2


def test_a_restarted_runner_goes_on_from_its_checkpoint(stream, runner, tmp_path):
    first = put(*[f"r{i}" for i in range(6)])
    create_mapping(stream, BatchSize=4)
    before = runner(tmp_path / "checkpoints")
    settled(before, 6)
    before.stop()
    second = put(*[f"s{i}" for i in range(3)])
    journal = settled(runner(tmp_path / "checkpoints"), 3)
    delivered = [s for i in journal for s in i.sequence_numbers]
    assert delivered == second, f"nothing of {first} again, nothing skipped"


def test_event_shape(stream):
    mapping = Mapping.from_api({"UUID": "u", "FunctionArn": "arn:f", "EventSourceArn": stream})
    record = {
        "PartitionKey": "m1",
        "SequenceNumber": "42",
        "Data": b"hi",
        "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }
    event = lambda_record(mapping, "shardId-000000000000", record)
    assert event["kinesis"]["data"] == base64.b64encode(b"hi").decode()
    assert event["eventID"] == "shardId-000000000000:42"
    assert event["eventSourceARN"] == stream and event["awsRegion"] == "eu-central-1"
    assert event["eventSource"] == "aws:kinesis" and event["kinesis"]["partitionKey"] == "m1"


def test_an_updated_mapping_applies_from_the_next_batch(stream, runner):
    first = put(*[f"r{i}" for i in range(4)])
    uuid = create_mapping(stream, BatchSize=4)
    started = runner()
    settled(started, 4)
    boto3.client("lambda").update_event_source_mapping(
        UUID=uuid,
        BatchSize=2,
        MaximumBatchingWindowInSeconds=1,  # the puts arrive one by one
    )
    time.sleep(0.5)  # the runner rereads the mappings every 0.1 s here
    second = put(*[f"s{i}" for i in range(4)])
    journal = settled(started, 8)
    assert [i.sequence_numbers for i in journal] == [first, second[:2], second[2:]]


QUEUE_HANDLER = """
def handler(event, context):
    failures = []
    for record in event["Records"]:
        if record["body"].startswith("poison"):
            raise ValueError("poison message " + record["messageId"])
        if record["body"].startswith("bad"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
"""


def test_a_queue_mapping_deletes_what_succeeded_and_redrives_the_rest(aws, runner):
    create_function("queue-consumer", QUEUE_HANDLER)
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="incoming-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName="incoming",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    for body in ("ok-1", "bad-1", "ok-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    boto3.client("lambda").create_event_source_mapping(
        FunctionName="queue-consumer",
        Enabled=False,
        BatchSize=10,
        EventSourceArn="arn:aws:sqs:eu-central-1:000000000000:incoming",
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    started = runner()

    def redriven():
        return sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages")

    deadline = time.monotonic() + 30
    while not (dead := redriven()):
        assert time.monotonic() < deadline, list(started.invocations)
    assert [m["Body"] for m in dead] == ["bad-1"]
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages") is None
    outcomes = [i.outcome for i in started.invocations]
    assert outcomes[0] == "partial" and len(started.invocations[0].sequence_numbers) == 3


def test_a_queue_mapping_gathers_its_batching_window_from_the_first_message(aws, tmp_path):
    """Messages that trickle in within the window go in one batch (of one poller); the window
    starts with the first one, so a batch waits at most the window, not a long poll more."""
    create_function("queue-consumer", QUEUE_HANDLER)
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="trickle")["QueueUrl"]
    boto3.client("lambda").create_event_source_mapping(
        FunctionName="queue-consumer",
        Enabled=False,
        BatchSize=50,
        MaximumBatchingWindowInSeconds=3,
        EventSourceArn="arn:aws:sqs:eu-central-1:000000000000:trickle",
    )
    started = MappingRunner(tmp_path, discover_seconds=0.1, queue_pollers=1).start()
    try:
        time.sleep(1.5)  # the poller waits on the empty queue
        first = time.time()
        for number in range(12):
            sqs.send_message(QueueUrl=queue, MessageBody=f"ok-{number}")
            time.sleep(1.3 if number == 5 else 0.1)  # a pause longer than a long poll
        journal = settled(started, 12)
    finally:
        started.stop()
    assert [len(i.sequence_numbers) for i in journal if i.outcome == "ok"] == [12]
    assert journal[0].finished_at - first < 4.5, "the window, then the invocation"
