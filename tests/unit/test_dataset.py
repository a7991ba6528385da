"""`postwerk dataset build` (postwerk/dataset.py): each source format to a labelled, split,
uploaded data set against MiniStack; labels from folders, a mapping file or a CSV; threads
kept in one split; duplicates and empties dropped; no addresses."""

import hashlib
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import boto3
import pytest

from postwerk import dataset
from services.lifecycle import s3_channel
from services.registry import dataset_of

BUCKET = "artifacts-dataset-tests"
TOPICS = {
    "Rechnungen": ("Rechnung doppelt", "Die Rechnung kam zweimal, bitte eine stornieren."),
    "Technik": ("Login geht nicht", "Das Passwort wird seit gestern nicht angenommen."),
    "Kündigung": ("Vertrag kündigen", "Ich möchte meinen Vertrag zum Monatsende kündigen."),
}
SENDER = "kunde.{n}@example.org"


def message(n: int, subject: str, body: str, replying_to: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = SENDER.format(n=n)
    mail["To"] = "support@firma.example"
    mail["Subject"] = subject
    mail["Message-ID"] = f"<m{n}@example.org>"
    mail["Date"] = f"Mon, {1 + n % 28:02d} Jun 2025 10:00:00 +0200"
    if replying_to:
        mail["In-Reply-To"] = mail["References"] = f"<{replying_to}>"
    mail.set_content(f"{body} Kundennummer {n}.")
    return mail


def threads_of(folder: str, start: int, count: int = 12) -> list[EmailMessage]:
    """`count` threads of an original and a reply."""
    subject, body = TOPICS[folder]
    mails = []
    for n in range(start, start + 2 * count, 2):
        mails.append(message(n, subject, body))
        mails.append(message(n + 1, f"Re: {subject}", f"Nachtrag: {body}", f"m{n}@example.org"))
    return mails


def eml_tree(root: Path) -> Path:
    for start, folder in enumerate(TOPICS):
        (root / folder).mkdir(parents=True)
        for mail in threads_of(folder, 100 * start):
            (root / folder / f"{mail['Message-ID'].strip('<>')}.eml").write_bytes(bytes(mail))
    return root


@pytest.fixture
def bucket(aws):
    boto3.client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return BUCKET


def rows(card: dataset.DataCard) -> dict[str, list[dict]]:
    s3 = boto3.client("s3")
    found = {}
    for split in dataset.SPLITS:
        key = f"datasets/{card.name}/{card.version}/{split}/data.jsonl"
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        found[split] = [json.loads(line) for line in body.splitlines()]
    return found


def totals(card: dataset.DataCard) -> dict[str, int]:
    return {
        label: sum(c.get(label, 0) for c in card.counts.values()) for label in card.counts["train"]
    }


def test_folders_become_labels_stratified_threads_in_one_split_no_addresses(bucket, tmp_path):
    card = dataset.build([eml_tree(tmp_path / "mail")], "support", dataset.Labels(), bucket)
    split_rows = rows(card)
    assert {label for counts in card.counts.values() for label in counts} == set(TOPICS)
    assert all(card.counts[split] for split in dataset.SPLITS)  # every split has each label
    assert all(set(c) == set(TOPICS) for c in card.counts.values())
    split_of = {row["id"]: split for split, found in split_rows.items() for row in found}
    originals = [n for n in range(0, 224, 2) if f"m{n}@example.org" in split_of]
    assert len(originals) == 36, "three folders of twelve threads"
    assert [split_of[f"m{n}@example.org"] for n in originals] == [
        split_of[f"m{n + 1}@example.org"] for n in originals
    ], "an original and its reply share a split"
    everything = json.dumps(split_rows)
    assert "kunde." not in everything and "support@firma" not in everything
    assert {tuple(sorted(row)) for found in split_rows.values() for row in found} == {
        ("body", "id", "label", "subject")
    }
    assert card.languages == {"de": 72} and card.first_date.startswith("2025-06")


def test_a_mapping_renames_merges_and_ignores_folders(bucket, tmp_path):
    mapping = {"Rechnungen": "billing", "Kündigung": "billing", "Technik": None}
    card = dataset.build([eml_tree(tmp_path)], "m", dataset.Labels(mapping=mapping), bucket)
    assert set(card.counts["train"]) == {"billing"}
    assert card.dropped["unlabelled"] == 24


def test_duplicates_empties_and_non_mail_are_dropped_and_counted(bucket, tmp_path):
    root = eml_tree(tmp_path / "mail")
    (root / "Technik" / "copy.eml").write_bytes(
        (root / "Technik" / "m100@example.org.eml").read_bytes()
    )
    empty = message(999, "Leer", "")
    empty.set_content("")
    (root / "Technik" / "empty.eml").write_bytes(bytes(empty))
    (root / "Technik" / "junk.eml").write_bytes(b"\x00\x01\x02 no mail")
    card = dataset.build([root], "d", dataset.Labels(), bucket)
    assert card.dropped == {"duplicates": 1, "empty": 1, "not_an_email": 1, "unlabelled": 0}
    assert sum(sum(c.values()) for c in card.counts.values()) == 72


def test_mbox_and_maildir_folders_are_read_like_eml_folders(bucket, tmp_path):
    box = mailbox.mbox(tmp_path / "Rechnungen")  # Thunderbird: a folder is an mbox file
    for mail in threads_of("Rechnungen", 0):
        box.add(mail)
    box.close()
    (tmp_path / "Rechnungen.msf").write_text("// <!-- <mdb:mork:z v=1.4/> -->")
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    technik = maildir.add_folder("Technik")  # Maildir++: .Technik
    for mail in threads_of("Technik", 100):
        technik.add(mail)
    card = dataset.build([tmp_path], "boxes", dataset.Labels(), bucket)
    assert totals(card) == {"Rechnungen": 24, "Technik": 24}


def test_labels_from_a_csv_of_message_ids(bucket, tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("message_id,label\n<m0@example.org>,billing\nm1@example.org,billing\n")
    by_id = dataset.read_label_csv(csv_file)
    card = dataset.build([eml_tree(tmp_path / "mail")], "c", dataset.Labels(by_id=by_id), bucket)
    assert card.counts["train"] == {"billing": 2} and card.dropped["unlabelled"] == 70
    assert card.rare_labels == ["billing"]  # 2 < 10: named as too rare to learn


def test_the_same_mail_gives_the_same_version_and_the_manifest_hashes_its_files(bucket, tmp_path):
    root = eml_tree(tmp_path)
    first = dataset.build([root], "v", dataset.Labels(), bucket, seed=3)
    again = dataset.build([root], "v", dataset.Labels(), bucket, seed=3)
    assert first.version == again.version
    s3 = boto3.client("s3")
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"datasets/v/{first.version}/manifest.json")["Body"].read()
    )
    for item in manifest:
        key = item["uri"].removeprefix(f"s3://{BUCKET}/")
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == item["sha256"] and len(body) == item["size"]
    assert dataset.card(BUCKET, "v") == dataset.card(BUCKET, f"v:{first.version}")
    assert [c["ChannelName"] for c in dataset.channels(BUCKET, first)] == list(dataset.SPLITS)


def test_unknown_data_sets_bad_mapping_and_missing_sources_are_clear_errors(bucket, tmp_path):
    with pytest.raises(dataset.DatasetError, match="no data set nope"):
        dataset.card(BUCKET, "nope")
    (tmp_path / "mapping.json").write_text('{"Inbox": 3}')
    with pytest.raises(dataset.DatasetError, match="folder"):
        dataset.read_mapping(tmp_path / "mapping.json")
    with pytest.raises(dataset.DatasetError, match="no such file"):
        list(dataset.read_sources([tmp_path / "missing"]))
    with pytest.raises(dataset.DatasetError, match="no labelled message"):
        dataset.build([tmp_path / "mapping.json"], "x", dataset.Labels(), bucket)


def small_mailbox(root: Path, per_label: dict[str, int]) -> Path:
    """Folders of single messages (no threads), `count` in each."""
    n = 0
    for folder, count in per_label.items():
        (root / folder).mkdir(parents=True)
        for _ in range(count):
            mail = message(n, f"{folder} Anfrage {n}", f"Eine Frage zu {folder}, Nummer {n}.")
            (root / folder / f"m{n}.eml").write_bytes(bytes(mail))
            n += 1
    return root


def test_a_small_mailbox_gets_a_split_that_fits_and_says_how_few_it_holds(bucket, tmp_path):
    folders = {f"Thema{i}": 6 for i in range(7)}  # 42 messages, 6 a label
    card = dataset.build([small_mailbox(tmp_path / "mail", folders)], "small", dataset.Labels(),
                         bucket, min_count=10)  # fmt: skip
    assert card.folds == 6
    assert all(set(card.counts[split]) == set(folders) for split in dataset.SPLITS)
    assert sum(sum(c.values()) for c in card.counts.values()) == 42
    assert sorted(card.rare_labels) == sorted(folders)

    too_few = small_mailbox(tmp_path / "fewer", {"Rechnung": 10, "Lob": 2})
    with pytest.raises(dataset.DatasetError, match=r"'Lob' has 2 message.*at least 3"):
        dataset.build([too_few], "fewer", dataset.Labels(), bucket)


def test_the_registry_tells_the_data_set_from_the_job_channels():
    uri = f"s3://{BUCKET}/datasets/support/0123abcd/"
    channels = [s3_channel(s, f"{uri}{s}/") for s in dataset.SPLITS]
    found = dataset_of(channels)
    assert (found.name, found.version) == ("support", "0123abcd")
    assert dataset_of([s3_channel("train", f"s3://{BUCKET}/jobs/j/train/")]) is None


@pytest.mark.parametrize("suffix", [".msg", ".pst"])
def test_a_broken_outlook_file_is_a_clear_error(tmp_path, suffix):
    """What the Outlook readers can be tested with here: no real .msg or .pst is at hand."""
    (tmp_path / f"export{suffix}").write_bytes(b"not an Outlook file")
    with pytest.raises(dataset.DatasetError, match=f"not a readable Outlook {suffix} file"):
        list(dataset.read_sources([tmp_path]))
