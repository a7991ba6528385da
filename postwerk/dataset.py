"""A mailbox's history as a labelled data set: `postwerk dataset build`.

Reads folders of .eml files, mbox files (Thunderbird, Apple Mail, mutt, Gmail's Takeout),
Maildir trees, Outlook .msg exports and .pst archives; labels each message by the folder it
sits in (renamed, merged or ignored by a mapping file) or by a CSV of message id -> label;
parses it with ingest's parser and keeps what the model reads (services/records.py
`model_text`) plus the label: message ids and text, no addresses. Duplicates (by message id)
and messages without text are dropped, every message of a thread lands in one split, and the
train / validation / test split is stratified by label with a seed.

The data set goes to the artifacts bucket under datasets/<name>/<version>/
(docs/architecture.md 3.7; this module owns that prefix): <split>/data.jsonl, manifest.json
(size and SHA-256 per file) and card.json (counts, languages, date range, what was dropped,
labels too rare to learn); datasets/<name>/latest.json names the newest version. The version
is a digest of the split files: the same mail gives the same version. The registry tells
from a training job's channels which data set and version it read (services/registry.py
`dataset_of`).

It streams: messages are parsed one at a time into a temporary file; only a few small fields
per message (id, label, thread, language, date) stay in memory until the split is drawn.
"""

import csv
import hashlib
import json
import mailbox
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser, HeaderParser
from pathlib import Path

from pydantic import BaseModel

from services import storage
from services.lifecycle import s3_channel
from services.registry import ManifestItem

PREFIX = "datasets"
SPLITS = ("train", "validation", "test")
FOLDS = 10  # one fold is the test split, one the validation split: 80/10/10
MIN_PER_LABEL = 3  # one message each for train, validation and test
MAILDIR_PARTS = ("cur", "new", "tmp")
MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


class DatasetError(ValueError):
    """A source or a label file that cannot be read, or nothing left to learn from."""


@dataclass(frozen=True)
class Found:
    raw: bytes
    folder: str  # the mail folder it sits in: its label before mapping
    where: str  # file (and position) for error messages


# ---- reading the sources -------------------------------------------------------------------


def read_sources(sources: Sequence[Path]) -> Iterator[Found]:
    for source in sources:
        if not source.exists():
            raise DatasetError(f"{source}: no such file or folder")
        yield from read_source(source)


def read_source(path: Path) -> Iterator[Found]:
    """Every message under a path, whatever the format; other files (Thunderbird's .msf
    indexes, .DS_Store ...) are skipped."""
    if path.is_dir():
        if all((path / part).is_dir() for part in MAILDIR_PARTS):
            yield from read_maildir(path)
        for child in sorted(path.iterdir()):
            if child.name not in MAILDIR_PARTS or not child.is_dir():
                yield from read_source(child)
    elif path.suffix.lower() == ".eml":
        yield Found(path.read_bytes(), path.parent.name, str(path))
    elif path.suffix.lower() == ".msg":
        yield read_msg(path)
    elif path.suffix.lower() == ".pst":
        yield from read_pst(path)
    elif is_mbox(path):
        yield from read_mbox(path)


def is_mbox(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(5) == b"From "


def read_mbox(path: Path) -> Iterator[Found]:
    """An mbox file is its folder: Thunderbird's `Rechnungen`, mutt's `billing.mbox`, Apple
    Mail's `Rechnungen.mbox/mbox`."""
    folder = path.parent.stem if path.name == "mbox" else path.stem
    box = mailbox.mbox(path, create=False)
    try:
        for number, key in enumerate(box.iterkeys()):
            yield Found(box.get_bytes(key), folder, f"{path} #{number + 1}")
    finally:
        box.close()


def read_maildir(path: Path) -> Iterator[Found]:
    """A Maildir folder's own messages; Maildir++ names subfolders `.Support.Billing`."""
    folder = path.name.rpartition(".")[2] if path.name.startswith(".") else path.name
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield Found(box.get_bytes(key), folder, f"{path}/{key}")


def read_msg(path: Path) -> Found:
    """An Outlook .msg export (extract-msg), as the MIME message it describes."""
    import extract_msg

    try:
        with extract_msg.openMsg(str(path)) as message:
            raw = message.asEmailMessage().as_bytes()
    except Exception as error:  # the library raises many kinds on a broken file
        raise DatasetError(f"{path}: not a readable Outlook .msg file ({error})") from error
    return Found(raw, path.parent.name, str(path))


def read_pst(path: Path) -> Iterator[Found]:
    """An Outlook .pst archive (libpff): every message of every folder."""
    import pypff

    archive = pypff.file()
    try:
        archive.open(str(path))
    except OSError as error:
        raise DatasetError(f"{path}: not a readable Outlook .pst file ({error})") from error
    try:
        yield from read_pst_folder(archive.get_root_folder(), path.stem, str(path))
    finally:
        archive.close()


def read_pst_folder(folder, name: str, where: str) -> Iterator[Found]:
    for message in folder.sub_messages:
        yield Found(pst_message(message), name, f"{where}/{name}")
    for sub in folder.sub_folders:
        yield from read_pst_folder(sub, sub.name or name, where)


def pst_message(message) -> bytes:
    """A MIME message from a .pst item: the headers it arrived with (ids, date, thread) and
    its plain text (or HTML) body."""
    headers = HeaderParser().parsestr(message.transport_headers or "", headersonly=True)
    built = EmailMessage()
    built["Subject"] = message.subject or ""
    for name in ("Message-ID", "Date", "In-Reply-To", "References"):
        if headers[name]:
            built[name] = headers[name]
    if message.plain_text_body:
        built.set_content(message.plain_text_body.decode("utf-8", errors="replace"))
    elif message.html_body:
        built.set_content(message.html_body.decode("utf-8", errors="replace"), subtype="html")
    return built.as_bytes()


# ---- labels ---------------------------------------------------------------------------------


class Labels:
    """Folder -> label (a mapping file renames, merges or ignores folders: null ignores), or
    message id -> label from a CSV (messages not in it are left out)."""

    def __init__(self, mapping: dict[str, str | None] | None = None, by_id: dict | None = None):
        self.mapping = mapping or {}
        self.by_id = by_id

    def __call__(self, folder: str, message_id: str) -> str | None:
        if self.by_id is not None:
            return self.by_id.get(message_id)
        label = self.mapping.get(folder, folder)
        return label.strip() or None if label is not None else None


def read_mapping(path: Path) -> dict[str, str | None]:
    try:
        mapping = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not a JSON mapping file ({error})") from error
    if not isinstance(mapping, dict) or not all(
        isinstance(v, str | None) for v in mapping.values()
    ):
        raise DatasetError(f'{path}: expected {{"folder": "label" or null, ...}}')
    return mapping


def read_label_csv(path: Path) -> dict[str, str]:
    """A CSV with the columns message_id and label (ids with or without <>)."""
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path}: not a readable CSV ({error})") from error
    if rows and not {"message_id", "label"} <= rows[0].keys():
        raise DatasetError(f"{path}: needs the columns message_id and label")
    return {r["message_id"].strip().strip("<>"): r["label"].strip() for r in rows if r["label"]}


# ---- building -------------------------------------------------------------------------------


class DataCard(BaseModel):
    name: str
    version: str
    created_at: str
    sources: list[str]
    seed: int
    counts: dict[str, dict[str, int]]  # split -> label -> messages
    languages: dict[str, int]
    first_date: str | None
    last_date: str | None
    dropped: dict[str, int]  # duplicates, empty, not_an_email, unlabelled
    min_count: int
    rare_labels: list[str]  # fewer than min_count messages: too few to learn
    # The smallest label's count caps the folds: with 6 messages a label, 6 folds, so test
    # and validation hold about one message of each label (test figures of a smoke test);
    # 1: too few threads to cut, all of it trains.
    folds: int = FOLDS


@dataclass
class Kept:
    message_id: str
    label: str
    thread: list[str]  # the ids it refers to (References, In-Reply-To)


@dataclass
class Tally:
    dropped: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None

    def saw_date(self, moment: datetime) -> None:
        self.first = min(self.first or moment, moment)
        self.last = max(self.last or moment, moment)


def collect(found: Iterator[Found], labels: Labels, rows: Path) -> tuple[list[Kept], Tally]:
    """Parse every message once, write its row to `rows`; what the split needs stays here."""
    from services.mail import NotAnEmail, parse_email  # its language model loads slowly

    kept: list[Kept] = []
    seen: set[str] = set()
    tally = Tally()
    with rows.open("w") as out:
        for item in found:
            try:
                email = parse_email(item.raw, "", item.where)
            except NotAnEmail:
                tally.dropped["not_an_email"] += 1
                continue
            label = labels(item.folder, email.message_id)
            reason = drop_reason(email, label, seen)
            if reason:
                tally.dropped[reason] += 1
                continue
            seen.add(email.message_id)
            tally.languages[email.language] += 1
            tally.saw_date(email.received_at)
            kept.append(Kept(email.message_id, label, referenced_ids(item.raw)))
            out.write(json.dumps(email.model_text() | {"label": label}, ensure_ascii=False))
            out.write("\n")
    return kept, tally


def drop_reason(email, label: str | None, seen: set[str]) -> str | None:
    if label is None:
        return "unlabelled"
    if email.message_id in seen:
        return "duplicates"
    if not email.body_text.strip():
        return "empty"
    return None


def referenced_ids(raw: bytes) -> list[str]:
    headers = BytesHeaderParser().parsebytes(raw[:65536])
    values = " ".join(str(headers.get(name, "")) for name in ("References", "In-Reply-To"))
    return MESSAGE_ID.findall(values)


def threads(kept: list[Kept]) -> list[int]:
    """The thread of each message (a number): messages that refer to each other, also
    through ones that are not in the data set, share one."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for item in kept:
        for other in item.thread:
            parent[root(other)] = root(item.message_id)
    numbers: dict[str, int] = {}
    return [numbers.setdefault(root(item.message_id), len(numbers)) for item in kept]


def assign_splits(kept: list[Kept], seed: int) -> tuple[list[str], int]:
    """Stratified by label, grouped by thread: fold 0 is the test split, fold 1 validation;
    and the number of folds (1: fewer threads than FOLDS, not cut, all of it trains)."""
    import numpy as np  # with scikit-learn, a second of start-up other commands skip
    from sklearn.model_selection import StratifiedGroupKFold

    split = np.full(len(kept), "train", dtype=object)
    groups = threads(kept)
    if len(set(groups)) < FOLDS:
        return list(split), 1
    labels = [item.label for item in kept]
    folds = fold_count(labels)
    cut = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(cut.split(np.zeros(len(kept)), labels, groups)):
        if fold < 2:
            split[held] = SPLITS[2 - fold]
    return list(split), folds


def fold_count(labels: list[str]) -> int:
    """FOLDS, or fewer when the smallest label has fewer messages (scikit-learn refuses more
    folds than a label has members); a label under MIN_PER_LABEL is refused."""
    label, count = Counter(labels).most_common()[-1]
    if count < MIN_PER_LABEL:
        raise DatasetError(
            f"label {label!r} has {count} message(s): each label needs at least "
            f"{MIN_PER_LABEL} (one for train, validation and test; 10 or more for test "
            "figures that mean something); add mail to it, or leave it out with --mapping"
        )
    return min(FOLDS, count)


def write_splits(rows: Path, splits: list[str], folder: Path) -> dict[str, Path]:
    """The rows file cut into one data.jsonl per split, in the order they came."""
    files = {name: folder / name / "data.jsonl" for name in SPLITS}
    outputs = {}
    for name, path in files.items():
        path.parent.mkdir(parents=True)
        outputs[name] = path.open("w")
    try:
        with rows.open() as source:
            for line, name in zip(source, splits, strict=True):
                outputs[name].write(line)
    finally:
        for output in outputs.values():
            output.close()
    return files


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def build(
    sources: Sequence[Path],
    name: str,
    labels: Labels,
    bucket: str,
    seed: int = 0,
    min_count: int = 10,
) -> DataCard:
    """Build the data set from the sources and upload it; its card."""
    with tempfile.TemporaryDirectory(prefix="postwerk-dataset-") as work:
        rows = Path(work) / "rows.jsonl"
        kept, tally = collect(read_sources(sources), labels, rows)
        if not kept:
            raise DatasetError(f"no labelled message with text in {', '.join(map(str, sources))}")
        splits, folds = assign_splits(kept, seed)
        files = write_splits(rows, splits, Path(work) / "splits")
        hashes = {split: digest(path) for split, path in files.items()}
        version = hashlib.sha256("".join(hashes.values()).encode()).hexdigest()[:16]
        card = data_card(name, version, sources, seed, min_count, kept, splits, tally)
        card.folds = folds
        upload(bucket, card, files, hashes)
    return card


def data_card(name, version, sources, seed, min_count, kept, splits, tally: Tally) -> DataCard:
    counts = {split: Counter() for split in SPLITS}
    for item, split in zip(kept, splits, strict=True):
        counts[split][item.label] += 1
    totals = Counter(item.label for item in kept)
    return DataCard(
        name=name,
        version=version,
        created_at=datetime.now(UTC).isoformat(),
        sources=[str(source) for source in sources],
        seed=seed,
        counts={split: dict(sorted(c.items())) for split, c in counts.items()},
        languages=dict(tally.languages.most_common()),
        first_date=tally.first and tally.first.isoformat(),
        last_date=tally.last and tally.last.isoformat(),
        dropped={reason: tally.dropped[reason] for reason in DROP_REASONS},
        min_count=min_count,
        rare_labels=sorted(label for label, count in totals.items() if count < min_count),
    )


DROP_REASONS = ("duplicates", "empty", "not_an_email", "unlabelled")


def upload(bucket: str, card: DataCard, files: dict[str, Path], hashes: dict[str, str]) -> None:
    prefix = f"{PREFIX}/{card.name}/{card.version}"
    manifest = []
    for split, path in files.items():
        key = f"{prefix}/{split}/data.jsonl"
        storage.upload(path, bucket, key)
        uri = f"s3://{bucket}/{key}"
        manifest.append(
            ManifestItem(channel=split, uri=uri, size=path.stat().st_size, sha256=hashes[split])
        )
    manifest_rows = [item.model_dump() for item in manifest]
    storage.write_json(bucket, f"{prefix}/manifest.json", manifest_rows)
    storage.write_json(bucket, f"{prefix}/card.json", card.model_dump())
    storage.write_json(bucket, f"{PREFIX}/{card.name}/latest.json", {"version": card.version})


# ---- reading a data set back ----------------------------------------------------------------


def card(bucket: str, reference: str) -> DataCard:
    """NAME (its latest version) or NAME:VERSION, from the artifacts bucket."""
    name, _, version = reference.partition(":")
    if not version:
        latest = storage.read_json_if_present(bucket, f"{PREFIX}/{name}/latest.json")
        version = latest["version"] if latest else ""
    found = storage.get(bucket, f"{PREFIX}/{name}/{version}/card.json") if version else None
    if found is None:
        raise DatasetError(
            f"no data set {reference} in s3://{bucket}/{PREFIX}/ (postwerk dataset build)"
        )
    return DataCard.model_validate_json(found.body)


def channels(bucket: str, found: DataCard) -> list[dict]:
    """InputDataConfig for training on the data set: its splits that have rows."""
    prefix = f"s3://{bucket}/{PREFIX}/{found.name}/{found.version}"
    return [s3_channel(split, f"{prefix}/{split}/") for split in SPLITS if found.counts[split]]
