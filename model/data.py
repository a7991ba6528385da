"""Training data: channels of JSON Lines or CSV files, one labelled e-mail per record,
tokenized once and served in length-grouped batches."""

import csv
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from model.contract import InputError, SageMakerPaths, read_config
from model.hyperparameters import Hyperparameters

if TYPE_CHECKING:  # transformers loads in seconds: bad input is refused before it (train.py)
    from transformers import BatchEncoding

FORMAT_BY_CONTENT_TYPE = {
    "application/jsonlines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonl": "jsonl",
    "text/csv": "csv",
}
FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".jsonlines": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def email_text(subject: str, body: str) -> str:
    """What the model reads of an e-mail; training and serving must agree on it."""
    return f"{subject.strip()}\n{body.strip()}".strip()


def load_channel(
    directory: Path, content_type: str | None, text_column: str, label_column: str
) -> list[Example]:
    """All records of one channel; an empty or missing channel is an InputError."""
    channel = directory.name
    if not directory.is_dir():
        raise InputError(f"channel '{channel}' is missing: no folder {directory}")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))
    examples = [
        example
        for path in files
        for example in read_file(path, file_format(path, content_type), text_column, label_column)
    ]
    if not examples:
        raise InputError(f"channel '{channel}' has no records in {directory}")
    return examples


def file_format(path: Path, content_type: str | None) -> str:
    if content_type:
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in FORMAT_BY_CONTENT_TYPE:
            known = ", ".join(FORMAT_BY_CONTENT_TYPE)
            raise InputError(f"unsupported ContentType '{content_type}' (supported: {known})")
        return FORMAT_BY_CONTENT_TYPE[media_type]
    if path.suffix.lower() not in FORMAT_BY_SUFFIX:
        raise InputError(
            f"cannot tell the format of {path.name}: name it .jsonl or .csv, "
            "or set the channel's ContentType"
        )
    return FORMAT_BY_SUFFIX[path.suffix.lower()]


def read_file(path: Path, fmt: str, text_column: str, label_column: str) -> list[Example]:
    read_records = read_jsonl if fmt == "jsonl" else read_csv
    try:
        return [
            to_example(record, f"{path.name} {where}", text_column, label_column)
            for where, record in read_records(path)
        ]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read {path.name}: {error}") from error


def read_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path.name} line {number}: not valid JSON ({error})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path.name} line {number}: expected a JSON object")
            yield f"line {number}", record


def read_csv(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open(encoding="utf-8", newline="") as rows:
        for number, row in enumerate(csv.DictReader(rows), start=2):
            yield f"line {number}", row


def to_example(record: dict, where: str, text_column: str, label_column: str) -> Example:
    if text_column in record:
        text = record[text_column]
    elif "subject" in record or "body" in record:
        text = email_text(record.get("subject") or "", record.get("body") or "")
    else:
        raise InputError(
            f"{where}: no '{text_column}' (or 'subject'/'body') field; "
            f"fields are {sorted(record)} (set hyperparameter text_column)"
        )
    label = record.get(label_column)
    if label is None or str(label).strip() == "":
        raise InputError(
            f"{where}: no '{label_column}' value; fields are {sorted(record)} "
            "(set hyperparameter label_column)"
        )
    if not isinstance(text, str):
        raise InputError(f"{where}: '{text_column}' must be a string")
    return Example(text=text, label=str(label).strip())


def split_validation(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Stratified split: each label gives the same share to validation (if it has 2+ records)."""
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    train, validation = [], []
    for group in by_label.values():
        rng.shuffle(group)
        held_out = round(len(group) * fraction) if len(group) > 1 else 0
        validation += group[:held_out]
        train += group[held_out:]
    if not validation:
        raise InputError("too little data to hold out a validation split; add a validation channel")
    rng.shuffle(train)
    return train, validation


def check_labels(train: list[Example], others: dict[str, list[Example]]) -> list[str]:
    """The sorted label set of the training data, checked against the other channels."""
    labels = sorted({example.label for example in train})
    if len(labels) < 2:
        raise InputError(f"training data has a single label ({labels[0]!r}); need at least two")
    for channel, examples in others.items():
        unknown = sorted({e.label for e in examples} - set(labels))
        if unknown:
            raise InputError(f"channel '{channel}' has labels not in train: {unknown[:10]}")
    return labels


def label_counts(examples: list[Example]) -> dict[str, int]:
    return dict(sorted(Counter(example.label for example in examples).items()))


@dataclass
class Datasets:
    train: list[Example]
    validation: list[Example]
    test: list[Example] | None
    labels: list[str]


def load_datasets(paths: SageMakerPaths, hp: Hyperparameters) -> Datasets:
    channels = read_config(paths.input_data_config_file)

    def has(channel: str) -> bool:
        return channel in channels or paths.channel_dir(channel).exists()

    def read(channel: str) -> list[Example]:
        content_type = channels.get(channel, {}).get("ContentType")
        directory = paths.channel_dir(channel)
        return load_channel(directory, content_type, hp.text_column, hp.label_column)

    train = read("train")
    check_labels(train, {})
    if has("validation"):
        validation = read("validation")
    else:
        train, validation = split_validation(train, hp.validation_split, hp.seed)
    test = read("test") if has("test") else None
    others = {"validation": validation} | ({"test": test} if test else {})
    return Datasets(train, validation, test, labels=check_labels(train, others))


def tokenize(tokenizer, texts: list[str], max_length: int, long_text: str) -> "BatchEncoding":
    """What the model reads of each text, unpadded: training and serving both call this.

    A text of more than max_length tokens (the special ones included) keeps its first
    max_length (`head`), or its first and last max_length / 2 (`head_tail`: the request of
    a long e-mail is often at its end, after the context; Sun et al. 2019 found head and tail
    best for long documents). Splitting the whole text's tokens keeps the special tokens at
    both ends, whatever the tokenizer puts there.
    """
    if long_text == "head":
        return tokenizer(texts, truncation=True, max_length=max_length)
    encoded = tokenizer(texts, verbose=False)  # whole: longer than the model's limit is fine
    head = max_length // 2
    tail = max_length - head
    for key in encoded:
        encoded[key] = [ids if len(ids) <= max_length else ids[:head] + ids[-tail:]
                        for ids in encoded[key]]  # fmt: skip
    return encoded


def encode(
    tokenizer, examples: list[Example], labels: list[str], hp: Hyperparameters
) -> list[dict]:
    """Tokenize once, unpadded: batches are padded to their own longest e-mail."""
    label_ids = {label: i for i, label in enumerate(labels)}
    encoded = tokenize(tokenizer, [e.text for e in examples], hp.max_length, hp.long_text)
    return [
        {**{key: encoded[key][i] for key in encoded}, "labels": label_ids[example.label]}
        for i, example in enumerate(examples)
    ]


def length_grouped_batches(
    lengths: list[int], batch_size: int, seed: int, world_size: int
) -> list[list[int]]:
    """Shuffled batches of similar length (little padding), the same on every process.

    Like Hugging Face's LengthGroupedSampler: shuffle, sort within mega-batches of 50
    batches, shuffle the batches. Padded by wrap-around to a multiple of the world size.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    mega = batch_size * 50
    for start in range(0, len(order), mega):
        group = sorted(order[start : start + mega], key=lengths.__getitem__, reverse=True)
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    remainder = len(batches) % world_size
    if remainder:
        batches += batches[: world_size - remainder]
    return batches
