"""A notebook's session with the SageMaker Python SDK 2.x against the local service:
tune (Bayesian), attach, analytics, deploy, predict, update, a serverless deploy, a managed
spot training job, delete.

Run in the SDK's own venv: `python sdk2.py '<json arguments>'`. Prints one JSON object,
client call -> "ok" or the error, and exits 1 when a call that must work failed.
"""

import json
import sys

import boto3
import sagemaker
from calls import call, report, results
from sagemaker.analytics import TrainingJobAnalytics
from sagemaker.deserializers import JSONDeserializer
from sagemaker.estimator import Estimator
from sagemaker.serializers import JSONSerializer
from sagemaker.serverless import ServerlessInferenceConfig
from sagemaker.tuner import CategoricalParameter, HyperparameterTuner

arguments = json.loads(sys.argv[1])


session = sagemaker.Session(boto3.Session(), default_bucket=arguments["bucket"])
estimator = Estimator(
    image_uri="postwerk-model:latest",
    role=arguments["role"],
    instance_count=1,
    instance_type="ml.m5.large",
    output_path=f"s3://{arguments['bucket']}/sdk2/artifacts",
    hyperparameters=arguments["hyperparameters"],
    metric_definitions=arguments["metric_definitions"],
    max_run=600,
    sagemaker_session=session,
)
tuner = HyperparameterTuner(
    estimator,
    objective_metric_name="validation_loss",
    objective_type="Minimize",
    metric_definitions=arguments["metric_definitions"],
    hyperparameter_ranges={"learning_rate": CategoricalParameter(["0.02", "0.0000001"])},
    strategy="Bayesian",
    max_jobs=1,
    max_parallel_jobs=1,
    base_tuning_job_name="sdk2",
)
call("HyperparameterTuner.fit", tuner.fit, arguments["channels"], wait=False)
call("HyperparameterTuner.wait", tuner.wait)
best = call("HyperparameterTuner.best_training_job", tuner.best_training_job)
best_estimator = call("HyperparameterTuner.best_estimator", tuner.best_estimator)
name = tuner.latest_tuning_job.name
call("HyperparameterTuner.attach", HyperparameterTuner.attach, name, sagemaker_session=session)
call("Estimator.attach", Estimator.attach, best, sagemaker_session=session)
frame = call(
    "TrainingJobAnalytics.dataframe",
    TrainingJobAnalytics(best, ["validation_loss"], sagemaker_session=session).dataframe,
)
if frame.empty:
    results["TrainingJobAnalytics.dataframe"] = "empty"

predictor = call(
    "Estimator.deploy",
    best_estimator.deploy,
    initial_instance_count=1,
    instance_type="ml.m5.large",
    endpoint_name="sdk2-endpoint",
    serializer=JSONSerializer(),
    deserializer=JSONDeserializer(),
    wait=False,
)
session.wait_for_endpoint("sdk2-endpoint", poll=1)
answer = call("Predictor.predict", predictor.predict, {"inputs": ["my invoice is wrong"]})
call(
    "Predictor.update_endpoint",
    predictor.update_endpoint,
    initial_instance_count=1,
    instance_type="ml.m5.large",
    wait=False,
)
session.wait_for_endpoint("sdk2-endpoint", poll=1)
try:
    predictor.endpoint_context()
    results["Predictor.endpoint_context"] = "ok"
except Exception as error:  # lineage is not served: a clear error, not a crash
    results["Predictor.endpoint_context"] = f"{type(error).__name__}: {error}"
transformer = call(
    "Estimator.transformer",
    best_estimator.transformer,
    instance_count=1,
    instance_type="ml.m5.large",
    strategy="MultiRecord",
    assemble_with="Line",
    accept="application/jsonlines",
    output_path=f"s3://{arguments['bucket']}/sdk2/transform",
)
call(
    "Transformer.transform",
    transformer.transform,
    arguments["transform_input"],
    content_type="application/jsonlines",
    split_type="Line",
    input_filter="$['id','subject','body']",
    join_source="Input",
    output_filter="$['id','SageMakerOutput']",
    wait=False,
)
call("Transformer.wait", transformer.wait, logs=False)
description = transformer.sagemaker_session.describe_transform_job(
    transformer.latest_transform_job.name
)
if description["TransformJobStatus"] != "Completed":
    results["Transformer.wait"] = description.get("FailureReason", "")
serverless = call(
    "Estimator.deploy (serverless)",
    best_estimator.deploy,
    serverless_inference_config=ServerlessInferenceConfig(
        memory_size_in_mb=2048, max_concurrency=2
    ),
    endpoint_name="sdk2-serverless",
    serializer=JSONSerializer(),
    deserializer=JSONDeserializer(),
    wait=False,
)
session.wait_for_endpoint("sdk2-serverless", poll=1)
call("Predictor.predict (serverless)", serverless.predict, {"inputs": ["my invoice is wrong"]})
call("Predictor.delete_endpoint (serverless)", serverless.delete_endpoint)

spot = Estimator(
    image_uri="postwerk-model:latest",
    role=arguments["role"],
    instance_count=1,
    instance_type="ml.m5.large",
    output_path=f"s3://{arguments['bucket']}/sdk2/spot",
    hyperparameters=arguments["hyperparameters"],
    max_run=600,
    use_spot_instances=True,
    max_wait=900,
    checkpoint_s3_uri=f"s3://{arguments['bucket']}/sdk2/checkpoints",
    base_job_name="sdk2-spot",
    sagemaker_session=session,
)
call("Estimator.fit (spot)", spot.fit, arguments["channels"], wait=True, logs=False)
spot_job = spot.latest_training_job.describe()
if not spot_job.get("EnableManagedSpotTraining") or "CheckpointConfig" not in spot_job:
    results["Estimator.fit (spot)"] = f"not described as a spot job: {sorted(spot_job)}"
elif spot_job["BillableTimeInSeconds"] > spot_job["TrainingTimeInSeconds"]:
    results["Estimator.fit (spot)"] = "billed more than it trained"

call("Predictor.delete_endpoint", predictor.delete_endpoint)
call("Predictor.delete_model", predictor.delete_model)
results["prediction"] = json.dumps(answer)[:200]
results["transform_job"] = transformer.latest_transform_job.name
report()
