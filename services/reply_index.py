"""The suggestion index: sent replies by the e-mail they answered, nearest first by cosine.

Representation (interim): a hashed bag of the e-mail's words and word pairs (DIMENSIONS
buckets, sublinear counts, L2-normalised), computed here in the function. The issue asks for
embeddings from the deployed model; the serving container does not return any yet (it would
need to answer with, say, the mean-pooled last hidden state next to the labels). Until then
this stands in: it needs no model call on the suggestion path, and similar requests share
their wording. The index's format does not depend on where the vectors come from.

Search is brute force: one matrix product over the category's vectors (float32). The bound
and its measurement are in bench/replies.py.
"""

import io
import itertools
import json
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

DIMENSIONS = 512
WORD = re.compile(r"\w+")


def embed(text: str) -> np.ndarray:
    words = WORD.findall(text.lower())
    features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    vector = np.zeros(DIMENSIONS, np.float32)
    for feature in features:  # crc32: stable across processes, unlike hash()
        vector[zlib.crc32(feature.encode()) % DIMENSIONS] += 1
    vector = np.log1p(vector)
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


@dataclass
class Entry:
    message_id: str  # the e-mail answered
    language: str
    reply: str


@dataclass
class Index:
    """One category's sent replies and the vectors of the e-mails they answered."""

    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, DIMENSIONS), np.float32))
    entries: list[Entry] = field(default_factory=list)

    def add(self, email_text: str, entry: Entry) -> None:
        self.vectors = np.vstack([self.vectors, embed(email_text)[None, :]])
        self.entries.append(entry)

    def nearest(self, email_text: str, language: str, count: int, skip: str = "") -> list[Entry]:
        """The replies to the most similar e-mails in this language (not to `skip`),
        one per distinct reply text."""
        if not self.entries:
            return []
        scores = self.vectors @ embed(email_text)
        found, seen = [], set()
        for position in np.argsort(-scores):
            entry = self.entries[position]
            if entry.language != language or entry.message_id == skip or entry.reply in seen:
                continue
            found.append(entry)
            seen.add(entry.reply)
            if len(found) == count:
                break
        return found

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        entries = json.dumps([entry.__dict__ for entry in self.entries], ensure_ascii=False)
        # float16 on S3: half the bytes to fetch on a cold start; cosine ranks alike
        np.savez(buffer, vectors=self.vectors.astype(np.float16), entries=np.array(entries))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Index":
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            entries = [Entry(**entry) for entry in json.loads(str(stored["entries"]))]
            return cls(stored["vectors"].astype(np.float32), entries)
