"""The door that never stops (`python -m services.mailbox`): what the local stack runs, and
what an always-on task would run. One thread per mailbox keeps a session open: it fetches
every folder, then waits for news with IDLE on the first folder where the server has IDLE
(new mail is stored within seconds), or sleeps the mailbox's poll interval where it has not
(and for a Microsoft Graph mailbox, which is polled with delta queries);
an IDLE wait also ends after the poll interval, so the other folders are polled and the
health stays fresh. A failure closes the session and waits out the backoff that
door.recorded chose. The configurations are read again every RELOAD_SECONDS, so a mailbox
added, changed or removed by `postwerk mailbox` is picked up without a restart.
"""

import threading

from imapclient.exceptions import IMAPClientError

from services.mailbox import state
from services.mailbox.config import Mailbox
from services.mailbox.door import Buckets, logger, open_door, recorded
from services.mailbox.imap import CONNECTION_ERRORS

RELOAD_SECONDS = 30.0
STATE_RETRY_SECONDS = 5.0


class Watcher:
    """One mailbox, in a thread of its own, until stop()."""

    def __init__(self, mailbox: Mailbox, buckets: Buckets):
        self.mailbox = mailbox
        self.buckets = buckets
        self.door = open_door(mailbox, buckets)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"mailbox-{mailbox.name}")

    def start(self) -> "Watcher":
        self.thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.stopping.set()
        self.thread.join(timeout)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                health = recorded(self.mailbox, self.buckets, self.door.sync)
            except Exception:  # the state in S3 out of reach: nothing fetched, nothing lost
                logger.exception("cannot record the fetch", mailbox=self.mailbox.name)
                self.door.close()
                self.stopping.wait(STATE_RETRY_SECONDS)
                continue
            if health.last_error:
                self.door.close()
                self.stopping.wait((health.retry_after - state.now()).total_seconds())
            else:
                self.wait_for_news()
        self.door.close()

    def wait_for_news(self) -> None:
        """Until the server reports news, or the poll interval is over. A connection lost
        meanwhile is found and recorded by the next fetch, which opens a new one."""
        if self.mailbox.kind == "graph" or not self.door.session.can_idle():
            self.stopping.wait(self.mailbox.poll_seconds)
            return
        session = self.door.session
        try:
            session.open(self.mailbox.folders[0])
            session.wait_for_news(self.mailbox.poll_seconds, self.stopping.is_set)
        except (*CONNECTION_ERRORS, IMAPClientError):
            self.door.close()


def watch(buckets: Buckets, stopping: threading.Event) -> None:
    """A watcher per configured mailbox until `stopping` is set; each stops within a second
    of IDLE, or once its current fetch is done (killed in the middle of one, nothing is
    lost: the next fetch repeats the unfinished batch as no-ops)."""
    watchers: dict[str, Watcher] = {}
    try:
        while not stopping.is_set():
            wanted = {mailbox.name: mailbox for mailbox in state.mailboxes(buckets.artifacts)}
            for name, watcher in list(watchers.items()):
                if wanted.get(name) != watcher.mailbox:  # removed or changed
                    watchers.pop(name).stop()
            for name, mailbox in wanted.items():
                if name not in watchers:
                    logger.info("watching", mailbox=name)
                    watchers[name] = Watcher(mailbox, buckets).start()
            stopping.wait(RELOAD_SECONDS)
    finally:
        for watcher in watchers.values():
            watcher.stopping.set()
        for watcher in watchers.values():
            watcher.stop()
