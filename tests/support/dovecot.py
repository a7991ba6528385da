"""A real IMAP server for the mailbox door's tests: Debian's Dovecot (`dovecot-imapd`),
started in the foreground from a generated configuration in a folder of its own, with its
own users (a passwd-file), Maildir storage, TLS from a test CA, listening on 127.0.0.1 only.

Dovecot refuses to run its login processes as root, so under root it runs as the `dovecot`
user the package creates (its folder then lies outside pytest's private temporary folder);
otherwise as the current user. Either way every service runs as that one user, without
chroot, which is what lets it run unprivileged.
"""

import getpass
import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import suppress
from email.message import EmailMessage
from pathlib import Path

import trustme
from imapclient import IMAPClient

from emulation.processes import HOST, free_ports

PASSWORD = "dovecot-test-password"


class Dovecot:
    def __init__(self, ca: trustme.CA, mechanisms: str = "plain login", idle: bool = True):
        self.ca = ca
        self.mechanisms = mechanisms
        self.idle = idle
        self.user = "dovecot" if os.geteuid() == 0 else getpass.getuser()
        self.folder = Path(tempfile.mkdtemp(prefix="postwerk-dovecot-"))
        self.port, self.imaps_port = free_ports(2)
        self.oauth2_introspection = ""  # set before start: tokens are checked there
        self.process: subprocess.Popen | None = None

    def start(self) -> "Dovecot":
        for part in ("run", "state", "mail"):
            (self.folder / part).mkdir()
        self.ca.issue_cert(HOST, "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(self.folder / "server.pem")
        )
        (self.folder / "users").write_text(f"support:{{PLAIN}}{PASSWORD}\n")
        (self.folder / "oauth2.conf.ext").write_text(self.oauth2_config())
        (self.folder / "dovecot.conf").write_text(self.config())
        self.folder.chmod(0o755)
        owner = pwd.getpwnam(self.user)
        for path in [self.folder, *self.folder.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        return self.launch()

    def launch(self) -> "Dovecot":
        command = ["dovecot", "-F", "-c", str(self.folder / "dovecot.conf")]
        gid = pwd.getpwnam(self.user).pw_gid
        as_user = {"user": self.user, "group": gid, "extra_groups": []}
        self.process = subprocess.Popen(command, **(as_user if os.geteuid() == 0 else {}))
        deadline = time.monotonic() + 30
        while not answers(self.port):
            assert self.process.poll() is None, f"dovecot exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"dovecot did not answer:\n{self.log()}"
            time.sleep(0.05)
        return self

    def config(self) -> str:
        group = grp.getgrgid(pwd.getpwnam(self.user).pw_gid).gr_name
        folder = self.folder
        passdb = f"passdb {{\n driver = passwd-file\n args = scheme=PLAIN {folder}/users\n"
        passdb += " mechanisms = plain login\n}"  # the tests' own mail client
        if self.oauth2_introspection:
            passdb += "\npassdb {\n driver = oauth2\n mechanisms = xoauth2 oauthbearer\n"
            passdb += f" args = {folder}/oauth2.conf.ext\n}}"
        # Dovecot's own list without IDLE: a server the door has to poll
        capabilities = (
            "" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS MOVE MULTIAPPEND"
        )
        return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = {HOST}
ssl = yes
ssl_cert = <{folder}/server.pem
ssl_key = <{folder}/server.pem
disable_plaintext_auth = no
auth_mechanisms = {self.mechanisms}
auth_failure_delay = 0
default_internal_user = {self.user}
default_internal_group = {group}
default_login_user = {self.user}
first_valid_uid = 1
mail_location = maildir:{folder}/mail/%u
{passdb}
userdb {{
  driver = static
  args = uid={self.user} gid={group} home={folder}/mail/%u
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
  }}
}}
protocol imap {{
  {capabilities}
}}
"""

    def oauth2_config(self) -> str:
        return (
            f"introspection_mode = post\nintrospection_url = {self.oauth2_introspection}\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
        )

    def terminate(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self.terminate()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        with suppress(OSError):
            return (self.folder / "dovecot.log").read_text(errors="replace")
        return ""

    def client(self) -> IMAPClient:
        """A mail client of the support mailbox (plain IMAP on loopback): to deliver and to
        look at what the door left."""
        client = IMAPClient(HOST, port=self.port, ssl=False, timeout=30)
        client.login("support", PASSWORD)
        return client

    def deliver(self, *messages: bytes, folder: str = "INBOX") -> None:
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(messages), 200):  # MULTIAPPEND: one command per 200
                client.multiappend(folder, messages[start : start + 200])

    def maildir(self, folder: str = "INBOX") -> Path:
        """The folder's Maildir (Dovecot's layout: INBOX at the top, others as .<name>,
        in modified UTF-7)."""
        top = self.folder / "mail" / "support"
        if folder == "INBOX":
            return top
        from imapclient.imap_utf7 import encode

        return top / f".{encode(folder).decode()}"


def answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def message(number: int, message_id: bool = True, body: str = "") -> bytes:
    """A customer e-mail, distinct by its number."""
    email = EmailMessage()
    email["From"] = f"kunde{number}@example.org"
    email["To"] = "support@example.com"
    email["Subject"] = f"Rechnung {number}"
    if message_id:
        email["Message-ID"] = f"<m{number}@example.org>"
    email.set_content(body or f"Meine Rechnung {number} ist doppelt gekommen.")
    return bytes(email)


class Proxy:
    """A TCP relay between the door and Dovecot, to make the network fail on cue: drop a
    connection once the server has sent `cut_after` bytes on it (once: later connections
    are left alone), or hold (forward nothing more) once the client sends `hold_on`,
    setting `held`."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.cut_after: int | None = None
        self.hold_on: bytes | None = None
        self.held = threading.Event()
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection((HOST, self.upstream_port))
                self.sockets += [client, server]
                threading.Thread(target=self.pump, args=(server, client, True), daemon=True).start()
                threading.Thread(
                    target=self.pump, args=(client, server, False), daemon=True
                ).start()

    def pump(self, source: socket.socket, target: socket.socket, from_server: bool) -> None:
        sent = 0
        with suppress(OSError):
            while data := source.recv(65536):
                if not from_server and self.hold_on and self.hold_on in data:
                    self.held.set()
                    return
                sent += len(data)
                target.sendall(data)
                if from_server and self.cut_after is not None and sent > self.cut_after:
                    self.cut_after = None
                    break
        for end in (source, target):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        for end in self.sockets:
            with suppress(OSError):
                end.close()
