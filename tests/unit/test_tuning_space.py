"""AWS parameter ranges and strategies mapped onto Optuna (no training jobs run here)."""

import optuna
import pytest

from emulation.sagemaker.protocol import SageMakerError
from emulation.sagemaker.tuning import make_study, search_space

OBJECTIVE = {"HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"}}


def sample(config: dict, parameters, trials: int) -> list[dict[str, str]]:
    study = make_study(config, parameters, trials)
    samples = []
    for _ in range(trials):
        trial = study.ask({p.name: p.distribution for p in parameters})
        samples.append({p.name: p.to_string(trial.params[p.name]) for p in parameters})
        study.tell(trial, 1.0)
    return samples


def test_ranges_keep_their_bounds_and_scales():
    ranges = {
        "ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "1e-5", "MaxValue": "1e-3",
             "ScalingType": "Logarithmic"},
            {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999",
             "ScalingType": "ReverseLogarithmic"},
        ],
        "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "2", "MaxValue": "4"}],
    }  # fmt: skip
    parameters = search_space(ranges, "Random")
    config = {"Strategy": "Random", "RandomSeed": 0, **OBJECTIVE}
    for values in sample(config, parameters, 30):
        assert 1e-5 <= float(values["learning_rate"]) <= 1e-3
        assert 0.9 <= float(values["momentum"]) <= 0.999
        assert values["epochs"] in {"2", "3", "4"}


def test_grid_tries_every_combination_once():
    ranges = {"CategoricalParameterRanges": [
        {"Name": "batch_size", "Values": ["16", "32"]},
        {"Name": "max_length", "Values": ["64", "128", "256"]},
    ]}  # fmt: skip
    parameters = search_space(ranges, "Grid")
    samples = sample({"Strategy": "Grid", **OBJECTIVE}, parameters, 6)
    assert len({tuple(sorted(s.items())) for s in samples}) == 6


def test_strategies_choose_their_sampler_and_pruner():
    parameters = search_space(
        {"CategoricalParameterRanges": [{"Name": "x", "Values": ["a", "b"]}]}, "Bayesian"
    )
    bayesian = make_study({"Strategy": "Bayesian", **OBJECTIVE}, parameters, 9)
    assert isinstance(bayesian.sampler, optuna.samplers.GPSampler)
    assert bayesian.direction == optuna.study.StudyDirection.MINIMIZE
    early = make_study(
        {"Strategy": "Random", "TrainingJobEarlyStoppingType": "Auto", **OBJECTIVE}, parameters, 9
    )
    assert isinstance(early.pruner, optuna.pruners.MedianPruner)
    hyperband = make_study(
        {"Strategy": "Hyperband", **OBJECTIVE,
         "StrategyConfig": {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}}},
        parameters, 9,
    )  # fmt: skip
    assert isinstance(hyperband.pruner, optuna.pruners.HyperbandPruner)


@pytest.mark.parametrize(
    "ranges",
    [
        {},
        {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "inf"}]},
        {"ContinuousParameterRanges": [
            {"Name": "a", "MinValue": "0", "MaxValue": "1"},
            {"Name": "a", "MinValue": "0", "MaxValue": "2"}]},
        {"IntegerParameterRanges": [
            {"Name": "a", "MinValue": "1", "MaxValue": "9", "ScalingType": "ReverseLogarithmic"}]},
        {"ContinuousParameterRanges": [
            {"Name": "a", "MinValue": "0.5", "MaxValue": "2",
             "ScalingType": "ReverseLogarithmic"}]},
    ],
)  # fmt: skip
def test_invalid_ranges_are_refused(ranges):
    with pytest.raises(SageMakerError) as refused:
        search_space(ranges, "Bayesian")
    assert refused.value.code == "ValidationException"
