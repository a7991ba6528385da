"""`postwerk up`, `down`, `status` and `env`: the whole pipeline on this machine.

`up` starts the local AWS (embedded or Docker Compose), deploys the stack, makes sure a
model serves (training the default one on the bundled samples the first time), sends the
sample e-mails and shows their results, then shows live counts until Ctrl-C.
"""

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.live import Live
from rich.table import Table

from postwerk import deploy as stack
from postwerk import (
    local,
    mailbox_commands,
    model_commands,
    pipeline,
    pipeline_commands,
    recovery,
    sagemaker,
    samples,
)
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.output import console, follow_training_job, shell_command
from postwerk.reply_commands import seed_example_templates
from postwerk.settings import REPO_ROOT, CliSettings
from services import clients, lifecycle

SAMPLE_EMAILS = REPO_ROOT / "examples" / "emails"
DEFAULT_JOB_PREFIX = "postwerk-default"
DEFAULT_HYPERPARAMETERS = {"epochs": "3", "learning_rate": "3e-4", "batch_size": "16"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def up(
    detach: Annotated[bool, typer.Option(help="return once ready (for scripts)")] = False,
    backend: Annotated[
        str | None, typer.Option(envvar="BACKEND", help="embedded or compose (default: auto)")
    ] = None,
    hyperparameter: Annotated[
        list[str], typer.Option("--hyperparameter", "-p", help="for the first training")
    ] = [],  # noqa: B006 (Typer reads the default)
    send_samples: Annotated[bool, typer.Option(help="send the bundled e-mails")] = True,
) -> None:
    """Bring the whole pipeline up on this machine and show it working.

    Ctrl-C, SIGTERM or a closed terminal (SIGHUP) stop everything it started, also while
    it is still starting."""
    settings = CliSettings()
    started = time.monotonic()
    with stop_signals_interrupt():
        try:
            running, ours = start_local_aws(settings, backend)
        except KeyboardInterrupt:
            local.stop(settings.state_dir)  # what the Compose backend started so far
            console.print("\ninterrupted while starting the local AWS; nothing left running")
            raise typer.Exit(130) from None
        try:
            outputs = make_ready(settings, running, hyperparameter, send_samples, started, ours)
        except KeyboardInterrupt:
            stopped_while_starting(settings, ours)
        if detach:
            console.print("`make down` (or `postwerk down`) stops it.")
            return
        try:
            watch(outputs)
        finally:
            stop(settings)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt `up` as Ctrl-C does. Once one came, every further stop
    signal is ignored, so that stopping what `up` started always runs to its end."""

    def interrupt(number: int, frame) -> None:
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(number).name)

    previous = {number: signal.signal(number, interrupt) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def make_ready(
    settings: CliSettings,
    running: local.LocalAws,
    hyperparameter: list[str],
    send_samples: bool,
    started: float,
    started_aws: bool,
) -> dict[str, str]:
    """Deploy the stack, make sure a model serves, seed the example reply templates, send
    again what a crash left unprocessed (when this `up` started the local AWS), send the
    samples; the stack's outputs."""
    os.environ.update(running.env)  # every boto3 client from here on talks to it
    bucket = sagemaker.artifact_bucket(settings.bucket)
    set_aside = recovery.set_aside([bucket, *recovery.stack_buckets()])
    if set_aside:
        console.print(f"the local AWS crashed before: its buckets {', '.join(set_aside)} came "
                      "back bare; their objects wait in holding buckets until they are made "
                      "again")  # fmt: skip
    sagemaker.ensure_bucket(bucket)
    recovery.restore()  # the artifacts bucket (the stack's wait for the stack)
    outputs = stack.deploy_pipeline(
        stack.target_for(running.backend),
        settings.stack_name,
        bucket,
        stack.stack_settings(settings, on_aws=False),
        say=console.print,
    )
    remember_stack(settings, bucket, outputs)
    ensure_model(settings, sagemaker.parse_hyperparameters(hyperparameter))
    seed_example_templates(bucket)
    if started_aws:
        redriven = pipeline.redrive(outputs)
        if redriven:
            console.print(
                f"sent {len(redriven)} e-mail(s) from incoming/ through the pipeline again: "
                "stored, but neither classified nor rejected (a crash of the local AWS "
                "loses S3's notifications)"
            )
    for restored, count in recovery.restore().items():  # after the redrive: not sent twice
        again = " (its incoming/ e-mails go through the pipeline again)"
        note = again if restored == outputs["RawBucket"] else ""
        console.print(f"restored {count} object(s) of {restored}, set aside after a crash of "
                      f"the local AWS{note}")  # fmt: skip
    console.print(f"[green]ready[/] in {time.monotonic() - started:.1f} s")
    console.print(f"review page: [bold]{pipeline.review_url(outputs)}[/]")
    if send_samples:
        sent = pipeline.send(pipeline.email_files([SAMPLE_EMAILS]), outputs["RawBucket"])
        console.print(f"sent {len(sent)} sample e-mails ...")
        pipeline_commands.show_sent_results(sent, outputs)
    console.print(
        f'\nIn another shell: [bold]eval "$({shell_command()} env)"[/], then '
        "`postwerk send FOLDER`, `postwerk results`, the aws CLI or boto3."
    )
    return outputs


def stopped_while_starting(settings: CliSettings, ours: bool) -> NoReturn:
    """An interrupt before ready stops the local AWS if this `up` started it."""
    if not ours:
        console.print("\ninterrupted; the local AWS ran before `up` and keeps running")
    else:
        console.print("\ninterrupted")
        stop(settings)
    raise typer.Exit(130)


def start_local_aws(settings: CliSettings, backend: str | None) -> tuple[local.LocalAws, bool]:
    """The running local AWS, or a new one; True when this call started it."""
    running = local.find(settings.state_dir)
    if running is not None:
        console.print(f"the local AWS already runs ({running.backend}); using it")
        return running, False
    chosen, why = local.choose_backend(backend)
    console.print(f"backend: [bold]{chosen}[/] ({why})")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    ports = {"aws": settings.aws_port, "sagemaker": settings.sagemaker_port}
    ports["smtp"] = settings.smtp_port
    if chosen == "compose":
        return local.start_compose(settings.state_dir, ports, console.print), True
    console.print("starting MiniStack, the SageMaker service and the mapping runner ...")
    return local.start_embedded(settings.state_dir, *ports.values()), True


def ensure_model(settings: CliSettings, hyperparameters: dict[str, str]) -> None:
    """An endpoint in service: the one there, else the last default model, else a new one
    trained on the bundled samples."""
    endpoint = settings.endpoint_name
    if lifecycle.endpoint_exists(endpoint):
        description = lifecycle.wait_for_endpoint(endpoint)  # a restart brings it back
        if description["EndpointStatus"] == "InService":
            serving = description["EndpointConfigName"]
            console.print(f"endpoint [bold]{endpoint}[/] in service with {serving}")
            return
    job = last_default_job() or train_default_model(settings, hyperparameters)
    model_commands.serve_job(
        settings, job, endpoint, instances=1, reason="make up: the default model", must_exist=False
    )


def last_default_job() -> str | None:
    jobs = clients.client("sagemaker").list_training_jobs(
        NameContains=DEFAULT_JOB_PREFIX,
        StatusEquals="Completed",
        SortBy="CreationTime",
        SortOrder="Descending",
    )["TrainingJobSummaries"]
    return jobs[0]["TrainingJobName"] if jobs else None


def train_default_model(settings: CliSettings, hyperparameters: dict[str, str]) -> str:
    """A SageMaker training job on the generated training e-mails; keeps model.tar.gz in
    the state folder for `make deploy`."""
    folder = settings.state_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    channels = {"train": samples.TRAINING, "test": samples.HELD_OUT}
    for channel, generated in channels.items():
        rows = samples.training_rows(samples.generate(**generated))
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (folder / f"{channel}.jsonl").write_text(text)
    job = lifecycle.job_name(DEFAULT_JOB_PREFIX)
    console.print(
        f"no model yet: training [bold]{job}[/] on {samples.TRAINING['count']} generated "
        f"e-mails (held out: {samples.HELD_OUT['count']})"
    )
    paths = {channel: folder / f"{channel}.jsonl" for channel in channels}
    inputs = sagemaker.upload_channels(settings, job, paths)
    definition = sagemaker.training_definition(
        settings, inputs, DEFAULT_HYPERPARAMETERS | hyperparameters
    )
    clients.client("sagemaker").create_training_job(TrainingJobName=job, **definition)
    status = follow_training_job(job)
    if status != "Completed":
        described = clients.client("sagemaker").describe_training_job(TrainingJobName=job)
        reason = described.get("FailureReason")
        raise CommandError(f"training job {job} {status.lower()}: {reason}", RAN_AND_FAILED)
    keep_model(job, settings.state_dir / "models" / "model.tar.gz")
    return job


def keep_model(job: str, archive: Path) -> None:
    described = clients.client("sagemaker").describe_training_job(TrainingJobName=job)
    bucket, _, key = described["ModelArtifacts"]["S3ModelArtifacts"][5:].partition("/")
    archive.parent.mkdir(parents=True, exist_ok=True)
    clients.client("s3").download_file(bucket, key, str(archive))


def watch(outputs: dict[str, str]) -> None:
    """Live counts until Ctrl-C (or SIGTERM, SIGHUP)."""
    console.print("Ctrl-C stops the pipeline.")
    try:
        with Live(console=console, refresh_per_second=1) as live:
            while True:
                live.update(counts_table(pipeline.counts(outputs)))
                time.sleep(1)
    except KeyboardInterrupt:
        console.print()


def counts_table(counts: pipeline.Counts) -> Table:
    table = Table(title="pipeline (live)")
    for column in ("received", "classified", "in flight", "rejected", "dead-lettered"):
        table.add_column(column, justify="right")
    table.add_row(
        str(counts.received),
        str(counts.classified),
        str(counts.in_flight),
        str(counts.rejected),
        f"[red]{counts.dead_lettered}[/]" if counts.dead_lettered else "0",
    )
    return table


def down() -> None:
    """Stop everything `postwerk up` started (by PID), leaving no process and no port."""
    stop(CliSettings())


def stop(settings: CliSettings) -> None:
    console.print("stopping the local pipeline ...")
    stopped = local.stop(settings.state_dir)
    if stopped is None:
        console.print("nothing was running")
        return
    ports = (settings.aws_port, settings.sagemaker_port, settings.smtp_port)
    busy = [port for port in ports if local.port_in_use(port)]
    if stopped.backend == "embedded" and busy:
        message = f"stopped, but ports {busy} still answer: another program holds them"
        raise CommandError(message, RAN_AND_FAILED)
    console.print(f"stopped ({stopped.backend})")


def env() -> None:
    """Shell exports for the running local stack: eval "$(postwerk env)"."""
    settings = CliSettings()
    running = local.find(settings.state_dir)
    if running is None:
        raise CommandError("the local AWS is not running: start it with `make up`")
    exports = running.env | {
        "AWS_REGION": running.env["AWS_DEFAULT_REGION"],
        "POSTWERK_STACK_NAME": settings.stack_name,
    }
    # The SageMaker SDKs ask STS on the public endpoint for the role and the default bucket,
    # so notebooks pass both explicitly: the stack's, recorded when it was deployed.
    deployed = running.stacks.get(settings.stack_name)
    if deployed is None:
        print(f"# no stack {settings.stack_name} deployed here yet: `postwerk deploy`")
    exports |= deployed or {}
    for name, value in exports.items():
        print(f"export {name}={value}")


def remember_stack(settings: CliSettings, bucket: str, outputs: dict[str, str]) -> None:
    """The stack's bucket and role, for `env` (see local.remember_stack)."""
    role = outputs.get("SageMakerRoleArn", settings.role_arn)
    exports = {"POSTWERK_BUCKET": bucket, "POSTWERK_ROLE_ARN": role}
    local.remember_stack(settings.state_dir, settings.stack_name, exports)


def aws_configured() -> bool:
    """A region and credentials from the standard chain: there is an AWS to look at."""
    session = clients.session()
    return session.region_name is not None and session.get_credentials() is not None


def status() -> None:
    """What runs where: the local AWS, the stack, the endpoint, the pipeline's counts."""
    settings = CliSettings()
    running = local.find(settings.state_dir)
    if running is not None:
        os.environ.update(running.env)
        console.print(f"local AWS: [bold]{running.backend}[/], {local.parts(running)}")
        console.print(f"  AWS {running.env['AWS_ENDPOINT_URL']}")
        console.print(f"  SageMaker {running.env['AWS_ENDPOINT_URL_SAGEMAKER']}")
    elif os.environ.get("AWS_ENDPOINT_URL"):
        console.print(f"AWS endpoint override: {os.environ['AWS_ENDPOINT_URL']}")
    elif aws_configured():
        console.print("local AWS: not running; looking at AWS (the default credential chain)")
    else:
        raise CommandError(
            "the local AWS is not running: start it with `make up` (or `postwerk up`)"
        )
    if not stack.stack_exists(settings.stack_name):
        message = f"stack {settings.stack_name}: not deployed (make up, or postwerk deploy)"
        raise CommandError(message, RAN_AND_FAILED)
    outputs = stack.stack_outputs(settings.stack_name)
    console.print(f"stack [bold]{settings.stack_name}[/]: deployed")
    console.print(f"review page: {pipeline.review_url(outputs)}")
    if lifecycle.endpoint_exists(settings.endpoint_name):
        endpoint = clients.client("sagemaker").describe_endpoint(
            EndpointName=settings.endpoint_name
        )
        console.print(
            f"endpoint [bold]{settings.endpoint_name}[/]: {endpoint['EndpointStatus']} "
            f"({endpoint['EndpointConfigName']})"
        )
    else:
        console.print(f"endpoint {settings.endpoint_name}: [yellow]none[/]")
    console.print(counts_table(pipeline.counts(outputs)))
    from services import routing  # on use: it brings the functions' logger

    console.print(queues_table(routing.queue_depths()))
    mailbox_commands.show_health(sagemaker.artifact_bucket(settings.bucket))


def queues_table(depths: dict[str, int]) -> Table:
    table = Table(title="routing queues (waiting)")
    table.add_column("queue")
    table.add_column("messages", justify="right")
    for queue, depth in sorted(depths.items()):
        table.add_row(queue, str(depth))
    return table


COMMANDS = {"up": up, "down": down, "status": status, "env": env}
