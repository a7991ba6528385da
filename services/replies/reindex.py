"""The suggestion indexes built anew from the e-mail/reply pairs (sending.py keeps them),
with the serving model's embeddings: after a promotion (`postwerk promote`, `rollback`,
`deploy-model`, `reindex-replies`), and by the monitor once the endpoint serves the model it
promoted (`refresh_index`).
"""

from concurrent.futures import ThreadPoolExecutor
from functools import partial

from services import storage
from services.replies import index_store
from services.replies.index import Entry, Index, embed, in_time, index_text, serving_model
from services.replies.index_store import ADDED, READERS, key_name, key_name_of
from services.replies.sending import PAIRS


def reindex(
    bucket: str, endpoint: str, deadline: float | None = None, only: set[str] | None = None
) -> tuple[dict[str, int], int]:
    """Every category's index (or those `only` names, by their key_name) built anew from the
    staff replies among the e-mail/reply pairs, with the serving model's embeddings; an
    index no pair is left to rebuild from is removed (its vectors would never compare
    again). Returns the replies indexed per category, and how many pairs were left out:
    automatic replies, and pairs sent before pairs kept a reusable reply. Past the deadline
    (time.monotonic()) it raises OutOfTime, the categories written so far rebuilt, the others
    as they were (a later call with `only` the stale ones goes on from there)."""
    store = index_store.for_bucket(bucket)
    indexed = store.indexes()  # before the pairs: an index begun later stays
    added = storage.list_keys(bucket, ADDED)  # and a reply added later (its pair may be read too)
    by_category, left_out = staff_pairs(bucket, deadline)
    rebuilt = {}
    for category, pairs in by_category.items():
        if only is not None and key_name(category) not in only:
            continue
        texts = [index_text(pair["subject"], pair["body"]) for pair in pairs]
        vectors, model = embed(endpoint, texts, deadline)
        entries = [Entry(p["message_id"], p["language"], p["reusable_reply"]) for p in pairs]
        # conditional: a send that folded meanwhile wrote the serving model's index, with a
        # reply these pairs lack
        if store.write(category, Index(model, vectors, entries),
                       indexed.get(index_store.index_key(category))):  # fmt: skip
            beside = [key for key in added if key_name_of(key) == key_name(category)]
            index_store.delete(bucket, beside)
            rebuilt[category] = len(pairs)
    named = {key_name(category) for category in by_category}
    gone = [key for key in [*indexed, *added] if key_name_of(key) not in named]  # no pair left
    index_store.delete(bucket, gone)
    return rebuilt, left_out


def staff_pairs(bucket: str, deadline: float | None) -> tuple[dict[str, list[dict]], int]:
    """The pairs of staff replies by category, and how many others were left out."""
    keys = storage.list_keys(bucket, PAIRS)
    by_category: dict[str, list[dict]] = {}
    left_out = 0
    pool = ThreadPoolExecutor(READERS)  # the S3 round trips overlap
    try:
        for number, pair in enumerate(pool.map(partial(storage.read_json, bucket), keys)):
            in_time(deadline, f"after reading {number} of {len(keys)} e-mail/reply pairs")
            if pair.get("automatic") or "reusable_reply" not in pair:
                left_out += 1
                continue
            by_category.setdefault(pair["label"], []).append(pair)
    finally:  # out of time: the reads not begun are dropped, not waited for
        pool.shutdown(cancel_futures=True)
    return by_category, left_out


def refresh_index(bucket: str, endpoint: str, deadline: float | None = None) -> str:
    """For a promotion that did not wait for the endpoint (the monitor's): once the endpoint
    serves, the categories whose index holds another model's vectors are built anew
    (reindex). What was done, in words; "" when nothing was to do: no index, or every one
    current (then it cost two listings, a DescribeEndpoint, one embedding, a HEAD per index
    and a read per added reply not read before)."""
    store = index_store.for_bucket(bucket)
    written, added = store.indexes(), storage.list_keys(bucket, ADDED)
    if not written and not added:
        return ""
    status, model = serving_model(endpoint)
    if not model:
        return f"reply index not checked: endpoint {endpoint} is {status}"
    stale = {key_name_of(key) for key in written if store.written_model(key) != model}
    stale |= {key_name_of(key) for key in added
              if (index := store.read_added(key)) is not None and index.stale(model)}  # fmt: skip
    if not stale:
        return ""
    counts, left_out = reindex(bucket, endpoint, deadline, only=stale)
    rebuilt = ", ".join(f"{category} {count}" for category, count in sorted(counts.items()))
    words = f"reply index rebuilt for model {model}: {rebuilt or 'no staff replies to index'}"
    return words + (f" ({left_out} automatic or older replies left out)" if left_out else "")
