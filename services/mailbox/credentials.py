"""How the door proves who it is: the secret a mailbox's configuration refers to, and for
OAuth2 the access token made from it, refreshed as the provider's library decides.

Secrets are read by reference, when the door logs in: `env:NAME` from the door's
environment (locally), `secretsmanager:ID` from AWS Secrets Manager (on AWS). What each
kind of login keeps in its secret:
- password: the password or app password, as it is;
- microsoft: the Entra ID app's client secret (OAuth2 client credentials, msal);
- google-service-account: the service account's JSON key (domain-wide delegation to the
  mailbox's user, google-auth);
- google-refresh-token: the OAuth client's authorized-user JSON (client_id, client_secret,
  refresh_token), as `gcloud auth application-default login` writes it.
No secret and no token ever goes into a log or an error message.
"""

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from services import clients
from services.mailbox.config import Mailbox

OUTLOOK_SCOPE = "https://outlook.office365.com/.default"  # IMAP.AccessAsApp, granted by an admin
GRAPH_SCOPE = "https://graph.microsoft.com/.default"  # Mail.ReadWrite (application), by an admin
GMAIL_SCOPE = "https://mail.google.com/"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


class LoginRefused(Exception):
    """The mailbox's server or identity provider refused the login; the message says why
    (the provider's words, never the secret)."""


@dataclass(frozen=True)
class Login:
    """What the IMAP session sends: a password, or an OAuth2 access token."""

    user: str
    password: str = ""
    access_token: str = ""


def login_for(mailbox: Mailbox) -> Login:
    secret = secret_value(mailbox.secret)
    if mailbox.auth == "password":
        return Login(mailbox.user, password=secret)
    return Login(mailbox.user, access_token=access_token(mailbox, secret))


def graph_tokens(mailbox: Mailbox) -> Callable[[], str]:
    """App-only access tokens for Microsoft Graph, with the secret read now (a session's
    worth, as an IMAP login reads it); msal's cache makes asking before each request cheap."""
    secret = secret_value(mailbox.secret)
    identity = (mailbox.authority, mailbox.tenant, mailbox.client_id, secret)
    return lambda: microsoft_token(*identity, scope=GRAPH_SCOPE)


def secret_value(reference: str) -> str:
    scheme, _, name = reference.partition(":")
    if scheme == "env":
        if name not in os.environ:
            raise LoginRefused(f"the secret's environment variable {name} is not set")
        return os.environ[name]
    answer = clients.client("secretsmanager").get_secret_value(SecretId=name)
    return answer["SecretString"]


def access_token(mailbox: Mailbox, secret: str) -> str:
    if mailbox.auth == "microsoft":
        return microsoft_token(mailbox.authority, mailbox.tenant, mailbox.client_id, secret)
    return google_token(mailbox.auth, mailbox.user, secret)


def microsoft_token(
    authority: str, tenant: str, client_id: str, secret: str, scope: str = OUTLOOK_SCOPE
) -> str:
    """Client credentials for Exchange Online's IMAP, or (GRAPH_SCOPE) for Microsoft Graph
    (msal keeps the token until it is about to expire, then asks for a new one)."""
    answer = microsoft_app(authority, tenant, client_id, secret).acquire_token_for_client(
        scopes=[scope]
    )
    if "access_token" not in answer:
        reason = answer.get("error_description") or answer.get("error") or "no token"
        raise LoginRefused(f"Microsoft Entra ID: {reason.splitlines()[0]}")
    return answer["access_token"]


@functools.cache
def microsoft_app(authority: str, tenant: str, client_id: str, secret: str):
    """One app per identity, so its token cache lives as long as the process (a warm Lambda
    reuses it). Instance discovery is off: the authority is the configured one, and Microsoft's
    own hosts need none."""
    import msal  # on use: only Microsoft 365 mailboxes need it

    return msal.ConfidentialClientApplication(
        client_id,
        authority=f"{authority.rstrip('/')}/{tenant}",
        client_credential=secret,
        instance_discovery=False,
        timeout=30,
    )


def google_token(auth: str, user: str, secret: str) -> str:
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import Request

    try:
        credentials = google_credentials(auth, user, secret)
        if not credentials.valid:  # none yet, or expired: refreshed against its token_uri
            credentials.refresh(Request())
    except json.JSONDecodeError:
        raise LoginRefused("Google: the secret is not JSON") from None
    except KeyError as missing:
        raise LoginRefused(f"Google: the secret has no {missing}") from None
    except (GoogleAuthError, ValueError) as error:  # the provider's reason, or what is missing
        reason = str(error.args[0]) if error.args else type(error).__name__
        raise LoginRefused(f"Google: {reason.splitlines()[0]}") from None
    return credentials.token


@functools.cache
def google_credentials(auth: str, user: str, secret: str):
    """Kept per identity, as msal's app is, so a valid token is reused."""
    info = json.loads(secret)
    if auth == "google-service-account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(
            info, scopes=[GMAIL_SCOPE], subject=user
        )
    from google.oauth2.credentials import Credentials

    # Built here rather than by from_authorized_user_info, which ignores a token_uri
    return Credentials(
        token=None,
        refresh_token=info["refresh_token"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        token_uri=info.get("token_uri", GOOGLE_TOKEN_URI),
        scopes=[GMAIL_SCOPE],
    )
