"""The training loop: fine-tune a BERT-family encoder on checked inputs (model/train.py).

Reads top to bottom: train() -> fit() (the epoch loop) -> evaluate() -> finish() (calibrate,
test, reports) -> save_model().

Imbalance: the loss is weighted n/(k*count) per label when the labels are imbalanced
(hp.class_weighting, model/calibration.py), and the best epoch is the one with the best
validation macro-F1 (model/checkpoint.py), so a model that ignores the rare labels loses.
Calibration: after training, one temperature is fitted on the validation logits, and
per-label review thresholds are chosen there; both go to calibration.json for serving.
int8: last, the OpenVINO IR is quantized and checked against fp32 on validation
(model/quantization.py); kept beside the safetensors only within hp.int8_max_accuracy_drop.
"""

import hashlib
import logging
import sys
import time

import numpy as np
import torch
import transformers
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
)

from model import calibration, checkpoint, quantization
from model.assessment import Scored, assess, model_info, print_metrics, publish, write_info
from model.contract import InputError, SageMakerPaths, format_metrics
from model.data import Datasets, encode, label_counts, length_grouped_batches
from model.distributed import Process, start_process, stop_process
from model.evaluation import classification_metrics
from model.hyperparameters import Hyperparameters
from model.optimization import Optimization
from model.preemption import Preemption

log = logging.getLogger("postwerk.train")


def load_base_model(hp: Hyperparameters, labels: list[str]):
    name = hp.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSequenceClassification.from_pretrained(
            name,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,  # a base model that already has another head
            dtype=torch.float32,  # master weights: hub checkpoints stored in fp16/bf16 too
        )
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        raise InputError(f"cannot load model '{name}': {reason}") from error
    return tokenizer, model


@torch.inference_mode()
def evaluate(model, features, collate, batch_size, device, precision) -> tuple[float, np.ndarray]:
    """Mean (unweighted) loss and the logits, batched by length for speed."""
    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    logits = np.empty((len(features), model.config.num_labels), dtype=np.float32)
    total_loss = 0.0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([features[i] for i in chunk]).to(device)
        with precision.autocast():
            output = model(**batch)
        total_loss += output.loss.float().item() * len(chunk)
        logits[chunk] = output.logits.float().cpu().numpy()
    return total_loss / len(features), logits


def train(paths: SageMakerPaths, hp: Hyperparameters, data: Datasets) -> None:
    process = start_process()
    try:
        fit(paths, hp, data, process)
    finally:
        stop_process()


def fit(paths: SageMakerPaths, hp: Hyperparameters, data: Datasets, process: Process) -> None:
    say = log.info if process.is_main else (lambda *args: None)
    transformers.set_seed(hp.seed)
    say(
        "data: %d train, %d validation, %s test e-mails, %d labels",
        len(data.train), len(data.validation), len(data.test) if data.test else "no",
        len(data.labels),
    )  # fmt: skip
    tokenizer, model = load_base_model(hp, data.labels)
    train_features = encode(tokenizer, data.train, data.labels, hp)
    validation_features = encode(tokenizer, data.validation, data.labels, hp)
    validation_truth = np.array([f["labels"] for f in validation_features])
    lengths = [len(f["input_ids"]) for f in train_features]
    device = process.device
    collate = DataCollatorWithPadding(
        tokenizer, pad_to_multiple_of=8 if device.type == "cuda" else None, return_tensors="pt"
    )
    batches_per_epoch = len(length_grouped_batches(lengths, hp.batch_size, 0, process.world_size))
    total_steps = min(
        hp.epochs * batches_per_epoch // process.world_size, hp.max_steps or sys.maxsize
    )
    counts = label_counts(data.train)
    weights = calibration.class_weights(
        [counts.get(label, 0) for label in data.labels], hp.class_weighting, hp.imbalance_ratio
    )
    if weights is not None:
        say("class weights (%s): %s", hp.class_weighting, np.round(weights, 3).tolist())
    model.to(device)
    opt = Optimization.create(model, hp, total_steps, device, weights)
    progress, best_model = checkpoint.Progress(), None
    fingerprint = job_fingerprint(hp, data)
    saved = checkpoint.load(paths.checkpoint_dir, fingerprint)
    if saved:
        model.load_state_dict(saved.model)
        opt.restore(saved.trainer)
        progress, best_model = saved.progress, saved.best_model
        say("resumed from checkpoint: %d epochs, %d steps done", progress.epoch, progress.step)
    trained = DistributedDataParallel(model) if process.world_size > 1 else model
    preemption = Preemption(hp.checkpoint_every_steps, listen=process.world_size == 1)
    say(
        "training %s on %s x %d (%s), %d steps of %d e-mails per process",
        hp.model_name_or_path, device.type, process.world_size, opt.precision.name, total_steps,
        hp.batch_size,
    )  # fmt: skip

    while not finished(progress, hp, total_steps):
        epoch = progress.epoch + 1
        batches = length_grouped_batches(
            lengths, hp.batch_size, hp.seed + epoch, process.world_size
        )
        trained.train()
        started, seen, loss_sum = time.perf_counter(), progress.epoch_seen, progress.epoch_loss_sum
        mine = batches[process.rank :: process.world_size][progress.epoch_step :]  # resumed
        for indices in progress_bar(mine, epoch, hp, process):
            batch = collate([train_features[i] for i in indices]).to(device)
            loss_sum += opt.step(trained, batch) * len(indices)
            seen += len(indices)
            progress.step += 1
            if progress.step >= total_steps:
                break
            step_checkpoint(paths, process, preemption, progress, model, best_model, opt,
                            fingerprint, loss_sum, seen)  # fmt: skip
        progress.epoch_step, progress.epoch_loss_sum, progress.epoch_seen = 0, 0.0, 0
        elapsed = time.perf_counter() - started

        validation_loss, logits = evaluate(
            model, validation_features, collate, hp.eval_batch_size, device, opt.precision
        )
        scores = classification_metrics(validation_truth, logits.argmax(axis=1))
        progress.epoch = epoch
        if progress.record_validation(scores["macro_f1"], validation_loss):
            best_model = checkpoint.contiguous(model.state_dict())
        if process.is_main:
            metrics = {
                "epoch": epoch,
                "train_loss": loss_sum / max(seen, 1),
                "train_samples_per_second": seen * process.world_size / elapsed,
                "validation_loss": validation_loss,
                "validation_accuracy": scores["accuracy"],
                "validation_macro_f1": scores["macro_f1"],
            }
            print(format_metrics(metrics), flush=True)
            snapshot = checkpoint.Checkpoint(progress, model.state_dict(), best_model, opt.state())
            checkpoint.save(paths.checkpoint_dir, snapshot, fingerprint)
        preemption.check()

    model.load_state_dict(best_model)
    if process.is_main:
        finish(
            paths, hp, data, tokenizer, model, collate, device, opt.precision, validation_features
        )


def job_fingerprint(hp: Hyperparameters, data: Datasets) -> dict:
    """What a checkpoint must match to be resumed. The length of training may change."""
    digest = hashlib.sha256()
    for example in data.train + data.validation:
        digest.update(f"{example.label}\t{example.text}\n".encode())
    return {
        "hyperparameters": hp.model_dump(
            exclude={"epochs", "max_steps", "early_stopping_patience", "checkpoint_every_steps"}
        ),
        "data": digest.hexdigest(),
        "labels": data.labels,
    }


def step_checkpoint(
    paths, process, preemption, progress, model, best_model, opt, fingerprint, loss_sum, seen
) -> None:
    """Within an epoch: a checkpoint every `checkpoint_every_steps` steps and on SIGTERM
    (model/preemption.py), which then ends the run."""
    progress.epoch_step += 1
    if not preemption.due(progress.step):
        return
    if process.is_main:
        progress.epoch_loss_sum, progress.epoch_seen = loss_sum, seen
        snapshot = checkpoint.Checkpoint(progress, model.state_dict(), best_model, opt.state())
        checkpoint.save(paths.checkpoint_dir, snapshot, fingerprint)
    preemption.check()


def finished(progress: checkpoint.Progress, hp: Hyperparameters, total_steps: int) -> bool:
    if progress.epoch >= hp.epochs or progress.step >= total_steps:
        return True
    if 0 < hp.early_stopping_patience <= progress.epochs_without_improvement:
        log.info(
            "early stop: %d epochs without a better validation score", hp.early_stopping_patience
        )
        return True
    return False


def progress_bar(batches: list, epoch: int, hp: Hyperparameters, process: Process):
    """A bar on a terminal; plain lines about every 10% of the epoch otherwise."""
    epochs = hp.epochs
    if not process.is_main:
        yield from batches
        return
    if sys.stderr.isatty():
        yield from tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False)
        return
    every = max(1, len(batches) // 10)
    for number, batch in enumerate(batches, start=1):
        yield batch
        if number % every == 0 or number == len(batches):
            log.info("epoch %d/%d: %d/%d batches", epoch, epochs, number, len(batches))


def finish(paths, hp, data, tokenizer, model, collate, device, precision, validation_features):
    """Calibrate the best model on validation, evaluate it on test (or validation), write the
    model, its calibration and its reports (model/assessment.py)."""
    _, validation_logits = evaluate(
        model, validation_features, collate, hp.eval_batch_size, device, precision
    )
    validation = Scored(validation_logits, np.array([f["labels"] for f in validation_features]))
    if data.test:
        split, features = "test", encode(tokenizer, data.test, data.labels, hp)
        _, logits = evaluate(model, features, collate, hp.eval_batch_size, device, precision)
        held_out = Scored(logits, np.array([f["labels"] for f in features]))
    else:
        split, held_out = "validation", validation
    assessment = assess(hp, data.labels, validation, held_out, split, paths.model_dir)
    print_metrics(assessment)
    info = save_model(paths, hp, data, tokenizer, model, assessment.metrics)
    publish(paths, info, assessment.report, split)
    if hp.quantize_int8:
        temperature = assessment.report["calibration"]["temperature"]
        quantize(paths, hp, data, tokenizer, collate, validation_features, temperature)
    log.info(
        "model %s saved to %s (%s accuracy %.4f)",
        info["version"],
        paths.model_dir,
        split,
        assessment.report["accuracy"],
    )


def quantize(paths, hp, data, tokenizer, collate, validation_features, temperature) -> None:
    """The int8 IR, calibrated on training e-mails spread over the set, checked on validation."""
    every = max(1, len(data.train) // quantization.CALIBRATION_TEXTS)
    sample = data.train[::every][: quantization.CALIBRATION_TEXTS]
    sample_features = encode(tokenizer, sample, data.labels, hp)

    def inputs(features: list[dict]) -> dict[str, np.ndarray]:
        batch = collate(features)
        return {key: value.numpy() for key, value in batch.items() if key != "labels"}

    size = hp.eval_batch_size
    entry = quantization.write_int8(
        paths.model_dir,
        [inputs([feature]) for feature in sample_features],
        [
            inputs(validation_features[i : i + size])
            for i in range(0, len(validation_features), size)
        ],
        np.array([f["labels"] for f in validation_features]),
        temperature,
        hp.int8_max_accuracy_drop,
    )
    check = entry["check"]
    metrics = {
        "int8_label_agreement": check["label_agreement"],
        "int8_accuracy_delta": check["int8_accuracy"] - check["fp32_accuracy"],
        "int8_mean_score_diff": check["mean_score_diff"],
    }
    print(format_metrics(metrics), flush=True)
    if entry["passed"]:
        log.info("int8 model written beside the safetensors (openvino/model.int8.xml)")
    else:
        log.warning("no int8 model: %s; serving will use fp32", entry["reason"])


def save_model(paths, hp, data, tokenizer, model, metrics: dict) -> dict:
    """safetensors weights, tokenizer, config with the label map, and model_info.json."""
    model.save_pretrained(paths.model_dir)  # safetensors; nothing pickled
    tokenizer.save_pretrained(paths.model_dir)
    weights = (paths.model_dir / "model.safetensors").read_bytes()
    version = hashlib.sha256(weights).hexdigest()[:12]
    info = model_info(hp, data, "transformer", hp.model_name_or_path, version, metrics)
    write_info(paths.model_dir, info)
    return info
