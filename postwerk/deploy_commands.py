"""`postwerk deploy`: the pipeline's stack to the local AWS or to AWS, and on AWS the model
image and endpoint too (the calls are in postwerk/deploy.py)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from postwerk import cost_commands, local, sagemaker
from postwerk import deploy as stack
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.local_commands import remember_stack
from postwerk.output import console
from postwerk.reply_commands import rebuild_index_for_new_model
from postwerk.settings import (
    SERVERLESS_MAX_CONCURRENCY,
    SERVERLESS_MEMORY_MB,
    CliSettings,
    MaxConcurrencyOption,
    MemoryOption,
)
from services import clients, lifecycle
from services.settings import FunctionSettings


def deploy(
    target: Annotated[str, typer.Option(help="local (the running local AWS) or aws")] = "local",
    dry_run: Annotated[bool, typer.Option(help="print the plan, change nothing")] = False,
    region: Annotated[str | None, typer.Option(help="AWS region (default: your config)")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile (default chain)")] = None,
    image: Annotated[str | None, typer.Option(help="aws: a pushed model image URI")] = None,
    model: Annotated[Path | None, typer.Option(help="aws: model.tar.gz to serve")] = None,
    instances: Annotated[int, typer.Option(min=1, help="aws: endpoint replicas")] = 1,
    serverless: Annotated[
        bool, typer.Option(help="aws: a serverless endpoint (nothing to pay while idle)")
    ] = False,
    memory: MemoryOption = SERVERLESS_MEMORY_MB,
    max_concurrency: MaxConcurrencyOption = SERVERLESS_MAX_CONCURRENCY,
    review_threshold: Annotated[
        float | None, typer.Option(min=0, max=1, help="default: the functions' setting")
    ] = None,
    routing: Annotated[
        Path | None,
        typer.Option(
            help="routing table JSON (default: POSTWERK_ROUTING_TABLE, else the template's)"
        ),
    ] = None,
    support_address: Annotated[
        str | None,
        typer.Option(
            help="replies go out from it (default: POSTWERK_SUPPORT_ADDRESS; local: "
            f"{stack.LOCAL_SUPPORT_ADDRESS})"
        ),
    ] = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option(help="aws: TEAM=https://... a team's helpdesk webhook (repeatable)"),
    ] = None,
    webhook_secret: Annotated[
        str, typer.Option(help="aws: Secrets Manager secret with the helpdesk's API key")
    ] = "",
    mail_to: Annotated[
        str,
        typer.Option(
            envvar="POSTWERK_MAIL_RECIPIENTS",
            help="aws: receive mail for these domains/addresses through SES (comma-separated)",
        ),
    ] = "",
    emails_per_day: Annotated[
        float, typer.Option(min=1, help="aws --dry-run: the volume the monthly cost is for")
    ] = cost_commands.DEFAULT_EMAILS_PER_DAY,
) -> None:
    """Deploy the pipeline's stack; with --target aws also push the model image, upload the
    model and create or update the endpoint. The same steps as the local deploy."""
    overrides = {"routing_table": routing, "support_address": support_address}
    settings = CliSettings(**{key: value for key, value in overrides.items() if value is not None})
    if target not in ("local", "aws"):
        raise CommandError(f"--target {target}: choose local or aws")
    if region or profile:
        clients.use(region, profile)
    if target == "local":
        running = local.find(settings.state_dir)
        if running is None:
            raise CommandError("the local AWS is not running: start it with `make up`")
        deploy_target = stack.target_for(running.backend)
    else:
        deploy_target = stack.target_for("aws")
    bucket = sagemaker.artifact_bucket(settings.bucket)
    if target == "aws" and not settings.review_token.strip():
        raise CommandError(
            "the review page's API serves customer e-mails: set POSTWERK_REVIEW_TOKEN "
            "(a long random string staff enter on the page) before deploying to AWS"
        )
    if review_threshold is None:
        review_threshold = FunctionSettings.model_fields["review_threshold"].default
    template = stack.stack_settings(settings, target == "aws", webhook or [], webhook_secret) | {
        "ReviewThreshold": str(review_threshold),
        "MailRecipients": mail_to.replace(" ", "") if target == "aws" else "",
    }
    if dry_run:
        show_plan(settings, deploy_target, bucket, template, image, model)
        if target == "aws":
            show_monthly_cost(settings, template, instances, emails_per_day, serverless)
        return
    outputs = stack.deploy_pipeline(
        deploy_target, settings.stack_name, bucket, template, say=console.print
    )
    show_outputs(settings.stack_name, outputs)
    if target == "local":
        remember_stack(settings, bucket, outputs)
    if target == "aws":
        config = sagemaker.serverless_config(memory, max_concurrency) if serverless else None
        serve_on_aws(settings, outputs, bucket, image, model, instances, config)
        if mx := stack.activate_mail_receiving(outputs):
            console.print(f"mail receiving is on: set the MX record of {mail_to} to {mx}")


def serve_on_aws(settings, outputs, bucket, image, model, instances, serverless=None) -> None:
    """serverless: a ServerlessConfig, or None for `instances` replicas."""
    image = image or stack.push_image("postwerk-model", say=console.print)
    model_url = stack.upload_model(model or default_model(settings), bucket)
    console.print(f"serving {model_url} with {image} on [bold]{settings.endpoint_name}[/] ...")
    serving = sagemaker.serving(
        settings, instances, image, outputs["SageMakerRoleArn"], serverless=serverless
    )
    console.print(f"  {serving.describe()}")
    lifecycle.serve(settings.endpoint_name, model_url, serving, name="postwerk")
    description = lifecycle.wait_for_endpoint(settings.endpoint_name)
    if description["EndpointStatus"] != "InService":
        reason = description.get("FailureReason", "failed")
        raise CommandError(f"endpoint: {reason}", RAN_AND_FAILED)
    console.print(f"endpoint [bold]{settings.endpoint_name}[/] InService")
    rebuild_index_for_new_model(bucket, settings.endpoint_name)


def default_model(settings: CliSettings) -> Path:
    return settings.state_dir / "models" / "model.tar.gz"


def show_plan(settings, deploy_target, bucket, template, image, model) -> None:
    archive = stack.build_package(
        stack.build_folder(), deploy_target.lambda_python, deploy_target.lambda_machine
    )
    parameters = (
        {"CodeBucket": bucket, "CodeKey": stack.package_key(archive)}
        | template
        | deploy_target.parameters()
    )
    changes = stack.plan_stack(settings.stack_name, parameters)
    console.print(f"[bold]plan[/] for {deploy_target.backend} (nothing was changed):")
    console.print(f"  upload {archive.name} to s3://{bucket}/{parameters['CodeKey']}")
    console.print(f"  stack {settings.stack_name}: {len(changes) or 'no'} change(s)")
    for change in changes:
        console.print(f"    {change}")
    if deploy_target.backend == "aws":
        console.print(f"  image: {image or 'build model/Dockerfile, push to ECR postwerk-model'}")
        console.print(f"  model: upload {model or default_model(settings)} to s3://{bucket}")
        verb = "update" if lifecycle.endpoint_exists(settings.endpoint_name) else "create"
        console.print(f"  endpoint {settings.endpoint_name}: {verb} (blue/green)")


def show_monthly_cost(settings, template, instances, emails_per_day, serverless=False) -> None:
    """What the planned stack would cost a month (postwerk cost, with these parameters)."""
    region = clients.region() or cost_commands.DEFAULT_REGION
    deployment = cost_commands.describe_deployment(
        settings, template, region, emails_per_day, serverless=serverless, instances=instances
    )
    cost_commands.show_cost(deployment)


def show_outputs(stack_name: str, outputs: dict[str, str]) -> None:
    table = Table(title=f"stack {stack_name}")
    table.add_column("output")
    table.add_column("value")
    for key, value in outputs.items():
        table.add_row(key, value)
    console.print(table)


COMMANDS = {"deploy": deploy}
