"""`postwerk deploy`: package the functions, upload them, create or update the stack; on
AWS also push the model image and serve a model.

One zip holds `services/` and its dependencies (the `services` extra of pyproject.toml;
boto3 comes with the Lambda runtime). Its key is a hash of its content, so the functions
update exactly when their code or dependencies change. The same steps deploy to the
embedded emulator, to Docker Compose and to AWS; a `Target` holds what differs.
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError
from pydantic import ValidationError

from postwerk import compose
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.sagemaker import ensure_bucket
from postwerk.settings import REPO_ROOT, CliSettings
from services import clients, waits
from services.settings import RoutingTable

TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
AWS_LAMBDA_PYTHON = "3.12"  # the template's LambdaRuntime default
COMPOSE_SAGEMAKER_URL = "http://sagemaker:4567"  # the service, seen from Lambda containers
LOCAL_SUPPORT_ADDRESS = "support@postwerk.localhost"  # the local SMTP receiving's domain
STACK_POLLS = 720  # a stack's creation or update is waited for this many polls
CHANGE_SET_TIMEOUT_S = 600


@dataclass(frozen=True)
class Target:
    """What differs between the places the stack goes: template parameters, no code."""

    backend: str  # embedded | compose | aws
    lambda_python: str | None  # None: this interpreter (the embedded emulator runs handlers)
    emulator_mapping: bool  # the emulator's own mappings off, postwerk's runner on
    sagemaker_runtime_url: str  # where classify calls InvokeEndpoint; "" = AWS's default
    lambda_machine: str = "x86_64"  # the processor the functions' wheels are built for

    def parameters(self) -> dict[str, str]:
        python = self.lambda_python or f"{sys.version_info.major}.{sys.version_info.minor}"
        parameters = {"LambdaRuntime": f"python{python}"}
        if self.emulator_mapping:
            parameters |= {
                "EmulatorMapping": "true",
                "SageMakerRuntimeEndpointUrl": self.sagemaker_runtime_url,
            }
        return parameters


def target_for(backend: str) -> Target:
    if backend == "embedded":
        url = os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "")
        return Target(backend, None, emulator_mapping=True, sagemaker_runtime_url=url)
    if backend == "compose":  # MiniStack runs the functions in its container, on its Python
        machine = compose.engine().info()["Architecture"]
        return Target(backend, compose.LAMBDA_PYTHON, True, COMPOSE_SAGEMAKER_URL, machine)
    return Target("aws", AWS_LAMBDA_PYTHON, emulator_mapping=False, sagemaker_runtime_url="")


def stack_settings(
    settings: CliSettings, on_aws: bool, webhooks: list[str] = (), webhook_secret: str = ""
) -> dict[str, str]:
    """The template parameters the user chooses: endpoint, review token, support address,
    routing table and the teams' webhooks (TEAM=https://..., the key in Secrets Manager)."""
    parameters = {
        "EndpointName": settings.endpoint_name,
        "ReviewToken": settings.review_token,
        "SupportAddress": settings.support_address or ("" if on_aws else LOCAL_SUPPORT_ADDRESS),
    }
    teams = template_teams()
    if settings.routing_table:
        table = read_routing_table(settings.routing_table)
        unknown = sorted(({table.default} | set(table.teams.values())) - teams)
        if unknown:
            raise CommandError(
                f"{settings.routing_table}: no queue for team(s) {', '.join(unknown)} in "
                f"{TEMPLATE.name} (teams: {', '.join(sorted(teams))}); add its queue and rule"
            )
        parameters["RoutingTable"] = table.model_dump_json()
    if webhooks and not on_aws:
        raise CommandError("--webhook needs --target aws: the local EventBridge (MiniStack) "
                           "cannot create API destinations")  # fmt: skip
    for webhook in webhooks:
        team, _, url = webhook.partition("=")
        if team not in teams or not url.startswith("https://"):
            raise CommandError(
                f"--webhook {webhook}: expected TEAM=https://... with TEAM one of "
                f"{', '.join(sorted(teams))}"
            )
        parameters[f"{team.capitalize()}WebhookUrl"] = url
    if webhooks and not webhook_secret:
        raise CommandError("--webhook needs --webhook-secret: the Secrets Manager secret "
                           "that holds the helpdesk's API key")  # fmt: skip
    if webhook_secret:
        parameters["WebhookSecretName"] = webhook_secret
    if on_aws and settings.mailbox_schedule:
        parameters["MailboxSchedule"] = settings.mailbox_schedule
    return parameters


def read_routing_table(path: Path) -> RoutingTable:
    try:
        return RoutingTable.model_validate_json(path.read_bytes())
    except OSError as error:
        raise CommandError(f"cannot read the routing table {path}: {error.strerror}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise CommandError(f"routing table {path}: {where}: {first['msg']}") from None


def template_teams() -> set[str]:
    """The teams the template has a queue for (TeamCareQueue -> care)."""
    return {name.lower() for name in re.findall(r"^  Team(\w+)Queue:", TEMPLATE.read_text(), re.M)}


def deploy_pipeline(
    target: Target,
    stack_name: str,
    bucket: str,
    settings: dict[str, str],
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Package, upload and deploy the stack; returns its outputs. settings: the template's
    own parameters (stack_settings, ReviewThreshold, ...)."""
    say("packaging the functions ...")
    archive = build_package(build_folder(), target.lambda_python, target.lambda_machine)
    code = {"CodeBucket": bucket, "CodeKey": upload_package(archive, bucket)}
    say(f"deploying stack {stack_name} ...")
    return deploy_stack(stack_name, code | settings | target.parameters())


def build_folder() -> Path:
    folder = REPO_ROOT / ".postwerk" / "build"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def requirements() -> list[str]:
    """The `services` extra of pyproject.toml (the checkout's, not an installed copy's
    metadata, which goes stale when the file changes without a reinstall)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    found = project.get("optional-dependencies", {}).get("services", [])
    if not found:
        raise CommandError(f"no 'services' extra in {REPO_ROOT / 'pyproject.toml'}")
    return found


# What the functions import of model/: the monitor's ECE is training's (numpy only).
SHARED_MODEL_MODULES = ("__init__.py", "calibration.py")


def build_package(build_dir: Path, python_version: str | None, machine: str = "x86_64") -> Path:
    """The functions' zip. python_version None: for this interpreter (the local emulator
    runs handlers on a Python like ours); else manylinux wheels for that Python on that
    machine (AWS Lambda's x86_64, or the Compose engine's)."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}-here"
    target = here if python_version is None else f"{python_version}-{machine}"
    wanted = requirements()
    deps = build_dir / f"deps-{target}-{digest(' '.join(wanted).encode())[:12]}"
    if not deps.is_dir():
        platform = (
            []
            if python_version is None
            else [
                "--platform",
                f"manylinux2014_{machine}",
                "--implementation",
                "cp",
                "--python-version",
                python_version,
                "--only-binary=:all:",
            ]
        )
        staging = deps.with_suffix(".partial")
        shutil.rmtree(staging, ignore_errors=True)
        installed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "--target",
                str(staging),
                *platform,
                *wanted,
            ],
            capture_output=True,  # pip's warnings are noise here; its errors are shown below
            text=True,
            check=False,
        )
        if installed.returncode != 0:
            reason = installed.stderr.strip()[-2000:]
            raise CommandError(f"installing the functions' dependencies failed:\n{reason}")
        staging.rename(deps)
    code = sorted(p for p in (REPO_ROOT / "services").rglob("*") if p.suffix in (".py", ".html"))
    code += [REPO_ROOT / "model" / name for name in SHARED_MODEL_MODULES]
    content = hashlib.sha256(deps.name.encode())
    for path in code:
        content.update(path.relative_to(REPO_ROOT).as_posix().encode() + path.read_bytes())
    archive = build_dir / f"functions-{target}-{content.hexdigest()[:16]}.zip"
    if archive.is_file():  # the same code and dependencies: zipping again takes seconds
        return archive
    partial = archive.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(p for p in deps.rglob("*") if p.is_file()):
            zipped.write(path, path.relative_to(deps).as_posix())
        for path in code:  # the functions, the review page, model/calibration.py
            zipped.write(path, path.relative_to(REPO_ROOT).as_posix())
    for stale in build_dir.glob(f"functions-{target}-*.zip"):
        stale.unlink()
    return partial.rename(archive)


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def package_key(archive: Path) -> str:
    return f"functions/{digest(archive.read_bytes())[:16]}.zip"


def upload_package(archive: Path, bucket: str) -> str:
    ensure_bucket(bucket)
    key = package_key(archive)
    clients.client("s3").upload_file(str(archive), bucket, key)
    return key


def stack_arguments(name: str, parameters: dict[str, str]) -> dict:
    return {
        "StackName": name,
        "TemplateBody": TEMPLATE.read_text(),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_IAM"],
    }


def stack_exists(name: str) -> bool:
    try:
        stack = clients.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except ClientError:
        return False
    return stack["StackStatus"] != "REVIEW_IN_PROGRESS"  # a change set's placeholder


def deploy_stack(name: str, parameters: dict[str, str]) -> dict[str, str]:
    """Create or update the stack and wait; returns its outputs."""
    cloudformation = clients.client("cloudformation")
    arguments = stack_arguments(name, parameters)
    delay = 1 if os.environ.get("AWS_ENDPOINT_URL") else 10
    delete_failed_creation(name, delay)
    try:
        if stack_exists(name):
            cloudformation.update_stack(**arguments)
            waiter = "stack_update_complete"
        else:
            cloudformation.create_stack(**arguments)
            waiter = "stack_create_complete"
    except ClientError as error:
        if "No updates are to be performed" not in str(error):
            raise
        return stack_outputs(name)
    waits.until(cloudformation, waiter, f"stack {name}", STACK_POLLS * delay, delay,
                StackName=name)  # fmt: skip
    status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        message = f"stack {name} did not deploy: {stack_failure(name)}"
        raise CommandError(message, RAN_AND_FAILED)
    return stack_outputs(name)


def delete_failed_creation(name: str, delay: float) -> None:
    """A stack whose creation failed (ROLLBACK_COMPLETE) can only be deleted: it is, so
    that the deploy creates it again."""
    cloudformation = clients.client("cloudformation")
    try:
        status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError:
        return
    if status == "ROLLBACK_COMPLETE":
        cloudformation.delete_stack(StackName=name)
        waits.until(cloudformation, "stack_delete_complete", f"stack {name} (its failed "
                    "creation)", STACK_POLLS * delay, delay, StackName=name)  # fmt: skip


def plan_stack(name: str, parameters: dict[str, str]) -> list[str]:
    """What deploying would change, from a change set that is deleted again: one line per
    resource ("Add RawBucket (AWS::S3::Bucket)"). Nothing is created or modified."""
    cloudformation = clients.client("cloudformation")
    exists = stack_exists(name)
    change_set = f"postwerk-plan-{int(time.time())}"
    cloudformation.create_change_set(
        ChangeSetName=change_set,
        ChangeSetType="UPDATE" if exists else "CREATE",
        **stack_arguments(name, parameters),
    )
    try:
        described = wait_for_change_set(name, change_set)
    finally:
        cloudformation.delete_change_set(StackName=name, ChangeSetName=change_set)
        if not exists:  # CREATE change sets leave an empty REVIEW_IN_PROGRESS stack
            cloudformation.delete_stack(StackName=name)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            return []
        raise CommandError(f"stack {name}: the change set failed: {reason}", RAN_AND_FAILED)
    return [
        f"{change['Action']} {change['LogicalResourceId']} ({change['ResourceType']})"
        for change in (item["ResourceChange"] for item in described.get("Changes", []))
    ]


def wait_for_change_set(stack: str, change_set: str) -> dict:
    """The change set's description once it is created, or failed."""
    cloudformation = clients.client("cloudformation")
    waits.until(cloudformation, "change_set_create_complete", f"change set {change_set}",
                CHANGE_SET_TIMEOUT_S, 1, StackName=stack, ChangeSetName=change_set)  # fmt: skip
    return cloudformation.describe_change_set(StackName=stack, ChangeSetName=change_set)


def stack_outputs(name: str) -> dict[str, str]:
    stack = clients.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def activate_mail_receiving(outputs: dict[str, str]) -> str | None:
    """Make the stack's receipt rule set SES's active one (CloudFormation cannot); the MX
    record the recipients' domains need. None when the stack receives no mail."""
    rule_set = outputs.get("MailRuleSet")
    if not rule_set:
        return None
    ses = clients.client("ses")
    ses.set_active_receipt_rule_set(RuleSetName=rule_set)
    return f"10 inbound-smtp.{ses.meta.region_name}.amazonaws.com"


def stack_failure(name: str) -> str:
    events = clients.client("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
    failed = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]
    return "; ".join(failed[:3]) or "no failed resource reported"


def upload_model(archive: Path, bucket: str) -> str:
    """A model.tar.gz to s3://bucket/models/uploaded/<hash>/: the same model, the same URL."""
    if not archive.is_file():
        raise CommandError(f"no model archive at {archive} (make up writes one; or pass --model)")
    ensure_bucket(bucket)
    key = f"models/uploaded/{digest(archive.read_bytes())[:16]}/model.tar.gz"
    clients.client("s3").upload_file(str(archive), bucket, key)
    return f"s3://{bucket}/{key}"


def image_tag() -> str:
    """The commit the image is built from (with -dirty for uncommitted changes)."""
    describe = ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"]
    result = subprocess.run(describe, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "latest"


def push_image(repository: str, say: Callable[[str], None] = print) -> str:
    """Build model/Dockerfile for SageMaker's instances (torch from PyPI, with CUDA, for the
    GPU training instances) and push it to the ECR repository (created when missing)."""
    if not compose.engine_answers():
        raise CommandError(
            "building the model image needs a Docker engine; build and push it elsewhere "
            "and pass --image URI"
        )
    project, _ = compose.prepare(dict(os.environ), ports={}, gpus=True)
    ecr = clients.client("ecr")
    try:
        uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0][
            "repositoryUri"
        ]
    except ecr.exceptions.RepositoryNotFoundException:
        uri = ecr.create_repository(
            repositoryName=repository, imageScanningConfiguration={"scanOnPush": True}
        )["repository"]["repositoryUri"]
    tag = image_tag()
    say(f"building and pushing {uri}:{tag} ...")
    project.run("--profile", "model", "build", "model")
    client = compose.engine()
    client.images.get(compose.MODEL_IMAGE).tag(uri, tag)
    authorization = ecr.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(authorization["authorizationToken"]).decode().split(":", 1)
    credentials = {"username": user, "password": password}
    for progress in client.images.push(uri, tag, auth_config=credentials, stream=True, decode=True):
        if "error" in progress:
            raise CommandError(f"pushing {uri}:{tag} failed: {progress['error']}", RAN_AND_FAILED)
    return f"{uri}:{tag}"
