"""Plugin: the whole pipeline as a user brings it up (`postwerk up --detach`), one for the
tests of a module. Each test that asks for the `pipeline` finds it running with its local
configuration, whatever a test before it did (stop it, deploy it for AWS): only then does
it cost an `up` again, which keeps the model."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from emulation.processes import free_ports
from postwerk import local
from postwerk import pipeline as operations
from tests.support.aws import with_ministack_venv
from tests.support.tiny_model import tiny_hyperparameters

POSTWERK = Path(sys.executable).parent / "postwerk"  # the installed command
STACK = "postwerk"


def postwerk(environment: dict, *arguments: str, timeout: float = 600):
    return subprocess.run(
        [str(POSTWERK), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class LocalStack:
    environment: dict[str, str]  # a state folder and ports of its own
    up: subprocess.CompletedProcess  # the first `up --detach`, which trained the model
    aws: dict[str, str]  # what `postwerk env` exports (the same after an `up` again)
    results_after_up: list[dict]  # the results table as that first `up` left it

    @property
    def state_dir(self) -> Path:
        return Path(self.environment["POSTWERK_STATE_DIR"])

    def with_local_aws(self) -> dict[str, str]:
        """The environment in which boto3 and the CLI reach the stack."""
        return self.environment | self.aws

    def pids(self) -> list[int]:
        """What runs the stack now: the launcher, MiniStack, the SageMaker service ..."""
        return json.loads(local.ready_file(self.state_dir).read_text())["pids"]

    def make_running(self) -> None:
        """`up` again where a test before stopped the stack or deployed it for AWS (whose
        parameters switch the emulator's mappings off). Needs `aws` in the environment."""
        running = local.find(self.state_dir) is not None
        if not running or stack_parameters().get("EmulatorMapping") != "true":
            again = postwerk(self.environment, "up", "--detach", "--no-send-samples")
            assert again.returncode == 0, again.stdout + again.stderr


@pytest.fixture(scope="module")
def local_stack(tiny_bert, ministack_venv, tmp_path_factory) -> Iterator[LocalStack]:
    """`postwerk up --detach` in a state folder and on ports of its own, with the MiniStack
    venv that the run installed once (as `up` does into its state folder); `postwerk down`
    once the module's tests are done."""
    state_dir = with_ministack_venv(tmp_path_factory.mktemp("up"), ministack_venv)
    aws_port, sagemaker_port, smtp_port = free_ports(3)
    environment = os.environ | {
        "BACKEND": "embedded",
        "POSTWERK_STATE_DIR": str(state_dir),
        "POSTWERK_AWS_PORT": str(aws_port),
        "POSTWERK_SAGEMAKER_PORT": str(sagemaker_port),
        "POSTWERK_SMTP_PORT": str(smtp_port),
        "COLUMNS": "200",
    }
    hyperparameters = tiny_hyperparameters(tiny_bert, epochs=4)  # 420 e-mails: 4 epochs do
    tiny = [f"-p{name}={value}" for name, value in hyperparameters.items()]
    up = postwerk(environment, "up", "--detach", *tiny)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        aws = json.loads(local.ready_file(state_dir).read_text())["env"]
        with pytest.MonkeyPatch.context() as env:
            for name, value in aws.items():
                env.setenv(name, value)
            results = operations.results(stack_outputs()["ResultsTable"])
        yield LocalStack(environment, up, aws, results)
    finally:
        down = postwerk(environment, "down")
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture
def pipeline(local_stack, monkeypatch) -> dict:
    """The running stack's outputs and the PIDs of what runs it; boto3 reaches the stack."""
    for name, value in local_stack.aws.items():
        monkeypatch.setenv(name, value)
    local_stack.make_running()
    pids = local_stack.pids()
    return stack_outputs() | {"service_pid": pids[2], "pids": pids}


def stack_outputs() -> dict[str, str]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


def stack_parameters() -> dict[str, str]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
