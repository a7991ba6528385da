"""What the sender wrote: a reply without its quoted history, a forward without its header
block, neither with signatures, disclaimers and list footers.

The rules are data: `MARKERS` lists, per mail client and language, the lines that start an
earlier message (a reply's history or a forward); `ATTRIBUTIONS`, `HEADER_NAMES`, `CLOSING`,
`CONTACT_LINES` and `DISCLAIMERS` the rest. One engine applies them, line by line, in one
pass (the cost grows linearly with the text; no pattern sees a line of more than
MAX_MARKER_LINE characters):
- `>` quoted lines and the attribution above them ("On … wrote:", "Am … schrieb …:",
  "Le … a écrit :", "Il … ha scritto:" with a time or an address, also wrapped over two
  lines) are dropped, but the answers written between quoted lines are kept;
- an earlier message starts at a marker (Outlook's "-----Original Message-----" and the
  underscore line, a block of two or more "From:/Von:/Sent:/Gesendet:/…" lines, Gmail's and
  Thunderbird's "---------- Forwarded message ---------", Apple Mail's "Begin forwarded
  message:", Lotus Notes' "----- Forwarded by Name/Org on date -----" and its
  "Name <addr> on date" + "To:/cc:/Subject:" block, an attribution that no quote follows);
- a reply's history is dropped; a forward's header block (marker, header lines, Notes'
  "Name on date" line) is dropped and the forwarded message kept, after the forwarder's
  own words, itself read by the same rules (its quoted history dropped, a forward in it
  unwrapped). A forward is a marker that says so, or Outlook's block (which looks the same
  in replies and forwards) when the subject says so ("FW:", "WG:", "Fwd:", …). A reply
  with no text of its own keeps the text it quotes;
- from a signature on, a message's lines are dropped up to the next marker: "-- ",
  "Von meinem iPhone gesendet" and its kin, a closing formula on a line of its own ("Mit
  freundlichen Grüßen", "LG Tom", "Best regards,") after some text, a mailing list's footer;
- at the end of a message, after some text, paragraphs of a legal disclaimer and a contact
  block (two or more lines of phone, fax, address, URL, e-mail, company, at least one of
  them a phone, URL or address; no sentence among them) are dropped;
- snip lines ("-- 8< --", "[...]") are dropped.

Libraries were measured against this on the fixtures in tests/services/mail_fixtures/replies
(25 replies): mail-parser-reply (multi-language) gets 12 right, loses the answers written
between quoted lines and takes 34 s on one 40 KB line (its patterns backtrack); quotequail
gets 2 right (it splits quotes off, keeps signatures and footers). Neither is used.
"""

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from selectolax.lexbor import LexborHTMLParser

MAX_MARKER_LINE = 300  # longer lines are text: no marker or attribution is that long
MAX_MESSAGES = 8  # messages read, at most: the sender's, forwarded ones, quoted ones
MAX_QUOTE_LEVELS = 2  # quote levels taken off a forward sent quoted, at most
MAX_LOOK = 20  # lines looked ahead past quoted ones, at most
MAX_HEADER_BLOCK = 40  # lines of a forward's header block, at most

Kind = Literal["forward", "history", "block"]  # block: Outlook's, a forward when the subject says


@dataclass(frozen=True)
class Marker:
    """A line that starts an earlier message, as a client writes it."""

    client: str
    language: str
    kind: Kind
    pattern: re.Pattern[str]  # matched against the stripped line


def between_dashes(words: str) -> re.Pattern[str]:
    return re.compile(rf"^-{{2,}} ?{words} ?-{{2,}}$", re.IGNORECASE)


def whole_line(words: str) -> re.Pattern[str]:
    return re.compile(rf"^{words}$", re.IGNORECASE)


MARKERS = (
    Marker("Outlook", "en", "block", between_dashes("Original Message")),
    Marker("Outlook", "de", "block", between_dashes("Ursprüngliche Nachricht")),
    Marker("Outlook", "fr", "block", between_dashes("Message d'origine")),
    Marker("Outlook", "it", "block", between_dashes("Messaggio originale")),
    Marker("Outlook", "es", "block", between_dashes("Mensaje original")),
    Marker("Gmail/Thunderbird", "en", "forward", between_dashes("Forwarded message")),
    Marker("Gmail/Thunderbird", "de", "forward", between_dashes("Weitergeleitete Nachricht")),
    Marker("Gmail/Thunderbird", "fr", "forward", between_dashes("Message transféré")),
    Marker("Gmail/Thunderbird", "it", "forward", between_dashes("Messaggio inoltrato")),
    Marker("Gmail/Thunderbird", "es", "forward", between_dashes("Mensaje reenviado")),
    Marker("Apple Mail", "en", "forward", whole_line(r"Begin forwarded message ?:")),
    Marker("Apple Mail", "de", "forward", whole_line(r"Anfang der weitergeleiteten Nachricht ?:")),
    Marker("Apple Mail", "fr", "forward", whole_line(r"Début du message réexpédié ?:")),
    Marker("Apple Mail", "it", "forward", whole_line(r"Inizio messaggio inoltrato ?:")),
    # "---------------------- Forwarded by Vince J Kaminski/HOU/ECT on 10/18/99 08:46 AM ---"
    Marker("Lotus Notes", "en", "forward", re.compile(r"^-{2,} ?Forwarded by \S[^\n]*-{2,}$")),
    Marker("Lotus Notes", "de", "forward", re.compile(r"^-{2,} ?Weitergeleitet von \S.*-{2,}$")),
    # the two Notes lines are not anchored at the end by a fixed string: the line is at most
    # MAX_MARKER_LINE characters and the pattern has one variable part, so no backtracking
)
# A Notes header without a marker above it: '"Name" <addr> on 10/15/99 04:12:33 PM',
# 'Name/Org@Org am 18.10.99 08:46' (then "To:" within a few lines)
NOTES_FROM = re.compile(
    r"^(?:From: )?\S.{0,150}? (?:on|am) \d{1,2}[/.]\d{1,2}[/.]\d{2,4},? \d{1,2}:\d{2}"
    r"(?::\d{2})?(?: ?[AP]M)?$",
    re.IGNORECASE,
)
NOTES_EXTRA = re.compile(r"^(?:Please respond to|Sent by:?) \S", re.IGNORECASE)
RULE_LINE = re.compile(r"^[_-]{10,}$")  # Outlook's underscore line (a history when headers follow)

HEADER_NAMES = (
    r"From|Von|De|Da|Sent|Gesendet|Envoyé|Inviato|Enviado|Date|Datum|Data|Fecha|To|An|À|A|Para"
    r"|Cc|Kopie|Bcc|Subject|Betreff|Objet|Oggetto|Asunto|Reply-To|Antwort an|Répondre à"
    r"|Organization|Organisation|Importance|Wichtigkeit|Priority|Attachments|Anlagen|Sent by"
    r"|Thema|Blindkopie"  # Lotus Notes in German
)
HEADER_LINE = re.compile(rf"^\*?(?:{HEADER_NAMES})\*? ?:\*?(?:\s|$)", re.IGNORECASE)
HISTORY_HEADER = re.compile(
    r"^\*?(?:From|Von|De|Da|Sent|Gesendet|Envoyé|Inviato|Date|Datum)\*? ?:", re.IGNORECASE
)
# A forward, by the subject's first prefix: Fwd, FW, WG (German), TR (French), RV (Spanish),
# Doorst (Dutch), VS (Finnish), VB (Swedish), I (Italian, with no space before the colon)
FORWARD_SUBJECT = re.compile(r"^\s*(?:Fwd?|WG|TR|RV|Doorst|VS|VB|I(?=:))\s*(?:\[\d+\])?\s*:", re.I)

# (first word, the verb before the final colon); tested with string operations, not
# patterns: one of the shape "On .* wrote:" backtracks on long lines
ATTRIBUTIONS = (("On ", " wrote"), ("Le ", " a écrit"), ("Il ", " ha scritto"))
ATTRIBUTION_STARTS = ("On ", "Am ", "Le ", "Il ")
# a clock time or an address: "Am 3. März schrieb ich Ihnen bereits:" is not one
ATTRIBUTION_DETAIL = re.compile(r"\d{1,2}[:.]\d{2}|@")

SNIP_MARKS = {"8<", ">8", "✂", "[...]", "[snip]", "<snip>"}  # between dashes or alone
LIST_FOOTER = re.compile(r"mailing list|listinfo|unsubscribe|abmelden", re.IGNORECASE)
SENT_FROM = re.compile(
    r"^(?:Sent from my\b|Von meinem .{1,40} gesendet$|Gesendet von meinem\b"
    r"|Gesendet mit der .{1,40} App|Get Outlook for\b|Envoyé de mon\b|Inviato da\b)",
    re.IGNORECASE,
)
CLOSING = re.compile(
    r"^(?:Mit freundlichen Grüßen|Mit freundlichen Grüssen|Freundliche Grü(?:ß|ss)e"
    r"|(?:Viele|Beste|Liebe|Herzliche|Schöne|Sonnige|Freundliche) Grü(?:ß|ss)e|Grü(?:ß|ss)e"
    r"|Gru(?:ß|ss)|MfG|LG|VG|Best regards|Kind regards|Warm regards|Regards|Best wishes"
    r"|Cheers|Cordialement|Bien à vous|Distinti saluti|Cordiali saluti|Saluti)"
    r"[,.!]?(?: [A-ZÄÖÜ][\w.-]*){0,3}$"
    # thanks as a closing only with its comma: "Thanks, that works now." is text
    r"|^(?:Thanks|Thank you|Many thanks|Thanks again|Danke|Vielen Dank|Merci|Grazie),"
    r"(?: [A-ZÄÖÜ][\w.-]*){0,3}$"
)

# Lines of a contact block, each a pattern searched in the line (lines are short here):
# phone and fax numbers, URLs, e-mail addresses, postal codes with a town, streets,
# company forms and register entries
REACHABLE = (  # a phone, a URL or an address: one of these makes a block a contact block
    re.compile(
        r"^(?:Tel(?:efon|\.)?|Phone|Ph\.?|Fon|Fax|Telefax|Mobil(?:e)?|Mob\.?|Cell|Handy|Direct"
        r"|Durchwahl|[TFMP])\s*[.:]?\s*\+?[\d(][\d ()/.-]{5,}",
        re.IGNORECASE,
    ),
    re.compile(r"^\+?[\d(][\d ()/.-]{7,}$"),  # a number alone
    re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE),
    re.compile(r"^(?:E-?Mail\s*:?\s*)?[\w.+-]+@[\w-]+(?:\.[\w-]+)+$", re.IGNORECASE),
    re.compile(r"(?:^|, ?)(?:D-|A-|CH-)?\d{4,5} [A-ZÄÖÜ][\w. -]*$"),  # 12345 Berlin
    re.compile(r"[A-Z][a-z]+,? [A-Z]{2} \d{5}(?:-\d{4})?$"),  # Houston, TX 77002
    re.compile(r"\b[A-Z][a-z]{2,8} \d[A-Z\d]? ?\d[A-Z]{2}$"),  # London EC1A 1BB
)
COMPANY = (
    re.compile(
        r"\b(?:GmbH|AG|KG|mbH|e\.\s?V\.|Inc\.?|Ltd\.?|LLC|Corp\.?|S\.A\.|SARL|S\.r\.l\.)(?:\s|,|$)"
    ),
    re.compile(
        r"(?:stra(?:ß|ss)e|str\.|weg|gasse|platz|allee|ring|damm)\s*\d+\w?\b"
        r"|^\d+ [\w .]+ (?:Street|St\.|Avenue|Ave\.|Road|Rd\.|Boulevard|Blvd\.|Suite \d+)",
        re.IGNORECASE,
    ),
    re.compile(
        r"^(?:Geschäftsführ|Sitz der Gesellschaft|Registergericht|Amtsgericht|HRB ?\d|USt-?Id"
        r"|VAT\b|Steuer-?Nr)",
        re.IGNORECASE,
    ),
)
SENTENCE = re.compile(r"(?:\S+ ){7,}|[:?]$")  # 8 words or more, or a line ending in : or ?
DISCLAIMERS = re.compile(  # searched in a paragraph's first MAX_MARKER_LINE characters
    r"(?:this|the) (?:e-?mail|message|communication|transmission)(?: and any"
    r" (?:attachments?|files?)(?: (?:to|transmitted with) it)?)? (?:is|are|may be|may contain"
    r"|contains?) (?:strictly )?(?:confidential|privileged|intended)"
    r"|information (?:contained )?in this (?:e-?mail|message|communication)"
    r"|if you (?:are not|have received this)(?: the)? (?:intended|in error|e-?mail in error)"
    r"|confidentiality notice|^disclaimer\b|legal notice"
    r"|please consider the environment before printing"
    r"|diese (?:e-?mail|nachricht)(?: und (?:alle|etwaige|die) anh[äa]nge?)? (?:enthält|ist|kann)"
    r" (?:vertrauliche|vertraulich|rechtlich)"
    r"|wenn sie nicht der (?:richtige|beabsichtigte) (?:adressat|empfänger)"
    r"|falls sie (?:diese|die) (?:e-?mail|nachricht) irrtümlich"
    r"|rechtlicher hinweis|haftungsausschluss|bitte denken sie an die umwelt"
    r"|ce (?:message|courriel|e-?mail)(?: et (?:toutes )?(?:les|ses) pièces jointes)? (?:est|sont)"
    r" (?:strictement )?confidentiel"
    r"|questo messaggio (?:e-mail )?(?:e (?:gli|i) (?:allegati|file) )?(?:è|contiene)"
    r" (?:riservat|confidenzial|informazioni riservate)",
    re.IGNORECASE,
)
HTML_HISTORY = (
    "blockquote, .gmail_quote, .gmail_signature, .moz-cite-prefix, .moz-signature,"
    " #divRplyFwdMsg, #Signature"
)
HTML_FORWARD_WINDOW = 200  # characters of a marked element in which a forward marker keeps it


class Stripped(NamedTuple):
    text: str
    forwarded: bool  # a forwarded message is kept, its header block dropped


def strip_history(text: str) -> str:
    """The sender's text (see the module's description)."""
    return strip(text).text


def strip(text: str, subject: str = "") -> Stripped:
    """The sender's text, forwarded messages included; `subject` tells Outlook's forwards
    (whose header block looks like a reply's) by "FW:", "WG:", …; a forward that its
    client sent quoted ("> Begin forwarded message:", iOS) is read without the quote marks."""
    lines = text.split("\n")
    for _ in range(MAX_QUOTE_LEVELS):
        stripped = strip_lines(lines, subject)
        if stripped.text or not any(is_forward_line(unquote(line)) for line in lines):
            return stripped
        lines = [unquote(line) for line in lines]
    return strip_lines(lines, subject)


def unquote(line: str) -> str:
    """A line without its first quote mark ("> text" -> "text")."""
    stripped = line.lstrip()
    if not stripped.startswith(">"):
        return line
    return stripped[2:] if stripped.startswith("> ") else stripped[1:]


def is_forward_line(line: str) -> bool:
    line = line.strip().strip("*").strip()
    return len(line) <= MAX_MARKER_LINE and any(
        marker.kind == "forward" and marker.pattern.match(line) for marker in MARKERS
    )


def strip_lines(lines: list[str], subject: str) -> Stripped:
    forward_subject = FORWARD_SUBJECT.match(subject) is not None
    messages: list[list[str]] = []
    forwarded = False  # the message being read came in a forward
    forwarded_text = False
    at = 0
    for _ in range(MAX_MESSAGES):
        own, history, kind = own_lines(lines, at, has_words(messages))
        messages.append(own)
        forwarded_text = forwarded_text or (forwarded and has_words([own]))
        if history is None:
            break
        forward = kind == "forward" or (kind == "block" and forward_subject and len(messages) == 1)
        if not forward and has_words(messages):
            break  # a reply's history
        forwarded = forwarded or forward
        at = skip_headers(lines, history)
    kept = "\n\n".join("\n".join(own).strip() for own in messages if has_words([own]))
    return Stripped(kept, forwarded_text)


def has_words(messages: list[list[str]]) -> bool:
    return any(line.strip() for own in messages for line in own)


def own_lines(lines: list[str], start: int, after_text: bool) -> tuple[list[str], int | None, Kind]:
    """A message's lines from `start` on: the sender's, then where the next message starts
    (None: nowhere) and what it is. `after_text`: some text was kept before `start`."""
    kept: list[str] = []
    skip = 0
    ended = False  # a signature: the lines up to the next message are dropped
    for at in range(start, len(lines)):
        if skip:
            skip -= 1
            continue
        raw = lines[at]
        line = raw.strip()
        if line.startswith(">"):
            continue
        if len(line) > MAX_MARKER_LINE:
            if not ended:
                kept.append(raw)
        elif is_snip(line):
            continue
        elif length := attribution(lines, at):
            if not quote_follows(lines, at + length):
                return end_of_message(kept, after_text), at, "history"
            skip = length - 1
        elif kind := starts_message(lines, at):
            return end_of_message(kept, after_text), at, kind
        elif ended or ends_text(lines, at, after_text or has_words([kept])):
            ended = True
        else:
            kept.append(raw)
    return end_of_message(kept, after_text), None, "history"


def attribution(lines: list[str], at: int) -> int:
    """How many lines the attribution starting here takes: 0 (none), 1 or 2 (wrapped)."""
    line = lines[at].strip()
    if not line.startswith(ATTRIBUTION_STARTS):
        return 0
    if is_attribution(line):
        return 1
    if at + 1 < len(lines) and len(lines[at + 1]) < MAX_MARKER_LINE:
        return 2 if is_attribution(f"{line} {lines[at + 1].strip()}") else 0
    return 0


def is_attribution(line: str) -> bool:
    if not line.endswith(":") or not ATTRIBUTION_DETAIL.search(line):
        return False
    words = line[:-1].rstrip()
    if line.startswith("Am "):  # "Am 30.11.26 um 10:00 schrieb Service <s@x.com>:"
        return " schrieb " in f"{words} "
    return any(line.startswith(first) and words.endswith(verb) for first, verb in ATTRIBUTIONS)


def quote_follows(lines: list[str], at: int) -> bool:
    following = next((line.strip() for line in lines[at : at + 3] if line.strip()), "")
    return following.startswith(">")


def starts_message(lines: list[str], at: int) -> Kind | None:
    """Whether an earlier message (a forward or a history) starts at this line, and which."""
    line = lines[at].strip().strip("*").strip()
    for marker in MARKERS:
        if marker.pattern.match(line):
            return marker.kind
    following = visible(lines, at + 1, 3)
    if RULE_LINE.match(line):
        return "block" if any(HISTORY_HEADER.match(f) for f in following[:2]) else None
    if HISTORY_HEADER.match(line):  # two header lines; Notes leaves blank lines between
        header_follows = next((f for f in following if f), "")
        return "block" if HEADER_LINE.match(header_follows) else None
    if NOTES_FROM.match(line):
        return "block" if any(f.lower().startswith("to:") for f in following) else None
    return None


def ends_text(lines: list[str], at: int, after_text: bool) -> bool:
    """A signature, a closing formula after some text, or a mailing list's footer."""
    line = lines[at].strip()
    if line in ("--", "-- ") or SENT_FROM.match(line):
        return True
    if CLOSING.match(line):
        return after_text
    if RULE_LINE.match(line):
        return any(LIST_FOOTER.search(next_line) for next_line in visible(lines, at + 1, 3))
    return False


def visible(lines: list[str], at: int, count: int) -> list[str]:
    """The next `count` lines from `at` that are kept as text would be: quoted and snip
    lines left out (a second pass over the kept text sees the same), within MAX_LOOK lines."""
    found: list[str] = []
    for line in lines[at : at + MAX_LOOK]:
        line = line.strip()
        if line.startswith(">") or (len(line) < MAX_MARKER_LINE and is_snip(line)):
            continue
        found.append(line)
        if len(found) == count:
            break
    return found


def is_snip(line: str) -> bool:
    return line.strip("- \t").lower() in SNIP_MARKS


def end_of_message(kept: list[str], after_text: bool) -> list[str]:
    """Without the disclaimer and contact block at its end, when some text comes before."""
    paragraphs = split_paragraphs(kept)
    while paragraphs and (after_text or len(paragraphs) > 1):
        last = [kept[at].strip() for at in paragraphs[-1]]
        above = (kept[at].strip() for at in reversed(range(paragraphs[-1][0])))
        before = next((line for line in above if line), "")
        if not (is_disclaimer(last) or (is_contact_block(last) and not before.endswith(":"))):
            break
        del kept[paragraphs.pop()[0] :]
    return kept


def split_paragraphs(kept: list[str]) -> list[range]:
    paragraphs: list[range] = []
    start = None
    for at, line in enumerate([*kept, ""]):
        if line.strip() and start is None:
            start = at
        elif not line.strip() and start is not None:
            paragraphs.append(range(start, at))
            start = None
    return paragraphs


def is_disclaimer(paragraph: list[str]) -> bool:
    return DISCLAIMERS.search(" ".join(paragraph)[:MAX_MARKER_LINE]) is not None


def is_contact_block(paragraph: list[str]) -> bool:
    if any(len(line) > 100 or SENTENCE.search(line) for line in paragraph):
        return False
    reachable = sum(any(p.search(line) for p in REACHABLE) for line in paragraph)
    contact = sum(any(p.search(line) for p in (*REACHABLE, *COMPANY)) for line in paragraph)
    return reachable >= 1 and contact >= 2


def skip_headers(lines: list[str], at: int) -> int:
    """The first line after a message's marker and header block: header lines, Notes'
    "Name on date" and "Please respond to" lines, the blank lines between them, and the
    lines a long header wraps onto (a header line follows them)."""
    line = lines[at].strip().strip("*").strip()
    header = HISTORY_HEADER.match(line) or NOTES_FROM.match(line)
    end = at = at + (0 if header else 1)
    limit = min(len(lines), at + MAX_HEADER_BLOCK)
    seen = False
    while at < limit:
        line = lines[at].strip().strip("*").strip()
        if is_header(line):
            end, seen = at + 1, True
        elif line and not header_follows(lines[at + 1 : at + 4], blank_lines=not seen):
            break  # neither a wrapped header nor a line above the headers: the text
        at += 1
    return end


def header_follows(following: list[str], blank_lines: bool) -> bool:
    """A header line among these, with blank lines before it only where allowed (above the
    first header line: Notes writes "Enron North America Corp.", blank, "From: …")."""
    for line in following:
        if is_header(line.strip()):
            return True
        if not line.strip() and not blank_lines:
            return False
    return False


def is_header(line: str) -> bool:
    line = line.strip("*").strip()
    return bool(HEADER_LINE.match(line) or NOTES_FROM.match(line) or NOTES_EXTRA.match(line))


def strip_html_history(tree: LexborHTMLParser) -> None:
    """Remove the quoted history and signatures that HTML mail clients mark (blockquote,
    Gmail's and Thunderbird's classes, Outlook's reply header and signature); a forwarded
    message (Gmail's quote, Apple Mail's blockquote, starting with a forward marker) is kept
    for the text rules."""
    for marked in tree.css(HTML_HISTORY):
        if not holds_forward(marked.text(separator="\n")[:HTML_FORWARD_WINDOW]):
            marked.decompose()


def holds_forward(text: str) -> bool:
    return any(is_forward_line(line) for line in text.split("\n")[:8])
