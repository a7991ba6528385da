"""Where postwerk asks for managed spot training: `train`/`tune` (AWS by default, the local
stack when asked) and the monitor's retraining (as the champion's job had it)."""

import pytest

from postwerk import sagemaker
from postwerk.settings import CliSettings
from services.lifecycle import spot_like


@pytest.fixture
def local(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:4567")


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_spot_by_default_on_aws_only(aws):
    assert sagemaker.wants_spot(CliSettings(), None)
    assert not sagemaker.wants_spot(CliSettings(spot=False), None), "POSTWERK_SPOT=false"
    assert not sagemaker.wants_spot(CliSettings(), False), "--no-spot"


def test_no_spot_on_the_local_stack_unless_asked(local):
    assert not sagemaker.wants_spot(CliSettings(), None)
    assert sagemaker.wants_spot(CliSettings(), True), "--spot"


def test_a_spot_definition_checkpoints_under_the_bucket(local):
    settings = CliSettings(bucket="b", max_runtime_seconds=600)
    definition = sagemaker.training_definition(settings, [], {})
    spot = sagemaker.with_spot(settings, definition, "job-1")
    assert spot["EnableManagedSpotTraining"] is True
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200}
    assert spot["CheckpointConfig"] == {"S3Uri": "s3://b/checkpoints/job-1/"}
    bounded = CliSettings(bucket="b", max_runtime_seconds=600, max_wait_seconds=60)
    wait = sagemaker.with_spot(bounded, definition, "j")["StoppingCondition"]
    assert wait["MaxWaitTimeInSeconds"] == 600, "never below MaxRuntimeInSeconds"


def test_the_saving_as_aws_computes_it():
    spot = {"EnableManagedSpotTraining": True, "TrainingTimeInSeconds": 500,
            "BillableTimeInSeconds": 100}  # fmt: skip
    assert sagemaker.billing_summary(spot) == (
        "training 500 s, billable 100 s (managed spot training saved 80.0%)"
    )
    on_demand = {"TrainingTimeInSeconds": 50, "BillableTimeInSeconds": 50}
    assert sagemaker.billing_summary(on_demand) == "training 50 s, billable 50 s"
    assert sagemaker.billing_summary({}) is None


def test_retraining_keeps_spot_with_a_checkpoint_folder_of_its_own():
    template = {"TrainingJobName": "postwerk-1", "EnableManagedSpotTraining": True,
                "CheckpointConfig": {"S3Uri": "s3://b/checkpoints/postwerk-1/",
                                     "LocalPath": "/opt/ml/checkpoints"}}  # fmt: skip
    assert spot_like(template, "retrain-2") == {
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": "s3://b/checkpoints/retrain-2/",
                             "LocalPath": "/opt/ml/checkpoints"},
    }  # fmt: skip
    other = template | {"CheckpointConfig": {"S3Uri": "s3://b/ckpt"}}
    assert spot_like(other, "retrain-2")["CheckpointConfig"] == {"S3Uri": "s3://b/ckpt/retrain-2/"}
    assert spot_like({"TrainingJobName": "postwerk-1"}, "retrain-2") == {}
