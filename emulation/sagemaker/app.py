"""The HTTP face of the local SageMaker service.

- POST /  with `X-Amz-Target: SageMaker.<Operation>`: the control plane (awsJson1_1), what
  `boto3.client("sagemaker")` sends;
- POST /endpoints/{name}/invocations: InvokeEndpoint (restJson1), what
  `boto3.client("sagemaker-runtime")` sends.
Point both at this service with AWS_ENDPOINT_URL_SAGEMAKER and
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME.
"""

import asyncio
import json
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from emulation.sagemaker.containers import containers_from
from emulation.sagemaker.endpoints import Endpoints
from emulation.sagemaker.protocol import SageMakerError, required
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Store
from emulation.sagemaker.tags import Tags
from emulation.sagemaker.training import TrainingJobs
from emulation.sagemaker.transform import TransformJobs
from emulation.sagemaker.tuning import TuningJobs
from emulation.sagemaker.validation import check, check_invocation

JSON_1_1 = "application/x-amz-json-1.1"
FORWARDED_HEADERS = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")

Operation = Callable[[dict[str, Any]], dict[str, Any]]


def by_name(describe: Callable[[str], Any], key: str) -> Operation:
    return lambda request: describe(required(request, key))


def tagging(create: Operation, tags: Tags) -> Operation:
    """A Create call that honours its request's `Tags`."""

    def create_and_tag(request: dict[str, Any]) -> dict[str, Any]:
        result = create(request)
        tags.tag_created(request, result)
        return result

    return create_and_tag


def operations(
    training: TrainingJobs,
    tuning: TuningJobs,
    endpoints: Endpoints,
    transform: TransformJobs,
    tags: Tags,
):
    table = {
        "CreateTrainingJob": training.create,
        "DescribeTrainingJob": by_name(training.describe, "TrainingJobName"),
        "ListTrainingJobs": training.list,
        "StopTrainingJob": by_name(training.stop, "TrainingJobName"),
        "CreateHyperParameterTuningJob": tuning.create,
        "DescribeHyperParameterTuningJob": by_name(tuning.describe, "HyperParameterTuningJobName"),
        "StopHyperParameterTuningJob": by_name(tuning.stop, "HyperParameterTuningJobName"),
        "ListHyperParameterTuningJobs": tuning.list,
        "DeleteHyperParameterTuningJob": by_name(tuning.delete, "HyperParameterTuningJobName"),
        "ListTrainingJobsForHyperParameterTuningJob": tuning.list_training_jobs,
        "CreateModel": endpoints.create_model,
        "DescribeModel": by_name(endpoints.describe_model, "ModelName"),
        "DeleteModel": by_name(endpoints.delete_model, "ModelName"),
        "ListModels": endpoints.list_models,
        "CreateEndpointConfig": endpoints.create_endpoint_config,
        "DescribeEndpointConfig": by_name(endpoints.describe_endpoint_config, "EndpointConfigName"),
        "DeleteEndpointConfig": by_name(endpoints.delete_endpoint_config, "EndpointConfigName"),
        "ListEndpointConfigs": endpoints.list_endpoint_configs,
        "CreateEndpoint": endpoints.create_endpoint,
        "DescribeEndpoint": by_name(endpoints.describe_endpoint, "EndpointName"),
        "UpdateEndpoint": endpoints.update_endpoint,
        "DeleteEndpoint": by_name(endpoints.delete_endpoint, "EndpointName"),
        "ListEndpoints": endpoints.list_endpoints,
        "UpdateEndpointWeightsAndCapacities": endpoints.update_weights_and_capacities,
        "CreateTransformJob": transform.create,
        "DescribeTransformJob": by_name(transform.describe, "TransformJobName"),
        "ListTransformJobs": transform.list,
        "StopTransformJob": by_name(transform.stop, "TransformJobName"),
    }
    table = {
        name: tagging(operation, tags) if name.startswith("Create") else operation
        for name, operation in table.items()
    }
    return table | {"AddTags": tags.add, "ListTags": tags.list, "DeleteTags": tags.delete}


def keep_stored(store: Store, operation: str, request: dict[str, Any], members: list[str]):
    """A Create call's members stored without effect (validation.FIELDS), in the new
    resource's Describe document: CreateTrainingJob -> TrainingJob <TrainingJobName>."""
    kind = operation.removeprefix("Create")
    if not members or kind == operation or store.get(kind, request[f"{kind}Name"]) is None:
        return
    store.update(kind, request[f"{kind}Name"], lambda document: document.update(
        {member: request[member] for member in members}
    ))  # fmt: skip


def runtime_error(error: SageMakerError) -> Response:
    """restJson1: the code in x-amzn-ErrorType."""
    return Response(
        json.dumps({"message": error.message, **error.fields}),
        error.status,
        headers={"x-amzn-ErrorType": error.code},
        media_type="application/json",
    )


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    store = Store(settings.state_dir / "sagemaker.db")
    containers = containers_from(settings)
    training = TrainingJobs(store, settings, containers)
    tuning = TuningJobs(store, settings, training)
    endpoints = Endpoints(store, settings, containers)
    transform = TransformJobs(store, settings, endpoints)
    table = operations(training, tuning, endpoints, transform, Tags(store))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield

        def stop_serving() -> None:
            transform.shutdown()  # its jobs invoke the endpoints' replicas
            endpoints.shutdown()

        # jobs and replicas stop together: one grace period, not one after the other
        await asyncio.gather(run_in_threadpool(training.shutdown), run_in_threadpool(stop_serving))
        await endpoints.invocations.aclose()

    app = FastAPI(title="postwerk local SageMaker", lifespan=lifespan)

    @app.post("/")
    async def control_plane(request: Request) -> Response:
        service, _, name = request.headers.get("x-amz-target", "").partition(".")
        operation = table.get(name) if service == "SageMaker" else None
        try:
            if operation is None:
                raise SageMakerError(
                    "UnknownOperationException",
                    f"the local SageMaker service has no operation '{name}'",
                )
            try:
                payload = json.loads(await request.body() or b"{}")
            except json.JSONDecodeError as error:
                raise SageMakerError("SerializationException", str(error)) from error
            if not isinstance(payload, dict):
                raise SageMakerError("SerializationException", "the request is not a JSON object")
            stored = check(name, payload)
            result = await run_in_threadpool(operation, payload)
            await run_in_threadpool(keep_stored, store, name, payload, stored)
        except SageMakerError as error:
            return Response(json.dumps(error.body()), error.status, media_type=JSON_1_1)
        return Response(json.dumps(result), media_type=JSON_1_1)

    @app.post("/endpoints/{name}/invocations")
    async def invoke_endpoint(name: str, request: Request) -> Response:
        headers = {k: v for k in FORWARDED_HEADERS if (v := request.headers.get(k)) is not None}
        try:
            check_invocation("InvokeEndpoint", dict(request.headers))
            body, answer_headers = await endpoints.invocations.invoke(
                name,
                await request.body(),
                headers,
                target=request.headers.get("x-amzn-sagemaker-target-variant", ""),
            )
        except SageMakerError as error:
            return runtime_error(error)
        return Response(body, headers=answer_headers)

    @app.post("/endpoints/{name}/async-invocations")
    async def invoke_endpoint_async(name: str, request: Request) -> Response:
        try:
            check_invocation("InvokeEndpointAsync", dict(request.headers))
        except SageMakerError as error:
            return runtime_error(error)
        raise AssertionError("validation.FIELDS refuses InvokeEndpointAsync")

    @app.post("/endpoints/{name}/invocations-response-stream")
    async def invoke_endpoint_with_response_stream(name: str, request: Request) -> Response:
        try:
            check_invocation("InvokeEndpointWithResponseStream", dict(request.headers))
        except SageMakerError as error:
            return runtime_error(error)
        raise AssertionError("validation.FIELDS refuses InvokeEndpointWithResponseStream")

    @app.get("/_postwerk/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
