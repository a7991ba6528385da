"""A mailbox the door reads: where it is (an IMAP server, or a Microsoft 365 mailbox through
Microsoft Graph), how to log in, which folders, and what happens to a message once it is
stored. `postwerk mailbox add` writes it (services/mailbox/state.py keeps
it); the secret itself is never part of it, only a reference to where it lives."""

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Where a secret lives: "env:NAME" (locally, the door's environment) or
# "secretsmanager:NAME-OR-ARN" (on AWS). Its value is read when the door logs in.
SECRET_REFERENCE = r"^(env:[A-Za-z_][A-Za-z0-9_]*|secretsmanager:[A-Za-z0-9/_+=.@:-]{1,2048})$"
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"  # sovereign clouds have their own
DEFAULT_PORTS = {"imaps": 993, "starttls": 143, "plain": 143}
GRAPH_URL = "https://graph.microsoft.com/v1.0"  # national clouds have their own

# imap: any IMAP server (Microsoft 365 and Google with OAuth2 too); graph: a Microsoft 365
# mailbox through Microsoft Graph, for tenants that turned IMAP off (services/mailbox/graph.py)
Kind = Literal["imap", "graph"]

Security = Literal["imaps", "starttls", "plain"]
# password: the password or an app password; microsoft: OAuth2 client credentials of an
# Entra ID app (a service principal granted the mailbox); google-service-account: a service
# account with domain-wide delegation; google-refresh-token: an OAuth client's refresh token.
Auth = Literal["password", "microsoft", "google-service-account", "google-refresh-token"]
# keep: flag it (default \Seen); move: to another folder; delete: expunge it.
Action = Literal["keep", "move", "delete"]


class Mailbox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")  # in keys, logs and metrics
    kind: Kind = "imap"
    host: str = ""  # imap: the server
    port: int = Field(0, ge=0, le=65535)  # 0: the security's usual port
    security: Security = "imaps"
    user: str = Field(min_length=1)  # the mailbox's login (graph: its address or user id)
    auth: Auth = "password"
    secret: str = Field(pattern=SECRET_REFERENCE)
    tenant: str = ""  # microsoft: the Entra ID tenant (id or domain)
    client_id: str = ""  # microsoft: the app registration's application id
    authority: str = MICROSOFT_AUTHORITY
    graph_url: str = GRAPH_URL  # graph: the API's base URL
    # IDLE watches the first; graph: a well-known name (inbox, archive, ...) or a folder id
    folders: list[str] = Field(["INBOX"], min_length=1)
    action: Action = "keep"
    flag: str = r"\Seen"  # keep: the flag set on a stored message (graph: always read)
    move_to: str = ""  # move: the folder stored messages go to (graph: a well-known name or id)
    poll_seconds: int = Field(60, ge=1, le=1500)  # polling, and the longest IDLE (RFC 2177: 29 min)
    alarm_after_minutes: int = Field(15, ge=1)  # no successful fetch for this long: an alarm

    @model_validator(mode="before")
    @classmethod
    def graph_inbox(cls, data):
        """Graph's name for the inbox is the well-known name inbox; INBOX is IMAP's."""
        if isinstance(data, dict) and data.get("kind") == "graph":
            folders = data.get("folders", ["INBOX"])
            data = data | {"folders": ["inbox" if f == "INBOX" else f for f in folders]}
        return data

    @model_validator(mode="after")
    def complete(self) -> "Mailbox":
        if self.kind == "imap" and not self.host:
            raise ValueError("an IMAP mailbox needs its server (host)")
        if self.kind == "graph":
            self.graph_complete()
        if self.auth == "microsoft" and not (self.tenant and self.client_id):
            raise ValueError("auth microsoft needs the tenant and the client id")
        if self.action == "move" and not self.move_to:
            raise ValueError("action move needs the folder to move to")
        if self.action == "move" and self.move_to in self.folders:
            raise ValueError("the folder to move to cannot be one the door reads")
        if not re.fullmatch(r"\\?[!#-'*+\-.0-9;<=>?@A-Z^-z|~]+", self.flag):  # RFC 3501 flag
            raise ValueError(f"not an IMAP flag: {self.flag!r}")
        if self.security == "plain" and not loopback(self.host):
            raise ValueError("plain IMAP sends the secret unencrypted: only for 127.0.0.1")
        return self

    def graph_complete(self) -> None:
        if self.auth != "microsoft":
            raise ValueError("a Graph mailbox logs in as a Microsoft Entra ID app (auth microsoft)")
        if self.flag != r"\Seen":
            raise ValueError("a Graph mailbox marks a stored message read: flags are IMAP's")
        scheme, _, rest = self.graph_url.partition("://")
        host = rest.split("/")[0].rsplit(":", 1)[0].strip("[]")
        if not (scheme == "https" or (scheme == "http" and loopback(host))) or not host:
            raise ValueError(f"not an https URL: {self.graph_url!r}")

    @property
    def server_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
