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
from postwerk.settings import CliSettings, EndpointOption, InstancesOption
from services import lifecycle, registry


def serve_job(
    settings: CliSettings, job: str, endpoint: str, instances: int, reason: str, must_exist: bool
) -> dict:
    """Serve the job's model (create, or update blue/green) and make it the champion once it
    serves; returns the endpoint's description. What `up` uses too."""
    console.print(f"deploying the model of {job} to endpoint [bold]{endpoint}[/] ...")
    description = lifecycle.promote(
        sagemaker.artifact_bucket(settings.bucket),
        job,
        endpoint,
        sagemaker.serving(settings, instances),
        reason,
        code_version=image_tag(),
        must_exist=must_exist,
    )
    if description["EndpointStatus"] != "InService" or description.get("FailureReason"):
        reason = description.get("FailureReason", "failed")
        raise CommandError(f"endpoint {endpoint}: {reason}", RAN_AND_FAILED)
    return description


def deploy_job(job: str, endpoint: str | None, instances: int, must_exist: bool, reason: str):
    settings = CliSettings()
    endpoint = endpoint or settings.endpoint_name
    description = serve_job(settings, job, endpoint, instances, reason, must_exist)
    console.print(
        f"endpoint [bold]{endpoint}[/] InService with {description['EndpointConfigName']}; "
        f"champion: {job}"
    )
    rebuild_index_for_new_model(sagemaker.artifact_bucket(settings.bucket), endpoint)


def deploy_model(
    job: Annotated[str, typer.Argument(help="a completed training job")],
    endpoint: EndpointOption = None,
    instances: InstancesOption = 1,
) -> None:
    """Serve a training job's model: create the endpoint, or update it blue/green."""
    deploy_job(job, endpoint, instances, must_exist=False, reason="postwerk deploy-model")


def promote(
    job: Annotated[str, typer.Argument(help="a registered model (its training job's name)")],
    endpoint: EndpointOption = None,
    instances: InstancesOption = 1,
) -> None:
    """Make a model the champion: swap the endpoint to it (blue/green, no failed request)."""
    deploy_job(job, endpoint, instances, must_exist=True, reason="postwerk promote")


def rollback(endpoint: EndpointOption = None, instances: InstancesOption = 1) -> None:
    """Serve the previous champion again."""
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
