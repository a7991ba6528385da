"""The language of an e-mail's text: py3langid (langid.py's model, made for short texts
such as tweets), restricted to the languages our customers write, "unknown" when it is not
sure or when nothing but ids, numbers and links is left to read."""

import functools
import re

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from services.records import LANGUAGES

MIN_CONFIDENCE = 0.5  # of the probabilities normalised over LANGUAGES
MIN_LETTERS = 3
SAMPLE_CHARS = 2_000  # the language shows in the first lines; the cost grows with the text
NOT_WORDS = re.compile(
    r"\S*(?:https?://|www\.)\S*"  # links
    r"|\S+@\S+"  # addresses
    r"|\S*\d\S*",  # ids, numbers, dates, hex strings
    re.IGNORECASE,
)


@functools.cache
def identifier() -> LanguageIdentifier:
    """The model for LANGUAGES only, loaded once on first use (about 0.6 s: in the Lambda,
    its first invocation; a `postwerk` command that never reads a text skips it), built anew
    from the restricted tables so that the full model's are freed (65 MB resident instead of
    87, numpy included)."""
    full = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    full.set_languages(list(LANGUAGES))
    return LanguageIdentifier(
        full.nb_ptc,
        full.nb_pc,
        full.nb_classes,
        full.tk_nextmove,
        full.tk_output,
        norm_probs=True,
        tk_row=full.tk_row,
    )


def language(text: str) -> str:
    words = NOT_WORDS.sub(" ", text[:SAMPLE_CHARS])
    if sum(char.isalpha() for char in words) < MIN_LETTERS:
        return "unknown"
    code, confidence = identifier().classify(words)
    return code if confidence >= MIN_CONFIDENCE else "unknown"
