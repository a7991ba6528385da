"""`postwerk cost`: what the pipeline costs a month on AWS at a given e-mail volume, from
the template, the measured figures where there are any, and postwerk/prices.json. The
arithmetic is in postwerk/cost.py; `deploy --target aws --dry-run` prints the same table
through `show_cost`."""

import datetime
import os
import statistics
import time
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from postwerk import cost, local, sagemaker
from postwerk.deploy import TEMPLATE
from postwerk.errors import CommandError
from postwerk.output import console
from postwerk.settings import SERVERLESS_MEMORY_MB, CliSettings
from services import clients, lifecycle

DEFAULT_EMAILS_PER_DAY = 3000
DEFAULT_REGION = "eu-central-1"
DEFAULT_SERVERLESS_SECONDS = cost.Figure(
    0.12,
    "default 120 ms: the p50 of e-mail-length texts on the serving container, 2 cores, "
    "docs/benchmarks.md#serving (no ModelLatency in CloudWatch, nothing measured locally)",
)
DEFAULT_TRAINING_SECONDS = cost.Figure(1800, "default 30 min, assumed: no completed job found")
DEFAULT_TRAINING_RUNS = cost.Figure(4, "assumed: the monitor retrains about once a week")
LOCAL_MEASUREMENTS = 20  # InvokeEndpoint calls timed on a running local stack


def cost_report(
    emails_per_day: Annotated[
        float, typer.Option(min=1, help="the e-mail volume the month is counted for")
    ] = DEFAULT_EMAILS_PER_DAY,
    serverless: Annotated[
        bool, typer.Option(help="a serverless endpoint instead of an instance endpoint")
    ] = False,
    instance_type: Annotated[
        str | None, typer.Option(help="endpoint instance (default: POSTWERK_SERVING_INSTANCE_TYPE)")
    ] = None,
    instances: Annotated[int, typer.Option(min=1, help="endpoint replicas")] = 1,
    spot: Annotated[bool, typer.Option(help="managed spot training")] = False,
    training_seconds: Annotated[
        float | None,
        typer.Option(min=1, help="one training job's billable time (default: the last job's)"),
    ] = None,
    trainings_per_month: Annotated[
        float, typer.Option(min=0, help="training jobs a month")
    ] = DEFAULT_TRAINING_RUNS.value,
    ses: Annotated[bool, typer.Option(help="mail arrives through SES receiving")] = True,
    region: Annotated[
        str | None,
        typer.Option(help=f"prices of this region (default: your config's, else {DEFAULT_REGION})"),
    ] = None,
) -> None:
    """What the stack costs a month on AWS at --emails-per-day: endpoint, training, Kinesis,
    Lambda, DynamoDB, S3, SES. Durations come from CloudWatch or the running local stack
    where there are any, prices from postwerk/prices.json (dated, a source per figure)."""
    settings = CliSettings()
    running = local.find(settings.state_dir)
    if running is not None:
        os.environ.update(running.env)
    region = region or clients.region() or DEFAULT_REGION
    parameters = {
        "MailRecipients": "on" if ses else "",
        "MailboxSchedule": settings.mailbox_schedule,
        "SupportAddress": settings.support_address,
    }
    deployment = describe_deployment(
        settings,
        parameters,
        region,
        emails_per_day,
        serverless=serverless,
        instance_type=instance_type,
        instances=instances,
        spot=spot,
        training_seconds=training_seconds,
        trainings_per_month=trainings_per_month,
        measure_locally=running is not None,
    )
    show_cost(deployment)


def describe_deployment(
    settings: CliSettings,
    parameters: dict[str, str],
    region: str,
    emails_per_day: float,
    *,
    serverless: bool = False,
    instance_type: str | None = None,
    instances: int = 1,
    spot: bool = False,
    training_seconds: float | None = None,
    trainings_per_month: float = DEFAULT_TRAINING_RUNS.value,
    measure_locally: bool = False,
) -> cost.Deployment:
    """The deployment to price: the template with these parameters, the endpoint and
    training settings, and the measured figures that AWS (or the local stack) has."""
    text = TEMPLATE.read_text()
    if serverless:
        seconds = model_latency(settings.endpoint_name) or (
            measure_locally and local_latency(settings.endpoint_name)
        )
        endpoint = cost.ServerlessEndpoint(
            SERVERLESS_MEMORY_MB, seconds or DEFAULT_SERVERLESS_SECONDS
        )
    else:
        endpoint = cost.InstanceEndpoint(instance_type or settings.serving_instance_type, instances)
    if training_seconds is not None:
        billable = cost.Figure(training_seconds, "given (--training-seconds)")
    else:
        billable = last_training_job() or DEFAULT_TRAINING_SECONDS
    runs = (
        DEFAULT_TRAINING_RUNS
        if trainings_per_month == DEFAULT_TRAINING_RUNS.value
        else cost.Figure(trainings_per_month, "given (--trainings-per-month)")
    )
    return cost.Deployment(
        region=region,
        emails_per_day=emails_per_day,
        endpoint=endpoint,
        training=cost.Training(settings.training_instance_type, billable, runs, spot),
        functions=cost.template_functions(text, parameters),
        shards=cost.template_shards(text),
        ses_receiving=bool(parameters.get("MailRecipients", "").strip()),
    )


def model_latency(endpoint: str) -> cost.Figure | None:
    """The endpoint's average ModelLatency over the last 7 days, from CloudWatch."""
    now = datetime.datetime.now(datetime.UTC)
    try:
        points = clients.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="ModelLatency",
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=now - datetime.timedelta(days=7),
            EndTime=now,
            Period=7 * 24 * 3600,
            Statistics=["Average", "SampleCount"],
        )["Datapoints"]
    except (BotoCoreError, ClientError):
        return None
    requests = sum(point["SampleCount"] for point in points)
    if not requests:
        return None
    microseconds = sum(p["Average"] * p["SampleCount"] for p in points) / requests
    return cost.Figure(
        microseconds / 1e6,
        f"measured: ModelLatency of {endpoint} in CloudWatch, 7-day average of "
        f"{requests:,.0f} requests",
    )


def local_latency(endpoint: str) -> cost.Figure | None:
    """The median of a few InvokeEndpoint calls (one e-mail each) to the local endpoint."""
    try:
        if not lifecycle.endpoint_exists(endpoint):
            return None
        instance = {"subject": "Rechnung doppelt abgebucht", "body": "Guten Tag, " * 40}
        sagemaker.predict(endpoint, [instance])  # the first call may load the model
        durations = []
        for _ in range(LOCAL_MEASUREMENTS):
            started = time.perf_counter()
            sagemaker.predict(endpoint, [instance])
            durations.append(time.perf_counter() - started)
    except (BotoCoreError, ClientError):
        return None
    return cost.Figure(
        statistics.median(durations),
        f"measured: median of {LOCAL_MEASUREMENTS} InvokeEndpoint calls (one e-mail each) to "
        f"the local {endpoint}, from this machine",
    )


def last_training_job() -> cost.Figure | None:
    """The billable time of the newest completed training job (for a spot job its training
    time: the on-demand figure, from which the spot line subtracts the saving)."""
    try:
        sm = clients.client("sagemaker")
        jobs = sm.list_training_jobs(
            SortBy="CreationTime", SortOrder="Descending", StatusEquals="Completed", MaxResults=1
        )["TrainingJobSummaries"]
        if not jobs:
            return None
        job = sm.describe_training_job(TrainingJobName=jobs[0]["TrainingJobName"])
    except (BotoCoreError, ClientError):
        return None
    spot = job.get("EnableManagedSpotTraining", False)
    seconds = job.get("TrainingTimeInSeconds" if spot else "BillableTimeInSeconds")
    if not seconds:
        return None
    field = "TrainingTimeInSeconds" if spot else "BillableTimeInSeconds"
    instance = job.get("ResourceConfig", {}).get("InstanceType", "?")
    return cost.Figure(
        float(seconds),
        f"measured: {field} of the last job, {job['TrainingJobName']} (on {instance})",
    )


def show_cost(deployment: cost.Deployment) -> None:
    """The table, then where its figures came from."""
    try:
        prices = cost.load_prices(deployment.region)
        items = cost.estimate(deployment, prices)
    except cost.CostError as error:
        raise CommandError(str(error)) from None
    console.print(cost_table(deployment, prices, items))
    notes = [note for item in items for note in item.notes]
    notes.append(deployment.workload.describe())
    notes.append(
        f"prices: postwerk/{cost.PRICES.name} for {prices.region}, as of {prices.as_of}; list "
        "prices without free tier; * marks a figure no stored copy of a published page confirmed"
    )
    listed = Table.grid(padding=(0, 1))
    listed.add_column(no_wrap=True)
    listed.add_column(overflow="fold")
    for note in notes:
        listed.add_row("  -", note)
    console.print(listed, highlight=False)


def cost_table(deployment: cost.Deployment, prices: cost.PriceTable, items) -> Table:
    table = Table(
        title=f"monthly cost at {deployment.emails_per_day:,.0f} e-mails/day, {prices.region}",
        title_justify="left",
    )
    table.add_column("service", no_wrap=True)
    table.add_column("how it is counted", overflow="fold")
    table.add_column("USD/month", justify="right", no_wrap=True)
    for item in items:
        table.add_row(item.service, item.basis, f"{item.usd:,.2f}")
    table.add_section()
    table.add_row("[bold]total[/]", "", f"[bold]{cost.total(items):,.2f}[/]")
    return table


COMMANDS = {"cost": cost_report}
