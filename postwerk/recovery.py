"""After a crash of the local AWS: the buckets MiniStack brings back, made whole again.

MiniStack saves its state (every service but S3) only when it stops cleanly; S3 (S3_PERSIST)
writes each object to disk at once. After a SIGKILL or a power cut it starts with the state
of its last clean stop (none at all before the first) and with every bucket it finds on
disk, and a bucket that its state does not know comes back bare: in us-east-1, without
versioning, encryption or notifications (measured with ministack 1.5.33, docs/pipeline.md).
CloudFormation then refuses to create the stack again (NAME_CONFLICT_VALIDATION on
RawBucket and ResultsBucket), and Lambda cannot fetch its code (PermanentRedirect).

`set_aside` moves each of postwerk's buckets that came back so into a holding bucket (tagged
with the bucket it holds for); `restore` copies a holding bucket back once its bucket exists
again (the artifacts bucket at once; the stack's once the stack is deployed and a model
serves) and deletes it. Objects under incoming/ come back with their S3 notifications, so
the pipeline takes them again. An interrupted recovery goes on at the next `up`.
"""

import hashlib
import re

from botocore.exceptions import ClientError

from postwerk import cost
from postwerk.deploy import TEMPLATE
from postwerk.sagemaker import ensure_bucket
from services import clients, storage

HOLDS = "postwerk:holds"  # the holding bucket's tag: the bucket it holds the objects of


def stack_buckets() -> list[str]:
    """The names the template gives its buckets, in this account and region."""
    account = clients.client("sts").get_caller_identity()["Account"]
    names = []
    for resource in cost.template_resources(TEMPLATE.read_text()):
        found = re.search(r'BucketName: !Sub "([^"]+)"', resource.properties)
        if resource.type == "AWS::S3::Bucket" and found:
            name = found.group(1).replace("${AWS::AccountId}", account)
            names.append(name.replace("${AWS::Region}", clients.region()))
    return names


def came_back_bare(bucket: str) -> bool:
    """The bucket exists in another region than ours: MiniStack found it on disk after a
    crash, without the state it was created with."""
    try:
        location = clients.client("s3").get_bucket_location(Bucket=bucket)["LocationConstraint"]
    except ClientError:  # no such bucket
        return False
    return (location or "us-east-1") != clients.region()


def holding_bucket(bucket: str) -> str:
    return f"postwerk-held-{hashlib.sha256(bucket.encode()).hexdigest()[:16]}"


def set_aside(buckets: list[str]) -> list[str]:
    """Each of the buckets that came back bare moved into its holding bucket and deleted;
    the buckets moved."""
    s3, moved = clients.client("s3"), []
    for bucket in buckets:
        if not came_back_bare(bucket):
            continue
        holding = holding_bucket(bucket)
        ensure_bucket(holding)
        s3.put_bucket_tagging(Bucket=holding, Tagging={"TagSet": [{"Key": HOLDS, "Value": bucket}]})
        copy(bucket, holding, storage.list_keys(bucket, ""))
        empty(bucket)
        s3.delete_bucket(Bucket=bucket)
        moved.append(bucket)
    return moved


def restore() -> dict[str, int]:
    """Each holding bucket whose bucket exists again copied back into it and deleted; the
    buckets refilled, with how many objects each."""
    s3, restored = clients.client("s3"), {}
    for holding in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        if not holding.startswith("postwerk-held-"):
            continue
        tags = s3.get_bucket_tagging(Bucket=holding)["TagSet"]
        bucket = next((tag["Value"] for tag in tags if tag["Key"] == HOLDS), None)
        if bucket is None or not exists(bucket):
            continue
        keys = storage.list_keys(holding, "")
        copy(holding, bucket, keys)
        storage.delete_keys(holding, keys)
        s3.delete_bucket(Bucket=holding)
        restored[bucket] = len(keys)
    return restored


def empty(bucket: str) -> None:
    """Every version of every object deleted (the files of a versioned bucket's history
    come back from disk too, though its versioning does not)."""
    s3 = clients.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found = page.get("Versions", []) + page.get("DeleteMarkers", [])
        objects = [{"Key": entry["Key"], "VersionId": entry["VersionId"]} for entry in found]
        if objects:  # a page holds 1,000 at most: DeleteObjects' limit
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
            if answer.get("Errors"):
                raise RuntimeError(f"could not empty {bucket}: {answer['Errors'][:3]}")


def exists(bucket: str) -> bool:
    try:
        clients.client("s3").head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True


def copy(source: str, target: str, keys: list[str]) -> None:
    s3 = clients.client("s3")
    for key in keys:
        s3.copy({"Bucket": source, "Key": key}, target, key)
