"""Hyperparameter tuning jobs (AWS's request shape, searched by Optuna) through boto3."""

import pytest
from botocore.exceptions import ClientError

from tests.support.sagemaker import (
    GOOD,
    HOPELESS,
    tuning_request,
    tuning_trials,
    wait_for_tuning_job,
)

pytestmark = pytest.mark.long  # make test-long: minutes of jobs and endpoints


def test_bayesian_search_finds_the_better_learning_rate(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    config = {
        "Strategy": "Bayesian",
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
        "RandomSeed": 1,
    }
    sm.create_hyper_parameter_tuning_job(**tuning_request("bayes", s3, tiny_bert, config, 4))
    job = wait_for_tuning_job("bayes")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"]["Completed"] == 3
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 3, "Pending": 0, "Failed": 0}
    best = job["BestTrainingJob"]
    assert best["TunedHyperParameters"] == {"learning_rate": GOOD}, [
        (s["TunedHyperParameters"], s.get("FinalHyperParameterTuningJobObjectiveMetric"))
        for s in tuning_trials(sm, "bayes")
    ]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == ("validation_loss")
    summaries = tuning_trials(sm, "bayes")
    assert [s["TrainingJobName"][:10] for s in summaries] == [
        "bayes-001-", "bayes-002-", "bayes-003-",
    ]  # fmt: skip
    assert all(s["TrainingJobName"].startswith("bayes-") for s in summaries)
    job = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert job["TuningJobArn"].endswith("hyper-parameter-tuning-job/bayes")
    assert job["HyperParameters"]["learning_rate"] == GOOD


def test_early_stopping_stops_a_hopeless_trial(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    config = {
        "Strategy": "Random",
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1},
        "TrainingJobEarlyStoppingType": "Auto",
        "RandomSeed": 6,  # good, good, hopeless: the median rule has two jobs to go by
    }
    sm.create_hyper_parameter_tuning_job(**tuning_request("early", s3, tiny_bert, config, 4))
    job = wait_for_tuning_job("early")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    summaries = tuning_trials(sm, "early")
    rates = [s["TunedHyperParameters"]["learning_rate"] for s in summaries]
    assert rates == [GOOD, GOOD, HOPELESS]
    assert [s["TrainingJobStatus"] for s in summaries] == ["Completed", "Completed", "Stopped"]
    assert job["TrainingJobStatusCounters"]["Stopped"] == 1
    assert job["BestTrainingJob"]["TunedHyperParameters"]["learning_rate"] == GOOD


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ParameterRanges": {"ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.1", "MaxValue": "0.01"}]}},
         "must not exceed"),
        ({"ParameterRanges": {"ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0", "MaxValue": "0.1",
             "ScalingType": "Logarithmic"}]}},
         "MinValue > 0"),
        ({"ParameterRanges": {"IntegerParameterRanges": [
            {"Name": "epochs", "MinValue": "one", "MaxValue": "3"}]}},
         "int"),
        ({"HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "speed"}},
         "not among the MetricDefinitions"),
        ({"Strategy": "Grid", "ParameterRanges": {"ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.01"}]}},
         "Grid strategy takes CategoricalParameterRanges only"),
        ({"Strategy": "Hyperband", "TrainingJobEarlyStoppingType": "Auto"},
         "TrainingJobEarlyStoppingType must be Off"),
        ({"ParameterRanges": {"CategoricalParameterRanges": [
            {"Name": "batch_size", "Values": ["8", "16"]}]}},
         "both static and tuned"),
    ],
)  # fmt: skip
def test_invalid_tuning_configs_are_refused(change, message, sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    limits = {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1}
    config = {"Strategy": "Bayesian", "ResourceLimits": limits}
    request = tuning_request("invalid", s3, tiny_bert, config, 1)
    request["HyperParameterTuningJobConfig"].update(change)
    with pytest.raises(ClientError, match=message):
        sm.create_hyper_parameter_tuning_job(**request)
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="invalid")


def test_stop_ends_a_tuning_job_and_its_trials(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    limits = {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1}
    config = {"Strategy": "Random", "ResourceLimits": limits}
    sm.create_hyper_parameter_tuning_job(**tuning_request("halt", s3, tiny_bert, config, 500))
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
    job = wait_for_tuning_job("halt")
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert all(s["TrainingJobStatus"] == "Stopped" for s in tuning_trials(sm, "halt"))
    with pytest.raises(ClientError, match="ValidationException"):
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="halt")
