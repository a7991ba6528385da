"""The monitor function against the embedded backend: no data, and a report with plots and
metrics when nothing needs retraining (the full loop runs in tests/e2e)."""

import json

import boto3
import pytest

from postwerk import plots
from services import monitor
from tests.support.lambdas import LambdaContext
from tests.support.review import ARTIFACTS, TABLE, call


@pytest.fixture
def empty(aws, monkeypatch):
    monkeypatch.setenv("POSTWERK_RESULTS_TABLE", TABLE)
    monkeypatch.setenv("POSTWERK_ARTIFACTS_BUCKET", ARTIFACTS)
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_no_data_is_said_not_failed(empty):
    answer = monitor.handler({}, LambdaContext())
    assert answer == {
        "status": "no data",
        "message": "no results in the table yet: nothing to monitor",
    }


def test_a_report_with_plots_and_metrics(stored, capsys, tmp_path):
    answer = monitor.handler({"window_hours": 48}, LambdaContext())
    assert answer["status"] == "ok" and answer["actions"] == []
    assert answer["window_hours"] == 48, "what `postwerk monitor` titles its report with"
    report = answer["report"]
    assert report["results"] == 3 and report["needs_review_rate"] == pytest.approx(2 / 3)
    assert report["live_accuracy"] is None, "nothing reviewed yet"
    s3 = boto3.client("s3")
    stored_report = json.loads(
        s3.get_object(Bucket=ARTIFACTS, Key=f"{answer['report_prefix']}/report.json")["Body"].read()
    )
    assert stored_report["results"] == 3 and stored_report["window_hours"] == 48
    for path in plots.draw(answer["report"], tmp_path):  # the operator's side draws them
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    emitted = capsys.readouterr().out
    emf = [json.loads(line) for line in emitted.splitlines() if '"_aws"' in line]
    assert emf and emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "postwerk"
    assert emf[0]["NeedsReviewRate"] == [pytest.approx(2 / 3)]


def test_a_fired_rule_without_a_champion_says_why_it_cannot_retrain(stored):
    assert call("POST", "/api/results/m0/review", {"label": "other", "reviewer": "a"})[0] == 200
    boto3.client("s3").delete_object(Bucket=ARTIFACTS, Key="registry/champion.json")
    rules = {"window_hours": 48, "min_reviewed": 1, "min_accuracy": 0.99}
    answer = monitor.handler(rules, LambdaContext())
    assert answer["report"]["live_accuracy"] == 0.0
    assert answer["actions"] == ["rules fired, but no champion in the registry to retrain from"]
