"""Every `postwerk` command keeps its exit-code promise (docs/operations/cli.md): with AWS
unreachable (or the local AWS not running, or bad input) it exits 2 with one red line, never
a traceback."""

import json

import pytest
from typer.testing import CliRunner

from emulation.processes import free_port
from postwerk.cli import app

# How to call each command so that it gets past its own argument checks; what it exits with
# when AWS does not answer. A new command must be added here (the walk below checks).
CALLS = {
    "up": (["--backend", "kubernetes"], 2),  # bad input, before anything starts
    "down": ([], 0),  # nothing was running: nothing to do
    "status": ([], 2),
    "env": ([], 2),  # the local AWS is not running
    "send": (["{eml}"], 2),
    "results": ([], 2),
    "monitor": ([], 2),
    "deploy": ([], 2),  # --target local: the local AWS is not running
    "cost": ([], 0),  # an estimate: stated defaults where AWS has no figures
    "train": (["{data}"], 2),
    "tune": (["{config}", "{data}"], 2),
    "predict": (["my invoice is wrong"], 2),
    "models": ([], 2),
    "deploy-model": (["some-job"], 2),
    "promote": (["some-job"], 2),
    "rollback": ([], 2),
    "dataset": (["build", "{eml}", "--name", "mail"], 2),
    "backfill": (["{eml}"], 2),
    "outbox": ([], 2),
    "reindex-replies": ([], 2),
    "mailbox": (["status"], 2),
}
READ_GIT = {"deploy-model", "promote"}  # the model's version: `git describe`, a subprocess


@pytest.fixture
def unreachable(tmp_path, monkeypatch):
    """Every AWS endpoint a closed port; no local AWS; one attempt per call."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-central-1", "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test", "AWS_MAX_ATTEMPTS": "1",
        "POSTWERK_STATE_DIR": str(tmp_path / "state"), "POSTWERK_BUCKET": "b",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
    (tmp_path / "m.eml").write_bytes(b"From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n")
    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "t", "label": "l"}) + "\n")
    (tmp_path / "tuning.json").write_text("{}")
    return {"eml": tmp_path / "m.eml", "data": tmp_path / "train.jsonl",
            "config": tmp_path / "tuning.json"}  # fmt: skip


def test_every_command_is_walked():
    registered = {command.name for command in app.registered_commands}
    registered |= {group.name for group in app.registered_groups}
    assert registered == set(CALLS)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.live) if name in READ_GIT else name
        for name in sorted(CALLS)
    ],
)
def test_a_command_that_cannot_reach_aws_exits_with_its_code_and_one_line(unreachable, name):
    arguments, code = CALLS[name]
    given = [argument.format(**unreachable) for argument in arguments]
    result = CliRunner().invoke(app, [name, *given])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), "no traceback"
    one_line_when_it_fails = 1 if code else 0
    assert result.output.count("error:") == one_line_when_it_fails, result.output


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_command_has_help(name):
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
