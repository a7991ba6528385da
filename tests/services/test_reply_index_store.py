"""The reply index in S3 as sends grow it: each sent reply a small object beside the
category's index, folded into it by every FOLD_AT-th send, each reply counted once however a
fold was interrupted, and gone once the index is built anew. Against the embedded backend's
S3, with the fake endpoint of tests/support/reply_index.py."""

import uuid

import boto3

from services.replies import index_store, reindex
from services.replies.index_store import IndexStore
from tests.support.reply_index import ENDPOINT, index_state
from tests.support.review import ARTIFACTS, call


def send(message_id: str, text: str) -> None:
    request = {"draft_id": uuid.uuid4().hex, "text": text, "sender": "lena"}
    assert call("POST", f"/api/results/{message_id}/send", request)[0] == 200


def test_a_send_adds_a_small_object_and_every_fold_at_th_folds(fake_endpoint, monkeypatch):
    monkeypatch.setattr(index_store, "FOLD_AT", 3)
    etag, added = index_state("complaint")
    assert etag is None and len(added) == 2, "the fixture's two sends: no index written yet"
    send("m1", "Wir melden uns.")
    etag, added = index_state("complaint")
    assert etag and added == (), "the third send folded the three into the index"
    store = index_store.for_bucket(ARTIFACTS)
    written = store.read_written(index_store.index_key("complaint"))[0]
    assert len(written.entries) == 3
    send("m2", "Wir rufen Sie an.")
    assert index_state("complaint") == (etag, index_state("complaint")[1])
    assert len(index_state("complaint")[1]) == 1, "the index stays; the reply lies beside it"
    index, _ = store.load("complaint")
    assert len({entry.message_id for entry in index.entries}) == 4, "four e-mails answered"


def test_a_reply_both_folded_and_still_beside_the_index_counts_once(fake_endpoint):
    merged, _ = index_store.for_bucket(ARTIFACTS).load("complaint")
    s3 = boto3.client("s3")  # a fold that wrote the index and died before deleting
    s3.put_object(Bucket=ARTIFACTS, Key=index_store.index_key("complaint"), Body=merged.to_bytes())
    etag, added = index_state("complaint")
    assert etag and len(added) == 2
    index, _ = index_store.for_bucket(ARTIFACTS).load("complaint")
    assert len(index.entries) == 2 and index.vectors.shape[0] == 2


def test_building_the_index_anew_removes_the_replies_beside_it(fake_endpoint):
    counts, _ = reindex.reindex(ARTIFACTS, ENDPOINT)
    assert counts == {"complaint": 2}
    etag, added = index_state("complaint")
    assert etag and added == ()
    assert len(index_store.for_bucket(ARTIFACTS).load("complaint")[0].entries) == 2


def test_building_anew_never_overwrites_an_index_a_send_folded_meanwhile(
    fake_endpoint, monkeypatch
):
    store = index_store.for_bucket(ARTIFACTS)
    listed = store.indexes()  # what reindex lists before it reads the pairs
    folded, _ = store.load("complaint")  # then a send folds: a new index
    assert store.write("complaint", folded, None)
    state = index_state("complaint")
    monkeypatch.setattr(IndexStore, "indexes", lambda store: listed)
    counts, _ = reindex.reindex(ARTIFACTS, ENDPOINT)
    assert counts == {}, "the fold's index holds a reply the pairs read before it lack"
    assert index_state("complaint") == state


def test_categories_that_differ_only_in_odd_characters_keep_apart():
    names = {index_store.key_name(category) for category in ("a b", "a_b", "a/b", "Bär", "Bör")}
    assert len(names) == 5 and index_store.key_name("billing_question") == "billing_question"
    for category in ("a b", "Bär"):
        key_name = index_store.key_name(category)
        assert index_store.key_name_of(index_store.index_key(category)) == key_name
        assert index_store.key_name_of(index_store.added_prefix(category) + "x.npz") == key_name
