"""Sample customer e-mails for the demo and the tests: generated, deterministic, bilingual.

`generate(count, seed)` composes e-mails from per-category phrase lists (German and
English) and `to_eml` writes each as a real RFC 5322 message in one of several MIME
shapes. The same seed gives the same bytes on every machine. This is made-up data: fine
to show the pipeline working, meaningless as an accuracy figure.
"""

import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape
from pathlib import Path

CATEGORIES = (
    "service_feedback",
    "complaint",
    "offer_request",
    "billing_question",
    "contract_cancellation",
    "address_change",
    "other",
)
LANGUAGES = ("de", "en")
MIME_SHAPES = ("plain", "alternative", "html_only", "latin1_attachment")

# Per category and language: subjects, then sentences that carry the request.
PHRASES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "service_feedback": {
        "de": (
            ("Lob für Ihren Techniker", "Danke für den schnellen Service", "Rückmeldung"),
            (
                "Ihr Techniker war pünktlich, freundlich und hat alles sauber erklärt.",
                "Ich möchte mich für die schnelle Hilfe Ihres Kundendienstes bedanken.",
                "Die Reparatur hat wunderbar geklappt, ich bin sehr zufrieden.",
                "Ihre Hotline hat mir heute sehr kompetent weitergeholfen.",
            ),
        ),
        "en": (
            ("Great service today", "Thank you to your engineer", "Feedback on my appointment"),
            (
                "Your engineer arrived on time, was friendly and explained everything clearly.",
                "I just wanted to say thank you for the quick help from your support team.",
                "The repair went perfectly and I am very happy with the result.",
                "The person on your hotline was really helpful and patient today.",
            ),
        ),
    },
    "complaint": {
        "de": (
            ("Beschwerde", "Sehr verärgert über Ihren Service", "Termin erneut nicht eingehalten"),
            (
                "Zum dritten Mal ist niemand zum vereinbarten Termin erschienen.",
                "Die Arbeiten wurden mangelhaft ausgeführt und das Gerät ist wieder defekt.",
                "Ich warte seit zwei Wochen auf einen Rückruf, das ist inakzeptabel.",
                "Ihr Mitarbeiter war unhöflich und hat das Problem nicht gelöst.",
            ),
        ),
        "en": (
            ("Complaint", "Very disappointed with your service", "Missed appointment again"),
            (
                "For the third time nobody showed up for the agreed appointment.",
                "The work was done badly and the device is broken again.",
                "I have been waiting two weeks for a call back, this is unacceptable.",
                "Your employee was rude and did not fix the problem.",
            ),
        ),
    },
    "offer_request": {
        "de": (
            ("Anfrage Angebot", "Bitte um ein Angebot", "Kostenvoranschlag gewünscht"),
            (
                "Bitte senden Sie mir ein Angebot für die jährliche Wartung unserer Heizung.",
                "Wir interessieren uns für Ihren Premium-Tarif und bitten um Konditionen.",
                "Was würde die Installation einer neuen Anlage in unserem Büro kosten?",
                "Könnten Sie uns einen Kostenvoranschlag für zehn Arbeitsplätze schicken?",
            ),
        ),
        "en": (
            ("Request for a quote", "Quote for maintenance", "Pricing for your premium plan"),
            (
                "Please send me a quote for the yearly maintenance of our heating system.",
                "We are interested in your premium plan and would like to know the prices.",
                "How much would it cost to install a new system in our office?",
                "Could you send us an offer for ten workplaces, including installation?",
            ),
        ),
    },
    "billing_question": {
        "de": (
            ("Frage zur Rechnung", "Rechnung doppelt abgebucht", "Unklare Position auf Rechnung"),
            (
                "Auf meiner letzten Rechnung ist ein Betrag, den ich nicht zuordnen kann.",
                "Der Rechnungsbetrag wurde diesen Monat zweimal von meinem Konto abgebucht.",
                "Bitte erklären Sie mir die Servicepauschale auf der Rechnung.",
                "Warum ist meine Abschlagszahlung gestiegen, obwohl ich weniger verbrauche?",
            ),
        ),
        "en": (
            ("Question about my invoice", "Charged twice", "Unclear item on my bill"),
            (
                "There is an amount on my last invoice that I do not understand.",
                "The invoice amount was debited from my account twice this month.",
                "Please explain the service fee that appears on my bill.",
                "Why did my monthly payment go up although I use less?",
            ),
        ),
    },
    "contract_cancellation": {
        "de": (
            ("Kündigung", "Kündigung meines Vertrags", "Vertrag zum Monatsende beenden"),
            (
                "Hiermit kündige ich meinen Wartungsvertrag fristgerecht zum nächsten Termin.",
                "Bitte beenden Sie meinen Vertrag zum Monatsende und bestätigen Sie die Kündigung.",
                "Wegen meines Umzugs ins Ausland möchte ich den Vertrag kündigen.",
                "Ich widerrufe den Vertrag und bitte um eine schriftliche Bestätigung.",
            ),
        ),
        "en": (
            ("Cancellation", "Cancel my contract", "End of contract"),
            (
                "I hereby cancel my maintenance contract at the next possible date.",
                "Please end my contract at the end of the month and confirm the cancellation.",
                "As I am moving abroad, I would like to cancel my contract.",
                "I want to terminate the agreement, please send a written confirmation.",
            ),
        ),
    },
    "address_change": {
        "de": (
            ("Neue Adresse", "Adressänderung", "Umzug: bitte Anschrift ändern"),
            (
                "Ich bin umgezogen, meine neue Anschrift lautet Lindenstraße 12, 50674 Köln.",
                "Bitte ändern Sie meine Rechnungsadresse auf Hauptstraße 5, 80331 München.",
                "Ab dem 1. des Monats wohnen wir in der Gartenweg 3, 20095 Hamburg.",
                "Bitte senden Sie künftig alle Briefe an meine neue Adresse in Berlin.",
            ),
        ),
        "en": (
            ("New address", "Change of address", "Moving house, please update my address"),
            (
                "I have moved, my new address is 12 Linden Street, Manchester M1 2AB.",
                "Please change my billing address to 5 High Street, Bristol BS1 4DJ.",
                "From the first of next month we will live at 3 Garden Lane, Leeds.",
                "Please send all letters to my new address in London from now on.",
            ),
        ),
    },
    "other": {
        "de": (
            ("Allgemeine Frage", "Öffnungszeiten", "Kurze Frage"),
            (
                "Wie sind die Öffnungszeiten Ihrer Filiale am Samstag?",
                "Haben Sie einen Newsletter, den ich abonnieren kann?",
                "Suchen Sie zurzeit Auszubildende im technischen Bereich?",
                "Kann ich in Ihrer Filiale einen Parkplatz nutzen?",
            ),
        ),
        "en": (
            ("General question", "Opening hours", "Quick question"),
            (
                "What are the opening hours of your branch on Saturdays?",
                "Do you have a newsletter I could subscribe to?",
                "Are you currently hiring apprentices for technical jobs?",
                "Is there parking available at your branch?",
            ),
        ),
    },
}

GREETINGS = {
    "de": ("Sehr geehrte Damen und Herren,", "Hallo,", "Guten Tag,", "Liebes Service-Team,"),
    "en": ("Dear Sir or Madam,", "Hello,", "Hi there,", "Dear customer service team,"),
}
CONTEXT = {
    "de": (
        "Meine Kundennummer ist {number}.",
        "Es geht um den Vertrag mit der Nummer {number}.",
        "Vorgangsnummer: {number}.",
    ),
    "en": (
        "My customer number is {number}.",
        "This is about contract number {number}.",
        "Reference: {number}.",
    ),
}
CLOSINGS = {
    "de": ("Mit freundlichen Grüßen", "Viele Grüße", "Beste Grüße"),
    "en": ("Kind regards", "Best wishes", "Thanks"),
}
NAMES = (
    "Anna Schmidt",
    "Jonas Weber",
    "Lena Fischer",
    "Mehmet Yilmaz",
    "Sophie Wagner",
    "Peter Brown",
    "Emily Clarke",
    "Daniel Novak",
    "Laura Becker",
    "Tom Hughes",
)
SERVICE_ADDRESS = "service@postwerk.example"
VAGUE = {
    "de": (
        ("Rückruf", "Bitte rufen Sie mich zurück."),
        ("Ihr Schreiben", "Siehe Anhang."),
        ("Re: Anfrage", "Wie telefonisch besprochen, anbei die Unterlagen."),
    ),
    "en": (
        ("Call back", "Please call me back."),
        ("Your letter", "See attachment."),
        ("Re: request", "As discussed on the phone, please find the documents attached."),
    ),
}
MIXED_SHARE = 0.25  # e-mails that also mention a second matter: the model is less sure
ALSO = {"de": "Außerdem:", "en": "Also:"}
# examples/emails/: what `make up` sends; half its "other" e-mails are vague, unlike any
# training e-mail, so the model is unsure of some and the review queue has work.
DEMO = {"count": 42, "seed": 1, "vague_share": 0.5}
TRAINING = {"count": 420, "seed": 2}  # what `make up` trains the first model on
HELD_OUT = {"count": 140, "seed": 3}  # its test channel: champion and challenger meet here
FIRST_DATE = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SampleEmail:
    message_id: str
    sender_name: str
    sender: str
    sent_at: datetime
    subject: str
    body: str
    label: str
    language: str
    shape: str


def generate(count: int, seed: int, vague_share: float = 0.0) -> list[SampleEmail]:
    """count e-mails cycling through categories and languages; the same seed, the same mail.
    vague_share of the "other" e-mails say next to nothing (see VAGUE)."""
    chooser = random.Random(seed)
    emails = []
    for number in range(count):
        label = CATEGORIES[number % len(CATEGORIES)]
        language = LANGUAGES[(number // len(CATEGORIES)) % len(LANGUAGES)]
        subjects, requests = PHRASES[label][language]
        name = chooser.choice(NAMES)
        sentences = chooser.sample(requests, k=chooser.choice((1, 2)))
        subject = chooser.choice(subjects)
        if label == "other" and chooser.random() < vague_share:
            subject, vague = chooser.choice(VAGUE[language])
            sentences = [vague]
        elif chooser.random() < MIXED_SHARE:  # real mail often asks two things at once
            other = chooser.choice([c for c in CATEGORIES if c != label])
            aside = chooser.choice(PHRASES[other][language][1])
            sentences.append(f"{ALSO[language]} {aside}")
        context = chooser.choice(CONTEXT[language]).format(number=chooser.randint(10000, 99999))
        body = "\n\n".join(
            [
                chooser.choice(GREETINGS[language]),
                " ".join([*sentences, context]),
                f"{chooser.choice(CLOSINGS[language])}\n{name}",
            ]
        )
        emails.append(
            SampleEmail(
                message_id=f"<sample-{seed}-{number:04d}@kunden.example>",
                sender_name=name,
                sender=f"{name.lower().replace(' ', '.')}@kunden.example",
                sent_at=FIRST_DATE + timedelta(minutes=37 * number),
                subject=subject,
                body=body,
                label=label,
                language=language,
                shape=MIME_SHAPES[chooser.randrange(len(MIME_SHAPES))],
            )
        )
    return emails


def to_eml(email: SampleEmail) -> bytes:
    """The e-mail as sent by a mail client, in its MIME shape."""
    message = EmailMessage()
    message["From"] = f"{email.sender_name} <{email.sender}>"
    message["To"] = SERVICE_ADDRESS
    message["Subject"] = email.subject
    message["Date"] = format_datetime(email.sent_at)
    message["Message-ID"] = email.message_id
    html = "<html><body>{}</body></html>".format(
        "".join(f"<p>{escape(part)}</p>".replace("\n", "<br>") for part in email.body.split("\n\n"))
    )
    if email.shape == "plain":
        message.set_content(email.body)
    elif email.shape == "alternative":
        message.set_content(email.body)
        message.add_alternative(html, subtype="html")
    elif email.shape == "html_only":
        message.set_content(html, subtype="html")
    else:  # an older client: Latin-1, quoted-printable, a scanned letter attached
        message.set_content(email.body, charset="iso-8859-1", cte="quoted-printable")
        message.add_attachment(
            b"%PDF-1.4\n% sample scan\n", maintype="application", subtype="pdf", filename="scan.pdf"
        )
    if message.is_multipart():  # the default boundary is random: fix it for the same bytes
        message.set_boundary(f"=_{email.message_id.strip('<>')}")
    return message.as_bytes()


def write_emails(emails: list[SampleEmail], folder: Path) -> list[Path]:
    """One <category>-<n>.eml per e-mail, so a listing shows what each should become."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, email in enumerate(emails):
        path = folder / f"{number:03d}-{email.label}.eml"
        path.write_bytes(to_eml(email))
        paths.append(path)
    return paths


def training_rows(emails: list[SampleEmail]) -> list[dict[str, str]]:
    """JSON Lines rows for the training container (subject and body, as the pipeline sees)."""
    return [{"subject": e.subject, "body": e.body, "label": e.label} for e in emails]


if __name__ == "__main__":  # python -m postwerk.samples examples/emails
    write_emails(generate(**DEMO), Path(sys.argv[1]))
