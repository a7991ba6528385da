"""Operations the SageMaker clients need beyond the pipeline's (tags, weights and
capacities), and an audit of Describe answers against botocore's service model (required
members, types, no unknown members); test_sdk_clients audits those of the SDK's jobs."""

import pytest
from botocore.exceptions import ClientError

from tests.support.sagemaker import (
    ROLE,
    audit,
    create_config,
    deploy_model,
    invoke,
    model_archive,
    wait_in_service,
)


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
