"""The model registry: every trained model with what produced it, and which one is the
champion (serving). JSON objects in the artifacts bucket, so it works the same on AWS and on
every local backend:

registry/versions/<job>.json   a trained model: its training job, model archive, model
                               info (labels, metrics, the weights' digest `version`),
                               hyperparameters, data manifest, code
registry/champion.json         the serving job and the history of promotions
registry/decisions/<time>.json champion/challenger decisions with both scores

A model is named by its training job (`job`); `version` is always the digest of its
weights, the one that every classification.v1 result carries.

Why not SageMaker's Model Registry: its model packages hold the same facts, but no
emulator has it, and S3 objects need no emulation at all; the entry's fields map onto a
model package (ModelMetrics, CustomerMetadataProperties) if an account wants it there.
"""

import hashlib
import io
import re
import tarfile
from datetime import UTC, datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from services import clients, storage

PREFIX = "registry"


class LifecycleError(Exception):
    """A life-cycle step that cannot be taken (a job not finished, no earlier champion, no
    endpoint to update); the message says why."""


# Entries written before `job` had its own name called it `version`: still read.
JOB = Field(validation_alias=AliasChoices("job", "version"))


class ManifestItem(BaseModel):
    channel: str
    uri: str
    size: int
    sha256: str


class ModelInfo(BaseModel):
    """model_info.json as training writes it (fields beyond these are kept)."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    version: str  # the digest of the weights
    labels: list[str] = []
    metrics: dict = {}
    train_label_counts: dict[str, int] = {}


# `postwerk dataset build` writes data sets to datasets/<name>/<version>/<split>/ (its
# module, postwerk/dataset.py, owns the prefix); a job whose channels read one was trained on it.
DATASET_CHANNEL = re.compile(r"^s3://[^/]+/datasets/(?P<name>[^/]+)/(?P<version>[^/]+)/")


class DatasetRef(BaseModel):
    name: str
    version: str


class ModelVersion(BaseModel):
    job: str = JOB
    registered_at: str
    model_data_url: str
    model_info: ModelInfo
    hyperparameters: dict[str, str] = {}
    data_manifest: list[ManifestItem] = []
    code_version: str = "unknown"
    dataset: DatasetRef | None = None  # built by `postwerk dataset build`, when trained on one

    @property
    def held_out_accuracy(self) -> float | None:
        return self.model_info.metrics.get("test", {}).get("accuracy")

    @property
    def held_out(self) -> set[str]:
        """The test channel's objects by content: equal sets mean the same held-out set."""
        return {item.sha256 for item in self.data_manifest if item.channel == "test"}


class Promotion(BaseModel):
    job: str = JOB
    promoted_at: str
    reason: str


class Champion(BaseModel):
    job: str = JOB
    history: list[Promotion] = []


class Decision(BaseModel):
    challenger: str
    champion: str | None
    challenger_accuracy: float | None
    champion_accuracy: float | None
    margin: float
    same_held_out_set: bool
    promoted: bool
    reasons: list[str]
    decided_at: str = Field(default_factory=lambda: now())


def read(bucket: str, key: str) -> dict | None:
    return storage.read_json_if_present(bucket, key)


def write(bucket: str, key: str, document: BaseModel | dict) -> None:
    if isinstance(document, BaseModel):
        document = document.model_dump(mode="json")
    storage.write_json(bucket, key, document)


def version(bucket: str, job: str) -> ModelVersion | None:
    found = read(bucket, f"{PREFIX}/versions/{job}.json")
    return ModelVersion.model_validate(found) if found else None


def register(bucket: str, entry: ModelVersion) -> None:
    write(bucket, f"{PREFIX}/versions/{entry.job}.json", entry)


def versions(bucket: str) -> list[ModelVersion]:
    """Every registered model, oldest first."""
    keys = storage.list_keys(bucket, f"{PREFIX}/versions/")
    entries = [ModelVersion.model_validate(found) for key in keys if (found := read(bucket, key))]
    return sorted(entries, key=lambda entry: entry.registered_at)


def s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def register_job(bucket: str, job: str, code_version: str) -> ModelVersion:
    """The registry entry of a completed training job (written once; read after)."""
    if existing := version(bucket, job):
        return existing
    described = clients.client("sagemaker").describe_training_job(TrainingJobName=job)
    if described["TrainingJobStatus"] != "Completed":
        raise LifecycleError(
            f"training job {job} is {described['TrainingJobStatus']}, not Completed"
        )
    model_url = described["ModelArtifacts"]["S3ModelArtifacts"]
    entry = ModelVersion(
        job=job,
        registered_at=now(),
        model_data_url=model_url,
        model_info=model_info(model_url.removesuffix("model.tar.gz") + "output.tar.gz"),
        hyperparameters=described.get("HyperParameters", {}),
        data_manifest=data_manifest(described["InputDataConfig"]),
        code_version=code_version,
        dataset=dataset_of(described["InputDataConfig"]),
    )
    register(bucket, entry)
    return entry


def dataset_of(channels: list[dict]) -> DatasetRef | None:
    """The data set the job's channels read, if they read one (read from their S3 prefixes:
    this needs no permission beyond DescribeTrainingJob)."""
    uris = (channel["DataSource"]["S3DataSource"]["S3Uri"] for channel in channels)
    found = {match.groups() for uri in uris if (match := DATASET_CHANNEL.match(uri))}
    if len(found) != 1:
        return None
    name, version = found.pop()
    return DatasetRef(name=name, version=version)


def model_info(output_url: str) -> ModelInfo:
    """model_info.json (labels, metrics, training label counts) from the job's output.tar.gz."""
    raw = storage.read(*s3_parts(output_url))
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        member = archive.extractfile("model_info.json")
        if member is None:
            raise LifecycleError(f"{output_url} has no model_info.json")
        return ModelInfo.model_validate_json(member.read())


def data_manifest(channels: list[dict]) -> list[ManifestItem]:
    """Every S3 object the job read, with its size and SHA-256: the exact data set."""
    manifest = []
    for channel in channels:
        bucket, prefix = s3_parts(channel["DataSource"]["S3DataSource"]["S3Uri"])
        for obj in storage.objects(bucket, prefix):
            body = storage.read(bucket, obj["Key"])
            manifest.append(
                ManifestItem(
                    channel=channel["ChannelName"],
                    uri=f"s3://{bucket}/{obj['Key']}",
                    size=obj["Size"],
                    sha256=hashlib.sha256(body).hexdigest(),
                )
            )
    return manifest


def champion(bucket: str) -> Champion | None:
    found = read(bucket, f"{PREFIX}/champion.json")
    return Champion.model_validate(found) if found else None


def champion_version(bucket: str) -> ModelVersion | None:
    """The registry entry of the serving model, if a champion is recorded."""
    current = champion(bucket)
    return version(bucket, current.job) if current else None


def set_champion(bucket: str, job: str, reason: str) -> Champion:
    """Record `job`'s model as the serving one (the caller has deployed it)."""
    history = current.history if (current := champion(bucket)) else []
    promoted = Promotion(job=job, promoted_at=now(), reason=reason)
    document = Champion(job=job, history=[*history, promoted])
    write(bucket, f"{PREFIX}/champion.json", document)
    return document


def previous_champion(bucket: str) -> str:
    """The job whose model served before the current champion."""
    history = current.history if (current := champion(bucket)) else []
    serving = history[-1].job if history else None
    earlier = [step.job for step in history[:-1] if step.job != serving]
    if not earlier:
        raise LifecycleError("no earlier champion to roll back to")
    return earlier[-1]


def record_decision(bucket: str, decision: Decision) -> None:
    write(bucket, f"{PREFIX}/decisions/{decision.decided_at}.json", decision)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
