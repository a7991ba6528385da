"""Exactly once, from a Microsoft 365 mailbox through Microsoft Graph: the door for tenants
that turned IMAP off. The steps are the IMAP door's (steps.py); what differs is how a folder
is read: with delta queries (graph.py).

For each folder: read on from the checkpoint's delta link (none: a new round from the start,
`changeType=created`, so only new messages come back once the first round is done), page by
page (at most 100 messages each, Prefer: odata.maxpagesize). Each page is:
1. stored: each message's MIME ($value), raw and unchanged, with the same key and the same
   conditional put as the IMAP door's, so a message that came in through either door, or in
   an earlier try, is a no-op; one whose Message-ID (internetMessageId) is stored already is
   not downloaded again. They are read 4 at a time (Outlook's limit: 4 concurrent requests
   per app and mailbox; more are answered 429) and stored 32 MB at a time;
2. acted on, and only once stored: marked read (PATCH isRead), moved (POST move), or deleted
   (into Deleted Items); a message gone meanwhile (404) is left be;
3. checkpointed: the folder's link moves to the page's @odata.nextLink, or at the round's end
   to its @odata.deltaLink, written only if no other door moved it meanwhile.
A crash between two steps reads the page again at the next fetch: what was stored is a
no-op, what was acted on is acted on again (marking read twice is harmless; a moved or
deleted message is no longer there).

A delta token that Graph no longer knows (410 Gone, syncStateNotFound) starts a new round:
every message in the folder is listed again and every one already stored is a duplicate,
never a second object. A message over SES's 40 MB is set aside with its header and left in
the mailbox, one Graph fails to give is set aside with the reason, as the IMAP door does.
Throttling (429 and Retry-After) is waited out (graph.py); a refused token is LoginRefused:
one line and a health record (door.recorded), the next try after the backoff.
"""

import contextlib
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

from services import storage
from services.mailbox import state
from services.mailbox.config import Mailbox
from services.mailbox.credentials import graph_tokens
from services.mailbox.graph import DeltaExpired, Gone, Graph, GraphError
from services.mailbox.steps import (
    BATCH_BYTES,
    SES_SIZE_LIMIT,
    Buckets,
    Fetched,
    Tally,
    header_section,
    incoming_key,
    logger,
    oversized,
    set_aside,
    store_then_act,
)

KNOWN, GONE, SET_ASIDE = "known", "gone", "set aside"
CONCURRENT = 4  # Outlook's limit of concurrent requests per app and mailbox


class GraphDoor:
    """The exactly-once steps for one Microsoft 365 mailbox, over a Graph client it makes
    (reading the secret) when first needed."""

    def __init__(self, mailbox: Mailbox, buckets: Buckets):
        self.mailbox = mailbox
        self.buckets = buckets
        self.opened: Graph | None = None
        self.destination = ""  # move: the folder's id, once it is known to be there
        self.read: set[str] = set()  # keep: the page's messages that are read already
        self.callers: ThreadPoolExecutor | None = None  # Graph's calls, with the client

    @property
    def graph(self) -> Graph:
        if self.opened is None:
            self.opened = Graph(self.mailbox, graph_tokens(self.mailbox))
        return self.opened

    def calls(self) -> ThreadPoolExecutor:
        if self.callers is None:
            self.callers = ThreadPoolExecutor(CONCURRENT, f"graph-{self.mailbox.name}")
        return self.callers

    def close(self) -> None:
        if self.callers is not None:
            self.callers.shutdown()
            self.callers = None
        if self.opened is not None:
            self.opened.close()
            self.opened, self.destination = None, ""

    def sync(self, deadline: float | None = None) -> Tally:
        """Every folder up to its newest message, or until the deadline (time.monotonic());
        what is left is the backlog (the messages of the page that was read but not taken:
        what lies beyond it Graph does not say)."""
        tally = Tally()
        self.graph.deadline = deadline
        for folder in self.mailbox.folders:
            self.sync_folder(folder, deadline, tally)
        return tally

    def sync_folder(self, folder: str, deadline: float | None, tally: Tally) -> None:
        read_from = state.checkpoints(self.buckets.artifacts, self.mailbox.name).deltas.get(
            folder, ""
        )
        start = self.graph.delta_start(folder)
        link = read_from or start
        while True:
            try:
                page = self.graph.page(link)
            except Gone as error:  # the folder (or the user) is not there
                reason = f"no folder {folder!r} in the mailbox: {error.detail}"
                raise GraphError(error.status, error.code, reason) from None
            except DeltaExpired:
                if link == start:
                    raise
                logger.warning("delta token expired: reading again", mailbox=self.mailbox.name)
                link = start
                continue
            if deadline is not None and time.monotonic() > deadline:
                tally.backlog += len(page.messages)
                return
            self.handle(folder, page.messages, tally)
            if not state.advance_delta(
                self.buckets.artifacts, self.mailbox.name, folder, read_from, page.link
            ):
                logger.info("another door read on meanwhile", mailbox=self.mailbox.name)
                return
            if page.last:
                return
            read_from = link = page.link

    def handle(self, folder: str, messages: list[dict], tally: Tally) -> None:
        """Store the page's messages, then act on them; set aside what cannot be stored."""
        fetched: dict[str, Fetched] = {}
        known: list[str] = []
        weight = 0
        if self.mailbox.action == "keep":  # read already: no PATCH (a new round lists them all)
            self.read = {item["id"] for item in messages if item.get("isRead")}
        for start in range(0, len(messages), CONCURRENT):
            group = messages[start : start + CONCURRENT]
            taken = self.calls().map(lambda item: self.take(folder, item), group)
            for item, (outcome, message) in zip(group, taken, strict=True):
                if outcome == KNOWN:
                    known.append(item["id"])
                elif outcome == SET_ASIDE:
                    tally.set_aside += 1
                elif message is not None:
                    fetched[item["id"]] = message
                    weight += len(message.raw)
            if weight >= BATCH_BYTES:
                self.store_then_act(fetched, known, tally)
                fetched, known, weight = {}, [], 0
        self.store_then_act(fetched, known, tally)

    def store_then_act(self, fetched: dict[str, Fetched], known: list[str], tally: Tally):
        tally.duplicates += len(known)
        store_then_act(self.buckets.raw, fetched, lambda ids: self.act([*ids, *known]), tally)

    def take(self, folder: str, item: dict) -> tuple[str, Fetched | None]:
        """The message's MIME; KNOWN when its Message-ID is stored already, GONE when it is
        no longer there, SET_ASIDE when it cannot be stored."""
        identifier = item.get("internetMessageId") or ""
        if identifier:
            key = incoming_key(Fetched(b"", f"Message-ID: {identifier}".encode()))
            if storage.head(self.buckets.raw, key) is not None:
                return KNOWN, None
        try:
            mime = self.graph.mime(item["id"], SES_SIZE_LIMIT)
        except Gone:
            return GONE, None
        except GraphError as error:
            self.set_aside(folder, item["id"], b"", f"the server could not read it: {error}")
            return SET_ASIDE, None
        if mime.too_big:
            size = mime.size or f"more than {SES_SIZE_LIMIT}"
            self.set_aside(folder, item["id"], header_section(mime.raw), oversized(size))
            return SET_ASIDE, None
        return "fetched", Fetched(mime.raw, header_section(mime.raw))

    def act(self, ids: list[str]) -> None:
        """What the mailbox's owner wants done with stored messages; one gone meanwhile (an
        earlier try moved or deleted it) is done."""
        graph = self.graph
        if ids and self.mailbox.action == "move" and not self.destination:
            self.destination = self.folder_to_move_to()
        do = {
            "keep": graph.mark_read,
            "move": lambda message: graph.move(message, self.destination),
            "delete": graph.delete,
        }[self.mailbox.action]

        def act_on(message: str) -> None:
            with contextlib.suppress(Gone):
                do(message)

        list(self.calls().map(act_on, [i for i in ids if i not in self.read]))

    def folder_to_move_to(self) -> str:
        """Its id; a folder that is not there fails the fetch before anything is moved (a
        move to nowhere would answer 404, as a message moved already does)."""
        try:
            return self.graph.folder(self.mailbox.move_to)["id"]
        except Gone as error:
            reason = f"no folder {self.mailbox.move_to!r} to move to: {error.detail}"
            raise GraphError(error.status, error.code, reason) from None

    def set_aside(self, folder: str, message: str, raw: bytes, reason: str) -> None:
        """rejected/mailbox/<mailbox>/<folder digest>/graph-<id digest> (steps.set_aside)."""
        item = "graph-" + hashlib.sha256(message.encode()).hexdigest()[:32]
        set_aside(self.buckets, self.mailbox.name, folder, item, raw, reason, graph_id=message)
