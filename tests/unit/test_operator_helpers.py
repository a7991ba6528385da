"""The `postwerk` command's own logic: which files it sends, which id it expects, what it
shows, which backend it picks, how it finds the local AWS again."""

import json
import os

import pytest

from postwerk import local, pipeline
from postwerk.errors import CommandError
from postwerk.pipeline_commands import verdict
from services.mail import parse_email
from tests.support.jobs import ROOT


def test_folders_give_their_eml_files_and_bad_paths_are_named(tmp_path):
    (tmp_path / "a.eml").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.eml").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert pipeline.email_files([tmp_path]) == [tmp_path / "a.eml", tmp_path / "sub" / "b.eml"]
    assert pipeline.email_files([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]
    with pytest.raises(CommandError, match="no such file or folder"):
        pipeline.email_files([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match=r"no \.eml files in this folder"):
        pipeline.email_files([tmp_path / "empty"])


@pytest.mark.parametrize("raw", [
    b"Message-ID: <abc@example.com>\r\nSubject: hi\r\n\r\nbody",
    b"Subject: no id\r\n\r\nbody",
])  # fmt: skip
def test_the_expected_id_is_the_one_the_pipeline_gives(raw):
    assert pipeline.message_id(raw) == parse_email(raw, "b", "k").message_id


def test_senders_are_redacted_and_counts_never_go_negative():
    assert pipeline.redact("anna.schmidt@kunden.example") == "a****@kunden.example"
    assert pipeline.redact("not an address") == "****"
    assert pipeline.Counts(received=5, classified=3, rejected=1, dead_lettered=0).in_flight == 1
    assert pipeline.Counts(received=1, classified=2, rejected=0, dead_lettered=0).in_flight == 0


def test_the_monitors_verdict_names_the_rules_and_what_came_of_them():
    assert verdict([], []) == "no rule fired; nothing to do"
    assert verdict([], ["promoted job-2 (0.91 vs 0.88)"]) == "promoted job-2 (0.91 vs 0.88)"
    fired = ["live accuracy 0.500 < 0.8 on 4 reviewed e-mails"]
    assert verdict(fired, ["started retraining job r-1: data + 4 corrections"]) == (
        "1 rule(s) fired (live accuracy 0.500 < 0.8 on 4 reviewed e-mails): "
        "started retraining job r-1: data + 4 corrections"
    )
    assert verdict(fired, []).endswith("; nothing started")


def test_backend_choice(monkeypatch):
    assert local.choose_backend("embedded") == ("embedded", "BACKEND=embedded")
    with pytest.raises(local.LocalError, match="choose one of embedded, compose"):
        local.choose_backend("kubernetes")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert local.choose_backend(None) == ("embedded", "no Docker engine reachable")
    monkeypatch.setattr(local.compose, "engine_answers", lambda: True)
    assert local.choose_backend(None) == ("compose", "a Docker engine answers")


@pytest.mark.live  # forks a child to have a PID that is gone
def test_a_stale_ready_file_is_forgotten(tmp_path):
    ready = local.ready_file(tmp_path)
    ready.write_text(json.dumps({"backend": "embedded", "env": {}, "pids": [os.getpid()]}))
    assert local.find(tmp_path).pids == [os.getpid()]
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    ready.write_text(json.dumps({"backend": "embedded", "env": {}, "pids": [dead]}))
    assert local.find(tmp_path) is None and not ready.exists()
    assert local.stop(tmp_path) is None, "nothing to stop"


def test_a_busy_port_is_refused_before_anything_starts(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(local.LocalError, match=f"port {port} is in use"):
            local.start_embedded(tmp_path, port, port + 1, port + 2)
    assert not (tmp_path / "logs").exists()


def test_rollback_goes_to_the_champion_before_the_current_one(monkeypatch):
    from services import registry

    def history(*jobs):
        steps = [registry.Promotion(job=job, promoted_at="t", reason="r") for job in jobs]
        current = registry.Champion(job=jobs[-1], history=steps)
        monkeypatch.setattr(registry, "champion", lambda bucket: current)

    history("a", "b", "c")
    assert registry.previous_champion("bucket") == "b"
    history("a", "b", "b")  # promoted twice in a row: the one before that
    assert registry.previous_champion("bucket") == "a"
    history("a")
    with pytest.raises(registry.LifecycleError, match="no earlier champion"):
        registry.previous_champion("bucket")


def test_registry_entries_written_before_job_had_its_name_still_read():
    from services import registry

    old = {"version": "job-1", "history": [{"version": "job-1", "promoted_at": "t", "reason": "r"}]}
    assert registry.Champion.model_validate(old).job == "job-1"
    assert registry.Champion.model_validate(old).model_dump()["job"] == "job-1"


def test_the_monitor_command_offers_every_override_the_function_takes():
    import inspect

    from postwerk.pipeline_commands import monitor
    from services.settings import MONITOR_OVERRIDES, FunctionSettings

    assert set(MONITOR_OVERRIDES) <= set(inspect.signature(monitor).parameters)
    assert set(MONITOR_OVERRIDES) <= set(FunctionSettings.model_fields)


def test_the_templates_defaults_are_the_functions_settings():
    """CloudFormation needs its own defaults; they must be the functions' (services/settings.py)."""
    import yaml

    from services.settings import FunctionSettings

    class IgnoreTags(yaml.SafeLoader):
        pass

    IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)
    parameters = yaml.load((ROOT / "infra" / "template.yaml").read_text(), IgnoreTags)["Parameters"]
    defaults = FunctionSettings.model_fields
    for parameter, setting in {
        "ReviewThreshold": "review_threshold", "MinLiveAccuracy": "min_accuracy",
        "MinReviewed": "min_reviewed", "MaxLabelPsi": "max_label_psi",
        "MaxEceIncrease": "max_ece_increase", "PromotionMargin": "promotion_margin",
    }.items():  # fmt: skip
        assert float(parameters[parameter]["Default"]) == defaults[setting].default, parameter
