"""What `postwerk deploy` and `up` pass to the template: the support address, the routing
table and the teams' webhooks, checked before anything is deployed."""

import json

import pytest

from postwerk.deploy import LOCAL_SUPPORT_ADDRESS, stack_settings, template_teams
from postwerk.errors import CommandError
from postwerk.settings import CliSettings


def test_the_local_stack_sends_from_the_local_domain_and_aws_only_from_a_chosen_address():
    assert stack_settings(CliSettings(), on_aws=False)["SupportAddress"] == LOCAL_SUPPORT_ADDRESS
    assert stack_settings(CliSettings(), on_aws=True)["SupportAddress"] == ""
    chosen = CliSettings(support_address="service@example.com")
    assert stack_settings(chosen, on_aws=True)["SupportAddress"] == "service@example.com"


def test_a_routing_table_file_becomes_the_parameter(tmp_path):
    table = {"default": "care", "teams": {"billing_question": "accounts"}}
    (tmp_path / "routing.json").write_text(json.dumps(table))
    parameters = stack_settings(CliSettings(routing_table=tmp_path / "routing.json"), True)
    assert json.loads(parameters["RoutingTable"]) == table


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"default": "care", "teams": {"x": "legal"}}', r"no queue for team\(s\) legal"),
        ('{"default": "Care Team"}', "default: String should match pattern"),
        ("{not json", "routing table"),
    ],
)
def test_a_bad_routing_table_is_refused_with_the_reason(tmp_path, content, reason):
    (tmp_path / "routing.json").write_text(content)
    with pytest.raises(CommandError, match=reason):
        stack_settings(CliSettings(routing_table=tmp_path / "routing.json"), True)


def test_a_missing_routing_table_is_refused(tmp_path):
    with pytest.raises(CommandError, match="cannot read the routing table"):
        stack_settings(CliSettings(routing_table=tmp_path / "absent.json"), True)


def test_webhooks_go_to_their_teams_parameter_with_the_secret():
    parameters = stack_settings(CliSettings(), True, ["sales=https://desk.example/hook"], "desk")
    assert parameters["SalesWebhookUrl"] == "https://desk.example/hook"
    assert parameters["WebhookSecretName"] == "desk"
    assert "sales" in template_teams()


@pytest.mark.parametrize(
    ("webhooks", "secret", "reason"),
    [
        (["legal=https://desk.example"], "desk", "TEAM one of"),
        (["sales=http://desk.example"], "desk", "https"),
        (["sales=https://desk.example"], "", "--webhook-secret"),
    ],
)
def test_bad_webhooks_are_refused(webhooks, secret, reason):
    with pytest.raises(CommandError, match=reason):
        stack_settings(CliSettings(), True, webhooks, secret)


def test_webhooks_are_refused_for_the_local_stack():
    with pytest.raises(CommandError, match="--target aws"):
        stack_settings(CliSettings(), False, ["sales=https://desk.example/hook"], "desk")
