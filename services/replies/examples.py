"""Example reply templates, so that a new stack suggests replies from the first e-mail on:
one German and one English template per category of the bundled samples (postwerk/samples.py),
seeded by `postwerk up` once the stack is deployed.

They are marked as examples: the id `example-<category>-<language>`, a title that begins
with "Example:" or "Beispiel:", the author "postwerk example". Staff edit them as any
template. To remove one, retire it on the review page (`t`, pick it, tick "retired", save);
to remove them all, delete them from the artifacts bucket:

    aws s3 rm s3://<artifacts bucket>/replies/templates/ --recursive \\
        --exclude '*' --include 'example-*'

Seeding happens once per bucket: it writes replies/examples.json when done, and does nothing
while that object exists, so examples staff deleted never come back. Nor does it write over
what staff changed: an example that has any version is left alone. Deleting
replies/examples.json seeds again, the missing ones only.
"""

import json
from datetime import UTC, datetime

from services import storage
from services.replies import templates
from services.replies.templates import ReplyTemplate, SaveConflict, TemplateDraft

SEEDED = "replies/examples.json"  # the examples were seeded: never again
AUTHOR = "postwerk example"
TITLE = {"de": "Beispiel: ", "en": "Example: "}
CLOSING = {"de": "\n\nMit freundlichen Grüßen\nIhr Kundenservice",
           "en": "\n\nKind regards\nCustomer service"}  # fmt: skip
# category -> language -> (title, the text between the salutation and the closing)
EXAMPLES = {
    "service_feedback": {
        "de": ("Danke für Ihre Rückmeldung", "vielen Dank für Ihre Rückmeldung. Wir haben sie "
               "an das zuständige Team weitergegeben."),
        "en": ("Thank you for your feedback", "thank you for your feedback. We have passed it "
               "on to the team concerned."),
    },
    "complaint": {
        "de": ("Wir kümmern uns darum", "es tut uns leid, dass Sie Grund zur Beschwerde haben. "
               "Wir prüfen den Vorgang zu Ihrer Kundennummer {customer_number} und melden uns "
               "innerhalb von zwei Werktagen."),
        "en": ("We are on it", "we are sorry that you have reason to complain. We are looking "
               "into the matter for customer number {customer_number} and will get back to you "
               "within two working days."),
    },
    "offer_request": {
        "de": ("Ihr Angebot folgt", "vielen Dank für Ihre Anfrage. Ihr Angebot erhalten Sie "
               "in den nächsten Tagen per E-Mail."),
        "en": ("Your offer follows", "thank you for your enquiry. You will receive our offer "
               "by e-mail within the next few days."),
    },
    "billing_question": {
        "de": ("Wir prüfen Ihre Rechnung", "vielen Dank für Ihre Frage zum Betrag von {amount}. "
               "Wir prüfen die Rechnung und melden uns mit einer Erklärung."),
        "en": ("We are checking your invoice", "thank you for your question about the amount "
               "of {amount}. We are checking the invoice and will come back to you with an "
               "explanation."),
    },
    "contract_cancellation": {
        "de": ("Kündigung erhalten", "wir haben Ihre Kündigung des Vertrags {contract_number} "
               "erhalten. Die Bestätigung mit dem Vertragsende schicken wir Ihnen "
               "schriftlich."),
        "en": ("Cancellation received", "we have received your cancellation of contract "
               "{contract_number}. You will receive a written confirmation with the end date."),
    },
    "address_change": {
        "de": ("Neue Anschrift", "vielen Dank für Ihre Mitteilung. Wir ändern die Anschrift zu "
               "Ihrer Kundennummer {customer_number} zum {date}."),
        "en": ("New address", "thank you for letting us know. We will change the address for "
               "customer number {customer_number} as of {date}."),
    },
    "other": {
        "de": ("Wir melden uns", "vielen Dank für Ihre Nachricht. Wir kümmern uns darum und "
               "melden uns bald bei Ihnen."),
        "en": ("We will get back to you", "thank you for your message. We will look into it "
               "and get back to you soon."),
    },
}  # fmt: skip


def drafts() -> dict[str, TemplateDraft]:
    """The examples by template id."""
    return {
        f"example-{category}-{language}": TemplateDraft(
            category=category,
            language=language,
            title=TITLE[language] + title,
            body="{salutation}\n\n" + text + CLOSING[language],
        )
        for category, languages in EXAMPLES.items()
        for language, (title, text) in languages.items()
    }


def seed(bucket: str) -> list[ReplyTemplate]:
    """The examples that have no version yet, the first time only; those this call saved."""
    if storage.head(bucket, SEEDED) is not None:
        return []
    examples = drafts()
    saved = [template for template_id, draft in examples.items()
             if (template := save_new(bucket, template_id, draft)) is not None]  # fmt: skip
    seeded = {"seeded_at": datetime.now(UTC).isoformat(), "templates": sorted(examples)}
    storage.write(bucket, SEEDED, json.dumps(seeded).encode())
    return saved


def save_new(bucket: str, template_id: str, draft: TemplateDraft) -> ReplyTemplate | None:
    """Version 1 of the example; None where the template has a version already."""
    if templates.latest(bucket, template_id) is not None:
        return None
    try:
        return templates.save(bucket, draft, AUTHOR, template_id)
    except SaveConflict:  # saved meanwhile: someone's version stays
        return None
