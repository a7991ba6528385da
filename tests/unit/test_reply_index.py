"""The suggestion index: nearest replies by cosine, in the e-mail's language, one per text;
vectors of another model are never compared."""

import io
import json

import numpy as np
import pytest

from services.replies.index import Entry, Index, StaleIndex


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def index() -> Index:
    index = Index()
    for message_id, language, reply, vector in [
        ("a", "de", "Wir kommen.", unit(1, 0, 0)),
        ("b", "de", "Wir kommen.", unit(0.9, 0.1, 0)),  # the same text again
        ("c", "en", "We will come.", unit(1, 0.05, 0)),
        ("d", "de", "Wir rufen an.", unit(0, 1, 0)),
    ]:
        index = index.add("m@1", vector, Entry(message_id, language, reply))
    return index


def test_nearest_first_in_the_language_one_per_reply_text(index):
    found = index.nearest("m@1", unit(1, 0, 0.1), "de", 3)
    assert [entry.message_id for entry in found] == ["a", "d"]
    assert [e.message_id for e in index.nearest("m@1", unit(1, 0, 0), "en", 3)] == ["c"]
    assert index.nearest("m@1", unit(1, 0, 0), "de", 3, skip="a")[0].message_id == "b"


def test_another_models_vectors_are_refused(index):
    with pytest.raises(StaleIndex, match="m@1"):
        index.nearest("m@2", unit(1, 0, 0), "de", 1)
    with pytest.raises(StaleIndex):
        index.add("m@2", unit(1, 0, 0), Entry("e", "de", "x"))
    assert Index().nearest("m@2", unit(1, 0, 0), "de", 1) == [], "an empty index fits any"
    assert index.stale("m@2") and not index.stale("m@1") and not Index().stale("m@2")


def test_stored_and_loaded_it_ranks_alike(index):
    loaded = Index.from_bytes(index.to_bytes())
    assert loaded.model == "m@1" and loaded.entries == index.entries
    query = unit(0.3, 1, 0)
    assert loaded.nearest("m@1", query, "de", 3) == index.nearest("m@1", query, "de", 3)


def test_an_index_from_before_embeddings_loads_as_stale():
    buffer = io.BytesIO()  # as the hashed-word index stored it: no model
    entries = json.dumps([{"message_id": "a", "language": "de", "reply": "x"}])
    np.savez(buffer, vectors=np.ones((1, 512), np.float16), entries=np.array(entries))
    old = Index.from_bytes(buffer.getvalue())
    with pytest.raises(StaleIndex, match="hashed-words"):
        old.nearest("m@1", unit(*[1] * 512), "de", 1)
