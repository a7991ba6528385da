"""Where the suggestion indexes (index.py) are kept, and what a warm container keeps of them.

replies/index/<category>.npz                      one category's index, the model of its
                                                  vectors in the object's metadata
replies/added/<category>/<email key>-<draft>.npz  a reply sent since the index was written:
                                                  a send writes a few KB, not the index
                                                  (52 MB at 50,000 replies); every FOLD_AT-th
                                                  send folds them into the index

A reader gets the index with the replies added beside it merged in. Each object is read
again only when it changed: the written index by its ETag, an added reply (never changed)
once; the merge is redone only when either changed. Writers replace an index only where it
is still the one they read (If-Match), so a fold and a rebuild (reindex.py) never undo each
other.
"""

import functools
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger

from services import storage
from services.replies.index import Index

INDEX = "replies/index/"
ADDED = "replies/added/"
FOLD_AT = 100  # added replies that a send folds into the index (one rewrite per 100 sends)
READERS = 10  # concurrent S3 reads (added replies, pairs): boto3's pool holds 10 connections

logger = Logger(child=True)


def index_key(category: str) -> str:
    return f"{INDEX}{key_name(category)}.npz"


def added_prefix(category: str) -> str:
    return f"{ADDED}{key_name(category)}/"


def key_name(category: str) -> str:
    """The category as it stands in the keys of its index and its added replies; one with
    other characters gets its digest too ("a b" and "a_b" are two categories)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", category)
    if safe == category:
        return safe
    return f"{safe}-{hashlib.sha256(category.encode()).hexdigest()[:8]}"


def key_name_of(key: str) -> str:
    """key_name from an index's key, or an added reply's."""
    return key.removeprefix(ADDED).split("/")[0] if key.startswith(ADDED) else (
        key.removeprefix(INDEX).removesuffix(".npz"))  # fmt: skip


def delete(bucket: str, keys: list[str]) -> None:
    """Housekeeping: what is left behind is merged once more, or removed by the next
    rebuild."""
    if failed := storage.delete_keys(bucket, keys):
        logger.warning("not deleted", keys=len(failed), code=next(iter(failed.values())))


class IndexStore:
    """One bucket's indexes, and what this container read of them."""

    def __init__(self, bucket: str):
        self.bucket = bucket
        self.written: dict[str, tuple[str, Index]] = {}  # key -> (ETag, index)
        self.added: dict[str, Index] = {}  # an added reply by key
        self.merged: dict[str, tuple[tuple, Index]] = {}  # category -> (ETag, added keys), merge

    def load(self, category: str) -> tuple[Index, str | None]:
        """The category's index with the replies added since it was written, and the written
        index's ETag (None: none yet)."""
        index, etag, _ = self.load_with_added(category)
        return index, etag

    def load_with_added(self, category: str) -> tuple[Index, str | None, list[str]]:
        """load, and the keys of the added replies in it. The added ones are listed first:
        a fold meanwhile deletes them only once the index it wrote holds them (a reply folded
        between the listing and its read is missed by this call alone)."""
        prefix = added_prefix(category)
        keys = storage.list_keys(self.bucket, prefix)
        index, etag = self.read_written(index_key(category))
        for gone in [key for key in self.added if key.startswith(prefix) and key not in keys]:
            del self.added[gone]  # folded: the index holds it now
        if fresh := [key for key in keys if key not in self.added]:  # cold: up to FOLD_AT
            with ThreadPoolExecutor(READERS) as pool:
                list(pool.map(self.read_added, fresh))
        present = tuple(key for key in keys if key in self.added)
        if self.merged.get(category, ((),))[0] != (etag, present):
            self.merged.pop(category, None)  # one copy of the vectors at a time (50,000: 77 MB)
            merge = index.merged([self.added[key] for key in present])
            self.merged[category] = ((etag, present), merge)
        return self.merged[category][1], etag, list(present)

    def read_added(self, key: str) -> Index | None:
        """An added reply (None: folded and deleted meanwhile), read once."""
        if key not in self.added:
            found = storage.get(self.bucket, key)
            if found is None:
                return None
            self.added[key] = Index.from_bytes(found.body)
        return self.added[key]

    def read_written(self, key: str) -> tuple[Index, str | None]:
        """A written index by its key, and its ETag (None: there is none)."""
        head = storage.head(self.bucket, key)
        if head is None:
            return Index(), None
        if self.written.get(key, ("",))[0] != head["ETag"]:
            self.written.pop(key, None)  # not two versions in memory while the new one is read
            found = storage.get(self.bucket, key)
            if found is None:  # removed since the HEAD
                return Index(), None
            self.written[key] = (found.etag, Index.from_bytes(found.body))
        return self.written[key][1], self.written[key][0]

    def add(self, category: str, added: Index, name: str) -> None:
        """A sent reply, as an object of its own beside the category's index. The send that
        finds FOLD_AT of them folds them into the index (If-Match: when another send folded
        meanwhile, it leaves it)."""
        storage.write(self.bucket, f"{added_prefix(category)}{name}.npz", added.to_bytes())
        if len(storage.list_keys(self.bucket, added_prefix(category))) < FOLD_AT:
            return
        index, etag, keys = self.load_with_added(category)
        if index.stale(added.model):  # another model serves: reindex will build it anew
            return
        if self.write(category, index, etag):
            delete(self.bucket, keys)

    def write(self, category: str, index: Index, etag: str | None) -> bool:
        """The index in place of the one with this ETag (None: where there was none), with
        its model in the object's metadata (a HEAD tells whether it is stale); False when
        another writer replaced or removed it meanwhile."""
        # If-Match on a removed key: NoSuchKey, not 412
        return storage.put_if(self.bucket, index_key(category), index.to_bytes(), etag,
                              lost=(*storage.CONFLICTS, *storage.MISSING),
                              Metadata={"model": index.model})  # fmt: skip

    def written_model(self, key: str) -> str:
        """The model of a written index's vectors, from its metadata (read from the index
        itself when it was written without)."""
        head = storage.head(self.bucket, key) or {"Metadata": {}}
        return head["Metadata"].get("model") or self.read_written(key)[0].model

    def indexes(self) -> dict[str, str]:
        """The written indexes' keys and ETags."""
        listed = storage.listing(self.bucket, INDEX)
        return {key: etag for key, etag in listed.items() if key.endswith(".npz")}


@functools.cache
def for_bucket(bucket: str) -> IndexStore:
    """The bucket's store, one per warm container."""
    return IndexStore(bucket)
