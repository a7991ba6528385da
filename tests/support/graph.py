"""A small Microsoft Graph for the Graph door's tests: one user's mailbox behind HTTPS (the
test CA), answering in Graph's shapes from the recorded answers in graph_answers/, and
keeping the state the door changes (folders, messages, isRead), so what it did can be read
back. Tokens are checked with the local identity provider (tests/support/identity.py): only
one it issued for Graph's scope gets in.

What it serves, under /v1.0/users/<user>:
- GET  mailFolders/<folder>/messages/delta: delta rounds (changeType=created); pages of
  Prefer: odata.maxpagesize (10 without it), each an @odata.nextLink ($skiptoken) but the
  last, which gives the @odata.deltaLink ($deltatoken); `expire_delta_tokens` makes every
  $deltatoken given so far answer 410 Gone (syncStateNotFound);
- GET  messages/<id>/$value: the MIME, as delivered;
- PATCH messages/<id> (isRead), POST messages/<id>/move (destinationId: a well-known name or
  an id; the message gets a new id, as in Exchange), DELETE messages/<id> (into Deleted
  Items).
Folders are named by id or by their well-known names (inbox, archive, deleteditems).
As Outlook does, a request beyond 4 at a time answers 429 (MailboxConcurrency);
`throttle` answers the next requests 429 with Retry-After; `refuse` answers every request
401 or 403; `hold_on` keeps a method's requests waiting (a door killed meanwhile). `requests`
lists what was asked, and when.
"""

import base64
import copy
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import trustme

from emulation.processes import HOST
from tests.support.identity import GRAPH_SCOPE, IdentityProvider

ANSWERS = Path(__file__).with_name("graph_answers")
WELL_KNOWN = ("inbox", "archive", "deleteditems")
CONCURRENT_LIMIT = 4  # Outlook's, per app and mailbox
DEFAULT_PAGE = 10  # Graph's page size for messages without a Prefer header
LATENCY = 0.01  # seconds per request: requests overlap as they do over a network


def recorded(name: str) -> dict:
    return json.loads((ANSWERS / f"{name}.json").read_text())


@dataclass
class Message:
    id: str
    folder: str  # the folder's id
    mime: bytes
    created: int  # the order of creation in its folder (the delta rounds' position)
    internet_message_id: str = ""
    is_read: bool = False


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query, unquoted
    at: float  # time.monotonic()
    status: int


class FakeGraph:
    def __init__(self, ca: trustme.CA, identity: IdentityProvider, user: str):
        self.identity = identity
        self.user = user
        self.lock = threading.RLock()
        self.folders: dict[str, str] = {}  # id -> display name
        self.well_known: dict[str, str] = {}  # well-known name -> id
        for name in WELL_KNOWN:
            self.well_known[name] = self.create_folder(name.capitalize())
        self.messages: dict[str, Message] = {}
        self.clock = 0  # every creation (delivery, move) ticks it
        self.generation = 0  # a $deltatoken of an older generation is expired
        self.throttled: list[int] = []  # the Retry-After of the next requests' 429s
        self.refused = 0  # 401 or 403 for every request
        self.hold_on = ""  # a method whose requests wait for `released` (then answer 503)
        self.held, self.released = threading.Event(), threading.Event()
        self.requests: list[Request] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.https = ThreadingHTTPServer((HOST, 0), self.handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(HOST).configure_cert(context)
        self.https.socket = context.wrap_socket(self.https.socket, server_side=True)
        threading.Thread(target=self.https.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """The base URL, as a Mailbox's graph_url."""
        return f"https://{HOST}:{self.https.server_address[1]}/v1.0"

    def close(self) -> None:
        self.released.set()
        self.https.shutdown()
        self.https.server_close()

    # What the tests set up and read back

    def create_folder(self, name: str) -> str:
        folder = "AAMkAGVmMDEzLTgx" + base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()
        self.folders[folder] = name
        return folder

    def deliver(self, *raws: bytes, folder: str = "inbox") -> list[str]:
        """New messages in the folder (a well-known name or an id); their ids."""
        with self.lock:
            return [self.create(raw, self.folder_id(folder)).id for raw in raws]

    def in_folder(self, folder: str = "inbox") -> list[Message]:
        with self.lock:
            wanted = self.folder_id(folder)
            return sorted(
                (m for m in self.messages.values() if m.folder == wanted), key=lambda m: m.created
            )

    def expire_delta_tokens(self) -> None:
        with self.lock:
            self.generation += 1

    def throttle(self, *retry_after: int) -> None:
        self.throttled.extend(retry_after)

    def refuse(self, status: int) -> None:
        self.refused = status

    def asked(self, method: str, part: str = "") -> list[Request]:
        return [r for r in self.requests if r.method == method and part in r.path]

    # The mailbox

    def folder_id(self, name_or_id: str) -> str | None:
        if name_or_id.lower() in self.well_known:
            return self.well_known[name_or_id.lower()]
        return name_or_id if name_or_id in self.folders else None

    def create(self, mime: bytes, folder: str, is_read: bool = False) -> Message:
        self.clock += 1
        header = BytesHeaderParser().parsebytes(mime)
        message = Message(
            id="AAMkADNkNAAAgWkAAA" + base64.b64encode(secrets.token_bytes(15)).decode() + "=",
            folder=folder,
            mime=mime,
            created=self.clock,
            internet_message_id=str(header.get("Message-ID", "")).strip(),
            is_read=is_read,
        )
        self.messages[message.id] = message
        return message

    def moved(self, message: Message, folder: str) -> Message:
        """Exchange gives a moved message a new id in its new folder."""
        del self.messages[message.id]
        return self.create(message.mime, folder, message.is_read)

    def resource(self, message: Message) -> dict:
        document = recorded("message")
        document |= {
            "id": message.id,
            "internetMessageId": message.internet_message_id,
            "isRead": message.is_read,
            "parentFolderId": message.folder,
        }
        subject = BytesHeaderParser().parsebytes(message.mime).get("Subject", "")
        return document | {"subject": str(subject)}

    # HTTP

    def answer(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict, object]:
        """(status, extra headers, a JSON document or bytes)."""
        if method == self.hold_on:
            self.held.set()
            self.released.wait(60)
            return 503, {}, {"error": {"code": "ServiceUnavailable", "message": "held"}}
        if self.refused:
            name = "error-invalid-token" if self.refused == 401 else "error-access-denied"
            return self.refused, {}, recorded(name)
        if self.throttled:
            seconds = self.throttled.pop(0)
            return 429, {"Retry-After": str(seconds)}, recorded("error-too-many-requests")
        if self.in_flight > CONCURRENT_LIMIT:
            return 429, {"Retry-After": "1"}, recorded("error-too-many-requests")
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if not self.identity.valid(token, GRAPH_SCOPE):
            return 401, {}, recorded("error-invalid-token")
        split = urlsplit(target)
        parts = [unquote(part) for part in split.path.split("/")]
        query = {name: values[0] for name, values in parse_qs(split.query).items()}
        if parts[:3] != ["", "v1.0", "users"] or len(parts) < 5 or parts[3] != self.user:
            return 404, {}, {"error": {"code": "ErrorInvalidUser", "message": target}}
        with self.lock:
            return self.mailbox(method, parts[4:], query, headers, body)

    def mailbox(self, method: str, parts: list[str], query: dict, headers, body: bytes):
        if method == "GET" and parts[0] == "mailFolders" and parts[2:] == ["messages", "delta"]:
            folder = self.folder_id(parts[1])
            if folder is None:
                return 404, {}, recorded("error-item-not-found")
            return self.delta(folder, query, headers.get("Prefer", ""))
        if method == "GET" and parts[0] == "mailFolders" and len(parts) == 2:
            folder = self.folder_id(parts[1])
            if folder is None:
                return 404, {}, recorded("error-item-not-found")
            return 200, {}, {"id": folder, "displayName": self.folders[folder]}
        if parts[0] != "messages" or len(parts) < 2 or parts[1] not in self.messages:
            return 404, {}, recorded("error-item-not-found")
        message = self.messages[parts[1]]
        action = (method, tuple(parts[2:]))
        if action == ("GET", ("$value",)):
            return 200, {"Content-Type": "text/plain"}, message.mime
        if action == ("PATCH", ()):
            message.is_read = bool(json.loads(body).get("isRead", message.is_read))
            return 200, {}, self.resource(message)
        if action == ("POST", ("move",)):
            destination = self.folder_id(json.loads(body).get("destinationId", ""))
            if destination is None:
                return 404, {}, recorded("error-item-not-found")
            return 201, {}, self.resource(self.moved(message, destination))
        if action == ("DELETE", ()):
            self.moved(message, self.well_known["deleteditems"])
            return 204, {}, b""
        return 405, {}, {"error": {"code": "BadRequest", "message": "not in this fake"}}

    def delta(self, folder: str, query: dict, prefer: str) -> tuple[int, dict, object]:
        """A page of the round the token names (none: a new round, every message in the
        folder); the position is the last creation given, so messages moved out meanwhile
        shift nothing."""
        if "$deltatoken" in query:
            position = decoded(query["$deltatoken"])
            if position["generation"] != self.generation or position["folder"] != folder:
                return 410, {}, recorded("error-sync-state-not-found")
            round_ = {"folder": folder, "since": position["upto"], "upto": self.clock, "after": 0}
        elif "$skiptoken" in query:
            round_ = decoded(query["$skiptoken"])
        else:
            round_ = {"folder": folder, "since": 0, "upto": self.clock, "after": 0}
        size = DEFAULT_PAGE
        if "odata.maxpagesize=" in prefer:
            size = int(prefer.split("odata.maxpagesize=")[1].split(",")[0])
        after = max(round_["since"], round_["after"])
        items = [m for m in self.in_folder(folder) if after < m.created <= round_["upto"]]
        page, rest = items[:size], items[size:]
        document = recorded("message-delta")
        template = document["value"][0]
        document["value"] = [
            copy.deepcopy(template)
            | {"id": m.id, "internetMessageId": m.internet_message_id, "isRead": m.is_read}
            for m in page
        ]
        base = f"{self.url}/users/{quote(self.user)}/mailFolders/{quote(folder)}/messages/delta"
        del document["@odata.nextLink"]
        if rest:
            token = encoded(round_ | {"after": page[-1].created})
            document["@odata.nextLink"] = f"{base}?$skiptoken={token}"
        else:
            token = encoded(
                {"folder": folder, "upto": round_["upto"], "generation": self.generation}
            )
            document["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        return 200, {}, document

    def handler(self):
        graph = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.respond("GET")

            def do_POST(self):
                self.respond("POST")

            def do_PATCH(self):
                self.respond("PATCH")

            def do_DELETE(self):
                self.respond("DELETE")

            def respond(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with graph.lock:
                    graph.in_flight += 1
                    graph.most_in_flight = max(graph.most_in_flight, graph.in_flight)
                try:
                    time.sleep(LATENCY)
                    self.answer(method, body)
                finally:
                    with graph.lock:
                        graph.in_flight -= 1

            def answer(self, method: str, body: bytes) -> None:
                status, extra, document = graph.answer(method, self.path, self.headers, body)
                graph.requests.append(Request(method, unquote(self.path), time.monotonic(), status))
                content = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(status)
                if not isinstance(document, bytes):
                    self.send_header("Content-Type", "application/json")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                try:
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self.close_connection = True  # the door stopped reading (a huge message)

            def log_message(self, *arguments):  # quiet
                pass

        return Handler


def encoded(position: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decoded(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
