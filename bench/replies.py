"""Reply suggestions: latency over a big index, and how often the top suggestion fits.

    python -m bench.replies [--quick] [--model DIR]

Embeddings: the model's, as the endpoint computes them (model.serving's Predictor, the
OpenVINO engine: the mean-pooled, normalised second-to-last layer). --model names a trained
model folder; without one, the bundled MiniLM with an untrained head (its encoder is the
pretrained sentence encoder that fine-tuning starts from).

Latency: one suggestion lookup (embed the e-mail, cosine against every vector of the
category, the best in the e-mail's language) with 5,000 to 100,000 past replies in one
category's index, p50/p99 against the 300 ms bound; the baseline is the same lookup over
5,000. On the endpoint the embedding is one InvokeEndpoint more (bench.invoke times it).
Loading the index (cold start: bytes from S3 to the matrix) is timed apart.

Quality: generated e-mails (postwerk/samples.py) each get the reply staff would send to
their kind of request (category, language and the request's first sentence). An index built
from one seed answers e-mails of another; printed: the share whose top suggestion is a reply
to the same kind, for the model's embeddings and for hashed word vectors (what the index
used before), against a random reply of the same category and language.
"""

import itertools
import random
import re
import statistics
import time
import zlib
from pathlib import Path

import numpy as np

from bench.common import LABEL, TEXT, base_parser, finish, load_banking77, print_table
from bench.serving import resolve_model
from model.serving.predictor import Predictor
from postwerk.samples import PHRASES, generate
from services.replies.index import Entry, Index

BOUND_S = 0.3
SIZES = (5_000, 50_000, 100_000)
LOOKUPS = 200
HASHED_DIMENSIONS = 512
WORD = re.compile(r"\w+")


def hashed(text: str) -> np.ndarray:
    """The baseline: a hashed bag of words and word pairs, sublinear, L2-normalised."""
    words = WORD.findall(text.lower())
    vector = np.zeros(HASHED_DIMENSIONS, np.float32)
    for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
        vector[zlib.crc32(feature.encode()) % HASHED_DIMENSIONS] += 1
    vector = np.log1p(vector)
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


class Embedder:
    """The model's embeddings, in-process, as the endpoint computes them."""

    def __init__(self, model_dir: Path):
        self.predictor = Predictor(model_dir, 32, engine="openvino")
        self.model = "{name}@{version}".format(**self.predictor.model_identity)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.stack([p.embedding for p in self.predictor.predict(texts, top_k=1)])


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


def banking77(data: Path, index_size: int, held_out: int, seed: int) -> tuple[list, list]:
    """Real customer queries: the reply to an intent for its paraphrases (one category)."""
    train, test = load_banking77(data)
    chooser = random.Random(seed)
    as_pairs = lambda rows: [(r[TEXT], "en", "banking", r[LABEL]) for r in rows]  # noqa: E731
    return (as_pairs(chooser.sample(train, index_size)),
            as_pairs(chooser.sample(test, held_out)))  # fmt: skip


def quality(embedder, indexed: list, asked: list, seed: int) -> dict[str, float]:
    """The share of held-out e-mails whose top suggestion answers their kind of request;
    indexed and asked hold (text, language, category, kind)."""
    vectors = embedder([text for text, *_ in indexed])
    indexes: dict[str, Index] = {}
    for (_, language, category, request), vector in zip(indexed, vectors, strict=True):
        index = indexes.get(category, Index())
        indexes[category] = index.add("bench", vector, Entry(request, language, request))
    indexes = {category: Index.from_bytes(i.to_bytes()) for category, i in indexes.items()}
    chooser = random.Random(seed)  # the indexes as stored (float16) and loaded
    hits = baseline = 0
    query_vectors = embedder([text for text, *_ in asked])
    for (_, language, category, request), vector in zip(asked, query_vectors, strict=True):
        index = indexes[category]
        [top] = index.nearest("bench", vector, language, 1) or [None]
        same = [e for e in index.entries if e.language == language]
        hits += top is not None and top.reply == request
        baseline += chooser.choice(same).reply == request
    return {"top_is_same_kind": hits / len(asked), "random_same_category": baseline / len(asked),
            "held_out": len(asked)}  # fmt: skip


def synthetic_index(embedder, size: int, seed: int) -> Index:
    """size sent replies in one category: vectors of generated e-mails, repeated."""
    base = embedder([text for text, *_ in pairs(2_000, seed)])
    vectors = base[np.arange(size) % len(base)]
    languages = ("de", "en")
    entries = [Entry(f"m{n}", languages[n % 2], f"reply {n}") for n in range(size)]
    return Index(embedder.model, vectors.astype(np.float32), entries)


def latency(embedder, size: int, seed: int, lookups: int) -> dict[str, float]:
    index = synthetic_index(embedder, size, seed)
    started = time.perf_counter()
    stored = index.to_bytes()
    loaded = Index.from_bytes(stored)
    load_s = time.perf_counter() - started
    queries = [text for text, *_ in pairs(lookups, seed + 7)]
    times = []
    for text in queries:
        started = time.perf_counter()
        loaded.nearest(embedder.model, embedder([text])[0], "en", 3)
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
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="a trained model folder")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    model_dir, trained = resolve_model(args, sorted(PHRASES))
    embedder = Embedder(model_dir)
    dimensions = embedder(["x"]).shape[1]
    sizes = SIZES if not args.quick else (1_000, 5_000)
    lookups = 20 if args.quick else LOOKUPS
    rows = [latency(embedder, size, args.seed, lookups) for size in sizes]
    baseline_p99 = rows[0]["p99_ms"]
    print_table(
        f"suggestion lookup: embed + search ({embedder.model}, {dimensions} dimensions, "
        f"one category; bound {BOUND_S * 1000:.0f} ms p99)",
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
    index_size, held_out = (140, 70) if args.quick else (1400, 700)
    sets = {
        "generated e-mails": (pairs(index_size, args.seed), pairs(held_out, args.seed + 1)),
        "Banking77 queries": banking77(args.data, 2 * index_size, held_out, args.seed),
    }
    vectors = {"model": embedder, "hashed words": lambda t: np.stack([hashed(x) for x in t])}
    scores = {
        f"{data} / {name}": quality(embed, indexed, asked, args.seed)
        for data, (indexed, asked) in sets.items()
        for name, embed in vectors.items()
    }
    print_table(
        "top suggestion is a reply to the same kind of request (held out)",
        ["set / vectors", "held out", "nearest reply", "random reply, same category", "ratio"],
        [
            [
                name,
                score["held_out"],
                score["top_is_same_kind"],
                score["random_same_category"],
                score["top_is_same_kind"] / max(score["random_same_category"], 1e-9),
            ]
            for name, score in scores.items()
        ],
    )
    results = {"model": embedder.model, "trained": trained, "dimensions": dimensions,
               "latency": rows, "quality": scores}  # fmt: skip
    finish("replies", results, args.quick)


if __name__ == "__main__":
    main()
