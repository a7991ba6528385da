"""Classify an archive: `postwerk backfill SOURCE...`.

The same sources as `postwerk dataset build` (postwerk/dataset.py reads them), each message
stored raw in the raw bucket under backfill/ (outside incoming/, so the pipeline does not
take it again; the review page and training on corrections read it from there), parsed with
ingest's parser, and classified by a SageMaker batch transform job of the model the endpoint
serves. Each result goes into the results table and bucket as classify writes them, with
`backfill: <job>` on the item and the line, so the review page and the monitor see them and
a reader can tell them apart. A message that has a result already keeps it.

Streams: parsed records go to temporary files of PART_SIZE messages; the transform job
answers a line per input line, in order, so each output part is matched with its input
part line by line.
"""

import hashlib
import json
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from botocore.exceptions import ClientError

from postwerk import dataset
from services import clients, storage, waits
from services.lifecycle import job_name
from services.records import ClassificationV1, EmailV1, ModelIdentity, Prediction

PREFIX = "backfill"  # in the raw bucket (messages) and the artifacts bucket (job files)
PART_SIZE = 5000  # messages per transform input object
UPLOADERS = 16
# How long a transform job may take: its instances and model start, then each part at 3
# e-mails a second or more (one CPU instance of the BERT model does about 20).
TRANSFORM_START_S = 1800
PART_S = 1800
POLL_S = 2


class BackfillError(Exception):
    """No serving model, nothing to classify, or a transform job that failed."""


@dataclass(frozen=True)
class Stack:
    raw_bucket: str
    results_bucket: str
    results_table: str


@dataclass
class Outcome:
    job: str
    parsed: int
    classified: int
    kept_earlier: int  # had a result already
    not_emails: int
    failure: str | None


def served_model(endpoint: str) -> str:
    """The SageMaker model behind the endpoint's (single) production variant."""
    sm = clients.client("sagemaker")
    try:
        config_name = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    except ClientError as error:
        raise BackfillError(f"no endpoint {endpoint}: deploy a model first") from error
    config = sm.describe_endpoint_config(EndpointConfigName=config_name)
    return config["ProductionVariants"][0]["ModelName"]


@dataclass
class Parsed:
    parts: list[Path]  # EmailV1 JSON Lines, PART_SIZE a file
    emails: int
    not_emails: int


def parse_into_parts(sources: Sequence[Path], raw_bucket: str, folder: Path) -> Parsed:
    """Every message stored raw (a few uploads in flight at once) and parsed, once per
    message id."""
    from services.mail import NotAnEmail, parse_email  # its language model loads slowly

    parsed = Parsed([], 0, 0)
    seen: set[str] = set()
    uploads: deque[Future] = deque()
    out = None
    with ThreadPoolExecutor(UPLOADERS) as pool:
        for found in dataset.read_sources(sources):
            key = f"{PREFIX}/{hashlib.sha256(found.raw).hexdigest()[:32]}.eml"
            try:
                email = parse_email(found.raw, raw_bucket, key)
            except NotAnEmail:
                parsed.not_emails += 1
                continue
            if email.message_id in seen:
                continue
            seen.add(email.message_id)
            uploads.append(pool.submit(storage.write, raw_bucket, key, found.raw))
            while len(uploads) > 4 * UPLOADERS:
                uploads.popleft().result()  # raises what an upload raised
            if parsed.emails % PART_SIZE == 0:
                out = next_part(out, folder, parsed.parts)
            out.write(email.model_dump_json(by_alias=True) + "\n")
            parsed.emails += 1
        for upload in uploads:
            upload.result()
    if out:
        out.close()
    return parsed


def next_part(out: TextIO | None, folder: Path, parts: list[Path]) -> TextIO:
    if out:
        out.close()
    parts.append(folder / f"part-{len(parts):05d}.jsonl")
    return parts[-1].open("w")


def transform(model: str, artifacts: str, job: str, parts: list[Path], instance_type: str) -> dict:
    """Upload the model's instances, run the transform job to its end; its description."""
    prefix = f"{PREFIX}/{job}"
    for part in parts:
        with part.open() as emails:
            body = "".join(
                json.dumps(EmailV1.model_validate_json(line).model_text()) + "\n" for line in emails
            )
        storage.write(artifacts, f"{prefix}/input/{part.name}", body.encode())
    sm = clients.client("sagemaker")
    sm.create_transform_job(
        TransformJobName=job,
        ModelName=model,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{artifacts}/{prefix}/input/",
                }
            },
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{artifacts}/{prefix}/output",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": instance_type, "InstanceCount": 1},
    )
    timeout = TRANSFORM_START_S + PART_S * len(parts)
    waits.until(sm, "transform_job_completed_or_stopped", f"transform job {job}", timeout,
                POLL_S, TransformJobName=job)  # fmt: skip
    return sm.describe_transform_job(TransformJobName=job)


def answers(artifacts: str, job: str, part: Path) -> Iterator[dict]:
    """The output lines of one part (none where the job wrote no output for it)."""
    found = storage.get(artifacts, f"{PREFIX}/{job}/output/{part.name}.out")
    if found is None:
        return iter(())
    return (json.loads(line) for line in found.body.decode().splitlines())


def store(stack: Stack, job: str, results: list) -> int:
    """Results to the bucket and the table as classify stores them (once per message id),
    marked as this backfill's, and not routed; how many were new."""
    from services import results as results_table  # the functions' own writes, on use

    marked = [result.model_copy(update={"backfill": job}) for result in results]
    stored = results_table.store(
        stack.results_table, stack.results_bucket, marked, key_prefix=f"backfill-{job}-"
    )
    if stored.failed:
        raise next(iter(stored.failed.values()))
    return len(stored.new)


def results_of(part: Path, outputs: Iterator[dict], threshold: float) -> list:
    """Each e-mail of the part with its answer (the same line of the output) as a result."""
    found = []
    with part.open() as emails:
        for line, output in zip(emails, outputs, strict=False):
            email = EmailV1.model_validate_json(line)
            prediction = Prediction.model_validate(output)
            if str(prediction.id) != email.message_id:
                raise BackfillError(f"{part.name}: the transform's answers are out of order")
            model = ModelIdentity.model_validate(output["model"])
            found.append(ClassificationV1.from_prediction(email, prediction, model, threshold))
    return found


def backfill(
    sources: Sequence[Path],
    stack: Stack,
    artifacts: str,
    endpoint: str,
    instance_type: str,
    threshold: float,
) -> Outcome:
    """Parse, classify with a transform job, store; what happened."""
    model = served_model(endpoint)
    job = job_name("backfill")
    with tempfile.TemporaryDirectory(prefix="postwerk-backfill-") as work:
        parsed = parse_into_parts(sources, stack.raw_bucket, Path(work))
        if not parsed.parts:
            raise BackfillError(f"no e-mail in {', '.join(map(str, sources))}")
        described = transform(model, artifacts, job, parsed.parts, instance_type)
        classified = new = 0
        for part in parsed.parts:
            results = results_of(part, answers(artifacts, job, part), threshold)
            classified += len(results)
            new += store(stack, job, results) if results else 0
    failed = described["TransformJobStatus"] != "Completed"
    return Outcome(
        job=job,
        parsed=parsed.emails,
        classified=new,
        kept_earlier=classified - new,
        not_emails=parsed.not_emails,
        failure=described.get("FailureReason", "no reason given") if failed else None,
    )
