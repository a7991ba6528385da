"""Reply suggestions: latency over a big index, and how often the top suggestion fits.

    python -m bench.replies [--quick]

Latency: one suggestion lookup (embed the e-mail, cosine against every vector of the
category, the best in the e-mail's language) with 5,000 to 100,000 past replies in one
category's index, p50/p99 against the 300 ms bound; the baseline is the same lookup over
5,000. Loading the index (cold start: bytes from S3 to the matrix) is timed apart.

Quality: generated e-mails (postwerk/samples.py) each get the reply staff would send to
their kind of request (category, language and the request's first sentence). An index built
from one seed answers e-mails of another; printed: the share whose top suggestion is a reply
to the same kind, against the baseline of a random reply of the same category and language.
"""

import random
import statistics
import time

import numpy as np

from bench.common import base_parser, finish, print_table
from postwerk.samples import PHRASES, generate
from services.reply_index import DIMENSIONS, Entry, Index, embed

BOUND_S = 0.3
SIZES = (5_000, 50_000, 100_000)
LOOKUPS = 200


def kind(email) -> str:
    """Which request this is: its category, language and first request sentence."""
    sentences = PHRASES[email.label][email.language][1]
    first = min((email.body.find(s), n) for n, s in enumerate(sentences) if s in email.body)
    return f"{email.label}/{email.language}/{first[1]}"


def pairs(count: int, seed: int) -> list[tuple[str, str, str, str]]:
    """(text, language, category, kind) of generated e-mails whose request is recognisable."""
    found = []
    for email in generate(count=count, seed=seed):
        if any(s in email.body for s in PHRASES[email.label][email.language][1]):
            found.append(
                (f"{email.subject}\n{email.body}", email.language, email.label, kind(email))
            )
    return found


def quality(index_size: int, held_out: int, seed: int) -> dict[str, float]:
    indexes: dict[str, Index] = {}
    for text, language, category, request in pairs(index_size, seed):
        indexes.setdefault(category, Index()).add(text, Entry(request, language, request))
    indexes = {category: Index.from_bytes(i.to_bytes()) for category, i in indexes.items()}
    chooser = random.Random(seed)  # the indexes as stored (float16) and loaded
    hits = baseline = total = 0
    for text, language, category, request in pairs(held_out, seed + 1):
        index = indexes[category]
        [top] = index.nearest(text, language, 1) or [None]
        same = [e for e in index.entries if e.language == language]
        hits += top is not None and top.reply == request
        baseline += chooser.choice(same).reply == request
        total += 1
    return {
        "top_is_same_kind": hits / total,
        "random_same_category": baseline / total,
        "held_out": total,
    }


def synthetic_index(size: int, seed: int) -> Index:
    """size sent replies in one category: vectors of generated e-mails, repeated."""
    texts = [text for text, *_ in pairs(2_000, seed)]
    base = np.stack([embed(text) for text in texts])
    vectors = base[np.arange(size) % len(base)]
    languages = ("de", "en")
    entries = [Entry(f"m{n}", languages[n % 2], f"reply {n}") for n in range(size)]
    return Index(vectors.astype(np.float32), entries)


def latency(size: int, seed: int, lookups: int) -> dict[str, float]:
    index = synthetic_index(size, seed)
    started = time.perf_counter()
    stored = index.to_bytes()
    loaded = Index.from_bytes(stored)
    load_s = time.perf_counter() - started
    queries = [text for text, *_ in pairs(lookups, seed + 7)]
    times = []
    for text in queries:
        started = time.perf_counter()
        loaded.nearest(text, "en", 3)
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "size": size,
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))],
        "index_mb": len(stored) / 1e6,
        "save_load_s": load_s,
    }


def main() -> None:
    args = base_parser(__doc__).parse_args()
    sizes = SIZES if not args.quick else (1_000, 5_000)
    lookups = 20 if args.quick else LOOKUPS
    rows = [latency(size, args.seed, lookups) for size in sizes]
    baseline_p99 = rows[0]["p99_ms"]
    print_table(
        f"suggestion lookup ({DIMENSIONS} dimensions, float32, one category; bound "
        f"{BOUND_S * 1000:.0f} ms p99)",
        ["replies", "p50 ms", "p99 ms", "p99 / smallest", "index MB", "save+load s", "within"],
        [
            [
                r["size"],
                r["p50_ms"],
                r["p99_ms"],
                r["p99_ms"] / baseline_p99,
                r["index_mb"],
                r["save_load_s"],
                r["p99_ms"] < BOUND_S * 1000,
            ]
            for r in rows
        ],
    )
    scores = quality(140 if args.quick else 1400, 70 if args.quick else 700, args.seed)
    print_table(
        "top suggestion is a reply to the same kind of request (held-out e-mails)",
        ["held out", "nearest reply", "random reply, same category (baseline)", "ratio"],
        [
            [
                scores["held_out"],
                scores["top_is_same_kind"],
                scores["random_same_category"],
                scores["top_is_same_kind"] / max(scores["random_same_category"], 1e-9),
            ]
        ],
    )
    finish("replies", {"latency": rows, "quality": scores}, args.quick)


if __name__ == "__main__":
    main()
