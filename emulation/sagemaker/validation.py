"""Every request to the local SageMaker service, checked before an operation reads it.

1. Against botocore's service model (AWS's own, the one boto3 builds its clients from): a
   member the operation does not have is a ValidationException; a wrong type a
   SerializationException; a missing required member, a value out of its range, length,
   enum or pattern a ValidationException in AWS's words ("1 validation error detected:
   Value ... at 'productionVariants.1.member.initialVariantWeight' failed to satisfy
   constraint: ...").
2. Against FIELDS, the one table of what the local service does with each member AWS knows:
   EMULATED (it acts on it as AWS does), STORED (kept and echoed by Describe; its effect
   cannot be seen on one machine, or is not emulated yet and harmless to ignore: the reason
   is in the table), REFUSED (a ValidationException naming the member: its effect would be
   missed). A member whose path has no entry, itself or an ancestor's, is refused: what is
   new in AWS's model stays refused until someone decides.
3. AWS's rules across members (RULES): spot training, serverless variants, weights.

The table of docs/emulation.md is rendered from FIELDS (`python -m
emulation.sagemaker.validation` rewrites it; tests/unit/test_sagemaker_fields.py checks it).
"""

import math
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import Shape

from emulation.sagemaker.protocol import SageMakerError, validation

EMULATED, STORED, REFUSED = "emulated", "stored without effect", "refused"

NO_NETWORK = "one machine: no VPC, no network isolation or encryption between instances"
NO_KMS = "S3 here encrypts with its own key"
DEBUGGER = "SageMaker Debugger and Profiler are not emulated; the SDKs send their defaults"
INSTANCE = "every instance type runs as a process or container of this machine"
VOLUME = "the job's folder is on this machine's disk"
EXPERIMENTS = "Experiments and lineage are not emulated"
SPOT = "interrupted as its plan says (spot.py), restarted from its checkpoints"
RETRY = "a failed job is not retried locally"
NOT_ASYNC = "asynchronous inference is not emulated"

# path (operation, then members; lists are passed through, a map is one member) ->
# (what the local service does with it, why). The longest listed prefix of a path decides.
FIELDS: dict[str, tuple[str, str]] = {
    # --- training ---
    "CreateTrainingJob.TrainingJobName": (EMULATED, ""),
    "CreateTrainingJob.HyperParameters": (EMULATED, "hyperparameters.json"),
    "CreateTrainingJob.AlgorithmSpecification.TrainingImage": (EMULATED, ""),
    "CreateTrainingJob.AlgorithmSpecification.TrainingInputMode": (STORED, "File mode always"),
    "CreateTrainingJob.AlgorithmSpecification.MetricDefinitions": (EMULATED, ""),
    "CreateTrainingJob.AlgorithmSpecification.EnableSageMakerMetricsTimeSeries": (
        STORED,
        "metrics go to CloudWatch either way",
    ),
    "CreateTrainingJob.AlgorithmSpecification.AlgorithmName": (REFUSED, "no marketplace"),
    "CreateTrainingJob.AlgorithmSpecification.ContainerEntrypoint": (REFUSED, ""),
    "CreateTrainingJob.AlgorithmSpecification.ContainerArguments": (REFUSED, ""),
    "CreateTrainingJob.AlgorithmSpecification.TrainingImageConfig": (REFUSED, "no registries"),
    "CreateTrainingJob.RoleArn": (STORED, "IAM is not enforced by the local service"),
    "CreateTrainingJob.InputDataConfig.ChannelName": (EMULATED, ""),
    "CreateTrainingJob.InputDataConfig.ContentType": (EMULATED, "inputdataconfig.json"),
    "CreateTrainingJob.InputDataConfig.DataSource.S3DataSource.S3Uri": (EMULATED, ""),
    "CreateTrainingJob.InputDataConfig.DataSource.S3DataSource.S3DataType": (
        STORED,
        "read as S3Prefix",
    ),
    "CreateTrainingJob.InputDataConfig.DataSource.S3DataSource.S3DataDistributionType": (
        EMULATED,
        "",
    ),
    "CreateTrainingJob.InputDataConfig.RecordWrapperType": (EMULATED, "inputdataconfig.json"),
    "CreateTrainingJob.InputDataConfig.InputMode": (EMULATED, "inputdataconfig.json"),
    "CreateTrainingJob.InputDataConfig.CompressionType": (REFUSED, ""),
    "CreateTrainingJob.InputDataConfig.ShuffleConfig": (REFUSED, ""),
    "CreateTrainingJob.InputDataConfig.DataSource.FileSystemDataSource": (REFUSED, "no EFS/FSx"),
    "CreateTrainingJob.OutputDataConfig.S3OutputPath": (EMULATED, ""),
    "CreateTrainingJob.OutputDataConfig.KmsKeyId": (STORED, NO_KMS),
    "CreateTrainingJob.OutputDataConfig.CompressionType": (EMULATED, "GZIP only, as archived"),
    "CreateTrainingJob.ResourceConfig.InstanceCount": (EMULATED, "1 to 8 hosts"),
    "CreateTrainingJob.ResourceConfig.InstanceType": (STORED, INSTANCE),
    "CreateTrainingJob.ResourceConfig.VolumeSizeInGB": (STORED, VOLUME),
    "CreateTrainingJob.ResourceConfig.VolumeKmsKeyId": (STORED, NO_KMS),
    "CreateTrainingJob.ResourceConfig.KeepAlivePeriodInSeconds": (STORED, "no warm pools"),
    "CreateTrainingJob.ResourceConfig.InstanceGroups": (REFUSED, "no heterogeneous clusters"),
    "CreateTrainingJob.StoppingCondition.MaxRuntimeInSeconds": (EMULATED, ""),
    "CreateTrainingJob.StoppingCondition.MaxWaitTimeInSeconds": (EMULATED, "MaxWaitTimeExceeded"),
    "CreateTrainingJob.StoppingCondition.MaxPendingTimeInSeconds": (REFUSED, ""),
    "CreateTrainingJob.VpcConfig": (STORED, NO_NETWORK),
    "CreateTrainingJob.Tags": (EMULATED, ""),
    "CreateTrainingJob.EnableNetworkIsolation": (STORED, NO_NETWORK),
    "CreateTrainingJob.EnableInterContainerTrafficEncryption": (STORED, NO_NETWORK),
    "CreateTrainingJob.EnableManagedSpotTraining": (EMULATED, SPOT),
    "CreateTrainingJob.CheckpointConfig.S3Uri": (EMULATED, "synced while the job trains"),
    "CreateTrainingJob.CheckpointConfig.LocalPath": (EMULATED, "a folder under /opt/ml"),
    "CreateTrainingJob.DebugHookConfig": (STORED, DEBUGGER),
    "CreateTrainingJob.DebugRuleConfigurations": (STORED, DEBUGGER),
    "CreateTrainingJob.TensorBoardOutputConfig": (STORED, DEBUGGER),
    "CreateTrainingJob.ProfilerConfig": (STORED, DEBUGGER),
    "CreateTrainingJob.ProfilerRuleConfigurations": (STORED, DEBUGGER),
    "CreateTrainingJob.ExperimentConfig": (STORED, EXPERIMENTS),
    "CreateTrainingJob.Environment": (EMULATED, ""),
    "CreateTrainingJob.RetryStrategy": (STORED, RETRY),
    "CreateTrainingJob.RemoteDebugConfig": (STORED, "no SSM sessions into the container"),
    "CreateTrainingJob.InfraCheckConfig": (STORED, "no instances to check"),
    "CreateTrainingJob.SessionChainingConfig": (STORED, "no session tags"),
    "CreateTrainingJob.ServerlessJobConfig": (REFUSED, ""),
    "CreateTrainingJob.MlflowConfig": (REFUSED, ""),
    "CreateTrainingJob.ModelPackageConfig": (REFUSED, ""),
    # --- tuning ---
    "CreateHyperParameterTuningJob.HyperParameterTuningJobName": (EMULATED, ""),
    "CreateHyperParameterTuningJob.HyperParameterTuningJobConfig": (EMULATED, "Optuna"),
    "CreateHyperParameterTuningJob.HyperParameterTuningJobConfig.ParameterRanges.AutoParameters": (
        REFUSED,
        "",
    ),
    "CreateHyperParameterTuningJob.HyperParameterTuningJobConfig.TuningJobCompletionCriteria.ConvergenceDetected": (  # noqa: E501
        REFUSED,
        "",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.StaticHyperParameters": (EMULATED, ""),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.AlgorithmSpecification.TrainingImage": (
        EMULATED,
        "",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.AlgorithmSpecification.TrainingInputMode": (  # noqa: E501
        STORED,
        "File mode always",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.AlgorithmSpecification.MetricDefinitions": (  # noqa: E501
        EMULATED,
        "",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.RoleArn": (STORED, "IAM not enforced"),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.InputDataConfig": (
        EMULATED,
        "as CreateTrainingJob's",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.OutputDataConfig": (
        EMULATED,
        "as CreateTrainingJob's",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.ResourceConfig": (
        EMULATED,
        "as CreateTrainingJob's",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.HyperParameterTuningResourceConfig": (
        EMULATED,
        "as ResourceConfig",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.StoppingCondition": (
        EMULATED,
        "as CreateTrainingJob's",
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.CheckpointConfig": (EMULATED, ""),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.Environment": (EMULATED, ""),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.VpcConfig": (STORED, NO_NETWORK),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.EnableNetworkIsolation": (
        STORED,
        NO_NETWORK,
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.EnableInterContainerTrafficEncryption": (
        STORED,
        NO_NETWORK,
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.EnableManagedSpotTraining": (
        EMULATED,
        SPOT,
    ),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.RetryStrategy": (STORED, RETRY),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.DefinitionName": (REFUSED, ""),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.TuningObjective": (REFUSED, ""),
    "CreateHyperParameterTuningJob.TrainingJobDefinition.HyperParameterRanges": (REFUSED, ""),
    "CreateHyperParameterTuningJob.TrainingJobDefinitions": (REFUSED, "one definition locally"),
    "CreateHyperParameterTuningJob.WarmStartConfig": (REFUSED, ""),
    "CreateHyperParameterTuningJob.Autotune": (REFUSED, ""),
    "CreateHyperParameterTuningJob.Tags": (EMULATED, ""),
    # --- models, endpoint configs, endpoints ---
    "CreateModel.ModelName": (EMULATED, ""),
    "CreateModel.PrimaryContainer.Image": (EMULATED, ""),
    "CreateModel.PrimaryContainer.ModelDataUrl": (EMULATED, ""),
    "CreateModel.PrimaryContainer.Environment": (EMULATED, ""),
    "CreateModel.PrimaryContainer.Mode": (STORED, "SingleModel always"),
    "CreateModel.PrimaryContainer.ContainerHostname": (STORED, "one container per model"),
    "CreateModel.Containers": (REFUSED, "inference pipelines: use PrimaryContainer"),
    "CreateModel.ExecutionRoleArn": (STORED, "IAM is not enforced by the local service"),
    "CreateModel.VpcConfig": (STORED, NO_NETWORK),
    "CreateModel.EnableNetworkIsolation": (STORED, NO_NETWORK),
    "CreateModel.Tags": (EMULATED, ""),
    "CreateEndpointConfig.EndpointConfigName": (EMULATED, ""),
    "CreateEndpointConfig.ProductionVariants.VariantName": (EMULATED, ""),
    "CreateEndpointConfig.ProductionVariants.ModelName": (EMULATED, ""),
    "CreateEndpointConfig.ProductionVariants.InitialInstanceCount": (EMULATED, "replicas"),
    "CreateEndpointConfig.ProductionVariants.InitialVariantWeight": (EMULATED, ""),
    "CreateEndpointConfig.ProductionVariants.InstanceType": (STORED, INSTANCE),
    "CreateEndpointConfig.ProductionVariants.VolumeSizeInGB": (STORED, VOLUME),
    "CreateEndpointConfig.ProductionVariants.ServerlessConfig": (
        EMULATED,
        "no replica while idle, a cold start on demand, ThrottlingException over "
        "MaxConcurrency (one replica serves the concurrent requests)",
    ),
    "CreateEndpointConfig.ProductionVariants.ServerlessConfig.MemorySizeInMB": (
        STORED,
        "validated as AWS does; not a memory limit locally",
    ),
    "CreateEndpointConfig.ProductionVariants.ModelDataDownloadTimeoutInSeconds": (
        STORED,
        "the download is local",
    ),
    "CreateEndpointConfig.ProductionVariants.ContainerStartupHealthCheckTimeoutInSeconds": (
        STORED,
        "POSTWERK_SAGEMAKER_REPLICA_START_TIMEOUT applies",
    ),
    "CreateEndpointConfig.ProductionVariants.AcceleratorType": (REFUSED, ""),
    "CreateEndpointConfig.DataCaptureConfig": (REFUSED, "data capture is not emulated"),
    "CreateEndpointConfig.AsyncInferenceConfig": (REFUSED, NOT_ASYNC),
    "CreateEndpointConfig.ShadowProductionVariants": (REFUSED, ""),
    "CreateEndpointConfig.ExplainerConfig": (REFUSED, ""),
    "CreateEndpointConfig.KmsKeyId": (STORED, NO_KMS),
    "CreateEndpointConfig.Tags": (EMULATED, ""),
    "CreateEndpoint.EndpointName": (EMULATED, ""),
    "CreateEndpoint.EndpointConfigName": (EMULATED, ""),
    "CreateEndpoint.DeploymentConfig": (REFUSED, "deployments are blue/green, all at once"),
    "CreateEndpoint.Tags": (EMULATED, ""),
    "UpdateEndpoint.EndpointName": (EMULATED, ""),
    "UpdateEndpoint.EndpointConfigName": (EMULATED, "blue/green"),
    "UpdateEndpoint.RetainAllVariantProperties": (REFUSED, ""),
    "UpdateEndpoint.ExcludeRetainedVariantProperties": (REFUSED, ""),
    "UpdateEndpoint.DeploymentConfig": (REFUSED, "deployments are blue/green, all at once"),
    "UpdateEndpoint.RetainDeploymentConfig": (REFUSED, ""),
    "UpdateEndpointWeightsAndCapacities": (EMULATED, ""),
    "UpdateEndpointWeightsAndCapacities.DesiredWeightsAndCapacities.ServerlessUpdateConfig": (
        REFUSED,
        "a new endpoint config changes a serverless variant",
    ),
    # --- batch transform ---
    "CreateTransformJob.TransformJobName": (EMULATED, ""),
    "CreateTransformJob.ModelName": (EMULATED, ""),
    "CreateTransformJob.MaxConcurrentTransforms": (EMULATED, ""),
    "CreateTransformJob.ModelClientConfig": (EMULATED, ""),
    "CreateTransformJob.MaxPayloadInMB": (EMULATED, ""),
    "CreateTransformJob.BatchStrategy": (EMULATED, ""),
    "CreateTransformJob.Environment": (EMULATED, ""),
    "CreateTransformJob.TransformInput.DataSource.S3DataSource": (EMULATED, "S3Prefix"),
    "CreateTransformJob.TransformInput.ContentType": (EMULATED, ""),
    "CreateTransformJob.TransformInput.CompressionType": (EMULATED, "None or Gzip"),
    "CreateTransformJob.TransformInput.SplitType": (EMULATED, "None or Line"),
    "CreateTransformJob.TransformOutput.S3OutputPath": (EMULATED, ""),
    "CreateTransformJob.TransformOutput.Accept": (EMULATED, ""),
    "CreateTransformJob.TransformOutput.AssembleWith": (EMULATED, ""),
    "CreateTransformJob.TransformOutput.KmsKeyId": (STORED, NO_KMS),
    "CreateTransformJob.TransformResources.InstanceCount": (EMULATED, ""),
    "CreateTransformJob.TransformResources.InstanceType": (STORED, INSTANCE),
    "CreateTransformJob.TransformResources.VolumeKmsKeyId": (STORED, NO_KMS),
    "CreateTransformJob.DataProcessing": (EMULATED, ""),
    "CreateTransformJob.DataCaptureConfig": (REFUSED, "data capture is not emulated"),
    "CreateTransformJob.ExperimentConfig": (STORED, EXPERIMENTS),
    "CreateTransformJob.Tags": (EMULATED, ""),
    # --- reading, listing, stopping, deleting, tags ---
    **{
        f"{operation}": (EMULATED, "")
        for operation in (
            "DescribeTrainingJob",
            "StopTrainingJob",
            "DescribeHyperParameterTuningJob",
            "StopHyperParameterTuningJob",
            "DeleteHyperParameterTuningJob",
            "DescribeModel",
            "DeleteModel",
            "DescribeEndpointConfig",
            "DeleteEndpointConfig",
            "DescribeEndpoint",
            "DeleteEndpoint",
            "DescribeTransformJob",
            "StopTransformJob",
            "AddTags",
            "ListTags",
            "DeleteTags",
            "ListTrainingJobs",
            "ListHyperParameterTuningJobs",
            "ListTrainingJobsForHyperParameterTuningJob",
            "ListModels",
            "ListEndpointConfigs",
            "ListEndpoints",
            "ListTransformJobs",
        )
    },
    "ListTrainingJobs.WarmPoolStatusEquals": (REFUSED, "no warm pools"),
    "ListTrainingJobs.TrainingPlanArnEquals": (REFUSED, "no training plans"),
    **{
        f"{operation}.{member}": (REFUSED, "this filter is not applied locally")
        for operation in ("ListModels", "ListEndpointConfigs", "ListEndpoints")
        for member in ("CreationTimeAfter", "CreationTimeBefore")
    },
    **{
        f"{operation}.{member}": (REFUSED, "this filter is not applied locally")
        for operation in (
            "ListTrainingJobs",
            "ListEndpoints",
            "ListTransformJobs",
        )
        for member in ("LastModifiedTimeAfter", "LastModifiedTimeBefore")
    },
    **{
        f"ListTransformJobs.{member}": (REFUSED, "this filter is not applied locally")
        for member in ("CreationTimeAfter", "CreationTimeBefore")
    },
    # --- the runtime (sagemaker-runtime) ---
    "InvokeEndpoint.EndpointName": (EMULATED, ""),
    "InvokeEndpoint.Body": (EMULATED, ""),
    "InvokeEndpoint.ContentType": (EMULATED, ""),
    "InvokeEndpoint.Accept": (EMULATED, ""),
    "InvokeEndpoint.CustomAttributes": (EMULATED, ""),
    "InvokeEndpoint.InferenceId": (STORED, "data capture is not emulated"),
    "InvokeEndpoint.TargetVariant": (EMULATED, ""),
    "InvokeEndpoint.TargetModel": (REFUSED, "no multi-model endpoints"),
    "InvokeEndpoint.TargetContainerHostname": (REFUSED, "no multi-container endpoints"),
    "InvokeEndpoint.InferenceComponentName": (REFUSED, "no inference components"),
    "InvokeEndpoint.EnableExplanations": (REFUSED, "no Clarify"),
    "InvokeEndpoint.SessionId": (REFUSED, "no stateful sessions"),
    "InvokeEndpoint.PrefixAwareId": (REFUSED, ""),
    "InvokeEndpointAsync": (REFUSED, NOT_ASYNC),
    "InvokeEndpointWithResponseStream": (REFUSED, "response streaming is not emulated"),
}

RUNTIME_OPERATIONS = ("InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream")


@cache
def service_model(operation: str):
    name = "sagemaker-runtime" if operation in RUNTIME_OPERATIONS else "sagemaker"
    return botocore.session.get_session().get_service_model(name)


def status(path: str) -> tuple[str, str] | None:
    """What the local service does with the member at `path`: its longest listed prefix's
    entry; None when none is listed."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        entry = FIELDS.get(".".join(parts[:end]))
        if entry is not None:
            return entry
    return None


# --- 1. the service model ---------------------------------------------------------------------


def aws_path(steps: list[str | int]) -> str:
    """A member's path as AWS's messages write it: lowerCamel names, list items 1-based with
    `.member`: productionVariants.1.member.initialVariantWeight."""
    words = []
    for step in steps:
        if isinstance(step, int):
            words += [str(step + 1), "member"]
        else:
            words.append(step[:1].lower() + step[1:])
    return ".".join(words)


def shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@cache
def java_pattern(pattern: str) -> re.Pattern[str] | None:
    """AWS's (Java) pattern in Python's re; None where re cannot read it (\\p{...})."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "blob": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "timestamp": lambda v: isinstance(v, int | float | str) and not isinstance(v, bool),
    "structure": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "map": lambda v: isinstance(v, dict),
}


def model_errors(shape: Shape, value: Any, steps: list[str | int]) -> Iterator[str]:
    """AWS's constraint messages for `value`; raises for an unknown member or a wrong type."""
    where = aws_path(steps)
    if not TYPES[shape.type_name](value):
        raise SageMakerError(
            "SerializationException",
            f"Expected a {shape.type_name} at '{where or 'the request'}', got {shown(value)!r}",
        )
    meta = shape.metadata
    fail = f"Value '{shown(value)}' at '{where}' failed to satisfy constraint: Member must"
    if shape.type_name == "structure":
        for name in value:
            if name not in shape.members:
                inside = steps[-1] if steps and isinstance(steps[-1], str) else "input"
                raise validation(
                    f'Unknown parameter in {inside}: "{name}", must be one of: '
                    + ", ".join(shape.members)
                )
        for name in shape.required_members:
            if value.get(name) is None:
                yield (
                    f"Value null at '{aws_path([*steps, name])}' failed to satisfy "
                    "constraint: Member must not be null"
                )
        for name, member in value.items():
            if member is not None:
                yield from model_errors(shape.members[name], member, [*steps, name])
        return
    if shape.type_name == "list":
        for index, item in enumerate(value):
            yield from model_errors(shape.member, item, [*steps, index])
    if shape.type_name == "map":
        for key, item in value.items():
            yield from model_errors(shape.key, key, [*steps, "key"])
            yield from model_errors(shape.value, item, [*steps, key])
    if shape.type_name in ("string", "list", "map", "blob"):
        if "min" in meta and len(value) < meta["min"]:
            yield f"{fail} have length greater than or equal to {meta['min']}"
        if "max" in meta and len(value) > meta["max"]:
            yield f"{fail} have length less than or equal to {meta['max']}"
    if shape.type_name in ("integer", "long", "float", "double"):
        if not math.isfinite(value):
            yield f"{fail} be a finite number"
        elif "min" in meta and value < meta["min"]:
            yield f"{fail} have value greater than or equal to {meta['min']}"
        elif "max" in meta and value > meta["max"]:
            yield f"{fail} have value less than or equal to {meta['max']}"
    if shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            yield f"{fail} satisfy enum value set: [{', '.join(shape.enum)}]"
        pattern = java_pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            yield f"{fail} satisfy regular expression pattern: {meta['pattern']}"


def check_model(operation: str, request: dict[str, Any]) -> None:
    shape = service_model(operation).operation_model(operation).input_shape
    errors = list(model_errors(shape, request, []))
    if errors:
        count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected"
        raise validation(f"{count}: {'; '.join(errors)}")


# --- 2. the table ---------------------------------------------------------------------------


def present(value: Any, path: str, shape: Shape) -> Iterator[tuple[str, bool]]:
    """The paths of the members set in a request, each with whether it holds members of its
    own (a structure, or a list of them; a map is one member)."""
    if shape.type_name == "structure":
        for name, member in value.items():
            if member is not None:
                inner = shape.members[name]
                nested = inner.type_name == "structure" or (
                    inner.type_name == "list" and inner.member.type_name == "structure"
                )
                yield f"{path}.{name}", nested
                yield from present(member, f"{path}.{name}", inner)
    elif shape.type_name == "list" and shape.member.type_name in ("structure", "list"):
        for item in value:
            yield from present(item, path, shape.member)


def check_fields(operation: str, request: dict[str, Any]) -> list[str]:
    """Refuse a member the local service does not emulate; the top-level members stored
    without effect, which Describe echoes."""
    shape = service_model(operation).operation_model(operation).input_shape
    stored = []
    for path, nested in present(request, operation, shape):
        entry = status(path)
        if entry is None and nested:
            continue  # its members decide
        what, why = entry or (REFUSED, "")
        member = path.partition(".")[2]
        if what == REFUSED:
            raise validation(
                f"{member} is not emulated by the local SageMaker service"
                + (f" ({why})" if why else "")
                + "; leave it out"
            )
        if what == STORED and "." not in member:
            stored.append(member)
    return stored


# --- 3. AWS's rules across members ----------------------------------------------------------


def spot_rules(definition: dict[str, Any]) -> None:
    """EnableManagedSpotTraining and StoppingCondition, as AWS checks them."""
    stopping = definition.get("StoppingCondition") or {}
    wait = stopping.get("MaxWaitTimeInSeconds")
    if definition.get("EnableManagedSpotTraining"):
        runtime = stopping.get("MaxRuntimeInSeconds", 86400)
        if wait is None or wait < runtime:
            raise validation(
                "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or "
                "equal to MaxRuntimeInSeconds"
            )
    elif wait is not None:
        raise validation(
            "Invalid MaxWaitTimeInSeconds. It is only supported when "
            "EnableManagedSpotTraining is set to true"
        )


def variant_rules(request: dict[str, Any]) -> None:
    variants = request.get("ProductionVariants") or []
    for number, variant in enumerate(variants, 1):
        serverless = variant.get("ServerlessConfig")
        if serverless is None:
            continue
        where = f"productionVariants.{number}.member.serverlessConfig"
        memory = serverless["MemorySizeInMB"]
        if memory % 1024:
            raise validation(
                f"1 validation error detected: Value '{memory}' at '{where}.memorySizeInMB' "
                "failed to satisfy constraint: Member must be a multiple of 1024 "
                "(1024, 2048, 3072, 4096, 5120 or 6144)"
            )
        provisioned = serverless.get("ProvisionedConcurrency")
        if provisioned is not None and provisioned > serverless["MaxConcurrency"]:
            raise validation(
                f"ProvisionedConcurrency ({provisioned}) of variant '{variant['VariantName']}' "
                f"must not exceed its MaxConcurrency ({serverless['MaxConcurrency']})"
            )
        for member in ("InstanceType", "InitialInstanceCount"):
            if member in variant:
                raise validation(
                    f"Variant '{variant['VariantName']}' has a ServerlessConfig: "
                    f"{member} must not be set"
                )
        if len(variants) > 1:  # one serverless variant per config (CDK's EndpointConfig too)
            raise validation(
                f"Variant '{variant['VariantName']}' is a serverless variant: it must be the "
                "endpoint configuration's only variant"
            )
    if variants and all(float(v.get("InitialVariantWeight", 1.0)) == 0 for v in variants):
        raise validation(
            "The InitialVariantWeight of at least one production variant must be greater "
            "than 0; all are 0"
        )


def output_rules(definition: dict[str, Any]) -> None:
    """The model and output archives are always .tar.gz locally: GZIP (what the SageMaker
    Python SDK 3 sends) is what happens, NONE is not emulated."""
    compression = (definition.get("OutputDataConfig") or {}).get("CompressionType", "GZIP")
    if compression != "GZIP":
        raise validation(
            f"OutputDataConfig.CompressionType {compression} is not emulated by the local "
            "SageMaker service (its archives are always GZIP); leave it out"
        )


def training_rules(definition: dict[str, Any]) -> None:
    spot_rules(definition)
    output_rules(definition)


def tuning_rules(request: dict[str, Any]) -> None:
    training_rules(request.get("TrainingJobDefinition") or {})


RULES: dict[str, Callable[[dict[str, Any]], None]] = {
    "CreateTrainingJob": training_rules,
    "CreateHyperParameterTuningJob": tuning_rules,
    "CreateEndpointConfig": variant_rules,
}


def check(operation: str, request: dict[str, Any]) -> list[str]:
    """The request checked for `operation` (SageMakerError when AWS or the local service
    refuses it); returns its top-level members stored without effect."""
    check_model(operation, request)
    stored = check_fields(operation, request)
    if operation in RULES:
        RULES[operation](request)
    return stored


def check_invocation(operation: str, headers: dict[str, str]) -> None:
    """A runtime call's headers: a member the runtime does not emulate is refused (as the
    runtime's ValidationError)."""
    model = service_model(operation)
    shape = model.operation_model(operation).input_shape
    lowered = {key.lower() for key in headers}
    what, why = status(operation) or (REFUSED, "")
    if operation != "InvokeEndpoint" and what == REFUSED:
        raise SageMakerError(
            "ValidationError", f"{operation} is not emulated by the local SageMaker service ({why})"
        )
    for name, member in shape.members.items():
        header = member.serialization.get("name", "").lower()
        if member.serialization.get("location") == "header" and header in lowered:
            what, why = status(f"{operation}.{name}") or (REFUSED, "")
            if what == REFUSED:
                raise SageMakerError(
                    "ValidationError",
                    f"{name} ({member.serialization['name']}) is not emulated by the local "
                    f"SageMaker service ({why}); leave it out",
                )


# --- the table in docs/emulation.md --------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulation.md"
BEGIN = "<!-- fields: begin (python -m emulation.sagemaker.validation) -->"
END = "<!-- fields: end -->"


def render() -> str:
    """The Markdown table of FIELDS, operation by operation."""
    lines = [BEGIN, "", "| member | locally | why |", "|---|---|---|"]
    for path, (what, why) in FIELDS.items():
        lines.append(f"| `{path}` | {what} | {why} |")
    return "\n".join([*lines, "", END])


def documented(page: str) -> str:
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[start:end]


def write_doc() -> None:
    page = DOC.read_text()
    DOC.write_text(page.replace(documented(page), render()))


if __name__ == "__main__":
    write_doc()
