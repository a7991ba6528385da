"""The mailbox door's fixtures: a real Dovecot per test, the door's two buckets on the
embedded AWS, and a mailbox configuration pointing at that Dovecot."""

from collections.abc import Iterator

import boto3
import pytest
import trustme

from services import clients
from services.mailbox.config import Mailbox
from services.mailbox.door import Buckets
from tests.mailbox.dovecot import PASSWORD, Dovecot

SECRET_VARIABLE = "POSTWERK_TEST_MAILBOX_SECRET"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def dovecot(ca):
    server = Dovecot(ca).start()
    yield server
    server.stop()


@pytest.fixture
def buckets(aws, ca, tmp_path, monkeypatch) -> Iterator[Buckets]:
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
    yield names
    clients.client.cache_clear()  # later tests of the worker get clients of their own AWS


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
