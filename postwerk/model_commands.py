"""`postwerk models`, `deploy-model`, `promote` and `rollback`: the registered models and
which one serves (and the reply suggestion index, rebuilt with the new model's embeddings).
The steps are services/lifecycle.py and services/registry.py, the same the monitor function
takes."""

from typing import Annotated

import typer
from rich.table import Table

from postwerk import sagemaker
from postwerk.deploy import image_tag
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.output import console
from postwerk.reply_commands import rebuild_index_for_new_model
from postwerk.settings import (
    SERVERLESS_MAX_CONCURRENCY,
    SERVERLESS_MEMORY_MB,
    CliSettings,
    EndpointOption,
    InstancesOption,
    MaxConcurrencyOption,
    MemoryOption,
    ServerlessOption,
)
from services import lifecycle, registry
from services.lifecycle import Serving


def serve_job(
    settings: CliSettings,
    job: str,
    endpoint: str,
    instances: int,
    reason: str,
    must_exist: bool,
    serving: Serving | None = None,
) -> dict:
    """Serve the job's model (create, or update blue/green) and make it the champion once it
    serves; returns the endpoint's description. What `up` uses too. `serving`: how
    (default: `instances` replicas of the settings' image)."""
    serving = serving or sagemaker.serving(settings, instances)
    console.print(
        f"deploying the model of {job} to endpoint [bold]{endpoint}[/] ({serving.describe()}) ..."
    )
    description = lifecycle.promote(
        sagemaker.artifact_bucket(settings.bucket),
        job,
        endpoint,
        serving,
        reason,
        code_version=image_tag(),
        must_exist=must_exist,
    )
    if description["EndpointStatus"] != "InService" or description.get("FailureReason"):
        reason = description.get("FailureReason", "failed")
        raise CommandError(f"endpoint {endpoint}: {reason}", RAN_AND_FAILED)
    return description


def deploy_job(
    job: str,
    endpoint: str | None,
    instances: int | None,
    must_exist: bool,
    reason: str,
    serverless: dict | None = None,
):
    """instances None (and not serverless): serve it as the endpoint is served now (its
    variants, instances or serverless, take the new model), or as one replica if it is new."""
    settings = CliSettings()
    endpoint = endpoint or settings.endpoint_name
    if serverless or instances is not None or not lifecycle.endpoint_exists(endpoint):
        serving = sagemaker.serving(settings, instances or 1, serverless=serverless)
    else:
        serving = lifecycle.serving_like(endpoint)
    description = serve_job(settings, job, endpoint, instances or 1, reason, must_exist, serving)
    console.print(
        f"endpoint [bold]{endpoint}[/] InService with {description['EndpointConfigName']}; "
        f"champion: {job}"
    )
    rebuild_index_for_new_model(sagemaker.artifact_bucket(settings.bucket), endpoint)


def deploy_model(
    job: Annotated[str, typer.Argument(help="a completed training job")],
    endpoint: EndpointOption = None,
    instances: InstancesOption = 1,
    serverless: ServerlessOption = False,
    memory: MemoryOption = SERVERLESS_MEMORY_MB,
    max_concurrency: MaxConcurrencyOption = SERVERLESS_MAX_CONCURRENCY,
) -> None:
    """Serve a training job's model: create the endpoint, or update it blue/green; on
    `instances` replicas, or --serverless (no replica while idle, a cold start after)."""
    config = sagemaker.serverless_config(memory, max_concurrency) if serverless else None
    deploy_job(job, endpoint, instances, False, "postwerk deploy-model", config)


KeepShape = Annotated[
    int | None,
    typer.Option(
        "--instances", min=1, help="replicas (default: the endpoint's variants as they are)"
    ),
]


def promote(
    job: Annotated[str, typer.Argument(help="a registered model (its training job's name)")],
    endpoint: EndpointOption = None,
    instances: KeepShape = None,
) -> None:
    """Make a model the champion: swap the endpoint to it (blue/green, no failed request).
    Every variant takes it over, serverless or on instances, weights kept."""
    deploy_job(job, endpoint, instances, must_exist=True, reason="postwerk promote")


def rollback(endpoint: EndpointOption = None, instances: KeepShape = None) -> None:
    """Serve the previous champion again (on the endpoint's variants as they are)."""
    job = registry.previous_champion(sagemaker.artifact_bucket(CliSettings().bucket))
    deploy_job(job, endpoint, instances, must_exist=True, reason="postwerk rollback")


def models() -> None:
    """The registered models, oldest first; the champion is marked."""
    bucket = sagemaker.artifact_bucket(CliSettings().bucket)
    entries = registry.versions(bucket)
    serving = current.job if (current := registry.champion(bucket)) else None
    table = Table(title=f"models in s3://{bucket}/registry/ (* champion)")
    for column in ("", "job", "version", "split", "accuracy", "macro-F1", "data"):
        table.add_column(column)
    for entry in entries:
        split, scores = next(iter(entry.model_info.metrics.items()), ("", {}))
        table.add_row(
            "*" if entry.job == serving else "",
            entry.job,
            entry.model_info.version,
            split,
            f"{scores.get('accuracy', float('nan')):.4f}",
            f"{scores.get('macro_f1', float('nan')):.4f}",
            f"{len(entry.data_manifest)} files",
        )
    console.print(table)


COMMANDS = {
    "models": models,
    "deploy-model": deploy_model,
    "promote": promote,
    "rollback": rollback,
}
