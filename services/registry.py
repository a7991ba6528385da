"""The model registry: every trained model version with what produced it, and which one is
the champion (serving). JSON objects in the artifacts bucket, so it works the same on AWS
and on every local backend:

registry/versions/<version>.json   the version (its training job's name), model archive,
                                   labels, metrics, hyperparameters, data manifest, code
registry/champion.json             the serving version and the history of promotions
registry/decisions/<time>.json     champion/challenger decisions with both scores

Why not SageMaker's Model Registry: its model packages hold the same facts, but no
emulator has it, and S3 objects need no emulation at all; the entry's fields map onto a
model package (ModelMetrics, CustomerMetadataProperties) if an account wants it there.
"""

import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime

import boto3

PREFIX = "registry"


def read(bucket: str, key: str) -> dict | None:
    s3 = boto3.client("s3")
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        return None


def write(bucket: str, key: str, document: dict) -> None:
    body = json.dumps(document, indent=2, ensure_ascii=False).encode()
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def version(bucket: str, name: str) -> dict | None:
    return read(bucket, f"{PREFIX}/versions/{name}.json")


def register(bucket: str, entry: dict) -> None:
    write(bucket, f"{PREFIX}/versions/{entry['version']}.json", entry)


def versions(bucket: str) -> list[dict]:
    """Every registered version, oldest first."""
    pages = (
        boto3.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=f"{PREFIX}/versions/")
    )
    keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    entries = [read(bucket, key) for key in keys]
    return sorted((e for e in entries if e), key=lambda entry: entry["registered_at"])


def s3_parts(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def register_job(bucket: str, job: str, code_version: str) -> dict:
    """The registry entry of a completed training job (written once; read after)."""
    if existing := version(bucket, job):
        return existing
    described = boto3.client("sagemaker").describe_training_job(TrainingJobName=job)
    if described["TrainingJobStatus"] != "Completed":
        raise ValueError(f"training job {job} is {described['TrainingJobStatus']}, not Completed")
    model_url = described["ModelArtifacts"]["S3ModelArtifacts"]
    entry = {
        "version": job,
        "registered_at": now(),
        "model_data_url": model_url,
        "model_info": model_info(model_url.removesuffix("model.tar.gz") + "output.tar.gz"),
        "hyperparameters": described.get("HyperParameters", {}),
        "data_manifest": data_manifest(described["InputDataConfig"]),
        "code_version": code_version,
    }
    register(bucket, entry)
    return entry


def model_info(output_url: str) -> dict:
    """model_info.json (labels, metrics, training label counts) from the job's output.tar.gz."""
    bucket, key = s3_parts(output_url)
    raw = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        member = archive.extractfile("model_info.json")
        if member is None:
            raise ValueError(f"{output_url} has no model_info.json")
        return json.loads(member.read())


def data_manifest(channels: list[dict]) -> list[dict]:
    """Every S3 object the job read, with its size and SHA-256: the exact data set."""
    s3 = boto3.client("s3")
    manifest = []
    for channel in channels:
        bucket, prefix = s3_parts(channel["DataSource"]["S3DataSource"]["S3Uri"])
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in (obj for page in pages for obj in page.get("Contents", [])):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            manifest.append(
                {
                    "channel": channel["ChannelName"],
                    "uri": f"s3://{bucket}/{obj['Key']}",
                    "size": obj["Size"],
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            )
    return manifest


def champion(bucket: str) -> dict | None:
    return read(bucket, f"{PREFIX}/champion.json")


def champion_labels(bucket: str) -> list[str]:
    current = champion(bucket)
    entry = version(bucket, current["version"]) if current else None
    return entry["model_info"]["labels"] if entry else []


def set_champion(bucket: str, name: str, reason: str) -> dict:
    """Record `name` as the serving version (the caller has deployed it)."""
    history = (champion(bucket) or {}).get("history", [])
    promoted = {"version": name, "promoted_at": now(), "reason": reason}
    document = {"version": name, "history": [*history, promoted]}
    write(bucket, f"{PREFIX}/champion.json", document)
    return document


def record_decision(bucket: str, decision: dict) -> None:
    write(bucket, f"{PREFIX}/decisions/{now()}.json", decision | {"decided_at": now()})


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
