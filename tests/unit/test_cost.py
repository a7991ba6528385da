"""postwerk/cost.py: the monthly cost, each line checked against a figure computed here by
hand from the price table (postwerk/prices.json); `postwerk cost` through the CLI."""

import datetime
import json
import re

import pytest
from typer.testing import CliRunner

from emulation.processes import free_port
from postwerk import cost, cost_commands
from postwerk.cli import app
from postwerk.deploy import TEMPLATE

PRICES = json.loads(cost.PRICES.read_text())
US = PRICES["regions"]["us-east-1"]
TEXT = TEMPLATE.read_text()
DAYS = 365 / 12


def deployment(emails_per_day=3000, endpoint=None, spot=False, **changes) -> cost.Deployment:
    values = {
        "region": "us-east-1",
        "emails_per_day": emails_per_day,
        "endpoint": endpoint or cost.InstanceEndpoint("ml.m5.large"),
        "training": cost.Training(
            "ml.g4dn.xlarge", cost.Figure(1800, "test"), cost.Figure(4, "test"), spot
        ),
        "functions": cost.template_functions(TEXT, {}),
        "shards": cost.template_shards(TEXT),
        "ses_receiving": True,
    }
    return cost.Deployment(**(values | changes))


def line(items: list[cost.LineItem], service: str) -> cost.LineItem:
    [found] = [item for item in items if item.service.startswith(service)]
    return found


def prices(region="us-east-1") -> cost.PriceTable:
    return cost.load_prices(region)


def test_an_instance_endpoint_costs_730_hours_a_month_of_each_instance():
    hourly = US["sagemaker_hosting"]["ml.m5.large"]["usd"]
    one = line(cost.estimate(deployment(), prices()), "endpoint")
    assert one.usd == pytest.approx(730 * hourly)
    two = cost.InstanceEndpoint("ml.m5.large", instances=2)
    assert line(cost.estimate(deployment(endpoint=two), prices()), "endpoint").usd == (
        pytest.approx(2 * 730 * hourly)
    )
    busy = line(cost.estimate(deployment(30_000), prices()), "endpoint")
    assert busy.usd == one.usd, "an instance costs the same whatever the volume"


def test_a_serverless_endpoint_costs_gb_seconds_and_scales_with_the_volume():
    serverless = cost.ServerlessEndpoint(2048, cost.Figure(0.12, "test"))
    at_3000 = line(cost.estimate(deployment(3000, serverless), prices()), "endpoint")
    at_6000 = line(cost.estimate(deployment(6000, serverless), prices()), "endpoint")
    per_gb_second = US["sagemaker_serverless_gb_second"]["usd"]
    assert at_3000.usd == pytest.approx(3000 * DAYS * 0.12 * 2 * per_gb_second)
    assert at_6000.usd == pytest.approx(2 * at_3000.usd)
    assert any("serverless duration: test" in note for note in at_3000.notes)


def test_spot_training_is_the_on_demand_figure_less_the_stated_saving():
    hourly = US["sagemaker_training"]["ml.g4dn.xlarge"]["usd"]
    saving = PRICES["assumptions"]["spot_saving"]["value"]
    on_demand = line(cost.estimate(deployment(), prices()), "training")
    spot = line(cost.estimate(deployment(spot=True), prices()), "training")
    assert on_demand.usd == pytest.approx(4 * 1800 / 3600 * hourly)
    assert spot.usd == pytest.approx(on_demand.usd * (1 - saving))
    assert on_demand.service == "training (on demand)" and spot.service == "training (spot)"
    assert any(note.startswith(f"spot saving {saving:.0%}: ") for note in spot.notes)


def test_kinesis_costs_its_shard_hours_and_one_put_unit_per_small_record():
    shards = cost.template_shards(TEXT)
    expected = (
        shards * 730 * US["kinesis_shard_hour"]["usd"]
        + 3000 * DAYS * US["kinesis_put_payload_units"]["usd"] / 1e6
    )
    assert line(cost.estimate(deployment(), prices()), "Kinesis").usd == pytest.approx(expected)


def test_lambda_counts_requests_and_gb_seconds_with_the_templates_memory():
    functions = {f.name: f for f in cost.template_functions(TEXT, {})}
    assert set(functions) == {"postwerk-ingest", "postwerk-classify", "postwerk-feedback",
                              "postwerk-monitor"}  # fmt: skip
    assert functions["postwerk-ingest"].memory_mb == 512
    assert functions["postwerk-feedback"].memory_mb == 1024
    emails = 3000 * DAYS
    requests = 3 * emails + 730  # three functions per e-mail, the monitor hourly
    gb_seconds = sum(
        (f.per_email * emails + f.per_month) * f.seconds.value * f.memory_mb / 1024
        for f in functions.values()
    )
    expected = requests * US["lambda_requests"]["usd"] / 1e6
    expected += gb_seconds * US["lambda_gb_second"]["usd"]
    assert line(cost.estimate(deployment(), prices()), "Lambda").usd == pytest.approx(expected)


def test_the_parameters_decide_which_conditional_functions_are_priced():
    with_all = cost.template_functions(
        TEXT, {"SupportAddress": "support@example.com", "MailboxSchedule": "rate(1 minute)"}
    )
    names = {f.name: f for f in with_all}
    assert {"postwerk-autoreply", "postwerk-mailbox"} <= set(names)
    assert names["postwerk-mailbox"].per_month == 730 * 60
    assert cost.schedule_runs("rate(5 minutes)") == 730 * 12
    assert cost.schedule_runs("rate(1 hour)") == 730


def test_dynamodb_s3_and_ses_lines_from_the_table():
    emails = 3000 * DAYS
    work = cost.Workload()
    items = cost.estimate(deployment(), prices())
    dynamodb = (
        emails * work.dynamodb_writes * US["dynamodb_write_request_units"]["usd"] / 1e6
        + emails * work.dynamodb_reads * US["dynamodb_read_request_units"]["usd"] / 1e6
        + emails * 12 * work.result_kb / 1024**2 * US["dynamodb_storage_gb_month"]["usd"]
    )
    assert line(items, "DynamoDB").usd == pytest.approx(dynamodb)
    s3 = (
        emails * 12 * (work.email_kb + work.result_kb) / 1024**2 * US["s3_storage_gb_month"]["usd"]
        + emails * 2 * US["s3_put_requests"]["usd"] / 1000
        + emails * US["s3_get_requests"]["usd"] / 1000
    )
    assert line(items, "S3").usd == pytest.approx(s3)
    ses = emails * (US["ses_received_emails"]["usd"] + US["ses_incoming_chunks"]["usd"]) / 1000
    assert line(items, "SES").usd == pytest.approx(ses)
    without = cost.estimate(deployment(ses_receiving=False), prices())
    assert line(without, "SES").usd == 0
    assert cost.total(items) == pytest.approx(sum(item.usd for item in items))


def test_the_price_table_is_dated_and_every_figure_has_its_source():
    datetime.date.fromisoformat(PRICES["as_of"])  # a date, whatever today is
    assert {"us-east-1", "eu-central-1"} <= set(PRICES["regions"])
    keys = set(US)
    for region, table in PRICES["regions"].items():
        assert set(table) == keys, region
        entries = [*table["sagemaker_hosting"].values(), *table["sagemaker_training"].values()]
        entries += [v for k, v in table.items() if not k.startswith("sagemaker_h")
                    and not k.startswith("sagemaker_t")]  # fmt: skip
        for entry in entries:
            assert entry["source"].startswith("https://aws.amazon.com/"), entry
            assert entry["confirmed"], entry
            assert entry["usd"] > 0 and entry["per"] >= 1
        for kind in ("sagemaker_hosting", "sagemaker_training"):
            assert {"ml.m5.large", "ml.g4dn.xlarge", "ml.c5.xlarge"} <= set(table[kind])
    assert "http" in PRICES["assumptions"]["spot_saving"]["source"]


def test_an_unknown_instance_or_region_is_a_clear_error():
    with pytest.raises(cost.CostError, match=r"no hosting price for ml\.p5\.48xlarge"):
        cost.estimate(deployment(endpoint=cost.InstanceEndpoint("ml.p5.48xlarge")), prices())
    with pytest.raises(cost.CostError, match="no prices for region mars-1"):
        cost.load_prices("mars-1")


def test_unconfirmed_figures_are_marked():
    items = cost.estimate(deployment(), prices())
    assert line(items, "endpoint").basis.endswith("$0.115/h")  # confirmed: no mark
    assert line(items, "training").basis.endswith("*")
    assert cost.usd(0.2) == "$0.20" and cost.usd(0.0000166667) == "$0.0000166667"


def test_postwerk_cost_prints_the_table_at_80_columns(tmp_path, monkeypatch):
    """Offline: no local stack, AWS a closed port, so every duration is a stated default."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-central-1", "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test", "AWS_MAX_ATTEMPTS": "1", "COLUMNS": "80",
        "POSTWERK_STATE_DIR": str(tmp_path / "state"),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    shown = CliRunner().invoke(
        app, ["cost", "--serverless", "--spot", "--region", "us-east-1", "--emails-per-day", "6000"]
    )
    assert shown.exit_code == 0, shown.output
    output = shown.output
    assert "monthly cost at 6,000 e-mails/day, us-east-1" in output
    for service in ("endpoint (serverless)", "training (spot)", "Kinesis stream", "Lambda (4)",
                    "DynamoDB", "S3", "SES receiving", "total"):  # fmt: skip
        assert service in output, service
    assert cost_commands.DEFAULT_SERVERLESS_SECONDS.source[:40] in re.sub(r"\s+", " ", output)
    assert "default 30 min" in output, "no training job: the stated default"
    assert max(len(row) for row in output.splitlines()) <= 80
