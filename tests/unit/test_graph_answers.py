"""What the Graph door makes of Graph's answers (services/mailbox/graph.py), from the
recorded error bodies the test Graph serves (tests/support/graph_answers/), and the Graph
mailbox's configuration."""

import pytest
from pydantic import ValidationError

from services.mailbox.config import Mailbox
from services.mailbox.credentials import LoginRefused
from services.mailbox.graph import DeltaExpired, Gone, GraphError, error_for
from tests.support.graph import recorded


def error(name: str) -> tuple[str, str]:
    body = recorded(name)["error"]
    return body["code"], body["message"]


@pytest.mark.parametrize(
    ("status", "name", "kind"),
    [
        (401, "error-invalid-token", LoginRefused),
        (403, "error-access-denied", LoginRefused),
        (410, "error-sync-state-not-found", DeltaExpired),
        (400, "error-sync-state-not-found", DeltaExpired),  # as identity resources answer it
        (404, "error-item-not-found", Gone),
        (500, "error-item-not-found", GraphError),
    ],
)
def test_graphs_errors_become_what_the_door_acts_on(status, name, kind):
    found = error_for(status, *error(name))

    assert type(found) is kind


def test_a_refused_token_names_graphs_code_and_message():
    found = error_for(401, *error("error-invalid-token"))

    assert str(found) == (
        "Microsoft Graph: HTTP 401 InvalidAuthenticationToken: "
        "Access token validation failure. Invalid audience."
    )


def graph_mailbox(**settings) -> Mailbox:
    defaults = {
        "name": "support",
        "kind": "graph",
        "user": "support@contoso.com",
        "auth": "microsoft",
        "tenant": "contoso.onmicrosoft.com",
        "client_id": "app",
        "secret": "env:SECRET",
    }
    return Mailbox(**defaults | settings)


def test_a_graph_mailbox_reads_the_inbox_by_its_well_known_name():
    assert graph_mailbox().folders == ["inbox"]
    assert graph_mailbox(folders=["INBOX", "AAMkAGI2"]).folders == ["inbox", "AAMkAGI2"]
    assert graph_mailbox().graph_url == "https://graph.microsoft.com/v1.0"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"auth": "password"}, "logs in as a Microsoft Entra ID app"),
        ({"flag": "$Routed"}, "marks a stored message read"),
        ({"graph_url": "http://graph.example.com/v1.0"}, "not an https URL"),
        ({"tenant": ""}, "needs the tenant"),
    ],
)
def test_a_graph_mailbox_needs_what_graph_needs(settings, problem):
    with pytest.raises(ValidationError, match=problem):
        graph_mailbox(**settings)


def test_plain_http_is_only_for_a_local_graph():
    assert graph_mailbox(graph_url="http://127.0.0.1:8080/v1.0").graph_url.startswith("http:")
