"""services/quotes.py: forwards keep the forwarded text, replies lose their history, and the
engine's properties over generated mail (whole e-mails per client are in
tests/services/mail_fixtures/forwards, read through parse_email in test_mail.py)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.quotes import MARKERS, strip

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The header blocks clients write above a forwarded message ({n}: the sender's name)
FORWARD_HEADERS = [
    "---------- Forwarded message ---------\nFrom: {n} <{n}@example.com>\n"
    "Date: Mon, Nov 30, 2026 at 10:00 AM\nSubject: Rechnung\nTo: <service@example.com>\n",
    "---------- Weitergeleitete Nachricht ---------\nVon: {n} <{n}@example.de>\n"
    "Date: Mo., 30. Nov. 2026 um 10:00 Uhr\nSubject: Rechnung\nTo: <service@example.com>\n",
    "Begin forwarded message:\n\nFrom: {n} <{n}@example.com>\nSubject: Invoice\n"
    "Date: 30 November 2026 at 10:00:00 CET\nTo: service@example.com\n",
    "Anfang der weitergeleiteten Nachricht:\n\nVon: {n} <{n}@example.de>\nBetreff: Rechnung\n"
    "Datum: 30. November 2026 um 10:00:00 MEZ\nAn: service@example.com\n",
    "-------- Forwarded Message --------\nSubject: \tInvoice\n"
    "Date: \tMon, 30 Nov 2026 10:00:00 +0100\nFrom: \t{n} <{n}@example.org>\n"
    "To: \tservice@example.com\n",
    "-------- Weitergeleitete Nachricht --------\nBetreff: \tRechnung\n"
    "Datum: \tMon, 30 Nov 2026 10:00:00 +0100\nVon: \t{n} <{n}@example.de>\n"
    "An: \tservice@example.com\n",
    "---------------------- Forwarded by Jane Doe/HOU/ECT on 10/18/99 08:46 AM"
    " ---------------------------\n\n\n"
    '"{n}" <{n}@example.com> on 10/15/99 04:12:33 PM\nTo: Jane Doe/HOU/ECT@ECT, Grant\n'
    "Masson/HOU/ECT@ECT\ncc: \nSubject: Re: Invoice\n\n",
    "----- Weitergeleitet von Hans Meier/ACME am 30.11.2026 10:00 -----\n\n"
    "{n} <{n}@example.de> am 29.11.2026 18:12\nAn: info@acme.example\nKopie: \n"
    "Thema: Beschwerde\n",
]
# Outlook's blocks, a forward only by the subject ("FW:", "WG:")
OUTLOOK_HEADERS = [
    "-----Original Message-----\nFrom: {n} [mailto:{n}@example.com]\n"
    "Sent: Monday, November 30, 2026 10:00 AM\nTo: service@example.com\nSubject: Invoice\n",
    "-----Ursprüngliche Nachricht-----\nVon: {n} [mailto:{n}@example.de]\n"
    "Gesendet: Montag, 30. November 2026 10:00\nAn: service@example.com\nBetreff: Rechnung\n",
    "________________________________\nFrom: {n} <{n}@example.com>\n"
    "Sent: Monday, November 30, 2026 10:00 AM\nTo: service@example.com\nSubject: Invoice\n",
    "Von: {n} <{n}@example.de>\nGesendet: Montag, 30. November 2026 10:00\n"
    "An: service@example.com\nCc: info@example.com\nBetreff: Rechnung\n",
]
REPLY_ATTRIBUTIONS = [
    "On Mon, Nov 30, 2026 at 10:00 AM {n} <{n}@example.com> wrote:",
    "Am Mo., 30. Nov. 2026 um 10:00 Uhr schrieb {n} <{n}@example.de>:",
    "Am 30.11.26 um 10:00 schrieb {n}:",
]
SIGNATURES = [
    "",
    "\n\nBest regards,\n{n}",
    "\n\nMit freundlichen Grüßen\n{n}\nMusterstraße 5\n12345 Berlin",
    "\n\n-- \n{n}\nSales",
    "\n\n{n}\nExample GmbH\nTel. +49 30 1234567\nwww.example.de",
    "\n\nThis e-mail and any attachments are confidential. If you are not the intended"
    " recipient, please delete it.",
    "\n\nDiese E-Mail enthält vertrauliche Informationen. Wenn Sie nicht der richtige Adressat"
    " sind, löschen Sie sie bitte.",
    "\n\nSent from my iPhone",
]
FIRST_WORDS = ["Please", "My", "The", "Our", "Bitte", "Meine", "Der", "Ich", "We"]
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöü", min_size=2, max_size=9)
NAMES = st.sampled_from(["Anna", "Tom", "Petra", "Smith, John", "laura.chen"])


@st.composite
def sentences(draw, most: int = 3) -> list[str]:
    """Lines someone wrote: a first word, 2-12 lowercase words, a full stop."""
    count = draw(st.integers(0, most))
    words = st.lists(WORDS, min_size=2, max_size=12)
    return [f"{draw(st.sampled_from(FIRST_WORDS))} {' '.join(draw(words))}." for _ in range(count)]


def text_of(lines: list[str], signature: str, name: str) -> str:
    return "\n".join(lines) + signature.format(n=name) if lines else ""


@st.composite
def forwards(draw):
    """(e-mail text, subject, the forwarder's lines, the forwarded message's lines)"""
    name = draw(NAMES)
    own, forwarded = draw(sentences()), draw(sentences())
    outlook = draw(st.booleans())
    header = draw(st.sampled_from(OUTLOOK_HEADERS if outlook else FORWARD_HEADERS))
    subject = draw(st.sampled_from(["FW: Invoice", "WG: Rechnung", "Fwd: x", "Fw: x"]))
    text = (
        text_of(own, draw(st.sampled_from(SIGNATURES)), name)
        + "\n\n"
        + header.format(n=name)
        + "\n"
        + text_of(forwarded, draw(st.sampled_from(SIGNATURES)), name)
    )
    return (
        text,
        subject if outlook else draw(st.sampled_from([subject, "Rechnung"])),
        own,
        forwarded,
    )


@st.composite
def replies(draw):
    """(e-mail text, subject, the new lines, the quoted lines)"""
    name = draw(NAMES)
    own, quoted = draw(sentences()), draw(sentences(most=3).filter(bool))
    if draw(st.booleans()):
        history = draw(st.sampled_from(REPLY_ATTRIBUTIONS)).format(n=name) + "\n"
        history += "\n".join(f"> {line}" for line in quoted)
    else:
        history = draw(st.sampled_from(OUTLOOK_HEADERS)).format(n=name) + "\n"
        history += "\n".join(quoted)
    own_text = text_of(own, draw(st.sampled_from(SIGNATURES)), name)
    return f"{own_text}\n\n{history}", draw(st.sampled_from(["Re: x", "AW: x", "x"])), own, quoted


def in_order(output: str, text: str) -> bool:
    """Each line of the output is a line of the text (a quoted one may lose its quote
    marks: a forward sent quoted), in the text's order."""
    lines = iter(line.strip().lstrip("> ") for line in text.split("\n"))
    own = [line.strip().lstrip("> ") for line in output.split("\n") if line.strip()]
    return all(any(line == other for other in lines) for line in own)


@BOUNDED
@given(forwards())
def test_a_forward_keeps_the_forwarders_words_and_the_forwarded_text(sample):
    text, subject, own, forwarded = sample
    result = strip(text, subject)
    assert result.text == "\n\n".join(
        part for part in ("\n".join(own), "\n".join(forwarded)) if part
    )
    assert result.forwarded == bool(forwarded)
    assert in_order(result.text, text)
    assert strip(result.text, subject).text == result.text


@BOUNDED
@given(replies())
def test_a_reply_keeps_its_new_text_and_without_it_what_it_quotes(sample):
    text, subject, own, quoted = sample
    result = strip(text, subject)
    if own:
        assert result.text.split("\n") == own
    elif not text.lstrip().startswith(("On ", "Am ")):  # a quote under no text: kept
        assert result.text.split("\n") == quoted
    assert not result.forwarded and in_order(result.text, text)
    assert strip(result.text, subject).text == result.text


PIECES = st.sampled_from(
    [
        "",
        "-- ",
        "> quoted",
        "Best regards,",
        "Thanks,",
        "Mit freundlichen Grüßen",
        "From: a@example.com",
        "Von: a@example.com",
        "Sent: Monday",
        "To: b@example.com",
        "cc:",
        "Subject: x",
        "________________________________",
        "-----Original Message-----",
        "---------- Forwarded message ---------",
        "Begin forwarded message:",
        "-------- Weitergeleitete Nachricht --------",
        "----- Forwarded by Jane Doe/HOU/ECT on 10/18/99 08:46 AM -----",
        '"Smith" <s@example.com> on 10/15/99 04:12:33 PM',
        "On Mon, 30 Nov 2026 at 10:00, Service <s@x.com> wrote:",
        "Tel. +49 30 1234567",
        "www.example.de",
        "12345 Berlin",
        "Example GmbH",
        "This e-mail is confidential.",
        "Please call me back.",
        "Mein Zähler ist kaputt.",
        "Thanks, that works now.",
    ]
)


@BOUNDED
@given(
    st.lists(st.one_of(PIECES, st.text(max_size=30)), max_size=30), st.sampled_from(["FW: x", "x"])
)
def test_any_text_gives_lines_of_its_own_in_order_and_a_second_pass_changes_nothing(
    pieces, subject
):
    text = "\n".join(pieces)
    result = strip(text, subject)
    assert in_order(result.text, text)
    assert strip(result.text, subject).text == result.text


WRITTEN = [  # marker lines as the clients write them
    "-----Original Message-----",
    "-----Ursprüngliche Nachricht-----",
    "-----Message d'origine-----",
    "-----Messaggio originale-----",
    "-----Mensaje original-----",
    "---------- Forwarded message ---------",
    "-------- Weitergeleitete Nachricht --------",
    "---------- Message transféré ---------",
    "---------- Messaggio inoltrato ---------",
    "---------- Mensaje reenviado ---------",
    "Begin forwarded message:",
    "Anfang der weitergeleiteten Nachricht:",
    "Début du message réexpédié :",
    "Inizio messaggio inoltrato:",
    "----- Forwarded by Jane Doe/HOU/ECT on 10/18/99 08:46 AM -----",
    "----- Weitergeleitet von Hans Meier/ACME am 30.11.2026 10:00 -----",
]


@pytest.mark.parametrize("marker", MARKERS, ids=lambda m: f"{m.client}-{m.language}-{m.kind}")
def test_every_marker_rule_is_exercised(marker):
    """The rules are data: each one matches a line as its client writes it."""
    lines = [line for line in WRITTEN if marker.pattern.match(line)]
    assert lines
    result = strip(f"Please check.\n\n{lines[0]}\nFrom: a@example.com\nTo: b@example.com\n\nBody.")
    assert result.text == (
        "Please check.\n\nBody." if marker.kind == "forward" else "Please check."
    )


@pytest.mark.parametrize("line", WRITTEN)
def test_every_marker_line_is_known(line):
    assert any(marker.pattern.match(line) for marker in MARKERS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a closing ends the text, but the forward below it is kept
        (
            "Bitte prüfen.\n\nViele Grüße\nJonas\n\nBegin forwarded message:\n\nFrom: a@b.de\n"
            "Subject: x\n\nMein Zähler ist kaputt.",
            "Bitte prüfen.\n\nMein Zähler ist kaputt.",
        ),
        # an address the customer gives is not a contact block: a sentence introduces it
        (
            "Meine neue Adresse:\n\nLindenweg 7\n80331 München\nTel. 089 1234567",
            "Meine neue Adresse:\n\nLindenweg 7\n80331 München\nTel. 089 1234567",
        ),
        # a contact block alone is the text
        (
            "Lindenweg 7\n80331 München\nTel. 089 1234567",
            "Lindenweg 7\n80331 München\nTel. 089 1234567",
        ),
        # a contact block after the text goes, with its name
        (
            "Der Zähler ist kaputt.\n\nPeter Lang\nLang GmbH\nTel. 030 1234567",
            "Der Zähler ist kaputt.",
        ),
        # one contact-like line is not a block
        ("Der Zähler ist kaputt.\n\nwww.example.de", "Der Zähler ist kaputt.\n\nwww.example.de"),
        # a disclaimer in the middle of the text is text
        (
            "This e-mail is confidential, as you asked.\n\nPlease call me.",
            "This e-mail is confidential, as you asked.\n\nPlease call me.",
        ),
        (
            "Please call me.\n\nThis e-mail and any attachments are confidential and intended"
            " solely for the addressee.",
            "Please call me.",
        ),
        ("Thanks, that works now.\nThanks,\nTom", "Thanks, that works now."),
    ],
)
def test_signatures_and_disclaimers(text, expected):
    assert strip(text).text == expected


def test_a_forward_sent_quoted_is_read_without_its_quote_marks():
    text = (
        "\n> Anfang der weitergeleiteten Nachricht:\n>\n> Von: Ina <ina@example.de>\n"
        "> Betreff: Angebot\n> An: vertrieb@example.de\n>\n"
        "> Bitte schicken Sie mir ein Angebot für 3 Geräte.\n"
    )
    assert strip(text) == ("Bitte schicken Sie mir ein Angebot für 3 Geräte.", True)
    reply = "Am 30.11.2026 um 10:00 schrieb Service <s@x.com>:\n> Anbei unser Angebot."
    assert strip(reply).text == "", "a reply that only quotes: nothing of its own (as before)"
