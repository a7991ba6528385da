"""OAuth2 logins against Dovecot's oauth2 passdb, with a local identity provider behind
msal and google-auth: Microsoft 365's client credentials (XOAUTH2), a Google service account
with domain-wide delegation (OAUTHBEARER) and a Google refresh token (XOAUTH2). Tokens are
checked by Dovecot asking the provider (token introspection), so a token the door did not
get from the provider, or one that expired, is refused."""

import json
import time

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.mailbox import credentials
from services.mailbox.door import fetch_once, recorded
from tests.support.dovecot import Dovecot, message
from tests.support.identity import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, IdentityProvider
from tests.support.mailbox import SECRET_VARIABLE, mailbox_of, stored

SERVICE_ACCOUNT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def identity(ca, buckets, tmp_path, monkeypatch):
    """The provider, trusted by requests (msal's and google-auth's HTTP) through the CA."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    provider = IdentityProvider(ca, user="support", service_account_key=SERVICE_ACCOUNT_KEY)
    yield provider
    provider.close()
    credentials.microsoft_app.cache_clear()
    credentials.google_credentials.cache_clear()


def oauth_dovecot(ca, identity, mechanisms: str) -> Dovecot:
    server = Dovecot(ca, mechanisms=f"plain {mechanisms}")  # plain: the tests' own client
    server.oauth2_introspection = identity.introspection_url
    return server.start()


@pytest.fixture
def xoauth2(ca, identity):
    server = oauth_dovecot(ca, identity, "xoauth2")
    yield server
    server.stop()


def microsoft_mailbox(server: Dovecot, identity: IdentityProvider, **settings):
    """A Microsoft 365 mailbox whose Entra ID is the local identity provider."""
    return mailbox_of(
        server,
        auth="microsoft",
        tenant="contoso.onmicrosoft.com",
        client_id=CLIENT_ID,
        authority=identity.url,
        **settings,
    )


def test_microsoft_client_credentials_from_secrets_manager_and_a_refreshed_token(
    xoauth2, identity, buckets
):
    boto3.client("secretsmanager").create_secret(Name="door/entra", SecretString=CLIENT_SECRET)
    mailbox = microsoft_mailbox(xoauth2, identity, secret="secretsmanager:door/entra")
    identity.expires_in = 1
    xoauth2.deliver(message(1))
    fetch_once(mailbox, buckets)
    time.sleep(1.5)  # the first token has expired: Dovecot's introspection refuses it now
    xoauth2.deliver(message(2))
    fetch_once(mailbox, buckets)
    identity.expires_in = 3600
    fetch_once(mailbox, buckets)
    fetch_once(mailbox, buckets)  # msal reuses a token that is still good

    assert identity.token_requests == 3
    assert len(stored(buckets)) == 2
    assert xoauth2.log().count("method=XOAUTH2") == 4


def test_a_wrong_client_secret_is_a_refused_login_with_entras_reason(xoauth2, identity, buckets):
    mailbox = microsoft_mailbox(xoauth2, identity)  # the secret: the password, not the client's

    health = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))

    assert health.login_refused
    assert health.last_error == (
        "login refused: Microsoft Entra ID: AADSTS7000215: Invalid client secret provided."
    )


def test_a_google_service_account_logs_in_with_oauthbearer(ca, identity, buckets, monkeypatch):
    key = SERVICE_ACCOUNT_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    service_account = {
        "type": "service_account",
        "client_email": "door@postwerk.iam.gserviceaccount.com",
        "private_key": key,
        "private_key_id": "1",
        "token_uri": f"{identity.url}/google/token",
    }
    monkeypatch.setenv(SECRET_VARIABLE, json.dumps(service_account))
    server = oauth_dovecot(ca, identity, "xoauth2 oauthbearer")  # the standard one is taken
    try:
        server.deliver(message(1))
        tally = fetch_once(mailbox_of(server, auth="google-service-account"), buckets)
        log = server.log()
    finally:
        server.stop()
    assert tally.stored == 1
    assert "method=OAUTHBEARER" in log


def test_a_google_refresh_token_logs_in_and_a_revoked_one_is_refused(
    xoauth2, identity, buckets, monkeypatch
):
    client = {
        "type": "authorized_user",
        "client_id": "1234.apps.googleusercontent.com",
        "client_secret": "google-client-secret",
        "refresh_token": REFRESH_TOKEN,
        "token_uri": f"{identity.url}/google/token",
    }
    monkeypatch.setenv(SECRET_VARIABLE, json.dumps(client))
    xoauth2.deliver(message(1))
    mailbox = mailbox_of(xoauth2, auth="google-refresh-token")

    tally = fetch_once(mailbox, buckets)
    monkeypatch.setenv(SECRET_VARIABLE, json.dumps(client | {"refresh_token": "revoked"}))
    refused = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))

    assert tally.stored == 1
    assert refused.login_refused and refused.last_error.startswith("login refused: Google: ")
    assert "invalid_grant" in refused.last_error and "revoked" not in refused.last_error
