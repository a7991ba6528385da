"""Operations the SageMaker clients need beyond the pipeline's: tags, tuning job lists,
weights and capacities, metrics in CloudWatch; and an audit of every Describe answer
against botocore's service model (required members, types, no unknown members)."""

import datetime

import boto3
import botocore.session
import httpx
import pytest
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from tests.emulation.conftest import ROLE, model_archive
from tests.emulation.test_sagemaker_endpoints import (
    create_config,
    deploy_model,
    invoke,
    wait_in_service,
)
from tests.emulation.test_sagemaker_tuning import tuning_request, wait

MODEL = botocore.session.get_session().get_service_model("sagemaker")


def call(url: str, operation: str, **request) -> dict:
    """The service's raw JSON answer (boto3 drops members it does not know)."""
    answer = httpx.post(
        url,
        json=request,
        headers={"X-Amz-Target": f"SageMaker.{operation}"},
        timeout=30,
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def audit(url: str, operation: str, **request) -> dict:
    """The answer, once botocore's output shape for the operation accepts it."""
    document = call(url, operation, **request)
    shape = MODEL.operation_model(operation).output_shape
    report = ParamValidator().validate(document, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    return document


def test_tags_on_create_add_list_delete(sagemaker, sagemaker_service):
    sm, _, _ = sagemaker
    create = {"Image": "postwerk-model:latest", "ModelDataUrl": "s3://nowhere/model.tar.gz"}
    arn = sm.create_model(
        ModelName="tagged",
        ExecutionRoleArn=ROLE,
        PrimaryContainer=create,
        Tags=[{"Key": "team", "Value": "routing"}],
    )["ModelArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "stage", "Value": "dev"},
        {"Key": "team", "Value": "routing"},
    ]
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]
    audit(sagemaker_service[1], "ListTags", ResourceArn=arn)

    sm.delete_model(ModelName="tagged")
    with pytest.raises(ClientError, match="not found"):
        sm.list_tags(ResourceArn=arn)
    sm.create_model(ModelName="tagged", ExecutionRoleArn=ROLE, PrimaryContainer=create)
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [], "a new resource, no old tags"
    audit(sagemaker_service[1], "DescribeModel", ModelName="tagged")
    sm.delete_model(ModelName="tagged")


def test_other_operations_say_they_are_not_supported(sagemaker):
    sm, _, _ = sagemaker
    with pytest.raises(ClientError, match="no operation 'ListContexts'") as error:
        sm.list_contexts()
    assert error.value.response["Error"]["Code"] == "UnknownOperationException"


def test_a_tuning_job_as_sdk_2_sends_it(sagemaker, sagemaker_service, tiny_bert):
    """HyperParameterTuningResourceConfig instead of ResourceConfig; the description has
    `_tuning_objective_metric`, the metrics reach CloudWatch; list and delete."""
    sm, _, s3 = sagemaker
    url = sagemaker_service[1]
    config = {
        "Strategy": "Random",
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
    }
    request = tuning_request("sdk2-shape", s3, tiny_bert, config, epochs=1)
    definition = request["TrainingJobDefinition"]
    definition["HyperParameterTuningResourceConfig"] = definition.pop("ResourceConfig")
    sm.create_hyper_parameter_tuning_job(**request, Tags=[{"Key": "k", "Value": "v"}])
    job = wait(sm, "sdk2-shape")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    description = audit(
        url, "DescribeHyperParameterTuningJob", HyperParameterTuningJobName="sdk2-shape"
    )
    stored = description["TrainingJobDefinition"]
    assert stored["StaticHyperParameters"]["_tuning_objective_metric"] == "validation_loss"
    assert stored["ResourceConfig"]["InstanceCount"] == 1

    best = job["BestTrainingJob"]["TrainingJobName"]
    training = audit(url, "DescribeTrainingJob", TrainingJobName=best)
    assert training["OutputDataConfig"]["KmsKeyId"] == ""
    statistics = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="/aws/sagemaker/TrainingJobs",
        MetricName="validation_loss",
        Dimensions=[{"Name": "TrainingJobName", "Value": best}],
        StartTime=datetime.datetime.fromtimestamp(training["CreationTime"] - 60),
        EndTime=datetime.datetime.fromtimestamp(training["TrainingEndTime"] + 60),
        Period=60,
        Statistics=["Average"],
    )
    assert statistics["Datapoints"], "the job's metrics are in CloudWatch"
    assert sm.list_tags(ResourceArn=job["HyperParameterTuningJobArn"])["Tags"] == [
        {"Key": "k", "Value": "v"}
    ]

    listed = audit(url, "ListHyperParameterTuningJobs", NameContains="sdk2-shape")
    names = [s["HyperParameterTuningJobName"] for s in listed["HyperParameterTuningJobSummaries"]]
    assert names == ["sdk2-shape"]
    sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName="sdk2-shape")
    assert (
        sm.list_hyper_parameter_tuning_jobs(NameContains="sdk2-shape")[
            "HyperParameterTuningJobSummaries"
        ]
        == []
    )
    assert sm.describe_training_job(TrainingJobName=best)["TrainingJobStatus"] == "Completed"


def test_weights_and_capacities(sagemaker, sagemaker_service, trained_job):
    sm, runtime, s3 = sagemaker
    url = sagemaker_service[1]
    deploy_model(sm, s3, "scaled", model_archive(trained_job / "model"))
    create_config(sm, "scaled-config", "scaled")
    sm.create_endpoint(EndpointName="scaled", EndpointConfigName="scaled-config")
    assert wait_in_service(sm, "scaled")["EndpointStatus"] == "InService"
    with pytest.raises(ClientError, match='variant\\(s\\) "other"'):
        sm.update_endpoint_weights_and_capacities(
            EndpointName="scaled",
            DesiredWeightsAndCapacities=[{"VariantName": "other", "DesiredWeight": 1}],
        )
    sm.update_endpoint_weights_and_capacities(
        EndpointName="scaled",
        DesiredWeightsAndCapacities=[
            {"VariantName": "primary", "DesiredWeight": 0.5, "DesiredInstanceCount": 2}
        ],
    )
    endpoint = wait_in_service(sm, "scaled")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    (variant,) = endpoint["ProductionVariants"]
    assert (variant["CurrentWeight"], variant["CurrentInstanceCount"]) == (0.5, 2)
    assert invoke(runtime, "scaled")["predictions"]
    audit(url, "DescribeEndpoint", EndpointName="scaled")
    audit(url, "DescribeEndpointConfig", EndpointConfigName="scaled-config")
    audit(url, "DescribeModel", ModelName="scaled")
    sm.delete_endpoint(EndpointName="scaled")
