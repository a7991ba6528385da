"""`postwerk train`, `tune` and `predict`: SageMaker training and tuning jobs, and one
prediction through InvokeEndpoint (the calls are in postwerk/sagemaker.py)."""

import json
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import ClientError
from rich.live import Live
from rich.table import Table

from postwerk import dataset as datasets
from postwerk import sagemaker
from postwerk.deploy import image_tag
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.output import console, follow_training_job
from postwerk.settings import CliSettings, EndpointOption
from services import clients, registry
from services.lifecycle import job_name

DataPath = Annotated[
    Path | None, typer.Argument(exists=True, help="a .jsonl/.csv file or a folder")
]
DatasetOption = Annotated[
    str | None,
    typer.Option("--dataset", help="NAME or NAME:VERSION from `postwerk dataset build`"),
]
OptionalData = Annotated[Path | None, typer.Option(exists=True, help="file or folder")]
Hyperparameters = Annotated[
    list[str], typer.Option("--hyperparameter", "-p", help="name=value (repeatable)")
]
SpotOption = Annotated[
    bool | None,
    typer.Option(
        "--spot/--no-spot",
        help="managed spot training, resumed from checkpoints when interrupted "
        "(default: on AWS unless POSTWERK_SPOT=false; off on the local stack)",
        show_default=False,
    ),
]


def channels(train: Path, validation: Path | None, test: Path | None) -> dict[str, Path]:
    named = {"train": train, "validation": validation, "test": test}
    return {channel: path for channel, path in named.items() if path is not None}


def training_inputs(
    settings: CliSettings, job: str, files: dict[str, Path | None], dataset: str | None
) -> list[dict]:
    """InputDataConfig: the files uploaded for this job, or a built data set's splits."""
    if dataset is None:
        if files["train"] is None:
            raise CommandError("give DATA (a .jsonl/.csv file or folder) or --dataset NAME")
        return sagemaker.upload_channels(settings, job, channels(**files))
    if any(files.values()):
        raise CommandError(
            "--dataset brings its own splits: give it without DATA, --validation, --test"
        )
    bucket = sagemaker.artifact_bucket(settings.bucket)
    try:
        return datasets.channels(bucket, datasets.card(bucket, dataset))
    except datasets.DatasetError as error:
        raise CommandError(str(error)) from error


def train(
    data: DataPath = None,
    validation: OptionalData = None,
    test: OptionalData = None,
    dataset: DatasetOption = None,
    hyperparameter: Hyperparameters = [],  # noqa: B006 (Typer reads the default)
    name: Annotated[str | None, typer.Option(help="job name")] = None,
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
    spot: SpotOption = None,
) -> None:
    """Train the classifier as a SageMaker training job: upload the data, run, show metrics."""
    settings = CliSettings()
    job = name or job_name("postwerk")
    hyperparameters = sagemaker.parse_hyperparameters(hyperparameter)
    files = {"train": data, "validation": validation, "test": test}
    inputs = training_inputs(settings, job, files, dataset)
    definition = sagemaker.training_definition(settings, inputs, hyperparameters)
    if sagemaker.wants_spot(settings, spot):
        definition = sagemaker.with_spot(settings, definition, job)
    clients.client("sagemaker").create_training_job(TrainingJobName=job, **definition)
    spot_note = " (managed spot training)" if "CheckpointConfig" in definition else ""
    console.print(f"training job [bold]{job}[/] created{spot_note}")
    if not wait:
        return
    status = follow_training_job(job)
    show_metrics(job)
    if status != "Completed":
        message = f"training job {job} {status.lower()}: {failure_reason(job)}"
        raise CommandError(message, RAN_AND_FAILED)
    registry.register_job(sagemaker.artifact_bucket(settings.bucket), job, image_tag())
    console.print(f"registered as model [bold]{job}[/] (postwerk models)")


def show_metrics(job: str) -> None:
    description = clients.client("sagemaker").describe_training_job(TrainingJobName=job)
    table = Table(title=f"{job}: {description['TrainingJobStatus']}")
    table.add_column("metric")
    table.add_column("final value", justify="right")
    for metric in description.get("FinalMetricDataList", []):
        table.add_row(metric["MetricName"], f"{metric['Value']:.4g}")
    console.print(table)
    if "ModelArtifacts" in description:
        console.print(f"model: {description['ModelArtifacts']['S3ModelArtifacts']}")
    billing = sagemaker.billing_summary(description)
    if billing:
        console.print(billing)


def failure_reason(job: str) -> str:
    description = clients.client("sagemaker").describe_training_job(TrainingJobName=job)
    return description.get("FailureReason", "no reason given")


def tune(
    config: Annotated[Path, typer.Argument(exists=True, help="HyperParameterTuningJobConfig JSON")],
    data: DataPath = None,
    validation: OptionalData = None,
    test: OptionalData = None,
    dataset: DatasetOption = None,
    hyperparameter: Hyperparameters = [],  # noqa: B006 (Typer reads the default)
    name: Annotated[str | None, typer.Option(help="tuning job name (<= 32 chars)")] = None,
    spot: SpotOption = None,
) -> None:
    """Search hyperparameters with a tuning job (CONFIG: AWS's HyperParameterTuningJobConfig).

    The same CONFIG file is valid for a real CreateHyperParameterTuningJob; -p sets the
    static hyperparameters."""
    settings = CliSettings()
    job = name or job_name("tune")[:32]
    try:
        tuning_config = json.loads(config.read_text())
    except json.JSONDecodeError as error:
        raise CommandError(f"{config}: not JSON ({error})") from error
    files = {"train": data, "validation": validation, "test": test}
    inputs = training_inputs(settings, job, files, dataset)
    definition = sagemaker.training_definition(settings, inputs, {})
    if sagemaker.wants_spot(settings, spot):
        definition = sagemaker.with_spot(settings, definition, job)
    definition["StaticHyperParameters"] = sagemaker.parse_hyperparameters(hyperparameter)
    del definition["HyperParameters"]
    clients.client("sagemaker").create_hyper_parameter_tuning_job(
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
        raise CommandError(
            f"tuning job {job} {final['HyperParameterTuningJobStatus'].lower()}: "
            f"{final.get('FailureReason', 'no reason given')}",
            RAN_AND_FAILED,
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


def predict(
    text: Annotated[str | None, typer.Argument(help="the e-mail's text")] = None,
    file: Annotated[Path | None, typer.Option(exists=True, help="an .eml file instead")] = None,
    endpoint: EndpointOption = None,
) -> None:
    """Classify one e-mail through InvokeEndpoint (an .eml file is read as ingest reads it)."""
    endpoint = endpoint or CliSettings().endpoint_name
    if (text is None) == (file is None):
        raise CommandError("give the e-mail as TEXT or as --file, not both")
    instance = {"body": text} if file is None else read_eml(file)
    try:
        answer = sagemaker.predict(endpoint, [instance])
    except ClientError as error:
        if error.response["Error"]["Code"] == "ModelError":
            raise CommandError(error.response["Error"]["Message"], RAN_AND_FAILED) from None
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
    """The instance the pipeline would send for this e-mail: the same parser as ingest
    (imported here: its language model takes a while to load, every other command skips it)."""
    from services.mail import NotAnEmail, parse_email

    try:
        email = parse_email(path.read_bytes(), "local", path.name)
    except NotAnEmail as error:
        raise CommandError(f"{path}: {error}") from None
    return {"id": email.message_id, "subject": email.subject, "body": email.body_text}


COMMANDS = {"train": train, "tune": tune, "predict": predict}
