"""A mailbox the door reads: where it is, how to log in, which folders, and what happens to a
message once it is stored. `postwerk mailbox add` writes it (services/mailbox/state.py keeps
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
    host: str = Field(min_length=1)
    port: int = Field(0, ge=0, le=65535)  # 0: the security's usual port
    security: Security = "imaps"
    user: str = Field(min_length=1)  # the mailbox's login, e.g. support@example.com
    auth: Auth = "password"
    secret: str = Field(pattern=SECRET_REFERENCE)
    tenant: str = ""  # microsoft: the Entra ID tenant (id or domain)
    client_id: str = ""  # microsoft: the app registration's application id
    authority: str = MICROSOFT_AUTHORITY
    folders: list[str] = Field(["INBOX"], min_length=1)  # IDLE watches the first
    action: Action = "keep"
    flag: str = r"\Seen"  # keep: the flag set on a stored message
    move_to: str = ""  # move: the folder stored messages go to
    poll_seconds: int = Field(60, ge=1, le=1500)  # polling, and the longest IDLE (RFC 2177: 29 min)
    alarm_after_minutes: int = Field(15, ge=1)  # no successful fetch for this long: an alarm

    @model_validator(mode="after")
    def complete(self) -> "Mailbox":
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
