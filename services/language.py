"""The language of an e-mail's text."""

import re

STOPWORDS = {
    "de": {"und", "der", "die", "das", "ich", "nicht", "ist", "mit", "sie", "ein", "eine"},
    "en": {"the", "and", "is", "not", "you", "my", "with", "for", "please", "your", "we"},
}


def language(text: str) -> str:
    words = re.findall(r"[a-zäöüß]+", text.lower())
    counts = {lang: sum(word in stop for word in words) for lang, stop in STOPWORDS.items()}
    best = max(counts, key=counts.get)
    if counts[best] == 0 or list(counts.values()).count(counts[best]) > 1:
        return "unknown"
    return best
