"""The AWS backend's S3 and CloudWatch Logs, as the service uses them: channels in,
artifacts out, job and replica logs streamed line by line."""

import contextlib
import time
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from emulation.sagemaker.protocol import validation


class ArtifactError(Exception):
    """An S3 object or prefix that a job needs is missing or unreadable."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise validation(f"'{uri}' is not an S3 URI (s3://bucket/key)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class S3:
    def __init__(self):
        self.client = boto3.client("s3")

    def download_prefix(self, uri: str, folder: Path) -> int:
        """Every object under the prefix, keeping paths relative to it; returns the count."""
        bucket, prefix = split_s3_uri(uri)
        count = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    relative = item["Key"][len(prefix) :].lstrip("/") or Path(item["Key"]).name
                    if item["Key"].endswith("/"):
                        continue  # a "folder" marker
                    target = folder / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.client.download_file(bucket, item["Key"], str(target))
                    count += 1
        except ClientError as error:
            raise ArtifactError(f"cannot read {uri}: {error}") from error
        if count == 0:
            raise ArtifactError(f"no S3 objects found under S3 URL '{uri}'")
        return count

    def download_file(self, uri: str, target: Path) -> None:
        bucket, key = split_s3_uri(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(bucket, key, str(target))
        except ClientError as error:
            raise ArtifactError(f"cannot download {uri}: {error}") from error

    def upload_file(self, path: Path, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.upload_file(str(path), bucket, key)
        except ClientError as error:
            raise ArtifactError(f"cannot upload to {uri}: {error}") from error

    def delete(self, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except ClientError as error:
            raise ArtifactError(f"cannot delete {uri}: {error}") from error

    def upload_folder(self, folder: Path, uri: str) -> None:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            self.upload_file(path, f"{uri.rstrip('/')}/{path.relative_to(folder).as_posix()}")


class LogStream:
    """One CloudWatch Logs stream, written in batches (every second or 500 lines)."""

    def __init__(self, group: str, stream: str):
        self.client = boto3.client("logs")
        self.group, self.stream = group, stream
        self._events: list[dict] = []
        self._last_flush = time.monotonic()
        for create, arguments in (
            (self.client.create_log_group, {"logGroupName": group}),
            (self.client.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            with contextlib.suppress(self.client.exceptions.ResourceAlreadyExistsException):
                create(**arguments)

    def write(self, line: str) -> None:
        self._events.append({"timestamp": int(time.time() * 1000), "message": line})
        if len(self._events) >= 500 or time.monotonic() - self._last_flush > 1:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._events:
            return
        events, self._events = self._events, []
        # logs are best effort: a job never fails because its log could not be sent
        with contextlib.suppress(ClientError):
            self.client.put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=events
            )


class MetricPublisher:
    """A job's metrics to CloudWatch, as SageMaker publishes those of its MetricDefinitions:
    namespace `/aws/sagemaker/TrainingJobs`, dimension TrainingJobName."""

    def __init__(self, namespace: str, dimensions: dict[str, str]):
        self.client = boto3.client("cloudwatch")
        self.namespace = namespace
        self.dimensions = [{"Name": k, "Value": v} for k, v in dimensions.items()]

    def put(self, name: str, value: float) -> None:
        # metrics are best effort, like logs
        with contextlib.suppress(ClientError):
            self.client.put_metric_data(
                Namespace=self.namespace,
                MetricData=[{"MetricName": name, "Dimensions": self.dimensions, "Value": value}],
            )
