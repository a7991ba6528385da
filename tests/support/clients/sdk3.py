"""A notebook's session with the SageMaker Python SDK 3.x against the local service:
ModelTrainer (which validates the role through IAM), on demand and with managed spot
training; then model, endpoint config and endpoint as sagemaker.core resources: create,
invoke, update, delete. (A serverless endpoint is SDK 2.x's: 3.27.0's
ProductionVariantServerlessConfig sends "MemorySizeInMb", which botocore refuses.)

Run in the SDK's own venv: `python sdk3.py '<json arguments>'`. Prints one JSON object,
client call -> "ok" or the error, and exits 1 when a call failed.
"""

import json
import sys

import boto3
from calls import call, report, results
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.resources import Endpoint, EndpointConfig, Model
from sagemaker.core.shapes import (
    ContainerDefinition,
    ProductionVariant,
)
from sagemaker.core.training.configs import (
    CheckpointConfig,
    Compute,
    InputData,
    OutputDataConfig,
    StoppingCondition,
)
from sagemaker.train import ModelTrainer

arguments = json.loads(sys.argv[1])


session = Session(boto3.Session(), default_bucket=arguments["bucket"])
try:  # the SDK's own role check is on: a role without SageMaker's permissions is refused
    ModelTrainer(training_image="postwerk-model:latest", role=arguments["bare_role"])
    results["ModelTrainer (role without permissions)"] = "accepted"
except Exception as error:
    results["ModelTrainer (role without permissions)"] = type(error).__name__
trainer = call(
    "ModelTrainer",
    ModelTrainer,
    training_image="postwerk-model:latest",
    role=arguments["role"],
    compute=Compute(instance_type="ml.m5.large", instance_count=1),
    hyperparameters=arguments["hyperparameters"],
    output_data_config=OutputDataConfig(s3_output_path=f"s3://{arguments['bucket']}/sdk3"),
    stopping_condition=StoppingCondition(max_runtime_in_seconds=600),
    sagemaker_session=session,
    base_job_name="sdk3",
)
inputs = [InputData(channel_name=c, data_source=uri) for c, uri in arguments["channels"].items()]
call("ModelTrainer.train", trainer.train, input_data_config=inputs, wait=True, logs=False)
job = trainer._latest_training_job
job.refresh()
if job.training_job_status != "Completed":
    results["ModelTrainer.train"] = f"{job.training_job_status}: {job.failure_reason}"

spot = call(
    "ModelTrainer (spot)",
    ModelTrainer,
    training_image="postwerk-model:latest",
    role=arguments["role"],
    compute=Compute(
        instance_type="ml.m5.large", instance_count=1, enable_managed_spot_training=True
    ),
    hyperparameters=arguments["hyperparameters"],
    output_data_config=OutputDataConfig(s3_output_path=f"s3://{arguments['bucket']}/sdk3"),
    stopping_condition=StoppingCondition(max_runtime_in_seconds=600, max_wait_time_in_seconds=900),
    checkpoint_config=CheckpointConfig(s3_uri=f"s3://{arguments['bucket']}/sdk3/checkpoints"),
    sagemaker_session=session,
    base_job_name="sdk3-spot",
)
call("ModelTrainer.train (spot)", spot.train, input_data_config=inputs, wait=True, logs=False)
spot_job = spot._latest_training_job
spot_job.refresh()
if spot_job.training_job_status != "Completed" or not spot_job.enable_managed_spot_training:
    results["ModelTrainer.train (spot)"] = f"{spot_job.training_job_status}, not spot"
elif spot_job.billable_time_in_seconds > spot_job.training_time_in_seconds:
    results["ModelTrainer.train (spot)"] = "billed more than it trained"

container = ContainerDefinition(
    image="postwerk-model:latest", model_data_url=job.model_artifacts.s3_model_artifacts
)
call(
    "Model.create",
    Model.create,
    model_name="sdk3-model",
    primary_container=container,
    execution_role_arn=arguments["role"],
)
for config in ("sdk3-config", "sdk3-config-2"):
    variant = ProductionVariant(
        variant_name="primary",
        model_name="sdk3-model",
        initial_instance_count=1,
        instance_type="ml.m5.large",
    )
    call("EndpointConfig.create", EndpointConfig.create, config, [variant])
endpoint = call("Endpoint.create", Endpoint.create, "sdk3-endpoint", "sdk3-config")
call("Endpoint.wait_for_status", endpoint.wait_for_status, "InService", poll=1)
body = json.dumps({"inputs": ["my invoice is wrong"]})
answer = call("Endpoint.invoke", endpoint.invoke, body=body, content_type="application/json")
endpoint.endpoint_config_name = "sdk3-config-2"
call("Endpoint.update", endpoint.update)
call("Endpoint.wait_for_status (update)", endpoint.wait_for_status, "InService", poll=1)
endpoint.refresh()
if endpoint.endpoint_config_name != "sdk3-config-2":
    results["Endpoint.update"] = f"still on {endpoint.endpoint_config_name}"
call("Endpoint.delete", endpoint.delete)
call("Model.delete", Model.get("sdk3-model").delete)
results["prediction"] = answer.body.read().decode()[:200]
report()
