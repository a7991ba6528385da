"""`postwerk deploy`: package the functions, upload them, create or update the stack.

One zip holds `services/` and its dependencies (the `services` extra of pyproject.toml;
boto3 comes with the Lambda runtime). Its key is a hash of its content, so the functions
update exactly when their code or dependencies change.
"""

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
from botocore.exceptions import ClientError, WaiterError

from postwerk.sagemaker import ensure_bucket

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
AWS_LAMBDA_PYTHON = "3.12"  # the template's LambdaRuntime default


def requirements() -> list[str]:
    """The `services` extra's requirements, as installed metadata states them."""
    pattern = re.compile(r"""^(?P<req>[^;]+);\s*extra\s*==\s*["']services["']""")
    found = []
    for requirement in importlib.metadata.requires("postwerk") or []:
        match = pattern.match(requirement)
        if match:
            found.append(match["req"].strip())
    if not found:
        raise ValueError("no 'services' requirements in the installed postwerk metadata")
    return found


def build_package(build_dir: Path, python_version: str | None) -> Path:
    """The functions' zip. python_version None: for this interpreter (the local emulator
    runs handlers on a Python like ours); else manylinux wheels for AWS Lambda."""
    target = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    wanted = requirements()
    deps = build_dir / f"deps-{target}-{digest(' '.join(wanted).encode())[:12]}"
    if not deps.is_dir():
        platform = (
            []
            if python_version is None
            else [
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                "--python-version",
                python_version,
                "--only-binary=:all:",
            ]
        )
        staging = deps.with_suffix(".partial")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
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
            check=True,
        )
        staging.rename(deps)
    archive = build_dir / "functions.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(p for p in deps.rglob("*") if p.is_file()):
            zipped.write(path, path.relative_to(deps).as_posix())
        for path in sorted((REPO_ROOT / "services").rglob("*.py")):
            zipped.write(path, path.relative_to(REPO_ROOT).as_posix())
    return archive


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def upload_package(archive: Path, bucket: str) -> str:
    ensure_bucket(bucket)
    key = f"functions/{digest(archive.read_bytes())[:16]}.zip"
    boto3.client("s3").upload_file(str(archive), bucket, key)
    return key


def deploy_stack(name: str, parameters: dict[str, str]) -> dict[str, str]:
    """Create or update the stack and wait; returns its outputs."""
    cloudformation = boto3.client("cloudformation")
    arguments = {
        "StackName": name,
        "TemplateBody": TEMPLATE.read_text(),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_IAM"],
    }
    waiter_config = {"Delay": 1 if os.environ.get("AWS_ENDPOINT_URL") else 10, "MaxAttempts": 720}
    try:
        cloudformation.describe_stacks(StackName=name)
        exists = True
    except ClientError:
        exists = False
    try:
        if exists:
            cloudformation.update_stack(**arguments)
            waiter = "stack_update_complete"
        else:
            cloudformation.create_stack(**arguments)
            waiter = "stack_create_complete"
        cloudformation.get_waiter(waiter).wait(StackName=name, WaiterConfig=waiter_config)
    except ClientError as error:
        if "No updates are to be performed" not in str(error):
            raise
    except WaiterError as error:
        raise ValueError(f"stack {name} did not deploy: {stack_failure(name)}") from error
    return stack_outputs(name)


def stack_outputs(name: str) -> dict[str, str]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def stack_failure(name: str) -> str:
    events = boto3.client("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
    failed = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]
    return "; ".join(failed[:3]) or "no failed resource reported"
