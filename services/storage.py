"""S3 access, written once: reading (a missing object is None, not an error code to compare),
conditional writes, listing a prefix, deleting many keys. Every module that keeps objects in
a bucket (replies, the registry, the life cycle, data sets, the CLI) goes through here; which
prefix belongs to whom is DESIGN.md 3.7.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from services import clients

# S3's answers for an object that is not there: GET says NoSuchKey (or NoSuchBucket), HEAD
# has no body and says 404 (or NotFound).
MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict")  # conditional writes
DELETE_LIMIT = 1000  # keys per DeleteObjects


@dataclass(frozen=True)
class StoredObject:
    """An object's content and its ETag (the version a conditional write replaces)."""

    body: bytes
    etag: str


def missing(error: ClientError) -> bool:
    """Whether S3 said that there is no such object."""
    return error.response["Error"]["Code"] in MISSING


def get(bucket: str, key: str) -> StoredObject | None:
    """The object, or None when there is none."""
    try:
        answer = clients.client("s3").get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not missing(error):
            raise
        return None
    return StoredObject(answer["Body"].read(), answer["ETag"])


def read(bucket: str, key: str) -> bytes:
    """The object's content (ClientError when there is none: the caller knows it is there)."""
    return clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def read_json(bucket: str, key: str) -> Any:
    return json.loads(read(bucket, key))


def read_json_if_present(bucket: str, key: str) -> Any | None:
    found = get(bucket, key)
    return json.loads(found.body) if found else None


def head(bucket: str, key: str) -> dict | None:
    """HeadObject's answer (ETag, Metadata, ...), or None when there is no such object."""
    try:
        return clients.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not missing(error):
            raise
        return None


def write(bucket: str, key: str, body: bytes, **fields) -> None:
    clients.client("s3").put_object(Bucket=bucket, Key=key, Body=body, **fields)


def write_json(bucket: str, key: str, document: Any) -> None:
    write(bucket, key, json.dumps(document, indent=2, ensure_ascii=False).encode())


def upload(path: Path, bucket: str, key: str) -> None:
    """A local file to the key (multipart when large: boto3's transfer manager)."""
    clients.client("s3").upload_file(str(path), bucket, key)


def copy(source_bucket: str, source_key: str, bucket: str, key: str) -> None:
    clients.client("s3").copy_object(
        Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key}
    )


def put_if(
    bucket: str, key: str, body: bytes, etag: str | None = None, lost=CONFLICTS, **fields
) -> bool:
    """Write over the object with this ETag, or (None) only where there is none: S3's
    conditional writes. False when another writer came first (an error code in `lost`)."""
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        write(bucket, key, body, **condition, **fields)
    except ClientError as error:
        if error.response["Error"]["Code"] in lost:
            return False
        raise
    return True


def objects(bucket: str, prefix: str) -> list[dict]:
    """The listing's entries under the prefix (Key, ETag, Size, ...), in key order."""
    pages = (
        clients.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return [entry for page in pages for entry in page.get("Contents", [])]


def listing(bucket: str, prefix: str) -> dict[str, str]:
    """The keys under the prefix, and their ETags."""
    return {entry["Key"]: entry["ETag"] for entry in objects(bucket, prefix)}


def list_keys(bucket: str, prefix: str) -> list[str]:
    return [entry["Key"] for entry in objects(bucket, prefix)]


def delete(bucket: str, key: str) -> None:
    clients.client("s3").delete_object(Bucket=bucket, Key=key)


def delete_keys(bucket: str, keys: list[str]) -> dict[str, str]:
    """Each key deleted, DELETE_LIMIT a request; returns those S3 did not delete, with its
    error code (for the caller to log: the deletes are housekeeping)."""
    s3, failed = clients.client("s3"), {}
    for start in range(0, len(keys), DELETE_LIMIT):
        chunk = [{"Key": key} for key in keys[start : start + DELETE_LIMIT]]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        failed |= {error["Key"]: error.get("Code", "") for error in answer.get("Errors", [])}
    return failed
