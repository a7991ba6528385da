"""The mailbox door's fixtures: a real Dovecot per test (or a small Microsoft Graph with its
identity provider, for the Graph door), the door's two buckets on the embedded AWS, and a
mailbox configuration pointing at that server; what the tests read back (the stored
messages, their subjects, the flags on the server)."""

import time

import boto3
import pytest
import trustme

from services import storage
from services.mailbox import credentials
from services.mailbox.config import Mailbox
from services.mailbox.door import Buckets
from tests.support.dovecot import PASSWORD, Dovecot
from tests.support.graph import FakeGraph
from tests.support.identity import CLIENT_ID, CLIENT_SECRET, IdentityProvider

SECRET_VARIABLE = "POSTWERK_TEST_MAILBOX_SECRET"
GRAPH_USER = "support@contoso.com"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def dovecot(ca):
    server = Dovecot(ca).start()
    yield server
    server.stop()


@pytest.fixture
def buckets(aws, ca, tmp_path, monkeypatch) -> Buckets:
    """The raw and artifacts buckets, named in the door's and `postwerk`'s settings; the door
    trusts the test CA (OpenSSL's SSL_CERT_FILE) and finds the mailbox's password in its
    environment."""
    s3 = boto3.client("s3")
    names = Buckets(raw="raw-mailbox-tests", artifacts="artifacts-mailbox-tests")
    for name in (names.raw, names.artifacts):
        s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv(SECRET_VARIABLE, PASSWORD)
    monkeypatch.setenv("POSTWERK_RAW_BUCKET", names.raw)  # the door's settings
    monkeypatch.setenv("POSTWERK_ARTIFACTS_BUCKET", names.artifacts)
    monkeypatch.setenv("POSTWERK_BUCKET", names.artifacts)  # `postwerk`'s
    return names


@pytest.fixture
def graph(ca, buckets, tmp_path, monkeypatch):
    """Microsoft Graph for GRAPH_USER's mailbox, and Entra ID (the local identity provider)
    for its tokens, both trusted by requests through the test CA; the secret in the door's
    environment is the Entra ID app's."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv(SECRET_VARIABLE, CLIENT_SECRET)
    identity = IdentityProvider(ca, user=GRAPH_USER)
    server = FakeGraph(ca, identity, GRAPH_USER)
    yield server
    server.close()
    identity.close()
    credentials.microsoft_app.cache_clear()


def graph_mailbox(graph: FakeGraph, **settings) -> Mailbox:
    """The support mailbox, through this Graph, logging in as the Entra ID app."""
    defaults = {
        "name": "support",
        "kind": "graph",
        "user": GRAPH_USER,
        "auth": "microsoft",
        "tenant": "contoso.onmicrosoft.com",
        "client_id": CLIENT_ID,
        "authority": graph.identity.url,
        "graph_url": graph.url,
        "secret": f"env:{SECRET_VARIABLE}",
    }
    return Mailbox(**defaults | settings)


def mailbox_of(dovecot: Dovecot, **settings) -> Mailbox:
    """The support mailbox of this Dovecot, over IMAPS unless the settings say otherwise."""
    defaults = {
        "name": "support",
        "host": "127.0.0.1",
        "port": dovecot.imaps_port,
        "security": "imaps",
        "user": "support",
        "secret": f"env:{SECRET_VARIABLE}",
    }
    return Mailbox(**defaults | settings)


def stored(buckets: Buckets) -> dict[str, bytes]:
    """The raw bucket's incoming/ objects, by key."""
    keys = storage.list_keys(buckets.raw, "incoming/")
    return {key: storage.read(buckets.raw, key) for key in keys}


def subjects(objects: dict[str, bytes]) -> list[str]:
    return sorted(
        line.decode().removeprefix("Subject: ")
        for raw in objects.values()
        for line in raw.splitlines()
        if line.startswith(b"Subject: ")
    )


def flags_in(dovecot: Dovecot, folder: str = "INBOX") -> dict[int, tuple]:
    with dovecot.client() as client:
        client.select_folder(folder, readonly=True)
        answer = client.fetch(client.search(), ["FLAGS"])
        return {uid: data[b"FLAGS"] for uid, data in answer.items()}


def arrives(buckets: Buckets, count: int, within: float) -> bool:
    """Whether `count` messages are stored within `within` seconds."""
    deadline = time.monotonic() + within
    while len(stored(buckets)) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
