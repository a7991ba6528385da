"""Batch transform jobs: CreateTransformJob and friends, run as SageMaker runs them.

A job starts TransformResources.InstanceCount serving containers of its model, asks the
first for GET /execution-parameters (the defaults of MaxConcurrentTransforms, BatchStrategy
and MaxPayloadInMB), then sends every S3 object under the input prefix through them:
split into records (SplitType Line), each record cut by DataProcessing.InputFilter, sent
one per request (SingleRecord) or as many as fit MaxPayloadInMB (MultiRecord), the answers
joined with their input (JoinSource Input: the record with a `SageMakerOutput` member) and
cut by OutputFilter, written to `<S3OutputPath>/<object>.out` (AssembleWith Line: a line
per record). A request refused with 4xx is split in halves until the refused records are
alone: each of those is a failed record, logged with its object and line, and the job
fails naming the first one (the other objects' output is still written, as on AWS). The
life cycle all jobs share is emulation/sagemaker/jobs.py.

Filters are JSONPath's common subset: `$`, `$.a.b`, `$['a']`, `$[0]`, `$['a','b']`.
"""

import asyncio
import contextlib
import gzip
import itertools
import json
import re
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from emulation.http_client import NO_ANSWER, request
from emulation.sagemaker.artifacts import S3, ArtifactError, LogStream
from emulation.sagemaker.endpoints import Endpoints
from emulation.sagemaker.fleets import Replica, ReplicaError
from emulation.sagemaker.jobs import JobFailed, Jobs, JobStopped, Run
from emulation.sagemaker.model_files import model_folder, replica_folder
from emulation.sagemaker.protocol import now, required, validation
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Document, Store

LOG_GROUP = "/aws/sagemaker/TransformJobs"
STRATEGIES = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}
MAX_RECORDS_PER_REQUEST = 1000  # the serving container's default cap (model/settings.py)
PATH_STEP = re.compile(r"\.(\w+)|\[(\d+)\]|\[((?:'[^']*'\s*,?\s*)+)\]")


# --- JSONPath filters ----------------------------------------------------------------------


def json_filter(expression: str):
    """A function of a JSON value for the JSONPath subset above (None for `$`, the whole
    value); ValidationException for other expressions."""
    if expression == "$":
        return None
    if not expression.startswith("$"):
        raise validation(f"'{expression}': a JSONPath filter starts with '$'")
    steps, rest = [], expression[1:]
    while rest:
        match = PATH_STEP.match(rest)
        if match is None:
            raise validation(
                f"'{expression}': the local service takes $, $.a.b, $['a'], $[0] "
                "and $['a','b'] filters"
            )
        name, index, names = match.groups()
        steps.append(name or (int(index) if index else re.findall(r"'([^']*)'", names)))
        rest = rest[match.end() :]

    def select(value: Any) -> Any:
        for step in steps:
            if isinstance(step, list) and len(step) > 1:
                value = {key: value[key] for key in step if key in value}
            else:
                value = value[step[0] if isinstance(step, list) else step]
        return value

    return select


# --- records -------------------------------------------------------------------------------


@dataclass
class Record:
    source: str  # the S3 object
    line: int  # 1-based, within the object
    raw: bytes  # as read, for JoinSource
    payload: bytes  # after the InputFilter
    output: bytes | None = None
    error: str | None = None


@dataclass
class Plan:
    """A job's resolved parameters."""

    content_type: str
    accept: str | None
    single_record: bool
    max_payload: int
    concurrency: int
    split_lines: bool
    assemble_lines: bool
    join_input: bool
    input_filter: Any
    output_filter: Any
    timeout: float
    retries: int


class TransformJobs(Jobs):
    kind = "TransformJob"
    arn_type = "transform-job"
    noun = "transform job"
    name_pattern = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    not_found_message = "Could not find requested job with name {name}"
    in_use_message = "Job name must be unique within an AWS account and region: {name}"
    end_time_key = "TransformEndTime"
    summary_keys = (
        "TransformJobName",
        "TransformJobArn",
        "CreationTime",
        "TransformEndTime",
        "TransformJobStatus",
        "FailureReason",
    )
    list_time_filters = ()
    has_last_modified_time = False  # DescribeTransformJob has none; its summary has one
    client_errors = (ReplicaError, ArtifactError)

    def __init__(self, store: Store, settings: ServiceSettings, endpoints: Endpoints):
        self.endpoints = endpoints
        super().__init__(store, settings)

    def summary(self, document: Document) -> Document:
        last_modified = document.get("TransformEndTime", document["CreationTime"])
        return super().summary(document) | {"LastModifiedTime": last_modified}

    # --- one job's life ------------------------------------------------------------------

    def new_document(self, name: str, request: dict[str, Any]) -> Document:
        self.endpoints.describe_model(required(request, "ModelName"))
        source = required(required(request, "TransformInput"), "DataSource")
        s3_source = required(source, "S3DataSource")
        required(s3_source, "S3Uri")
        if s3_source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise validation("the local service reads S3DataType S3Prefix input only")
        transform_input = request["TransformInput"]
        if transform_input.get("SplitType", "None") not in ("None", "Line"):
            raise validation("the local service splits input by Line (or not at all)")
        if transform_input.get("CompressionType", "None") not in ("None", "Gzip"):
            raise validation("CompressionType must be None or Gzip")
        output = required(request, "TransformOutput")
        required(output, "S3OutputPath")
        resources = required(request, "TransformResources")
        if int(required(resources, "InstanceCount")) < 1:
            raise validation("TransformResources.InstanceCount must be at least 1")
        if request.get("BatchStrategy", "MultiRecord") not in STRATEGIES.values():
            raise validation("BatchStrategy must be MultiRecord or SingleRecord")
        if "MaxPayloadInMB" in request and not 1 <= int(request["MaxPayloadInMB"]) <= 100:
            raise validation("MaxPayloadInMB must be from 1 to 100")
        processing = request.get("DataProcessing", {})
        for key in ("InputFilter", "OutputFilter"):
            json_filter(processing.get(key, "$"))
        if processing.get("JoinSource", "None") not in ("None", "Input"):
            raise validation("DataProcessing.JoinSource must be None or Input")
        passed = (
            "MaxConcurrentTransforms",
            "MaxPayloadInMB",
            "BatchStrategy",
            "ModelClientConfig",
        )
        return {
            "TransformJobName": name,
            "TransformJobArn": self.arn(name),
            "TransformJobStatus": "InProgress",
            "ModelName": request["ModelName"],
            **{key: request[key] for key in passed if key in request},
            "Environment": request.get("Environment", {}),
            "TransformInput": transform_input,
            "TransformOutput": output,
            "TransformResources": resources,
            **({"DataProcessing": processing} if processing else {}),
            "CreationTime": now(),
        }

    def execute(self, name: str, run: Run) -> None:
        replicas: list[Replica] = []
        job_dir = self.settings.state_dir / "transform-jobs" / name
        try:
            document = self.describe(name)
            replicas = self._start_containers(document)
            self.update(name, TransformStartTime=now())
            plan = self._plan(name, document, replicas[0])
            failures = self._transform_all(name, document, plan, replicas, job_dir, run)
        finally:
            for replica in replicas:
                replica.stop()
            shutil.rmtree(job_dir, ignore_errors=True)
        if run.stop_requested.is_set():
            raise JobStopped
        if failures:
            raise JobFailed(failures)

    def _start_containers(self, document: Document) -> list[Replica]:
        model = self.endpoints.describe_model(document["ModelName"])
        model_dir = model_folder(self.endpoints.settings.state_dir, model)
        name, started = document["TransformJobName"], int(document["CreationTime"])
        container = model["PrimaryContainer"]
        replicas = [
            Replica(
                name,
                "transform",
                number,
                container["Image"],
                replica_folder(self.endpoints.settings.state_dir, name, model_dir),
                container.get("Environment", {}) | document["Environment"],
                log=(LOG_GROUP, f"{name}/algo-{number + 1}-{started}"),
            )
            for number in range(int(document["TransformResources"]["InstanceCount"]))
        ]
        try:
            for replica in replicas:
                replica.start(self.endpoints.containers)
            for replica in replicas:
                replica.wait_ready(self.settings.replica_start_timeout)
        except BaseException:
            for replica in replicas:
                replica.stop()
            raise
        return replicas

    def _plan(self, name: str, document: Document, replica: Replica) -> Plan:
        """The request's parameters, else the container's /execution-parameters, else AWS's
        defaults; stored in the job's description as resolved."""
        offered: dict[str, Any] = {}
        with contextlib.suppress(*NO_ANSWER, ValueError):
            status, body = request("GET", f"{replica.url}/execution-parameters", timeout=10)
            if status == 200:
                offered = json.loads(body)
        strategy = document.get("BatchStrategy") or STRATEGIES.get(
            offered.get("BatchStrategy", ""), "MultiRecord"
        )
        payload_mb = int(document.get("MaxPayloadInMB") or offered.get("MaxPayloadInMB") or 6)
        concurrency = int(
            document.get("MaxConcurrentTransforms") or offered.get("MaxConcurrentTransforms") or 1
        )
        self.update(
            name,
            BatchStrategy=strategy,
            MaxPayloadInMB=payload_mb,
            MaxConcurrentTransforms=concurrency,
        )
        transform_input, output = document["TransformInput"], document["TransformOutput"]
        processing = document.get("DataProcessing", {})
        client = document.get("ModelClientConfig", {})
        return Plan(
            content_type=transform_input.get("ContentType", "application/jsonlines"),
            accept=output.get("Accept"),
            single_record=strategy == "SingleRecord",
            max_payload=payload_mb * 1024 * 1024,
            concurrency=concurrency,
            split_lines=transform_input.get("SplitType", "None") == "Line",
            assemble_lines=output.get("AssembleWith", "None") == "Line",
            join_input=processing.get("JoinSource", "None") == "Input",
            input_filter=json_filter(processing.get("InputFilter", "$")),
            output_filter=json_filter(processing.get("OutputFilter", "$")),
            timeout=float(client.get("InvocationsTimeoutInSeconds", 600)),
            retries=int(client.get("InvocationsMaxRetries", 3)),
        )

    def _transform_all(
        self, name: str, document: Document, plan: Plan, replicas: list[Replica], job_dir, run
    ) -> str:
        """Every input object to its .out; returns the failure reason ('' when none)."""
        s3 = S3()
        input_uri = document["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        s3.download_prefix(input_uri, job_dir / "input")
        output_uri = document["TransformOutput"]["S3OutputPath"].rstrip("/")
        compressed = document["TransformInput"].get("CompressionType") == "Gzip"
        stream = LogStream(LOG_GROUP, f"{name}/data-log")
        failed: list[Record] = []

        def write(relative: str, records: list[Record]) -> None:
            bad = [r for r in records if r.error is not None]
            for record in bad:
                stream.write(f"{record.source}: line {record.line}: {record.error}")
            failed.extend(bad)
            if not bad:
                target = job_dir / "output" / f"{relative}.out"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(assemble(records, plan))
                s3.upload_file(target, f"{output_uri}/{relative}.out")

        def objects() -> Iterator[tuple[str, list[Record]]]:
            for path in sorted(p for p in (job_dir / "input").rglob("*") if p.is_file()):
                if run.stop_requested.is_set():
                    return
                relative = path.relative_to(job_dir / "input").as_posix()
                yield relative, read_records(path, relative, plan, compressed)

        asyncio.run(self._send_all(objects(), plan, replicas, write))
        stream.flush()
        if not failed:
            return ""
        first = failed[0]
        return (
            f"ClientError: {len(failed)} record(s) failed; the first, {first.source} line "
            f"{first.line}: {first.error}. See {LOG_GROUP}/{name}/data-log for all."
        )

    async def _send_all(
        self,
        objects: Iterator[tuple[str, list[Record]]],
        plan: Plan,
        replicas: list[Replica],
        write: Callable[[str, list[Record]], None],
    ) -> None:
        """Every object's records through the replicas (MaxConcurrentTransforms requests per
        replica at a time), each object written once all its requests are answered. The
        requests of the next objects are in flight while one is written, and at most a window
        of objects is held in memory."""
        turn = itertools.count()
        slots = asyncio.Semaphore(plan.concurrency * len(replicas))
        window = 2 * plan.concurrency * len(replicas)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=plan.timeout),
            connector=aiohttp.TCPConnector(limit=0),  # `slots` is the limit
        ) as session:

            async def send(batch: list[Record]) -> None:
                async with slots:
                    replica = replicas[next(turn) % len(replicas)]
                    await self._invoke(session, replica, plan, batch)

            async def written(relative: str, records: list[Record], requests: list) -> None:
                await asyncio.gather(*requests)
                await asyncio.to_thread(write, relative, records)

            pending: deque = deque()
            for relative, records in objects:
                requests = [asyncio.create_task(send(batch)) for batch in batches(records, plan)]
                pending.append((relative, records, requests))
                if len(pending) >= window:
                    await written(*pending.popleft())
            while pending:
                await written(*pending.popleft())

    async def _invoke(
        self, session: aiohttp.ClientSession, replica: Replica, plan: Plan, batch: list[Record]
    ) -> None:
        """One request for the batch; a 4xx splits it in halves down to single records."""
        headers = {"Content-Type": plan.content_type} | (
            {"Accept": plan.accept} if plan.accept else {}
        )
        body = b"\n".join(record.payload for record in batch)
        status, content, answer = 0, b"", ""
        for _ in range(plan.retries + 1):
            try:
                async with session.post(
                    f"{replica.url}/invocations", data=body, headers=headers
                ) as response:
                    status, content = response.status, await response.read()
            except NO_ANSWER as error:
                status, answer = 0, f"no answer from the container ({type(error).__name__})"
                continue
            answer = content.decode(errors="replace")
            if status == 200 or 400 <= status < 500:
                break
        if status == 200:
            outputs = content.splitlines() if len(batch) > 1 else [content]
            if len(outputs) == len(batch):
                for record, output in zip(batch, outputs, strict=True):
                    record.output = output
                return
            answer = f"{len(outputs)} answer lines for {len(batch)} records"
        if 400 <= status < 500 and len(batch) > 1:
            middle = len(batch) // 2
            await self._invoke(session, replica, plan, batch[:middle])
            await self._invoke(session, replica, plan, batch[middle:])
            return
        for record in batch:
            record.error = f"Bad HTTP status received from algorithm: {status} {answer[:500]}"


def read_records(path: Path, source: str, plan: Plan, compressed: bool) -> list[Record]:
    data = path.read_bytes()
    if compressed:
        data = gzip.decompress(data)
    pieces = data.splitlines() if plan.split_lines else [data]
    records = []
    for line, raw in enumerate(pieces, start=1):
        if plan.split_lines and not raw.strip():
            continue
        record = Record(source, line, raw, raw)
        try:
            record.payload = filtered(raw, plan.input_filter)
        except (ValueError, LookupError, TypeError) as error:
            record.error = f"InputFilter: {type(error).__name__}: {error}"
        records.append(record)
    return records


def filtered(raw: bytes, select) -> bytes:
    if select is None:
        return raw
    return json.dumps(select(json.loads(raw)), ensure_ascii=False).encode()


def batches(records: list[Record], plan: Plan):
    """The records to send: one per request, or as many as fit the payload limit."""
    batch: list[Record] = []
    size = 0
    for record in records:
        if record.error is not None:
            continue
        cost = len(record.payload) + 1
        full = len(batch) >= MAX_RECORDS_PER_REQUEST or size + cost > plan.max_payload
        if batch and (plan.single_record or full):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += cost
    if batch:
        yield batch


def assemble(records: list[Record], plan: Plan) -> bytes:
    outputs = [output_of(record, plan) for record in records]
    if plan.assemble_lines:
        return b"".join(output.rstrip(b"\n") + b"\n" for output in outputs)
    return b"".join(outputs)


def output_of(record: Record, plan: Plan) -> bytes:
    if not plan.join_input:
        return filtered(record.output, plan.output_filter)
    joined = json.loads(record.raw)
    output = json.loads(record.output)
    if isinstance(joined, dict):
        joined["SageMakerOutput"] = output
    else:  # an array: the output appended, as AWS joins arrays
        joined = [*joined, output]
    return filtered(json.dumps(joined, ensure_ascii=False).encode(), plan.output_filter)
