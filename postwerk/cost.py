"""What the deployed pipeline costs a month at a given e-mail volume: pure arithmetic.

In: a `Deployment` (the endpoint, training, the template's functions and stream, the mail
door) and a `PriceTable` (postwerk/prices.json, dated, a source per figure). Out: one
`LineItem` per service, each saying how it was counted and from which figures. No AWS calls
here: postwerk/cost_commands.py gathers the measured figures (CloudWatch, the last training
job) and renders the table.
"""

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

PRICES = Path(__file__).with_name("prices.json")
HOURS_PER_MONTH = 730  # AWS's own monthly figure: 8,760 hours / 12
DAYS_PER_MONTH = 365 / 12
KB_PER_GB = 1024 * 1024


class CostError(ValueError):
    """A figure the estimate needs is missing (a region or instance type not in the table)."""


@dataclass(frozen=True)
class Price:
    usd: float  # for `per` units
    per: int
    unit: str
    source: str  # AWS's pricing page the figure belongs to
    confirmed: str  # a stored copy of a page showing the figure, or "not confirmed here"

    @property
    def each(self) -> float:
        return self.usd / self.per

    @property
    def is_confirmed(self) -> bool:
        return not self.confirmed.startswith("not confirmed")


@dataclass(frozen=True)
class PriceTable:
    region: str
    as_of: str
    items: dict[str, Price]
    hosting: dict[str, Price]
    training: dict[str, Price]
    spot_saving: "Figure"

    def __getitem__(self, key: str) -> Price:
        return self.items[key]

    def instance(self, kind: str, instance_type: str) -> Price:
        table = self.hosting if kind == "hosting" else self.training
        if instance_type not in table:
            raise CostError(
                f"no {kind} price for {instance_type} in {self.region} in {PRICES.name} "
                f"(known: {', '.join(sorted(table))}); add it with its source"
            )
        return table[instance_type]


def load_prices(region: str, path: Path = PRICES) -> PriceTable:
    document = json.loads(path.read_text())
    if region not in document["regions"]:
        known = ", ".join(sorted(document["regions"]))
        raise CostError(f"no prices for region {region} in {path.name} (known: {known})")
    found = document["regions"][region]
    hosting = {name: Price(**value) for name, value in found.pop("sagemaker_hosting").items()}
    training = {name: Price(**value) for name, value in found.pop("sagemaker_training").items()}
    spot = document["assumptions"]["spot_saving"]
    return PriceTable(
        region,
        document["as_of"],
        {key: Price(**value) for key, value in found.items()},
        hosting,
        training,
        Figure(spot["value"], spot["source"]),
    )


@dataclass(frozen=True)
class Figure:
    """An input with where it came from: measured, configured or assumed."""

    value: float
    source: str


@dataclass(frozen=True)
class InstanceEndpoint:
    instance_type: str
    instances: int = 1


@dataclass(frozen=True)
class ServerlessEndpoint:
    memory_mb: int
    seconds_per_request: Figure  # billed duration of one InvokeEndpoint


@dataclass(frozen=True)
class Training:
    instance_type: str
    billable_seconds: Figure  # one job, on demand (a spot job's TrainingTimeInSeconds)
    runs_per_month: Figure
    spot: bool
    instances: int = 1


@dataclass(frozen=True)
class Function:
    """A Lambda function of the template and how often it runs."""

    name: str
    memory_mb: int
    per_email: float  # invocations per e-mail
    per_month: float  # invocations a month besides (schedules)
    seconds: Figure  # billed duration of one invocation


@dataclass(frozen=True)
class Workload:
    """What one e-mail does besides the functions (assumptions, stated where printed)."""

    email_kb: float = 50  # a raw e-mail as received, attachments included
    result_kb: float = 2  # its result object in S3 and item in DynamoDB
    record_kb: float = 8  # its Kinesis record (text capped at 20,000 characters)
    retention_months: int = 12  # raw mail and results kept this long (storage lines)
    dynamodb_writes: float = 2  # WRU per e-mail: the result, then the review's update
    dynamodb_reads: float = 2  # RRU per e-mail: the review page, the monitor
    s3_puts: float = 2  # the raw e-mail, the result
    s3_gets: float = 1  # ingest reads the raw e-mail
    sqs_requests: float = 6  # send, receive, delete on the incoming queue and a team queue
    events: float = 1  # the routing event on the bus

    def describe(self) -> str:
        return (
            f"assumed per e-mail: {self.email_kb:g} KB raw, {self.result_kb:g} KB result, "
            f"{self.record_kb:g} KB Kinesis record; kept {self.retention_months} months"
        )


@dataclass(frozen=True)
class Deployment:
    region: str
    emails_per_day: float
    endpoint: InstanceEndpoint | ServerlessEndpoint
    training: Training
    functions: tuple[Function, ...]
    shards: int
    ses_receiving: bool
    workload: Workload = field(default_factory=Workload)

    @property
    def emails_per_month(self) -> float:
        return self.emails_per_day * DAYS_PER_MONTH


@dataclass(frozen=True)
class LineItem:
    service: str
    basis: str  # how it was counted, with the prices used
    usd: float  # a month
    notes: tuple[str, ...] = ()  # where the figures came from


def estimate(deployment: Deployment, prices: PriceTable) -> list[LineItem]:
    """The monthly cost, one line per service, in the order a reader follows the mail."""
    return [
        endpoint_cost(deployment, prices),
        training_cost(deployment.training, prices),
        kinesis_cost(deployment, prices),
        lambda_cost(deployment, prices),
        dynamodb_cost(deployment, prices),
        s3_cost(deployment, prices),
        ses_cost(deployment, prices),
        messaging_cost(deployment, prices),
    ]


def total(items: list[LineItem]) -> float:
    return sum(item.usd for item in items)


def endpoint_cost(deployment: Deployment, prices: PriceTable) -> LineItem:
    endpoint = deployment.endpoint
    if isinstance(endpoint, InstanceEndpoint):
        price = prices.instance("hosting", endpoint.instance_type)
        hours = HOURS_PER_MONTH * endpoint.instances
        return LineItem(
            "endpoint",
            f"{endpoint.instances} x {endpoint.instance_type}, {hours:,} h x {usd(price.usd)}/h"
            f"{mark(price)}",
            hours * price.each,
        )
    price = prices["sagemaker_serverless_gb_second"]
    requests = deployment.emails_per_month  # one InvokeEndpoint per e-mail (see the note)
    gb_seconds = requests * endpoint.seconds_per_request.value * endpoint.memory_mb / 1024
    return LineItem(
        "endpoint (serverless)",
        f"{endpoint.memory_mb / 1024:g} GB x {duration(endpoint.seconds_per_request.value)}"
        f" x {count(requests)} req = {count(gb_seconds)} GB-s x {usd(price.each)}{mark(price)}",
        gb_seconds * price.each,
        (
            f"serverless duration: {endpoint.seconds_per_request.source}",
            "one request per e-mail: at this volume each Kinesis batch holds about one",
        ),
    )


def training_cost(training: Training, prices: PriceTable) -> LineItem:
    price = prices.instance("training", training.instance_type)
    hours = training.billable_seconds.value / 3600 * training.instances
    on_demand = hours * training.runs_per_month.value * price.each
    basis = (
        f"{training.runs_per_month.value:g} x {hours:.2f} h {training.instance_type} "
        f"x {usd(price.usd)}/h{mark(price)}"
    )
    notes = [
        f"training time: {training.billable_seconds.source}",
        f"training runs: {training.runs_per_month.source}",
    ]
    saving = prices.spot_saving
    if not training.spot:
        spot = on_demand * (1 - saving.value)
        notes.append(f"with managed spot training (--spot): {usd(spot)} a month")
        return LineItem("training (on demand)", basis, on_demand, tuple(notes))
    notes.append(f"spot saving {saving.value:.0%}: {saving.source}")
    return LineItem(
        "training (spot)",
        f"{basis} x (1 - {saving.value:.0%})",
        on_demand * (1 - saving.value),
        tuple(notes),
    )


def kinesis_cost(deployment: Deployment, prices: PriceTable) -> LineItem:
    shard, put = prices["kinesis_shard_hour"], prices["kinesis_put_payload_units"]
    units = deployment.emails_per_month * math.ceil(deployment.workload.record_kb / 25)
    hours = deployment.shards * HOURS_PER_MONTH
    return LineItem(
        "Kinesis stream",
        f"{deployment.shards} shards x {HOURS_PER_MONTH} h x {usd(shard.usd)}{mark(shard)}"
        f" + {count(units)} PUT units x {usd(put.usd)}/M{mark(put)}",
        hours * shard.each + units * put.each,
    )


def lambda_cost(deployment: Deployment, prices: PriceTable) -> LineItem:
    requests_price, duration_price = prices["lambda_requests"], prices["lambda_gb_second"]
    requests = gb_seconds = 0.0
    notes = []
    for function in deployment.functions:
        runs = function.per_email * deployment.emails_per_month + function.per_month
        requests += runs
        gb_seconds += runs * function.seconds.value * function.memory_mb / 1024
        notes.append(
            f"{function.name}: {function.memory_mb} MB (template), {count(runs)} runs x "
            f"{duration(function.seconds.value)} ({function.seconds.source})"
        )
    names = ", ".join(function.name.removeprefix("postwerk-") for function in deployment.functions)
    return LineItem(
        f"Lambda ({len(deployment.functions)})",
        f"{count(requests)} req x {usd(requests_price.usd)}/M + {count(gb_seconds)} GB-s x "
        f"{usd(duration_price.usd)}{mark(requests_price, duration_price)} ({names})",
        requests * requests_price.each + gb_seconds * duration_price.each,
        tuple(notes),
    )


def dynamodb_cost(deployment: Deployment, prices: PriceTable) -> LineItem:
    work, emails = deployment.workload, deployment.emails_per_month
    write, read = prices["dynamodb_write_request_units"], prices["dynamodb_read_request_units"]
    storage = prices["dynamodb_storage_gb_month"]
    writes, reads = emails * work.dynamodb_writes, emails * work.dynamodb_reads
    gb = emails * work.retention_months * work.result_kb / KB_PER_GB
    return LineItem(
        "DynamoDB (on demand)",
        f"{count(writes)} WRU x {usd(write.usd)}/M + {count(reads)} RRU x {usd(read.usd)}/M"
        f" + {gb:.1f} GB x {usd(storage.usd)}{mark(write, read, storage)}",
        writes * write.each + reads * read.each + gb * storage.each,
    )


def s3_cost(deployment: Deployment, prices: PriceTable) -> LineItem:
    work, emails = deployment.workload, deployment.emails_per_month
    storage = prices["s3_storage_gb_month"]
    put, get = prices["s3_put_requests"], prices["s3_get_requests"]
    gb = emails * work.retention_months * (work.email_kb + work.result_kb) / KB_PER_GB
    puts, gets = emails * work.s3_puts, emails * work.s3_gets
    return LineItem(
        "S3",
        f"{gb:.0f} GB x {usd(storage.usd)} + {count(puts)} PUT x {usd(put.usd)}/k + "
        f"{count(gets)} GET x {usd(get.usd)}/k{mark(storage, put, get)}",
        gb * storage.each + puts * put.each + gets * get.each,
        (f"storage: {work.retention_months} months of mail and results (the level after a year)",),
    )


def ses_cost(deployment: Deployment, prices: PriceTable) -> LineItem:
    if not deployment.ses_receiving:
        return LineItem("SES receiving", "off (no MailRecipients: mailbox door or S3 uploads)", 0.0)
    emails = deployment.emails_per_month
    received, chunk = prices["ses_received_emails"], prices["ses_incoming_chunks"]
    chunks = emails * math.ceil(deployment.workload.email_kb / 256)
    return LineItem(
        "SES receiving",
        f"{count(emails)} mails x {usd(received.usd)}/k + {count(chunks)} chunks x "
        f"{usd(chunk.usd)}/k{mark(received, chunk)}",
        emails * received.each + chunks * chunk.each,
    )


def messaging_cost(deployment: Deployment, prices: PriceTable) -> LineItem:
    work, emails = deployment.workload, deployment.emails_per_month
    sqs, events = prices["sqs_requests"], prices["eventbridge_events"]
    requests, routed = emails * work.sqs_requests, emails * work.events
    return LineItem(
        "SQS, EventBridge",
        f"{count(requests)} req x {usd(sqs.usd)}/M + {count(routed)} events x "
        f"{usd(events.usd)}/M{mark(sqs, events)}",
        requests * sqs.each + routed * events.each,
    )


# The template: its functions' memory, its stream's shards


@dataclass(frozen=True)
class TemplateResource:
    logical_id: str
    type: str
    condition: str
    properties: str  # the block's text


def template_resources(text: str) -> list[TemplateResource]:
    """The Resources section of infra/template.yaml, one entry per resource (a reader of
    this template's layout, not of YAML in general: two-space resources, Type, Condition)."""
    section = re.search(r"^Resources:\n(.*?)(?=^\S|\Z)", text, re.M | re.S).group(1)
    parts = re.split(r"^  (\w+):[^\n]*\n", section, flags=re.M)[1:]
    found = []
    for logical_id, block in zip(parts[::2], parts[1::2], strict=True):
        kind = re.search(r"^    Type: (\S+)", block, re.M)
        condition = re.search(r"^    Condition: (\w+)", block, re.M)
        found.append(
            TemplateResource(
                logical_id, kind.group(1) if kind else "", condition.group(1) if condition else "",
                block,
            )
        )  # fmt: skip
    return found


# Which template condition each stack parameter switches on (the rest are always created).
CONDITIONS = {
    "HasSupportAddress": "SupportAddress",
    "HasMailboxDoor": "MailboxSchedule",
    "ReceivesMail": "MailRecipients",
}

# How often each function runs and for how long: assumptions, printed with the table.
FUNCTION_USE = {
    "IngestFunction": (1.0, 0.0, Figure(0.2, "assumed: S3 GET, parse, Kinesis PUT")),
    "ClassifyFunction": (1.0, 0.0, Figure(0.3, "assumed: InvokeEndpoint, DynamoDB, S3, event")),
    "FeedbackFunction": (1.0, 0.0, Figure(0.1, "assumed: one review-page call per e-mail")),
    "MonitorFunction": (
        0.0,
        HOURS_PER_MONTH,
        Figure(10.0, "assumed; rate(1 hour) in the template"),
    ),
    "AutoReplyFunction": (1.0, 0.0, Figure(0.2, "assumed: one reply per e-mail at most")),
    "MailboxFunction": (0.0, 0.0, Figure(2.0, "assumed: an IMAP login and fetch")),
}


def template_functions(text: str, parameters: dict[str, str]) -> tuple[Function, ...]:
    """The template's Lambda functions that these parameters create, with their memory."""
    functions = []
    for resource in template_resources(text):
        if resource.type != "AWS::Lambda::Function":
            continue
        parameter = CONDITIONS.get(resource.condition)
        if parameter is not None and not parameters.get(parameter, "").strip():
            continue
        memory = re.search(r"^      MemorySize: (\d+)", resource.properties, re.M)
        name = re.search(r"^      FunctionName: (\S+)", resource.properties, re.M)
        per_email, per_month, seconds = FUNCTION_USE.get(
            resource.logical_id, (1.0, 0.0, Figure(0.2, "assumed"))
        )
        if resource.logical_id == "MailboxFunction":
            per_month = schedule_runs(parameters["MailboxSchedule"])
        functions.append(
            Function(
                name.group(1) if name else resource.logical_id,
                int(memory.group(1)) if memory else 128,  # Lambda's default
                per_email,
                per_month,
                seconds,
            )
        )
    return tuple(functions)


def template_shards(text: str) -> int:
    for resource in template_resources(text):
        if resource.type == "AWS::Kinesis::Stream":
            return int(re.search(r"ShardCount: (\d+)", resource.properties).group(1))
    raise CostError("no Kinesis stream in the template")


def schedule_runs(expression: str) -> float:
    """Runs a month of an EventBridge rate() expression; a cron() one counts as every minute
    (the most a schedule runs)."""
    rate = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression.strip())
    if rate is None:
        return HOURS_PER_MONTH * 60
    minutes = {"minute": 1, "hour": 60, "day": 1440}[rate.group(2)] * int(rate.group(1))
    return HOURS_PER_MONTH * 60 / minutes


# Formatting


def usd(amount: float) -> str:
    """$0.115, $0.20, $0.0000166667, $84.06: enough digits to recompute the line by hand."""
    if amount >= 1:
        return f"${amount:,.2f}"
    digits = f"{amount:.10f}".rstrip("0")
    return "$" + digits.ljust(len(digits.split(".")[0]) + 3, "0")


def duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def count(number: float) -> str:
    """91,250 -> 91k; 1,250,000 -> 1.25M."""
    if number >= 1_000_000:
        return f"{number / 1_000_000:.3g}M"
    if number >= 10_000:
        return f"{number / 1000:.0f}k"
    return f"{number:,.0f}"


def mark(*prices: Price) -> str:
    """* after a figure no stored published page confirmed (see prices.json)."""
    return "" if all(price.is_confirmed for price in prices) else "*"
