"""A reply's placeholders and what fills them: the facts an e-mail states (customer and
contract numbers, the first date, the first amount of money) as German and English mail
writes them, and a greeting with the sender's name as people read it (Outlook's
"Müller, Hans" is "Hans Müller"). A placeholder nothing fills stays visible as `{name}`.
"""

import re
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

# An identifier stands alone: not a piece of a date ("Vertrag vom 12.03.2024") or a number.
IDENTIFIER = r"(?<![\d.,/])(\d[\d/-]{3,})(?![.,]?\d)"
MONTHS = (
    r"(?:Jan(?:uar|uary)?|Jän(?:ner)?|Feb(?:ruar|ruary)?|M(?:ärz|aerz|ar(?:ch)?|är)|Apr(?:il)?"
    r"|Ma[iy]|Jun[ie]?|Jul[iy]?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|O[ck]t(?:ober)?|Nov(?:ember)?"
    r"|De[cz](?:ember)?)\.?"
)
COMPANY = r"\b(?:GmbH|AG|KG|SE|Inc|Ltd|LLC|e\.\s?V|Co)\b"  # "ACME, Inc." keeps its order
NUMERIC_DATE = r"\d{1,2}\.\d{1,2}\.\d{2,4}"
DAY = r"\d{1,2}(?:\.|st|nd|rd|th)?"
# Amounts: thousands grouped by . , ' or a (narrow) space, cents after . or , ("1.234,56",
# "1,234.56", "50,-"); the currency before or after.
GROUPED = r"\d{1,3}(?:[.,'\u2019\u00a0\u202f ]\d{3})+"  # Swiss: ' or U+2019
NUMBER = rf"(?<![\d.,])(?:{GROUPED}|\d+)(?:[.,](?:\d{{1,2}}|-{{1,2}}))?(?!\d)"
LETTER = r"[^\W\d_]"  # "50EUR" is an amount, "EURO2024" none
CURRENCY = rf"(?:€|\$|£|(?<!{LETTER})(?:EUR|USD|GBP|CHF|Euros?|Franken)(?!{LETTER}))"
FACTS = {
    "customer_number": re.compile(
        r"(?:kunden[- ]?(?:nummer|nr\.?|id)|kd\.?[- ]?nr\.?|customer[- ](?:number|no\.?|id)"
        rf"|client (?:number|no\.?))\D{{0,12}}?{IDENTIFIER}",
        re.I,
    ),
    # between the word and the number, a date may stand ("Vertrag vom 12.03.2024, Nr. 98501")
    "contract_number": re.compile(
        rf"(?:vertrag|contract)(?:\D|{NUMERIC_DATE}){{0,30}}?{IDENTIFIER}", re.I
    ),
    "date": re.compile(
        rf"\b({NUMERIC_DATE}|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{4}}"
        rf"|{DAY}\s?(?:of\s)?{MONTHS}(?:\s\d{{4}})?|{MONTHS}\s{DAY},?(?:\s\d{{4}})?)(?!\w)"
    ),  # case-sensitive: a month is capitalised, "may" is a verb
    "amount": re.compile(rf"({CURRENCY}\s?{NUMBER}|{NUMBER}\s?{CURRENCY})"),
}


def names(body: str) -> set[str]:
    """The placeholders a template's body uses (ValueError: braces that do not pair up)."""
    return {field for _, field, _, _ in Formatter().parse(body) if field is not None}


def stated(text: str) -> dict[str, str]:
    """The facts the text states, the first of each kind."""
    found = {}
    for name, pattern in FACTS.items():
        if match := pattern.search(text):
            found[name] = " ".join(match.group(1).split())  # one line, one space
    return found


def greeting_name(display_name: str) -> str:
    """The name to greet from a From header's display name ("" when it is none): without
    what follows it in brackets or after a bar ("Hans Müller (ACME GmbH)", "Hans Müller |
    Einkauf"), in reading order ("Müller, Hans"), not shouted ("HANS MÜLLER"); an address
    or a mailbox name ("hans.mueller") is no name."""
    name = re.sub(r"[(\[].*?([)\]]|$)", " ", display_name).split("|")[0]
    name = " ".join(name.replace('"', " ").split()).strip(" ,;-")
    if "@" in name or re.fullmatch(r"[\w-]*[._][\w.-]*", name):
        return ""
    last, comma, first = name.partition(",")
    if comma and first.strip() and "," not in first and not re.search(r"\d|" + COMPANY, name):
        name = f"{first.strip()} {last.strip()}"
    return name.title() if name.isupper() and len(name) > 3 else name


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
    next customer (and carries none of this one's name or numbers)."""
    for name, value in sorted(known.items(), key=lambda item: -len(item[1])):
        if value:
            reply = reply.replace(value, "{" + name + "}")
    return reply
