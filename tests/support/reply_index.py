"""Plugin: the reply index as sends grow it and the monitor keeps it current. The embedded
backend has no SageMaker runtime: the functions' clients get a fake endpoint whose
embeddings are hashed words (services/clients.py, the seam tests/services/test_autoreply.py
uses for SES)."""

import hashlib
import io
import json
import uuid

import numpy as np
import pytest
from botocore.exceptions import ClientError

from services import clients, storage
from services.replies import index_store
from tests.support.review import ARTIFACTS, call

ENDPOINT = "replies-endpoint"


class Endpoint:
    """DescribeEndpoint and InvokeEndpoint of a model whose embeddings are hashed words (per
    model: two models' vectors do not compare); `refusing` makes either call fail."""

    def __init__(self, model: str):
        self.model, self.status, self.refusing, self.embedded = model, "InService", "", []

    def describe_endpoint(self, EndpointName: str) -> dict:
        self.refuse("describe_endpoint", EndpointName)
        return {"EndpointName": EndpointName, "EndpointStatus": self.status}

    def invoke_endpoint(self, EndpointName: str, Body: bytes, ContentType: str) -> dict:
        self.refuse("invoke_endpoint", EndpointName)
        request = json.loads(Body)
        assert request["embed"] is True and ContentType == "application/json"
        self.embedded += [instance["text"] for instance in request["instances"]]
        name, version = self.model.split("@")
        predictions = [{"id": instance["id"], "label": "complaint", "score": 0.9, "top_k": [],
                        "embedding": self.vector(instance["text"]).tolist()}
                       for instance in request["instances"]]  # fmt: skip
        answer = {"predictions": predictions, "model": {"name": name, "version": version}}
        return {"Body": io.BytesIO(json.dumps(answer).encode())}

    def vector(self, text: str) -> np.ndarray:
        vector = np.zeros(64, np.float32)
        for word in text.lower().split():
            vector[hashlib.sha256(f"{self.model} {word}".encode()).digest()[0] % 64] += 1
        return vector / max(float(np.linalg.norm(vector)), 1e-9)

    def refuse(self, call: str, name: str) -> None:
        if self.refusing == call:
            message = f"Could not find endpoint {name}."
            raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, call)


@pytest.fixture
def fake_endpoint(desk, monkeypatch):
    """The fake endpoint serving n@1, and the complaint index holding two sent replies (an
    English one to m9, a German one to m0) with its vectors."""
    monkeypatch.setenv("POSTWERK_ENDPOINT_NAME", ENDPOINT)
    fake, real = Endpoint("n@1"), clients.client
    monkeypatch.setattr(clients, "client", lambda name, **options: fake
                        if name.startswith("sagemaker") else real(name, **options))  # fmt: skip
    text = f"Dear {desk[3].sender_name},\n\nwe will send an engineer tomorrow.\n\nKind regards"
    for message_id, reply in (("m9", text), ("m0", "Guten Tag, wir kommen.")):
        request = {"draft_id": uuid.uuid4().hex, "text": reply, "sender": "lena"}
        assert call("POST", f"/api/results/{message_id}/send", request)[0] == 200
    index, _ = index_store.for_bucket(ARTIFACTS).load("complaint")
    assert index.model == "n@1" and len(index.entries) == 2
    fake.embedded.clear()
    return fake


def index_state(category: str) -> tuple[str | None, tuple[str, ...]]:
    """What the category's index is in S3: the written index's ETag (None: none), and the
    keys of the replies added beside it since."""
    etag = index_store.for_bucket(ARTIFACTS).read_written(index_store.index_key(category))[1]
    return etag, tuple(storage.list_keys(ARTIFACTS, index_store.added_prefix(category)))
