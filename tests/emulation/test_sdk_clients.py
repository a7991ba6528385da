"""The real clients against the local service: the SageMaker Python SDK 2.x and 3.x and the
AWS CLI, each in its own cached venv (tests/support/clients), driven by a script that
prints client call -> result.

They train, tune and start a dozen serving containers: about 3 minutes on 2 cores once the
venvs exist (first creation: SDK 2.x ~30 s, SDK 3.x ~160 s, CLI ~35 s), beyond the default
suite's budget, so they run when POSTWERK_TEST_CLIENTS=1.
"""

import json
import os
import subprocess

import boto3
import pytest
import yaml

from model.contract import METRIC_DEFINITIONS
from tests.support.clients import CLI, ROOT, SCRIPTS, SDK2, SDK3, client_python
from tests.support.jobs import make_emails
from tests.support.sagemaker import (
    BUCKET,
    EMAILS,
    ROLE,
    audit,
    model_archive,
    put_jsonl,
    put_lines,
    transform_request,
)
from tests.support.tiny_model import tiny_hyperparameters

CLIENT_WAIT_S = 900  # a shared, noisy machine: training, tuning and endpoints take a while

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("POSTWERK_TEST_CLIENTS") != "1",
        reason="the real SageMaker clients (~3 min): run with POSTWERK_TEST_CLIENTS=1",
    ),
    # the client's own wait, not the suite's 300 s: on a slow CI machine one client
    # (training and an endpoint) took over 300 s, where it takes 30-50 s on a quiet one
    pytest.mark.timeout(CLIENT_WAIT_S),
]


def run_client(python, script: str, arguments: dict, environment: dict) -> dict[str, str]:
    done = subprocess.run(
        [str(python), str(SCRIPTS / script), json.dumps(arguments)],
        env=os.environ | environment,
        capture_output=True,
        text=True,
        timeout=CLIENT_WAIT_S,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{script} printed no results: {done.stdout[-2000:]} {done.stderr[-3000:]}"
    results = json.loads(lines[-1])
    assert done.returncode == 0, f"{results}\n{done.stderr[-3000:]}"
    return results


@pytest.fixture
def client_environment(sagemaker, sagemaker_service, ministack) -> dict[str, str]:
    """What a user's shell has after `eval "$(postwerk env)"`."""
    _, url, _ = sagemaker_service
    return ministack.client_environment() | {
        "AWS_ENDPOINT_URL_SAGEMAKER": url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }


def template_role(name: str) -> str:
    """The stack's SageMakerRole (infra/template.yaml) in the local IAM, as `postwerk up`
    creates it; its ARN."""

    class Loader(yaml.SafeLoader):
        pass

    def plain(loader, _, node):  # CloudFormation's tags (!Sub "arn:...${CodeBucket}") as text
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        return None

    Loader.add_multi_constructor("!", plain)
    template = yaml.load((ROOT / "infra" / "template.yaml").read_text(), Loader)
    role = template["Resources"]["SageMakerRole"]["Properties"]
    iam = boto3.client("iam")
    arn = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"])
    )["Role"]["Arn"]
    for policy in role["Policies"]:
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    return arn


def archive(s3, prefix: str) -> str:
    put_lines(s3, f"{prefix}/emails.jsonl", [json.dumps(e) for e in EMAILS])
    return f"s3://{BUCKET}/{prefix}/"


def channels(s3, prefix: str) -> dict[str, str]:
    rows = {"train": make_emails(30, 1), "validation": make_emails(9, 2)}
    return {c: put_jsonl(s3, f"{prefix}/{c}/emails.jsonl", r) for c, r in rows.items()}


def test_sdk_2(sagemaker, sagemaker_service, client_environment, tiny_bert):
    sm, _, s3 = sagemaker
    static = {k: str(v) for k, v in tiny_hyperparameters(tiny_bert, epochs=1).items()}
    static.pop("learning_rate")
    arguments = {
        "bucket": BUCKET,
        "role": ROLE,
        "hyperparameters": static,
        "metric_definitions": METRIC_DEFINITIONS,
        "channels": channels(s3, "sdk2"),
        "transform_input": archive(s3, "sdk2-archive"),
    }
    results = run_client(client_python(SDK2), "sdk2.py", arguments, client_environment)
    assert "UnknownOperationException" in results.pop("Predictor.endpoint_context")
    assert "predictions" in results.pop("prediction")
    transform = results.pop("transform_job")
    assert set(results.values()) == {"ok"}, results
    audit_what_sdk_2_left(sm, sagemaker_service[1], transform)


def audit_what_sdk_2_left(sm, url: str, transform: str) -> None:
    """The SDK's jobs as AWS describes them (botocore's model); then list and delete."""
    (tuning,) = sm.list_hyper_parameter_tuning_jobs(NameContains="sdk2")[
        "HyperParameterTuningJobSummaries"
    ]
    name = tuning["HyperParameterTuningJobName"]
    description = audit(url, "DescribeHyperParameterTuningJob", HyperParameterTuningJobName=name)
    definition = description["TrainingJobDefinition"]
    assert "HyperParameterTuningResourceConfig" in definition, "what SDK 2.x sends"
    assert definition["StaticHyperParameters"]["_tuning_objective_metric"] == "validation_loss"
    best = description["BestTrainingJob"]["TrainingJobName"]
    assert (
        audit(url, "DescribeTrainingJob", TrainingJobName=best)["OutputDataConfig"]["KmsKeyId"]
        == ""
    )
    job = audit(url, "DescribeTransformJob", TransformJobName=transform)
    audit(url, "DescribeModel", ModelName=job["ModelName"])
    for config in sm.list_endpoint_configs(NameContains="sdk2")["EndpointConfigs"]:
        audit(url, "DescribeEndpointConfig", EndpointConfigName=config["EndpointConfigName"])
    sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert not sm.list_hyper_parameter_tuning_jobs(NameContains="sdk2")[
        "HyperParameterTuningJobSummaries"
    ]
    assert sm.describe_training_job(TrainingJobName=best)["TrainingJobStatus"] == "Completed"


def test_sdk_3(sagemaker, client_environment, tiny_bert):
    """ModelTrainer accepts the stack's role: its own IAM check passes, not switched off."""
    _, _, s3 = sagemaker
    arguments = {
        "bucket": BUCKET,
        "role": template_role("postwerk-sagemaker"),
        "bare_role": boto3.client("iam").create_role(
            RoleName="bare", AssumeRolePolicyDocument=json.dumps({"Statement": []})
        )["Role"]["Arn"],
        "hyperparameters": tiny_hyperparameters(tiny_bert, epochs=1),
        "channels": channels(s3, "sdk3"),
    }
    results = run_client(client_python(SDK3), "sdk3.py", arguments, client_environment)
    assert results.pop("ModelTrainer (role without permissions)") == "RoleValidationError"
    assert "predictions" in results.pop("prediction")
    assert set(results.values()) == {"ok"}, results


def test_aws_cli(sagemaker, client_environment, trained_job, tmp_path):
    """Deploy, invoke, update, rescale, transform; training is boto3's path (test_sagemaker_
    training) and SDK 3.x's here."""
    _, _, s3 = sagemaker
    archive(s3, "cli-archive")
    s3.put_object(Bucket=BUCKET, Key="cli/model.tar.gz", Body=model_archive(trained_job / "model"))
    arguments = {
        "role": ROLE,
        "model_data": f"s3://{BUCKET}/cli/model.tar.gz",
        "transform": transform_request("cli-transform", "", "cli-archive"),
        "scratch": str(tmp_path),
    }
    results = run_client(client_python(CLI), "cli.py", arguments, client_environment)
    assert "predictions" in results.pop("prediction")
    assert set(results.values()) == {"ok"}, results
    rows = s3.get_object(Bucket=BUCKET, Key="cli-transform/out/emails.jsonl.out")["Body"]
    assert [json.loads(line)["id"] for line in rows.read().splitlines()] == ["m-1", "m-2", "m-3"]
