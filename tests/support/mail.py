"""E-mails for the tests: a plain one built in code, and the regression fixtures on disk."""

from email.message import EmailMessage
from pathlib import Path

MAIL_FIXTURES = Path(__file__).resolve().parents[1] / "services" / "mail_fixtures"


def simple(body: str, **headers) -> bytes:
    message = EmailMessage()
    message["From"] = headers.get("sender", "Kunde <kunde@example.de>")
    message["To"] = "service@example.com"
    message["Subject"] = headers.get("subject", "Rechnung")
    message["Message-ID"] = "<m1@example.de>"
    message["Date"] = "Thu, 26 Nov 2026 09:15:00 +0100"
    message.set_content(body)
    return message.as_bytes()
