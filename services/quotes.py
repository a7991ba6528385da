"""Quoted history and signatures out of a reply: what the sender wrote, nothing more."""

import re

from selectolax.lexbor import LexborHTMLParser

# Where the quoted history or the signature starts (English and German mail clients).
CUT_MARKERS = re.compile(
    r"^(?:"
    r"On .{1,200} wrote:\s*$"
    r"|Am .{1,200} schrieb .{0,200}:\s*$"
    r"|-{2,} ?(?:Original Message|Ursprüngliche Nachricht"
    r"|Forwarded message|Weitergeleitete Nachricht) ?-{2,}.*$"
    r"|(?:From|Von): .+\n(?:Sent|Gesendet): .+$"
    r"|-- ?$"
    r")",
    re.MULTILINE,
)


def strip_history(text: str) -> str:
    """Drop `>` quoted lines and everything from a reply header or signature on."""
    marker = CUT_MARKERS.search(text)
    if marker and marker.start() > 0:
        text = text[: marker.start()]
    kept = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    return "\n".join(kept).strip()


def strip_html_history(tree: LexborHTMLParser) -> None:
    """Remove quoted history that HTML mail clients mark (blockquote, Gmail's quote)."""
    for quote in tree.css("blockquote, div.gmail_quote, div.moz-cite-prefix"):
        quote.decompose()
