"""AddTags, ListTags and DeleteTags on every resource the service has, keyed by its ARN.

A resource's ARN is `arn:aws:sagemaker:<region>:<account>:<type>/<lower-case name>`; its
tags live in the store (kind "Tags") with the resource's CreationTime, so a resource deleted
and created again under its name starts without the old tags, as on AWS.
"""

from typing import Any

from emulation.sagemaker.protocol import not_found, paginate, required, validation
from emulation.sagemaker.store import Store

KIND = "Tags"
MAX_TAGS = 50  # AWS's limit per resource
# ARN resource type -> (store kind, the document's ARN field)
RESOURCES = {
    "training-job": ("TrainingJob", "TrainingJobArn"),
    "hyper-parameter-tuning-job": ("HyperParameterTuningJob", "HyperParameterTuningJobArn"),
    "model": ("Model", "ModelArn"),
    "endpoint-config": ("EndpointConfig", "EndpointConfigArn"),
    "endpoint": ("Endpoint", "EndpointArn"),
    "transform-job": ("TransformJob", "TransformJobArn"),
}


TagList = list[dict[str, str]]


class Tags:
    def __init__(self, store: Store):
        self.store = store

    def add(self, request: dict[str, Any]) -> dict[str, Any]:
        arn, created = self._existing(required(request, "ResourceArn"))
        tags = {tag["Key"]: tag["Value"] for tag in self._tags(arn, created)}
        for tag in required(request, "Tags"):
            tags[required(tag, "Key")] = tag.get("Value", "")
        if len(tags) > MAX_TAGS:
            raise validation(
                f"a resource has at most {MAX_TAGS} tags; {arn} would have {len(tags)}"
            )
        self._save(arn, created, [{"Key": key, "Value": value} for key, value in tags.items()])
        return {"Tags": request["Tags"]}

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        tags = self._tags(*self._existing(required(request, "ResourceArn")))
        return paginate(request, tags, "Tags", {"Key": "Key"}, default_sort="Key")

    def delete(self, request: dict[str, Any]) -> dict[str, Any]:
        arn, created = self._existing(required(request, "ResourceArn"))
        keys = set(required(request, "TagKeys"))
        self._save(arn, created, [t for t in self._tags(arn, created) if t["Key"] not in keys])
        return {}

    def tag_created(self, request: dict[str, Any], result: dict[str, Any]) -> None:
        """`Tags` of a Create call, on the ARN that the call returned."""
        if request.get("Tags"):
            arn = next(value for key, value in result.items() if key.endswith("Arn"))
            self.add({"ResourceArn": arn, "Tags": request["Tags"]})

    def _tags(self, arn: str, created: float) -> TagList:
        document = self.store.get(KIND, arn)
        return document["Tags"] if document and document["CreationTime"] == created else []

    def _save(self, arn: str, created: float, tags: TagList) -> None:
        document = {"CreationTime": created, "Tags": tags}
        if not self.store.insert(KIND, arn, document):
            self.store.update(KIND, arn, lambda d: d.update(document))

    def _existing(self, arn: str) -> tuple[str, float]:
        """The ARN and its resource's CreationTime, once it names a resource that exists."""
        _, _, resource = arn.partition(":sagemaker:")
        kind_name = resource.split(":", 2)[-1] if resource else ""
        resource_type, _, _ = kind_name.partition("/")
        if resource_type not in RESOURCES:
            raise validation(f"'{arn}' is not the ARN of a resource of the local SageMaker service")
        kind, field = RESOURCES[resource_type]
        for document in self.store.all(kind):
            if document.get(field) == arn:
                return arn, document["CreationTime"]
        raise not_found(f"Resource {arn} not found")
