"""The `postwerk` commands against the local SageMaker service, as a user runs them."""

import json

import boto3
from typer.testing import CliRunner

from postwerk.cli import app
from services.replies import index_store
from tests.support.jobs import make_emails

runner = CliRunner()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def one_line(output: str) -> str:
    """The output as one line: the console wraps it to the terminal's width."""
    return " ".join(output.split())


def test_train_deploy_predict_promote(sagemaker, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTWERK_BUCKET", "postwerk-cli-tests")
    train = write_jsonl(tmp_path / "train.jsonl", make_emails(60, 1))
    validation = write_jsonl(tmp_path / "validation.jsonl", make_emails(15, 2))
    settings = ["-p", f"model_name_or_path={tiny_bert}", "-p", "learning_rate=0.003",
                "-p", "batch_size=8", "-p", "epochs=8"]  # fmt: skip

    result = runner.invoke(app, ["train", train, "--validation", validation, *settings,
                                 "--name", "cli-train"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Training" in result.output and "epoch=8;" in result.output, "status and log"
    assert "validation_accuracy" in result.output
    assert "s3://postwerk-cli-tests/models/cli-train/output/model.tar.gz" in result.output
    assert "registered as model cli-train" in result.output  # a job, not a version
    listed = runner.invoke(app, ["models"])
    assert listed.exit_code == 0 and "cli-train" in listed.output

    result = runner.invoke(app, ["deploy-model", "cli-train", "--endpoint", "cli-emails"])
    assert result.exit_code == 0, result.output
    assert "InService" in result.output and "no reply index to build" in one_line(result.output)

    result = runner.invoke(app, ["predict", "my invoice is wrong", "--endpoint", "cli-emails"])
    assert result.exit_code == 0, result.output
    assert "billing" in result.output

    pair = {"message_id": "m1", "label": "billing", "language": "en", "subject": "Invoice",
            "body": "The amount is wrong.", "reply": "Dear Ann, we fix it.",
            "reusable_reply": "{salutation} we fix it."}  # fmt: skip
    s3 = boto3.client("s3")
    s3.put_object(Bucket="postwerk-cli-tests", Key="replies/pairs/e1/d1.json",
                  Body=json.dumps(pair).encode())  # fmt: skip
    result = runner.invoke(app, ["promote", "cli-train", "--endpoint", "cli-emails"])
    assert result.exit_code == 0, result.output
    assert "reply index billing: 1 sent replies" in one_line(result.output)
    index, _ = index_store.for_bucket("postwerk-cli-tests").load("billing")
    assert index.entries[0].reply == pair["reusable_reply"] and "@" in index.model
    runner.invoke(app, ["predict", "x", "--endpoint", "cli-emails"])
    boto3.client("sagemaker").delete_endpoint(EndpointName="cli-emails")


def test_exit_codes_scripts_can_trust(sagemaker, tiny_bert, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", make_emails(30, 1))
    failing = runner.invoke(app, ["train", train, "-p", f"model_name_or_path={tiny_bert}",
                                  "-p", "epochs=many", "--name", "cli-fails"])  # fmt: skip
    assert failing.exit_code == 1
    assert "AlgorithmError" in failing.output and "epochs" in failing.output

    assert runner.invoke(app, ["train", train, "-p", "no-equals-sign"]).exit_code == 2
    missing = runner.invoke(app, ["predict", "hello", "--endpoint", "nowhere"])
    assert missing.exit_code == 2 and "not found" in missing.output
    assert runner.invoke(app, ["promote", "cli-fails", "--endpoint", "nowhere"]).exit_code == 2
    assert runner.invoke(app, ["predict"]).exit_code == 2


def test_train_with_spot_checkpoints_and_prints_the_saving(sagemaker, tiny_bert, tmp_path,
                                                          monkeypatch):  # fmt: skip
    monkeypatch.setenv("POSTWERK_BUCKET", "postwerk-cli-tests")
    train = write_jsonl(tmp_path / "train.jsonl", make_emails(30, 1))
    settings = ["-p", f"model_name_or_path={tiny_bert}", "-p", "batch_size=8", "-p", "epochs=2",
                "-p", "checkpoint_every_steps=2"]  # fmt: skip
    result = runner.invoke(app, ["train", train, *settings, "--name", "cli-spot", "--spot"])
    assert result.exit_code == 0, result.output
    assert "cli-spot created (managed spot training)" in one_line(result.output)
    assert "billable" in result.output and "managed spot training saved" in result.output
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName="cli-spot")
    assert job["EnableManagedSpotTraining"] is True
    uri = "s3://postwerk-cli-tests/checkpoints/cli-spot/"
    assert job["CheckpointConfig"]["S3Uri"] == uri
    stopping = job["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] == 2 * stopping["MaxRuntimeInSeconds"]
    listed = boto3.client("s3").list_objects_v2(Bucket="postwerk-cli-tests",
                                                Prefix="checkpoints/cli-spot/")  # fmt: skip
    assert any(item["Key"].endswith("LATEST") for item in listed["Contents"])
    # on the local stack spot is asked for; by default it is not
    assert runner.invoke(app, ["train", train, "-p", "epochs=x", "--name", "cli-no-spot",
                               "--no-wait"]).exit_code == 0  # fmt: skip
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName="cli-no-spot")
    assert "EnableManagedSpotTraining" not in job and "CheckpointConfig" not in job
