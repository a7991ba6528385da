"""From a folder of sorted mail to a registered model: `postwerk dataset build`, then
`postwerk train --dataset`, against the local SageMaker service; the registry names the data
set and version the model learnt from."""

from email.message import EmailMessage

from typer.testing import CliRunner

from postwerk.cli import app
from services import registry
from tests.support.jobs import make_emails

runner = CliRunner()
BUCKET = "postwerk-dataset-training"


def write_mail_folders(root, emails: list[dict]) -> None:
    """One folder per label, one .eml per e-mail: how staff sort their mail."""
    for n, email in enumerate(emails):
        mail = EmailMessage()
        mail["From"] = f"kunde{n}@example.org"
        mail["Subject"] = email["subject"]
        mail["Message-ID"] = f"<train-{n}@example.org>"
        mail.set_content(email["body"])
        folder = root / email["label"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n}.eml").write_bytes(bytes(mail))


def test_train_on_a_data_set_built_from_mail_folders(sagemaker, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTWERK_BUCKET", BUCKET)
    write_mail_folders(tmp_path / "mail", make_emails(60, 1))
    built = runner.invoke(app, ["dataset", "build", str(tmp_path / "mail"), "--name", "sorted"])
    assert built.exit_code == 0, built.output
    assert "train on it: postwerk train --dataset sorted" in built.output

    settings = ["-p", f"model_name_or_path={tiny_bert}", "-p", "epochs=2", "-p", "batch_size=8"]
    trained = runner.invoke(app, ["train", "--dataset", "sorted", *settings, "--name", "ds-train"])
    assert trained.exit_code == 0, trained.output
    entry = registry.version(BUCKET, "ds-train")
    assert entry.dataset.name == "sorted" and len(entry.dataset.version) == 16
    assert {item.channel for item in entry.data_manifest} == {"train", "validation", "test"}

    both = runner.invoke(app, ["train", str(tmp_path / "mail"), "--dataset", "sorted"])
    assert both.exit_code == 2 and "without DATA" in both.output
    unknown = runner.invoke(app, ["train", "--dataset", "nope"])
    assert unknown.exit_code == 2 and "no data set nope" in unknown.output
