"""One IMAP session with a mailbox's server, through imapclient: TLS (IMAPS or STARTTLS,
certificates checked), the login its configuration asks for, and the few commands the door
needs. Every network wait is bounded by a socket timeout, so a server that stops answering
fails the fetch instead of hanging it. Folder names are plain strings here; imapclient
encodes them as IMAP's modified UTF-7 ("Ärger" is "&AMQ-rger" on the wire).
"""

import imaplib
import re
import socket
import ssl
import time

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from services.mailbox.config import Mailbox
from services.mailbox.credentials import Login, LoginRefused
from services.mailbox.steps import Fetched

TIMEOUT_SECONDS = 30  # any single network wait: within a scheduled run's 45 s
BODY = b"BODY[]"
MESSAGE_ID = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
# What a dropped or broken connection raises, whichever layer notices it first.
CONNECTION_ERRORS = (OSError, socket.timeout, ssl.SSLError, imaplib.IMAP4.abort)


class Session:
    def __init__(self, mailbox: Mailbox, login: Login):
        self.mailbox = mailbox
        context = ssl.create_default_context()
        self.client = IMAPClient(
            mailbox.host,
            port=mailbox.server_port,
            ssl=mailbox.security == "imaps",
            ssl_context=context,
            timeout=TIMEOUT_SECONDS,
        )
        try:
            if mailbox.security == "starttls":
                self.client.starttls(context)
            self.log_in(login)
        except BaseException:
            self.close()
            raise

    def log_in(self, login: Login) -> None:
        try:
            if login.password:
                self.client.login(login.user, login.password)
            elif self.client.has_capability("AUTH=OAUTHBEARER"):  # RFC 7628, the standard
                self.client.oauthbearer_login(login.user, login.access_token)
            else:  # Microsoft 365 and Google both take XOAUTH2
                self.client.oauth2_login(login.user, login.access_token)
        except LoginError as error:
            raise LoginRefused(f"{self.mailbox.host}: {server_text(error)}") from None

    def open(self, folder: str) -> int:
        """Select the folder (read-write: the door flags, moves, deletes); its UIDVALIDITY."""
        return int(self.client.select_folder(folder)[b"UIDVALIDITY"])

    def uids_after(self, last_uid: int) -> list[int]:
        """The UIDs above last_uid, oldest first ("n:*" always matches the newest message,
        even one at or below n: it is left out)."""
        return sorted(uid for uid in self.client.search(f"UID {last_uid + 1}:*") if uid > last_uid)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        answer = self.client.fetch(uids, ["RFC822.SIZE"])
        return {uid: data[b"RFC822.SIZE"] for uid, data in answer.items()}

    def fetch(self, uids: list[int]) -> dict[int, Fetched]:
        """The messages, without setting \\Seen (BODY.PEEK); a UID the server answers
        nothing for (expunged meanwhile) is missing from the answer."""
        answer = self.client.fetch(uids, ["BODY.PEEK[]", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        return {
            uid: Fetched(data[BODY], data.get(MESSAGE_ID, b""))
            for uid, data in answer.items()
            if BODY in data
        }

    def header(self, uid: int) -> bytes:
        return self.client.fetch([uid], ["BODY.PEEK[HEADER]"])[uid].get(b"BODY[HEADER]", b"")

    def act(self, uids: list[int]) -> None:
        """What the mailbox's owner wants done with stored messages."""
        if not uids:
            return
        if self.mailbox.action == "keep":
            self.client.add_flags(uids, [self.mailbox.flag], silent=True)
        elif self.mailbox.action == "move":
            self.client.move(uids, self.mailbox.move_to)  # MOVE (RFC 6851): atomic
        else:
            self.client.delete_messages(uids, silent=True)
            self.client.uid_expunge(uids)  # only these: UIDPLUS (RFC 4315)

    def can_idle(self) -> bool:
        return self.client.has_capability("IDLE")

    def wait_for_news(self, seconds: float, stopping) -> bool:
        """IDLE until the server reports a change, `stopping()` turns true, or the time is
        up; True when something changed."""
        self.client.idle()
        try:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0 and not stopping():
                if self.client.idle_check(timeout=min(1.0, left)):
                    return True
            return False
        finally:
            self.client.idle_done()

    def close(self) -> None:
        """Log out politely; a connection already gone is simply closed."""
        try:
            self.client.logout()
        except (*CONNECTION_ERRORS, IMAPClientError):
            self.client.shutdown()


def server_text(error: Exception) -> str:
    """The server's own words from an imapclient error (b'[AUTHENTICATIONFAILED] ...')."""
    text = str(error)
    found = re.search(r"b'(.*)'", text) or re.search(r'b"(.*)"', text)
    return found.group(1) if found else text
