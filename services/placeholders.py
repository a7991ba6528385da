"""A reply's placeholders and what fills them: the facts an e-mail states (customer and
contract numbers, the first date, the first amount of money) as German and English mail
writes them, and a greeting with the sender's name as people read it (Outlook's
"Müller, Hans" is "Hans Müller"). A placeholder nothing fills stays visible as `{name}`.
"""

import re
import unicodedata
from string import Formatter

PLACEHOLDERS = {
    "salutation": "the greeting, with the sender's name when the e-mail gives one",
    "name": "the sender's name",
    "customer_number": "the customer number the e-mail mentions",
    "contract_number": "the contract number the e-mail mentions",
    "date": "the first date the e-mail mentions",
    "amount": "the first amount of money the e-mail mentions",
}
SALUTATIONS = {  # (with a name, without)
    "de": ("Guten Tag {name},", "Sehr geehrte Damen und Herren,"),
    "en": ("Dear {name},", "Dear Sir or Madam,"),
}

# The patterns prefer no fact to a wrong one (a template may go out unreviewed, autoreply.py),
# and stay linear on hostile text: atomic groups and possessive repeats where parts overlap.
SPACE = r"[ \u00a0\u202f]"  # within a line
DAY = r"(?:0?[1-9]|[12]\d|3[01])"
MONTH = r"(?:0?[1-9]|1[0-2])"
NUMERIC_DATE = (
    rf"(?<![\d.,/-])(?>{DAY}\.{MONTH}\.(?:\d{{4}}|\d{{2}})|\d{{4}}-(?:0[1-9]|1[0-2])-(?:0[1-9]|"
    rf"[12]\d|3[01])|{DAY}/{DAY}/\d{{4}})(?![\d.,]\d|\d)"
)
MONTHS = (
    r"(?:Jan(?:uar|uary)?|Jän(?:ner)?|Feb(?:ruar|ruary)?|M(?:ärz|aerz|ar(?:ch)?|är)|Apr(?:il)?"
    r"|Ma[iy]|Jun[ie]?|Jul[iy]?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|O[ck]t(?:ober)?|Nov(?:ember)?"
    r"|De[cz](?:ember)?)\.?"
)
ORDINAL = r"(?:st|nd|rd|th)"
WRITTEN_DATE = (  # "15. Januar 2027", "3rd of March"; month first only with a year or an
    # ordinal: "Jan 15 Jahre" is a colleague
    rf"\b(?:{DAY}(?:\.|{ORDINAL})?{SPACE}?(?:of{SPACE})?{MONTHS}(?:{SPACE}\d{{4}})?"
    rf"|{MONTHS}{SPACE}{DAY}(?:{ORDINAL}(?:,?{SPACE}\d{{4}})?|,?{SPACE}\d{{4}}))(?!\w)"
)
LETTER = r"[^\W\d_]"  # "50EUR" is an amount, "EURO2024" and "Euro-Paletten" none
CURRENCY = rf"(?:€|\$|£|(?<!{LETTER})(?:EUR|USD|GBP|CHF|Euros?|Franken)(?!{LETTER}|-))"
# Thousands grouped by . , ' U+2019 or a no-break space, cents after . or , ("1.234,56",
# "1,234.56", "CHF 1'250.00", "50,-"). Not a plain space: "Menge 3 120,00 €" is no 3,120.
GROUPED = r"\d{1,3}(?:[.,'\u2019\u00a0\u202f]\d{3})++"
NUMBER = (
    rf"(?<![\d.,'\u2019/-])(?<!\d{SPACE})(?>{GROUPED}|\d++)(?:[.,](?:\d{{1,2}}|-{{1,2}}))?+(?!\d)"
)
# An identifier stands alone: not a date or a piece of one, not a year, not an amount.
IDENTIFIER = (
    rf"(?<![\d.,/-])(?!{NUMERIC_DATE})(?!(?:19|20)\d\d(?![\d/-]))(\d[\d/-]{{3,}}+)"
    rf"(?![.,]?\d)(?!{SPACE}?{CURRENCY})"
)
FACTS = {
    "customer_number": re.compile(
        r"(?:kunden[- ]?(?:nummer|nr\.?|id)|kd\.?[- ]?nr\.?|customer[- ](?:number|no\.?|id)"
        rf"|client (?:number|no\.?))\D{{0,12}}?{IDENTIFIER}",
        re.I,
    ),
    # between the word and the number, a date may stand ("Vertrag vom 12.03.2024, Nr. 98501")
    "contract_number": re.compile(
        rf"(?:vertrag|contract)(?>{NUMERIC_DATE}|\D){{0,30}}?{IDENTIFIER}", re.I
    ),
    "date": re.compile(f"({NUMERIC_DATE}|{WRITTEN_DATE})"),  # case-sensitive: "may" is a verb
    "amount": re.compile(
        rf"({CURRENCY}{SPACE}?{NUMBER}|{NUMBER}{SPACE}?{CURRENCY}(?!{SPACE}?\d))"
    ),  # "Invoice #12345 USD 99.00": the amount follows its currency
}
COMPANY = r"\b(?:GmbH|AG|KG|SE|Inc|Ltd|LLC|e\.\s?V|Co)\b"  # "ACME, Inc." keeps its order
DEGREE = r"(?i:phd|ph\.d\.|mba|msc|bsc|md|jr\.?|sr\.?|b\.?a\.?|m\.?a\.?)"
PARTICLES = r"(?:(?:van|von|de|der|den|del|la|le|di|du|zu|ten|ter|vom|zum|zur)\s)*"
TITLES = r"(?:(?:Dr|Prof|Dipl\.-\w+|Mag|Ing)\.?\s)*"
SURNAME_FIRST = re.compile(  # "Müller, Hans", "Dr. Müller, Hans", "van der Berg, Jan"
    rf"(?P<title>{TITLES})(?P<last>{PARTICLES}[^\W\d_][\w'-]*),\s(?P<first>[^\W\d_][\w'.-]*"
    rf"(?:\s[^\W\d_][\w'.-]*)?)"
)
MAILBOXES = {"info", "noreply", "no-reply", "kundenservice", "service", "support", "team",
             "office", "buchhaltung", "verwaltung", "admin", "mail", "kontakt", "contact",
             "sales", "vertrieb", "billing", "newsletter", "customer service"}  # fmt: skip


def names(body: str) -> set[str]:
    """The placeholders a template's body uses (ValueError: braces that do not pair up)."""
    return {field for _, field, _, _ in Formatter().parse(body) if field is not None}


def stated(text: str) -> dict[str, str]:
    """The facts the text states, the first of each kind."""
    found = {}
    for name, pattern in FACTS.items():
        if match := pattern.search(text):
            found[name] = match.group(1)  # as written: a reply may quote it (generalise)
    return found


def greeting_name(display_name: str) -> str:
    """The name to greet from a From header's display name ("" when it is none): without
    what follows it in brackets, after a bar or a dash ("Hans Müller (ACME GmbH)", "Hans
    Müller | Einkauf"), in reading order ("Müller, Hans"), not shouted ("HANS MÜLLER"); an
    address, a mailbox name ("hans.mueller") or a role ("info", "Kundenservice") is none;
    a department or degree after a comma is left out."""
    text = "".join(char for char in display_name if unicodedata.category(char) != "Cf")
    text = re.sub(r"[(\[].*?(?:[)\]]|$)", " ", text, flags=re.S).replace('"', " ")
    name = bare(re.split(r"\||\s[-\u2013]\s", " ".join(text.split()))[0])
    parts = [part.strip() for part in name.split(",")]
    swapped = SURNAME_FIRST.fullmatch(", ".join(parts[:2]))
    if swapped and not re.match(f"{DEGREE}|{COMPANY}", swapped["first"]):
        name = bare(f"{swapped['title']}{swapped['first']} {bare(swapped['last'])}")
    else:  # "Hans Müller, Vertrieb", "Jane Doe, PhD", "ACME, Inc."
        name = bare(parts[0])
    if "@" in name or re.fullmatch(r"[\w-]*[._][\w.-]*|[a-z-]+", name):  # what is left
        return ""
    if name.casefold() in MAILBOXES:
        return ""
    return name.title() if name.isupper() and len(name) > 3 and "İ" not in name else name


def bare(name: str) -> str:
    """Without separators around it, nor the single quotes Exchange wraps names in."""
    name = name.strip(" ,;-")
    while len(name) > 1 and name[0] == name[-1] == "'":
        name = name[1:-1].strip(" ,;-")
    return name


def salutation(name: str, language: str) -> str:
    with_name, without = SALUTATIONS.get(language, SALUTATIONS["en"])
    return with_name.format(name=name) if name else without


def fill(body: str, known: dict[str, str]) -> tuple[str, list[str]]:
    """The body with what is known filled in; the rest stays visible as {name}."""
    missing = sorted(names(body) - known.keys())
    text = re.sub(r"\{(\w+)\}", lambda m: known.get(m.group(1), m.group(0)), body)
    return text, missing


def generalise(reply: str, known: dict[str, str]) -> str:
    """The reply with this e-mail's facts turned back into placeholders, so it suits the
    next customer (and carries none of this one's name or numbers): whole values only,
    not "5 €" inside "15 €" or the name "Jan" inside "Januar"."""
    for name, value in sorted(known.items(), key=lambda item: -len(item[1])):
        if value:
            whole = rf"(?<![\w.,]){re.escape(value)}(?!\w|[.,]\d)"
            reply = re.sub(whole, lambda _, name=name: "{" + name + "}", reply)
    return reply
