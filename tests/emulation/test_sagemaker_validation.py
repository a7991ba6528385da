"""Requests checked against AWS's service model and the table of what is emulated
(emulation/sagemaker/validation.py), through real boto3 clients. boto3 checks some of it on
its side: a value out of bounds goes through a client with parameter_validation off, and a
member AWS does not know (which botocore cannot even serialize) as raw JSON, as a client of
another SDK would send it."""

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.sagemaker import BUCKET, ROLE

CONTAINER = {"Image": "postwerk-model:latest", "ModelDataUrl": "s3://nowhere/model.tar.gz"}


def raw_client():
    """A SageMaker client that sends whatever it is given."""
    return boto3.client("sagemaker", config=Config(parameter_validation=False))


def refused(call, **request) -> str:
    with pytest.raises(ClientError) as error:
        call(**request)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    return error.value.response["Error"]["Message"]


def spot_job(name: str, **overrides) -> dict:
    """A training job that fails while downloading (no such input): it never trains."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "postwerk-model:latest",
            "TrainingInputMode": "File",
        },
        "RoleArn": ROLE,
        "InputDataConfig": [{
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{BUCKET}/{name}/none/"}},
        }],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/{name}/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    } | overrides  # fmt: skip


def test_a_member_aws_does_not_know_is_refused_in_its_words(sagemaker, sagemaker_service):
    answer = httpx.post(
        sagemaker_service[1],
        json={
            "ModelName": "unknown-member",
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": CONTAINER | {"ImageUri": "postwerk-model:latest"},
        },
        headers={"X-Amz-Target": "SageMaker.CreateModel"},
        trust_env=False,
    )
    assert answer.status_code == 400
    assert answer.json()["__type"] == "ValidationException"
    message = answer.json()["message"]
    assert message.startswith('Unknown parameter in PrimaryContainer: "ImageUri", must be one of:')
    sm, _, _ = sagemaker
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName="unknown-member")


def test_a_value_out_of_range_gets_aws_constraint_message(sagemaker):
    message = refused(
        raw_client().create_endpoint_config,
        EndpointConfigName="bad_name",
        ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InitialVariantWeight": -1}],
    )
    assert message.startswith("2 validation errors detected: Value 'bad_name' at ")
    assert (
        "Value '-1' at 'productionVariants.1.member.initialVariantWeight' failed to satisfy "
        "constraint: Member must have value greater than or equal to 0" in message
    )


def test_a_member_known_but_not_emulated_is_refused_by_name(sagemaker):
    sm, _, _ = sagemaker
    message = refused(
        sm.create_model,
        ModelName="pipeline-model",
        ExecutionRoleArn=ROLE,
        Containers=[CONTAINER, CONTAINER],
    )
    assert message.startswith("Containers is not emulated by the local SageMaker service")
    message = refused(
        sm.create_endpoint_config,
        EndpointConfigName="captured",
        ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1}],
        DataCaptureConfig={
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        },
    )
    assert "DataCaptureConfig is not emulated" in message


def test_a_member_stored_without_effect_is_echoed_by_describe(sagemaker):
    sm, _, _ = sagemaker
    vpc = {"SecurityGroupIds": ["sg-12345678"], "Subnets": ["subnet-12345678"]}
    sm.create_model(
        ModelName="isolated",
        ExecutionRoleArn=ROLE,
        PrimaryContainer=CONTAINER,
        EnableNetworkIsolation=True,
        VpcConfig=vpc,
    )
    model = sm.describe_model(ModelName="isolated")
    assert model["EnableNetworkIsolation"] is True
    assert model["VpcConfig"] == vpc
    sm.delete_model(ModelName="isolated")


def test_spot_training_follows_aws_rules_and_is_described(sagemaker):
    sm, _, _ = sagemaker
    assert refused(
        sm.create_training_job, **spot_job("spot-no-wait", EnableManagedSpotTraining=True)
    ) == (
        "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal to "
        "MaxRuntimeInSeconds"
    )
    short_wait = {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 300}
    assert "greater than or equal to MaxRuntimeInSeconds" in refused(
        sm.create_training_job,
        **spot_job("spot-short", EnableManagedSpotTraining=True, StoppingCondition=short_wait),
    )
    wait = {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 900}
    assert refused(sm.create_training_job, **spot_job("no-spot", StoppingCondition=wait)) == (
        "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining "
        "is set to true"
    )
    with pytest.raises(ClientError, match="not found"):
        sm.describe_training_job(TrainingJobName="no-spot")

    sm.create_training_job(
        **spot_job("spot", EnableManagedSpotTraining=True, StoppingCondition=wait)
    )
    job = sm.describe_training_job(TrainingJobName="spot")
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == wait


def test_output_compression_gzip_is_what_happens_and_none_is_refused(sagemaker):
    """The SageMaker Python SDK 3 sends CompressionType GZIP: what the local archives are."""
    sm, _, _ = sagemaker
    output = {"S3OutputPath": f"s3://{BUCKET}/archives/out"}
    message = refused(
        sm.create_training_job,
        **spot_job("no-compression", OutputDataConfig=output | {"CompressionType": "NONE"}),
    )
    assert message.startswith("OutputDataConfig.CompressionType NONE is not emulated")
    sm.create_training_job(
        **spot_job("gzip", OutputDataConfig=output | {"CompressionType": "GZIP"})
    )
    described = sm.describe_training_job(TrainingJobName="gzip")["OutputDataConfig"]
    assert described["CompressionType"] == "GZIP"


def test_serverless_config_is_bounded_as_on_aws(sagemaker):
    sm, _, _ = sagemaker
    sm.create_model(ModelName="serverless", ExecutionRoleArn=ROLE, PrimaryContainer=CONTAINER)

    def config(name: str, **serverless) -> dict:
        return {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {"VariantName": "v", "ModelName": "serverless", "ServerlessConfig": serverless}
            ],
        }

    assert "Member must have value less than or equal to 6144" in refused(
        sm.create_endpoint_config, **config("big", MemorySizeInMB=7168, MaxConcurrency=1)
    )
    assert "Member must be a multiple of 1024" in refused(
        sm.create_endpoint_config, **config("odd", MemorySizeInMB=1500, MaxConcurrency=1)
    )
    assert "Member must have value less than or equal to 200" in refused(
        sm.create_endpoint_config, **config("many", MemorySizeInMB=2048, MaxConcurrency=201)
    )
    assert "must not exceed its MaxConcurrency (2)" in refused(
        sm.create_endpoint_config,
        **config("over", MemorySizeInMB=2048, MaxConcurrency=2, ProvisionedConcurrency=3),
    )
    sm.create_endpoint_config(**config("fits", MemorySizeInMB=6144, MaxConcurrency=200))
    (variant,) = sm.describe_endpoint_config(EndpointConfigName="fits")["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 6144, "MaxConcurrency": 200}
    sm.delete_endpoint_config(EndpointConfigName="fits")
    sm.delete_model(ModelName="serverless")


def test_an_endpoint_config_whose_weights_are_all_zero_is_refused(sagemaker):
    sm, _, _ = sagemaker
    sm.create_model(ModelName="weightless", ExecutionRoleArn=ROLE, PrimaryContainer=CONTAINER)
    variants = [
        {"VariantName": name, "ModelName": "weightless", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large", "InitialVariantWeight": 0}
        for name in ("a", "b")
    ]  # fmt: skip
    assert "all are 0" in refused(
        sm.create_endpoint_config, EndpointConfigName="weightless", ProductionVariants=variants
    )
    variants[1]["InitialVariantWeight"] = 1
    sm.create_endpoint_config(EndpointConfigName="weightless", ProductionVariants=variants)
    sm.delete_endpoint_config(EndpointConfigName="weightless")
    sm.delete_model(ModelName="weightless")


def test_runtime_calls_not_emulated_answer_as_the_runtime_does(sagemaker):
    _, runtime, _ = sagemaker
    with pytest.raises(ClientError) as error:
        runtime.invoke_endpoint_async(
            EndpointName="anything", InputLocation=f"s3://{BUCKET}/input.json"
        )
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "InvokeEndpointAsync is not emulated" in error.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match=r"TargetModel .* is not emulated"):
        runtime.invoke_endpoint(EndpointName="anything", Body=b"{}", TargetModel="a")
