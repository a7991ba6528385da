"""Microsoft Graph for one mailbox, through requests (decision 0012): the few calls the Graph
door needs, each with an app-only token (credentials.graph_tokens), bounded by a timeout,
and Graph's answers turned into what the door acts on:
- 429 (and 503, 504) with Retry-After: waited out, up to MAX_TRIES, unless the wait would
  pass the fetch's deadline or MAX_WAIT_SECONDS: then Throttled, which the door records so
  the next fetch waits that long;
- 401 and 403: LoginRefused, at once (a refused token is never retried in a loop);
- 410 Gone, or the error codes syncStateNotFound, syncStateInvalid, resyncRequired:
  DeltaExpired (the delta token is gone);
- 404: Gone (the message was moved or deleted meanwhile);
- any other error: GraphError, with Graph's code and message.
Error bodies are Graph's: {"error": {"code": ..., "message": ...}}.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from services.mailbox.config import Mailbox
from services.mailbox.credentials import LoginRefused
from services.mailbox.steps import BATCH_MESSAGES, logger

if TYPE_CHECKING:
    import requests

TIMEOUT_SECONDS = 30  # connecting, and each wait for bytes: within a scheduled run's 45 s
MAX_TRIES = 4  # a throttled request: the first and three more
MAX_WAIT_SECONDS = 60.0  # one Retry-After longer than this is the next fetch's to wait out
CHUNK = 1024 * 1024
THROTTLED = {429, 503, 504}
# The delta token is no more (Graph answers them with 410, some with 400): read it all again
RESYNC_CODES = {"syncstatenotfound", "syncstateinvalid", "resyncrequired"}


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"HTTP {status} {code}: {message}".strip())
        self.status = status
        self.code = code
        self.detail = message


class DeltaExpired(GraphError):
    """The delta token is no longer known: the folder is read again from the start."""


class Gone(GraphError):
    """The item is not there (any more)."""


class Throttled(Exception):
    """The service asked the door to wait (Retry-After) past the fetch's time: the next
    fetch waits that long."""

    def __init__(self, seconds: float, reason: str):
        super().__init__(reason)
        self.seconds = seconds


@dataclass(frozen=True)
class Page:
    """One page of a delta round: the messages (ids and Message-IDs, removals left out), and
    the link to read on from: the next page's, or the next round's (`last`)."""

    messages: list[dict]
    link: str
    last: bool


@dataclass(frozen=True)
class Mime:
    """A message's MIME, or (too_big) its first bytes, as far as SES's limit."""

    raw: bytes
    too_big: bool = False
    size: int = 0  # too_big: the size Graph declared (Content-Length), 0 when it did not


class Graph:
    def __init__(self, mailbox: Mailbox, token: Callable[[], str]):
        self.mailbox = mailbox
        self.token = token
        self.base = mailbox.graph_url.rstrip("/")
        self.user = f"{self.base}/users/{quote(mailbox.user, safe='@')}"
        import requests  # on use: only Graph mailboxes need it (0.04-0.1 s to import)

        self.http = requests.Session()
        self.deadline: float | None = None  # time.monotonic(): no Retry-After waited past it

    def close(self) -> None:
        self.http.close()

    def delta_start(self, folder: str) -> str:
        """A new round's first page: every message in the folder, then only those created
        in it since (changeType=created: a message marked read or moved out is no news);
        what Graph needs to know which is which travels in the links it answers."""
        return (
            f"{self.user}/mailFolders/{quote(folder, safe='')}/messages/delta"
            "?changeType=created&$select=id,internetMessageId,isRead"
        )

    def page(self, link: str) -> Page:
        headers = {"Prefer": f"odata.maxpagesize={BATCH_MESSAGES}"}
        document = self.request("GET", link, headers=headers).json()
        messages = [item for item in document.get("value", []) if "@removed" not in item]
        if "@odata.nextLink" in document:
            return Page(messages, document["@odata.nextLink"], last=False)
        return Page(messages, document["@odata.deltaLink"], last=True)

    def mime(self, message_id: str, limit: int) -> Mime:
        """The message's MIME ($value), streamed: reading stops past `limit` bytes."""
        url = f"{self.user}/messages/{quote(message_id, safe='')}/$value"
        with self.request("GET", url, stream=True) as answer:
            declared = int(answer.headers.get("Content-Length") or 0)
            if declared > limit:
                return Mime(next(answer.iter_content(CHUNK), b""), too_big=True, size=declared)
            raw = bytearray()
            for chunk in answer.iter_content(CHUNK):
                raw += chunk
                if len(raw) > limit:
                    return Mime(bytes(raw[:CHUNK]), too_big=True)
            return Mime(bytes(raw))

    def folder(self, folder: str) -> dict:
        """The folder (a well-known name or an id): its id and displayName; Gone when the
        mailbox has none such."""
        url = f"{self.user}/mailFolders/{quote(folder, safe='')}?$select=id,displayName"
        return self.request("GET", url).json()

    def mark_read(self, message_id: str) -> None:
        self.request("PATCH", self.message(message_id), json={"isRead": True}).close()

    def move(self, message_id: str, destination: str) -> None:
        body = {"destinationId": destination}
        self.request("POST", f"{self.message(message_id)}/move", json=body).close()

    def delete(self, message_id: str) -> None:
        """Into the mailbox's Deleted Items, as Outlook deletes (recoverable)."""
        self.request("DELETE", self.message(message_id)).close()

    def message(self, message_id: str) -> str:
        return f"{self.user}/messages/{quote(message_id, safe='')}"

    def request(self, method: str, url: str, **arguments) -> "requests.Response":
        extra = arguments.pop("headers", {})
        for attempt in range(1, MAX_TRIES + 1):
            headers = extra | {"Authorization": f"Bearer {self.token()}"}
            answer = self.http.request(
                method, url, headers=headers, timeout=TIMEOUT_SECONDS, **arguments
            )
            if answer.ok:
                return answer
            code, message = error_of(answer)
            answer.close()
            if answer.status_code in THROTTLED:
                wait = retry_after(answer, attempt)
                reason = f"HTTP {answer.status_code} {code}, Retry-After {wait:g} s"
                late = self.deadline is not None and time.monotonic() + wait > self.deadline
                if attempt == MAX_TRIES or late or wait > MAX_WAIT_SECONDS:
                    raise Throttled(wait, reason)
                logger.info("throttled: waiting", mailbox=self.mailbox.name, seconds=wait)
                time.sleep(wait)
                continue
            raise error_for(answer.status_code, code, message)
        raise AssertionError("unreachable")


def error_of(answer: "requests.Response") -> tuple[str, str]:
    """Graph's error code and message ({"error": {"code", "message"}}), or the status's."""
    try:
        error = answer.json().get("error", {})
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    return str(error.get("code", answer.reason or "")), str(error.get("message", ""))


def error_for(status: int, code: str, message: str) -> Exception:
    if status in (401, 403):
        return LoginRefused(f"Microsoft Graph: HTTP {status} {code}: {message}".strip(": "))
    if status == 410 or code.lower() in RESYNC_CODES:
        return DeltaExpired(status, code, message)
    if status == 404:
        return Gone(status, code, message)
    return GraphError(status, code, message)


def retry_after(answer: "requests.Response", attempt: int) -> float:
    """The seconds Graph asked for (Retry-After), or an exponential backoff without one."""
    try:
        return max(0.0, float(answer.headers["Retry-After"]))
    except (KeyError, ValueError):
        return float(2**attempt)
