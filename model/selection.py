"""Which model the job's folder serves (hp.model_selection).

- transformer: the fine-tuned encoder (model/fit.py), as before;
- linear: only the TF-IDF + logistic regression model (model/linear.py), in seconds;
- best (default): both, on the same train and validation split. The linear model is served
  when its validation macro-F1 beats the transformer's (on small data sets it often does;
  a tie keeps the transformer). The other one, the runner-up, stays beside it in
  model/runner_up/, a complete model folder; both candidates' reports are in
  output/data/evaluation-<kind>.json, the choice in model_info.json and evaluation.json
  under "selection", and in the log.
"""

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from model import linear
from model.assessment import Scored, assess, model_info, print_metrics, publish, write_info
from model.contract import SageMakerPaths
from model.data import Datasets, Example
from model.hyperparameters import Hyperparameters

log = logging.getLogger("postwerk.train")
RUNNER_UP = "runner_up"


def train(paths: SageMakerPaths, hp: Hyperparameters, data: Datasets) -> None:
    main_process = os.environ.get("RANK", "0") == "0"  # torchrun's workers: one selects
    if hp.model_selection == "linear":
        if main_process:
            info, assessment = train_linear(paths.model_dir, hp, data)
            print_metrics(assessment)
            publish(paths, info, assessment.report, assessment.split)
        return
    from model import fit  # torch and transformers

    fit.train(paths, hp, data)
    if hp.model_selection == "best" and main_process:
        compete(paths, hp, data)


def train_linear(folder: Path, hp: Hyperparameters, data: Datasets):
    """Fit on train, calibrate on validation, assess on test (or validation); write the
    model folder. Returns its model_info and assessment."""
    started = time.perf_counter()
    model = linear.fit(texts(data.train), [e.label for e in data.train], data.labels)
    index = {label: i for i, label in enumerate(data.labels)}

    def scored(examples: list[Example]) -> Scored:
        return Scored(model.logits(texts(examples)), np.array([index[e.label] for e in examples]))

    validation = scored(data.validation)
    split, held_out = ("test", scored(data.test)) if data.test else ("validation", validation)
    assessment = assess(hp, data.labels, validation, held_out, split, folder)
    model.save(folder)
    version = linear.version(folder)
    info = model_info(hp, data, linear.KIND, linear.BASE_MODEL, version, assessment.metrics)
    write_info(folder, info)
    log.info("linear model %s: %d terms, trained in %.1f s, %s macro-F1 %.4f", version,
             len(model.vocabulary), time.perf_counter() - started, split,
             assessment.report["macro_f1"])  # fmt: skip
    return info, assessment


def compete(paths: SageMakerPaths, hp: Hyperparameters, data: Datasets) -> None:
    """The transformer is in paths.model_dir; fit the linear model in runner_up/ and swap
    the two folders if it wins."""
    reports = paths.output_data_dir
    transformer = {
        "info": read_json(paths.model_dir / "model_info.json"),
        "report": read_json(reports / "evaluation.json"),
    }
    shutil.rmtree(paths.model_dir / RUNNER_UP, ignore_errors=True)  # a rerun's
    info, assessment = train_linear(paths.model_dir / RUNNER_UP, hp, data)
    candidates = {"transformer": transformer,
                  "linear": {"info": info, "report": assessment.report}}  # fmt: skip
    figures = {kind: {"version": c["info"]["version"], **c["info"]["metrics"]}
               for kind, c in candidates.items()}  # fmt: skip
    scores = {kind: f["validation"]["macro_f1"] for kind, f in figures.items()}
    winner = "linear" if scores["linear"] > scores["transformer"] else "transformer"
    selection = {
        "rule": "validation macro-F1, a tie keeps the transformer",
        "served": winner,
        "runner_up": RUNNER_UP,
        "candidates": figures,
    }
    for kind, candidate in candidates.items():
        document = {"split": assessment.split, **candidate["report"], "selection": selection}
        (reports / f"evaluation-{kind}.json").write_text(json.dumps(document, indent=2))
    if winner == "linear":
        swap(paths.model_dir, paths.model_dir / RUNNER_UP)
        print_metrics(assessment)
    served = candidates[winner]
    info = served["info"] | {"selection": selection}
    write_info(paths.model_dir, info)
    publish(paths, info, served["report"] | {"selection": selection}, assessment.split)
    loser = "transformer" if winner == "linear" else "linear"
    log.info("model selection: serving the %s model (validation macro-F1 %.4f against the "
             "%s model's %.4f); the %s model is in %s/", winner, scores[winner], loser,
             scores[loser], loser, RUNNER_UP)  # fmt: skip


def swap(model_dir: Path, runner_up: Path) -> None:
    """Move the runner-up's files up into model_dir and model_dir's own into runner_up/."""
    staging = model_dir / f".{RUNNER_UP}"
    staging.mkdir()
    for entry in list(model_dir.iterdir()):
        if entry not in (runner_up, staging):
            shutil.move(entry, staging / entry.name)
    for entry in list(runner_up.iterdir()):
        shutil.move(entry, model_dir / entry.name)
    runner_up.rmdir()
    staging.rename(runner_up)


def texts(examples: list[Example]) -> list[str]:
    return [example.text for example in examples]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
