"""The model life cycle, written once for the monitor function and the `postwerk` command:
retrain, register, decide, serve, promote, roll back. Plain boto3 (SageMaker, S3) and the
registry (services/registry.py), so it runs the same in a Lambda and on the operator's
machine, against AWS or the local SageMaker service.
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from services import clients, registry, storage, waits
from services.registry import Decision, LifecycleError, ModelVersion

PENDING = "monitoring/retraining.json"  # the retraining job the monitor waits for
ENDPOINT_TIMEOUT_S = 3600  # creating or updating an endpoint (botocore's own bound)


def job_name(prefix: str) -> str:
    """The one naming scheme of jobs, models and endpoint configs: prefix-YYYYmmdd-HHMMSS
    (unique per second, valid for SageMaker's 63 characters with a prefix of up to 40)."""
    return f"{prefix[:40]}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def s3_channel(name: str, uri: str) -> dict:
    """One InputDataConfig entry: every object under an S3 prefix."""
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


# --- serving ------------------------------------------------------------------------------


# The members of a production variant that say how it serves, kept when a new model takes
# the endpoint over (serving_like): its name, weight and capacity, instances or serverless.
VARIANT_SHAPE = (
    "VariantName",
    "InitialVariantWeight",
    "InstanceType",
    "InitialInstanceCount",
    "ServerlessConfig",
    "VolumeSizeInGB",
    "ModelDataDownloadTimeoutInSeconds",
    "ContainerStartupHealthCheckTimeoutInSeconds",
)


@dataclass(frozen=True)
class Serving:
    """What serves a model besides the model itself: one variant of `instances` x
    `instance_type`, or a serverless one (`serverless`: its ServerlessConfig); or, copied
    from an endpoint (serving_like), `variants`: each of its variants' shape, which the
    new model takes over one for one (A/B weights and serverless kept)."""

    image: str
    role_arn: str
    instance_type: str = ""
    instances: int = 1
    serverless: dict | None = None
    variants: tuple[dict, ...] = ()

    def production_variants(self, model: str) -> list[dict]:
        """CreateEndpointConfig's ProductionVariants, every one serving `model`."""
        if self.variants:
            return [dict(shape, ModelName=model) for shape in self.variants]
        variant = {"VariantName": "primary", "ModelName": model, "InitialVariantWeight": 1.0}
        if self.serverless:
            return [variant | {"ServerlessConfig": dict(self.serverless)}]
        return [variant | {"InitialInstanceCount": self.instances,
                           "InstanceType": self.instance_type}]  # fmt: skip

    def describe(self) -> str:
        """In words, for the operator: '1 x ml.m5.large', 'serverless 2048 MB, 5 at once'."""
        shapes = self.production_variants("")
        return ", ".join(describe_variant(shape) for shape in shapes)


def describe_variant(variant: dict) -> str:
    serverless = variant.get("ServerlessConfig")
    if serverless:
        words = (
            f"serverless {serverless['MemorySizeInMB']} MB, {serverless['MaxConcurrency']} at once"
        )
    else:
        words = f"{variant.get('InitialInstanceCount', 1)} x {variant.get('InstanceType', '?')}"
    return f"{variant['VariantName']}: {words}"


def serving_like(endpoint: str) -> Serving:
    """The image, role and variants that serve the endpoint now: one variant or several
    (A/B), on instances or serverless. A model promoted with it takes every variant over."""
    sm = clients.client("sagemaker")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )
    variants = config["ProductionVariants"]
    model = sm.describe_model(ModelName=variants[0]["ModelName"])
    return Serving(
        image=model["PrimaryContainer"]["Image"],
        role_arn=model["ExecutionRoleArn"],
        instance_type=variants[0].get("InstanceType", ""),
        instances=variants[0].get("InitialInstanceCount", 1),
        serverless=variants[0].get("ServerlessConfig"),
        variants=tuple({k: v[k] for k in VARIANT_SHAPE if k in v} for v in variants),
    )


def endpoint_exists(endpoint: str) -> bool:
    endpoints = clients.client("sagemaker").list_endpoints(NameContains=endpoint, MaxResults=100)
    return endpoint in [e["EndpointName"] for e in endpoints["Endpoints"]]


def serve(
    endpoint: str, model_data_url: str, serving: Serving, name: str, must_exist: bool = False
) -> None:
    """A model and an endpoint config for the archive (every variant of `serving` serves
    it), then create the endpoint or update it (blue/green: the old fleet serves until the
    new one answers)."""
    sm = clients.client("sagemaker")
    exists = endpoint_exists(endpoint)
    if must_exist and not exists:
        raise LifecycleError(f"endpoint {endpoint} does not exist; create it with deploy-model")
    model = job_name(name)
    sm.create_model(
        ModelName=model,
        ExecutionRoleArn=serving.role_arn,
        PrimaryContainer={"Image": serving.image, "ModelDataUrl": model_data_url},
    )
    sm.create_endpoint_config(
        EndpointConfigName=model, ProductionVariants=serving.production_variants(model)
    )
    if exists:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=model)
    else:
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=model)


def wait_for_endpoint(endpoint: str) -> dict:
    """The endpoint's description once it is in service, or failed (TimedOut after
    ENDPOINT_TIMEOUT_S)."""
    sm = clients.client("sagemaker")
    poll = 1 if os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER") else 15
    waits.until(sm, "endpoint_in_service", f"endpoint {endpoint}", ENDPOINT_TIMEOUT_S, poll,
                EndpointName=endpoint)  # fmt: skip
    return sm.describe_endpoint(EndpointName=endpoint)


def promote(
    bucket: str,
    job: str,
    endpoint: str,
    serving: Serving,
    reason: str,
    code_version: str,
    wait: bool = True,
    must_exist: bool = False,
) -> dict | None:
    """Register the job's model, serve it, record it as the champion. With `wait`, the
    champion is recorded only once the endpoint serves it (returns the description);
    without (a Lambda cannot wait minutes), once the update is under way."""
    entry = registry.register_job(bucket, job, code_version)
    serve(endpoint, entry.model_data_url, serving, job, must_exist)
    if not wait:
        registry.set_champion(bucket, job, reason)
        return None
    description = wait_for_endpoint(endpoint)
    if description["EndpointStatus"] == "InService" and not description.get("FailureReason"):
        registry.set_champion(bucket, job, reason)
    return description


# --- retraining and the champion/challenger decision ---------------------------------------


def start_retraining(bucket: str, champion: ModelVersion, reasons: list[str]) -> str:
    """A training job like the champion's, on its training data plus every correction under
    feedback/, tested on its held-out set; remembered as pending. Returns the job's name."""
    job = job_name("retrain")
    prefix = f"retraining/{job}"
    copy_channel(champion, "train", bucket, f"{prefix}/train/")
    copy_prefix(bucket, "feedback/", f"{prefix}/train/feedback-")
    copy_channel(champion, "test", bucket, f"{prefix}/test/")
    sm = clients.client("sagemaker")
    template = sm.describe_training_job(TrainingJobName=champion.job)
    sm.create_training_job(
        TrainingJobName=job,
        AlgorithmSpecification=template["AlgorithmSpecification"],
        RoleArn=template["RoleArn"],
        InputDataConfig=[
            s3_channel(name, f"s3://{bucket}/{prefix}/{name}/") for name in ("train", "test")
        ],
        OutputDataConfig=template["OutputDataConfig"],
        ResourceConfig=template["ResourceConfig"],
        StoppingCondition=template["StoppingCondition"],
        HyperParameters=template.get("HyperParameters", {}),
        **spot_like(template, job),
    )
    pending = {"job": job, "started_at": registry.now(), "reasons": reasons,
               "champion": champion.job}  # fmt: skip
    registry.write(bucket, PENDING, pending)
    return job


def pending_retraining(bucket: str) -> dict | None:
    return registry.read(bucket, PENDING)


def forget_retraining(bucket: str) -> None:
    storage.delete(bucket, PENDING)


def copy_channel(entry: ModelVersion, channel: str, bucket: str, prefix: str) -> None:
    for item in entry.data_manifest:
        if item.channel == channel:
            source_bucket, key = registry.s3_parts(item.uri)
            storage.copy(source_bucket, key, bucket, f"{prefix}{key.rsplit('/', 1)[-1]}")


def copy_prefix(bucket: str, source: str, target: str) -> None:
    for key in storage.list_keys(bucket, source):
        storage.copy(bucket, key, bucket, f"{target}{key.removeprefix(source).replace('/', '-')}")


def decide(
    bucket: str,
    challenger: ModelVersion,
    champion: ModelVersion | None,
    margin: float,
    reasons: list[str],
) -> Decision:
    """The challenger wins only if it beats the champion on the same held-out set by more
    than `margin` (a tie keeps the champion). The decision is recorded either way."""
    challenger_score = challenger.held_out_accuracy
    champion_score = champion.held_out_accuracy if champion else None
    same_set = champion is not None and champion.held_out == challenger.held_out
    decision = Decision(
        challenger=challenger.job,
        champion=champion.job if champion else None,
        challenger_accuracy=challenger_score,
        champion_accuracy=champion_score,
        margin=margin,
        same_held_out_set=same_set,
        promoted=(
            same_set
            and challenger_score is not None
            and champion_score is not None
            and challenger_score > champion_score + margin
        ),
        reasons=reasons,
    )
    registry.record_decision(bucket, decision)
    return decision


def describe_decision(decision: Decision) -> str:
    if not decision.promoted:
        return f"challenger {decision.challenger} not promoted: {decision.model_dump_json()}"
    scores = f"{decision.challenger_accuracy:.4f} vs {decision.champion_accuracy:.4f}"
    return f"promoted {decision.challenger} ({scores})"


def spot_like(template: dict, job: str) -> dict:
    """Managed spot training and checkpoints as the champion's job had them, with a
    checkpoint location of the new job's own (the champion's checkpoints are of other data:
    never resumed): its S3Uri with the champion's name as the last folder replaced by the
    new job's, else the new job's name as a folder below it."""
    carried: dict = {}
    if template.get("EnableManagedSpotTraining"):
        carried["EnableManagedSpotTraining"] = True
    if "CheckpointConfig" in template:
        uri = template["CheckpointConfig"]["S3Uri"].rstrip("/")
        head, _, last = uri.rpartition("/")
        uri = f"{head}/{job}/" if last == template["TrainingJobName"] else f"{uri}/{job}/"
        carried["CheckpointConfig"] = template["CheckpointConfig"] | {"S3Uri": uri}
    return carried
