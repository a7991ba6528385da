"""The `postwerk` command: drive SageMaker (local or AWS) through boto3.

Exit codes scripts can trust: 0 done; 1 the job or call ran and failed (its reason is
printed); 2 the command could not start (bad input, AWS unreachable or refusing).
"""

import json
from email import message_from_bytes, policy
from pathlib import Path
from typing import Annotated

import boto3
import typer
from botocore.exceptions import ClientError
from rich.live import Live
from rich.table import Table

from postwerk import local_commands, models, pipeline_commands, sagemaker
from postwerk.deploy import image_tag
from postwerk.output import clear_failures, console, fail, follow_training_job
from postwerk.settings import CliSettings
from services import registry

app = typer.Typer(
    help="postwerk: route customer e-mails with a BERT classifier on SageMaker (local or AWS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for command in (local_commands.up, local_commands.down, local_commands.status, local_commands.env):
    app.command()(command)
for command in (
    pipeline_commands.send,
    pipeline_commands.results,
    pipeline_commands.monitor,
    pipeline_commands.deploy,
):
    app.command()(command)

DataPath = Annotated[Path, typer.Argument(exists=True, help="a .jsonl/.csv file or a folder")]
OptionalData = Annotated[Path | None, typer.Option(exists=True, help="file or folder")]
Hyperparameters = Annotated[
    list[str], typer.Option("--hyperparameter", "-p", help="name=value (repeatable)")
]
EndpointName = Annotated[str, typer.Option(help="the endpoint's name")]
Instances = Annotated[int, typer.Option(min=1, help="replicas")]


def channels(train: Path, validation: Path | None, test: Path | None) -> dict[str, Path]:
    named = {"train": train, "validation": validation, "test": test}
    return {channel: path for channel, path in named.items() if path is not None}


@app.command()
def train(
    data: DataPath,
    validation: OptionalData = None,
    test: OptionalData = None,
    hyperparameter: Hyperparameters = [],  # noqa: B006 (Typer reads the default)
    name: Annotated[str | None, typer.Option(help="job name")] = None,
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
) -> None:
    """Train the classifier as a SageMaker training job: upload the data, run, show metrics."""
    settings = CliSettings()
    job = name or sagemaker.job_name("postwerk")
    with clear_failures():
        hyperparameters = sagemaker.parse_hyperparameters(hyperparameter)
        inputs = sagemaker.upload_channels(settings, job, channels(data, validation, test))
        definition = sagemaker.training_definition(settings, inputs, hyperparameters)
        boto3.client("sagemaker").create_training_job(TrainingJobName=job, **definition)
        console.print(f"training job [bold]{job}[/] created")
        if not wait:
            return
        status = follow_training_job(job)
    show_metrics(job)
    if status != "Completed":
        fail(f"training job {job} {status.lower()}: {failure_reason(job)}", 1)
    with clear_failures():
        registry.register_job(sagemaker.artifact_bucket(settings.bucket), job, image_tag())
    console.print(f"registered as model version [bold]{job}[/] (postwerk models)")


def show_metrics(job: str) -> None:
    description = boto3.client("sagemaker").describe_training_job(TrainingJobName=job)
    table = Table(title=f"{job}: {description['TrainingJobStatus']}")
    table.add_column("metric")
    table.add_column("final value", justify="right")
    for metric in description.get("FinalMetricDataList", []):
        table.add_row(metric["MetricName"], f"{metric['Value']:.4g}")
    console.print(table)
    if "ModelArtifacts" in description:
        console.print(f"model: {description['ModelArtifacts']['S3ModelArtifacts']}")


def failure_reason(job: str) -> str:
    description = boto3.client("sagemaker").describe_training_job(TrainingJobName=job)
    return description.get("FailureReason", "no reason given")


@app.command()
def tune(
    config: Annotated[Path, typer.Argument(exists=True, help="HyperParameterTuningJobConfig JSON")],
    data: DataPath,
    validation: OptionalData = None,
    test: OptionalData = None,
    hyperparameter: Hyperparameters = [],  # noqa: B006 (Typer reads the default)
    name: Annotated[str | None, typer.Option(help="tuning job name (<= 32 chars)")] = None,
) -> None:
    """Search hyperparameters with a tuning job (CONFIG: AWS's HyperParameterTuningJobConfig).

    The same CONFIG file is valid for a real CreateHyperParameterTuningJob; -p sets the
    static hyperparameters."""
    settings = CliSettings()
    job = name or sagemaker.job_name("tune")[:32]
    with clear_failures():
        try:
            tuning_config = json.loads(config.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{config}: not JSON ({error})") from error
        inputs = sagemaker.upload_channels(settings, job, channels(data, validation, test))
        definition = sagemaker.training_definition(settings, inputs, {})
        definition["StaticHyperParameters"] = sagemaker.parse_hyperparameters(hyperparameter)
        del definition["HyperParameters"]
        boto3.client("sagemaker").create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=job,
            HyperParameterTuningJobConfig=tuning_config,
            TrainingJobDefinition=definition,
        )
        console.print(f"tuning job [bold]{job}[/] created")
        objective = tuning_config["HyperParameterTuningJobObjective"]["MetricName"]
        with Live(console=console, refresh_per_second=2) as live:
            final = sagemaker.wait_for_tuning_job(
                job, lambda state: live.update(trials_table(job, state, objective))
            )
        console.print()
    best = final.get("BestTrainingJob")
    if best:
        value = best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        console.print(
            f"best: [bold]{best['TrainingJobName']}[/] {objective}={value:.4g} "
            f"{best['TunedHyperParameters']}"
        )
    if final["HyperParameterTuningJobStatus"] != "Completed":
        fail(
            f"tuning job {job} {final['HyperParameterTuningJobStatus'].lower()}: "
            f"{final.get('FailureReason', 'no reason given')}",
            1,
        )


def trials_table(job: str, state: dict, objective: str) -> Table:
    counters = state["TrainingJobStatusCounters"]
    table = Table(
        title=f"{job}: {state['HyperParameterTuningJobStatus']} "
        f"({counters['Completed']} completed, {counters['InProgress']} running, "
        f"{counters['Stopped']} stopped early, {counters['NonRetryableError']} failed)"
    )
    for column in ("training job", "tuned hyperparameters", "status", objective):
        table.add_column(column)
    for trial in sagemaker.tuning_trials(job):
        metric = trial.get("FinalHyperParameterTuningJobObjectiveMetric")
        tuned = " ".join(f"{k}={v}" for k, v in trial["TunedHyperParameters"].items())
        table.add_row(
            trial["TrainingJobName"],
            tuned,
            trial["TrainingJobStatus"],
            f"{metric['Value']:.4g}" if metric else "",
        )
    return table


def deploy_job(job: str, endpoint: str, instances: int, must_exist: bool, reason: str) -> None:
    with clear_failures():
        console.print(f"deploying the model of {job} to endpoint [bold]{endpoint}[/] ...")
        description = models.promote(
            CliSettings(), job, endpoint, reason, instances, must_exist=must_exist
        )
    if description["EndpointStatus"] != "InService" or description.get("FailureReason"):
        fail(f"endpoint {endpoint}: {description.get('FailureReason', 'failed')}", 1)
    console.print(
        f"endpoint [bold]{endpoint}[/] InService with {description['EndpointConfigName']}; "
        f"champion: {job}"
    )


@app.command("deploy-model")
def deploy_model(
    job: Annotated[str, typer.Argument(help="a completed training job")],
    endpoint: EndpointName = "postwerk-emails",
    instances: Instances = 1,
) -> None:
    """Serve a training job's model: create the endpoint, or update it blue/green."""
    deploy_job(job, endpoint, instances, must_exist=False, reason="postwerk deploy-model")


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="a model version (its training job's name)")],
    endpoint: EndpointName = "postwerk-emails",
    instances: Instances = 1,
) -> None:
    """Make a version the champion: swap the endpoint to it (blue/green, no failed request)."""
    deploy_job(version, endpoint, instances, must_exist=True, reason="postwerk promote")


@app.command()
def rollback(
    endpoint: EndpointName = "postwerk-emails",
    instances: Instances = 1,
) -> None:
    """Serve the previous champion again."""
    with clear_failures():
        version = models.previous_champion(sagemaker.artifact_bucket(CliSettings().bucket))
    deploy_job(version, endpoint, instances, must_exist=True, reason="postwerk rollback")


@app.command("models")
def list_models() -> None:
    """The registered model versions, oldest first; the champion is marked."""
    with clear_failures():
        bucket = sagemaker.artifact_bucket(CliSettings().bucket)
        entries = registry.versions(bucket)
        current = (registry.champion(bucket) or {}).get("version")
    table = Table(title=f"model versions in s3://{bucket}/registry/ (* champion)")
    for column in ("", "version", "model", "split", "accuracy", "macro-F1", "data"):
        table.add_column(column)
    for entry in entries:
        info = entry["model_info"]
        split, scores = next(iter(info["metrics"].items()), ("", {}))
        table.add_row(
            "*" if entry["version"] == current else "",
            entry["version"],
            info["version"],
            split,
            f"{scores.get('accuracy', float('nan')):.4f}",
            f"{scores.get('macro_f1', float('nan')):.4f}",
            f"{len(entry['data_manifest'])} files",
        )
    console.print(table)


@app.command()
def predict(
    text: Annotated[str | None, typer.Argument(help="the e-mail's text")] = None,
    file: Annotated[Path | None, typer.Option(exists=True, help="an .eml file instead")] = None,
    endpoint: EndpointName = "postwerk-emails",
) -> None:
    """Classify one e-mail through InvokeEndpoint."""
    if (text is None) == (file is None):
        fail("give the e-mail as TEXT or as --file, not both", 2)
    instance = {"body": text} if file is None else read_eml(file)
    with clear_failures():
        try:
            answer = sagemaker.predict(endpoint, [instance])
        except ClientError as error:
            if error.response["Error"]["Code"] == "ModelError":
                fail(error.response["Error"]["Message"], 1)
            raise
    prediction = answer["predictions"][0]
    model = answer["model"]
    table = Table(title=f"{endpoint}", caption=f"model {model['name']} {model['version']}")
    table.add_column("category")
    table.add_column("score", justify="right")
    for candidate in prediction["top_k"]:
        table.add_row(candidate["label"], f"{candidate['score']:.3f}")
    console.print(table)


def read_eml(path: Path) -> dict[str, str]:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain", "html"))
    return {
        "subject": str(message["subject"] or ""),
        "body": body.get_content() if body is not None else "",
    }
