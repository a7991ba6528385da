"""The suggestion index: sent replies by the e-mail they answered, nearest first by cosine.

Vectors: the deployed model's embeddings of the e-mails, asked from the endpoint with
`"embed": true` (the mean-pooled, L2-normalised second-to-last layer; model/serving/engine.py
says why that one). An index remembers the model that made its vectors, since two models'
vectors do not compare: after a promotion the index is stale, suggests nothing, and is built
again from the e-mail/reply pairs (reindex.py: `postwerk promote` and
`postwerk reindex-replies` call it, and the monitor once the endpoint serves the model it
promoted, `refresh_index`). Where the indexes are kept: index_store.py.

Search is brute force: one matrix product over the category's vectors (float32). The bound
and its measurement are in bench/replies.py.
"""

import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from services import clients
from services.records import InvocationAnswer

EMBED_CHUNK = 64  # texts per InvokeEndpoint when many are embedded
EMBED_CHARS = 2000  # of each text: more than the model reads, and 64 stay far under 6 MB
EMBED_TIMEOUT_S = 5  # the review page waits on it
PROBE = "Which model serves?"  # embedded to learn the serving model: no e-mail's text


class StaleIndex(Exception):
    """The index's vectors come from another model than the one serving."""


# Why no similar replies could be found: no endpoint, a bad answer, a stale index.
EMBEDDING_ERRORS = (ClientError, BotoCoreError, ValidationError, ValueError, StaleIndex)


class OutOfTime(Exception):
    """The deadline passed before the work was done (the monitor's Lambda would be killed)."""


def in_time(deadline: float | None, doing: str) -> None:
    """Raise OutOfTime once time.monotonic() is past the deadline (None: no deadline)."""
    if deadline is not None and time.monotonic() > deadline:
        raise OutOfTime(f"out of time {doing}")


def index_text(subject: str, body: str) -> str:
    """What of an e-mail is embedded: the index holds replies by it."""
    return f"{subject}\n{body}"


def embed(endpoint: str, texts: list[str], deadline: float | None = None) -> tuple[np.ndarray, str]:
    """The texts' embeddings from the endpoint, and the model that made them."""
    runtime = clients.client("sagemaker-runtime", read_timeout=EMBED_TIMEOUT_S)
    vectors, models = [], set()
    for start in range(0, len(texts), EMBED_CHUNK):
        in_time(deadline, f"after embedding {start} of {len(texts)} texts")
        chunk = texts[start : start + EMBED_CHUNK]
        instances = [{"id": start + i, "text": text[:EMBED_CHARS]} for i, text in enumerate(chunk)]
        body = json.dumps({"instances": instances, "embed": True, "top_k": 1}, ensure_ascii=False)
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, Body=body.encode(), ContentType="application/json"
        )
        document = InvocationAnswer.model_validate_json(answer["Body"].read())
        if any(prediction.embedding is None for prediction in document.predictions):
            raise ValueError(f"endpoint {endpoint} answered without embeddings")
        vectors += [prediction.embedding for prediction in document.predictions]
        models.add(f"{document.model.name}@{document.model.version}")
    if len(models) > 1:  # the endpoint switched models meanwhile (blue/green)
        raise ValueError(f"endpoint {endpoint} answered with {len(models)} models; try again")
    return np.array(vectors, np.float32), models.pop() if models else ""


def serving_model(endpoint: str) -> tuple[str, str]:
    """The endpoint's status and the model it serves ("name@version", as an index records
    it, from one embedding of PROBE); the model is "" unless the endpoint is InService: while
    it is created or updated (blue/green) either fleet may answer."""
    description = clients.client("sagemaker").describe_endpoint(EndpointName=endpoint)
    if description["EndpointStatus"] != "InService":
        return description["EndpointStatus"], ""
    return "InService", embed(endpoint, [PROBE])[1]


@dataclass
class Entry:
    message_id: str  # the e-mail answered
    language: str
    reply: str


@dataclass
class Index:
    """One category's sent replies and the vectors of the e-mails they answered."""

    model: str = ""  # "name@version" of the model that made the vectors; "" while empty
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    entries: list[Entry] = field(default_factory=list)

    def stale(self, model: str) -> bool:
        """Whether the index holds vectors of another model than this one."""
        return bool(self.entries) and model != self.model

    def check(self, model: str) -> None:
        if self.stale(model):
            raise StaleIndex(f"the index holds {self.model}'s vectors; {model} serves")

    def add(self, model: str, vector: np.ndarray, entry: Entry) -> "Index":
        """A new index with the entry added (this one stays as it was)."""
        self.check(model)
        vectors = np.vstack([self.vectors.reshape(-1, vector.size), vector[None, :]])
        return Index(model, vectors, [*self.entries, entry])

    def merged(self, added: list["Index"]) -> "Index":
        """A new index: this one and the replies added since, those of its model (of the
        most frequent among them while this one is empty), each e-mail's reply once."""
        models = Counter(index.model for index in added if index.entries)
        model = self.model if self.entries else (models.most_common(1) or [("",)])[0][0]
        same = [index for index in added if index.entries and index.model == model]
        if not same:
            return self
        seen = {(entry.message_id, entry.reply) for entry in self.entries}
        vectors, entries = [self.vectors.reshape(-1, same[0].vectors.shape[1])], [*self.entries]
        for index in same:
            for vector, entry in zip(index.vectors, index.entries, strict=True):
                if (entry.message_id, entry.reply) not in seen:
                    seen.add((entry.message_id, entry.reply))
                    vectors.append(vector[None, :])
                    entries.append(entry)
        return Index(model, np.vstack(vectors), entries)

    def nearest(
        self, model: str, vector: np.ndarray, language: str | None, count: int, skip: str = ""
    ) -> list[Entry]:
        """The replies to the most similar e-mails in this language (None: in any; not to
        `skip`), one per distinct reply text."""
        if not self.entries:
            return []
        self.check(model)
        scores = self.vectors @ vector
        found, seen = [], set()
        for position in np.argsort(-scores):
            entry = self.entries[position]
            if language and entry.language != language:
                continue
            if entry.message_id == skip or entry.reply in seen:
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
        np.savez(buffer, vectors=self.vectors.astype(np.float16), entries=np.array(entries),
                 model=np.array(self.model))  # fmt: skip
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Index":
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            entries = [Entry(**entry) for entry in json.loads(str(stored["entries"]))]
            # an index from before the model's embeddings: hashed words, never comparable
            model = str(stored["model"]) if "model" in stored.files else "hashed-words"
            return cls(model, stored["vectors"].astype(np.float32), entries)
