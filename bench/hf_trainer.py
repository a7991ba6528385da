"""The baseline of bench.training: the Hugging Face `Trainer` on a SageMaker job folder.

Reads the same folder as `python -m model train` (hyperparameters.json, the train and test
CSV channels) so both runs get the same data and settings, fine-tunes with a plain
`transformers.Trainer` (DataCollatorWithPadding, no evaluation or saving during training),
predicts the test channel and writes <job>/hf_trainer_result.json. Run in a subprocess by
bench.training (so its peak RSS is measured on its own):
    python -m bench.hf_trainer --job-dir bench/work/training/hf
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

from bench.common import work_dir
from model.console import quiet_libraries
from model.contract import SageMakerPaths, read_config
from model.data import Example, encode, load_channel
from model.hyperparameters import Hyperparameters, parse_hyperparameters

RESULT_FILE = "hf_trainer_result.json"


def read_job(job_dir: Path) -> tuple[Hyperparameters, list[Example], list[Example]]:
    """The same hyperparameters (defaults included) and data that our trainer reads."""
    paths = SageMakerPaths(job_dir)
    hp = parse_hyperparameters(read_config(paths.hyperparameters_file))

    def channel(name: str) -> list[Example]:
        return load_channel(paths.channel_dir(name), None, hp.text_column, hp.label_column)

    return hp, channel("train"), channel("test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job-dir", type=Path, required=True)
    parser.add_argument("--model", required=True, help="base model folder or name")
    args = parser.parse_args()
    quiet_libraries()

    hp, train_examples, test_examples = read_job(args.job_dir)
    set_seed(hp.seed)
    labels = sorted({example.label for example in train_examples})
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label_ids,
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
    )
    training_args = TrainingArguments(
        output_dir=str(work_dir("training", "hf_output")),
        num_train_epochs=hp.epochs,
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.eval_batch_size,
        learning_rate=hp.learning_rate,
        warmup_steps=hp.warmup_ratio,  # a float in [0, 1) is a ratio of the steps
        weight_decay=hp.weight_decay,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        seed=hp.seed,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),  # as ours on GPU
        dataloader_pin_memory=False,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=encode(tokenizer, train_examples, labels, hp),
        processing_class=tokenizer,
    )
    metrics = trainer.train().metrics
    test = encode(tokenizer, test_examples, labels, hp)
    predicted = np.argmax(trainer.predict(test).predictions, axis=-1)
    truth = np.array([row["labels"] for row in test])
    result = {
        "train_samples_per_second": metrics["train_samples_per_second"],
        "train_runtime": metrics["train_runtime"],
        "test_accuracy": float(accuracy_score(truth, predicted)),
        "test_macro_f1": float(
            f1_score(truth, predicted, labels=range(len(labels)), average="macro")
        ),
        "optimizer": getattr(training_args.optim, "value", str(training_args.optim)),
        "torch_threads": torch.get_num_threads(),
    }
    (args.job_dir / RESULT_FILE).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
