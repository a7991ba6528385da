"""`python -m model serve` against the SageMaker inference contract (docs/architecture.md 3.4)."""

import asyncio
import json

import httpx
import numpy as np
import pytest

from model.serving.requests import MAX_PAYLOAD_BYTES
from tests.support.jobs import LABELS, make_emails, serving

EMAILS = [
    {"id": f"m{i}", "subject": e["subject"], "body": e["body"]}
    for i, e in enumerate(make_emails(24, seed=7))
]


@pytest.fixture(scope="module")
def endpoint(trained_job):
    with serving(trained_job) as url:
        yield url


def invoke(url: str, body, content_type="application/json", **headers) -> httpx.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = {"content-type": content_type} | headers
    return httpx.post(f"{url}/invocations", content=data, headers=headers, timeout=30)


def test_ping_names_the_model(endpoint, trained_job):
    info = json.loads((trained_job / "model" / "model_info.json").read_text())
    answer = httpx.get(f"{endpoint}/ping")
    assert answer.status_code == 200
    assert answer.json()["model"] == {"name": info["name"], "version": info["version"]}


def test_json_instances(endpoint):
    answer = invoke(endpoint, {"instances": EMAILS[:3], "top_k": 2})
    assert answer.status_code == 200
    body = answer.json()
    assert [p["id"] for p in body["predictions"]] == ["m0", "m1", "m2"]
    for prediction in body["predictions"]:
        assert prediction["label"] in LABELS
        assert len(prediction["top_k"]) == 2
        assert prediction["top_k"][0] == {
            "label": prediction["label"],
            "score": prediction["score"],
        }
        assert prediction["top_k"][0]["score"] >= prediction["top_k"][1]["score"]
    assert body["model"]["version"]


def test_classifies_what_it_learned(endpoint):
    texts = [
        "Kündigung\nHiermit kündige ich meinen Vertrag fristgerecht.",
        "Question about my invoice\nThe invoice for March shows a wrong amount.",
    ]
    answer = invoke(endpoint, {"inputs": texts})
    labels = [p["label"] for p in answer.json()["predictions"]]
    assert labels == ["cancellation", "billing"]


def test_inputs_and_plain_strings_equal_email_instances(endpoint):
    by_text = invoke(endpoint, {"inputs": "Cancel my contract\nPlease cancel"}).json()
    by_string = invoke(endpoint, {"instances": ["Cancel my contract\nPlease cancel"]}).json()
    by_parts = invoke(
        endpoint, {"instances": [{"subject": "Cancel my contract", "body": "Please cancel"}]}
    ).json()
    scores = {r["predictions"][0]["score"] for r in (by_text, by_string, by_parts)}
    assert len(scores) == 1


def test_embeddings_only_when_asked_unit_length_and_the_same_alone_or_batched(
    endpoint, trained_job
):
    hidden = json.loads((trained_job / "model" / "config.json").read_text())["hidden_size"]
    plain = invoke(endpoint, {"instances": EMAILS[:1]}).json()["predictions"][0]
    assert "embedding" not in plain
    batched = invoke(endpoint, {"instances": EMAILS[:6], "embed": True}).json()["predictions"]
    alone = invoke(endpoint, {"instances": EMAILS[5:6], "embed": True}).json()["predictions"][0]
    vectors = np.array([p["embedding"] for p in batched])
    assert vectors.shape == (6, hidden)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(6), abs=1e-4)
    assert alone["embedding"] == pytest.approx(batched[5]["embedding"], abs=1e-4)
    assert alone["label"] == batched[5]["label"]


def test_jsonlines_in_and_out(endpoint):
    lines = "\n".join(json.dumps(e) for e in EMAILS[:4]) + '\n"a plain text line"\n'
    answer = invoke(endpoint, lines, "application/jsonlines")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/jsonlines")
    rows = [json.loads(line) for line in answer.text.splitlines()]
    assert [r["id"] for r in rows] == ["m0", "m1", "m2", "m3", None]
    assert all(r["model"]["version"] and r["label"] in LABELS for r in rows)


def test_accept_header_chooses_the_answer_type(endpoint):
    answer = invoke(endpoint, {"instances": EMAILS[:2]}, accept="application/jsonlines")
    assert len(answer.text.splitlines()) == 2
    assert invoke(endpoint, {"instances": EMAILS[:1]}, accept="text/csv").status_code == 406


def one_by_one_and_concurrently(url: str) -> tuple[list[dict], list[dict]]:
    alone = [invoke(url, {"instances": [e]}).json()["predictions"][0] for e in EMAILS]

    async def all_at_once():
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post("/invocations", json={"instances": [e]}) for e in EMAILS)
            )
        return [a.json()["predictions"][0] for a in answers]

    return alone, asyncio.run(all_at_once())


def test_batching_gives_the_results_of_one_by_one_in_fp32(trained_job):
    with serving(trained_job, POSTWERK_QUANTIZE_INT8="false") as url:
        alone, together = one_by_one_and_concurrently(url)
    assert [p["label"] for p in together] == [p["label"] for p in alone]
    for single, batched in zip(alone, together, strict=True):
        assert batched["score"] == pytest.approx(single["score"], abs=1e-4)


def test_batching_keeps_the_labels_with_int8(endpoint):
    """int8 scales activations per batch, so scores move a little with the neighbours."""
    alone, together = one_by_one_and_concurrently(endpoint)
    assert [p["label"] for p in together] == [p["label"] for p in alone]
    for single, batched in zip(alone, together, strict=True):
        assert batched["score"] == pytest.approx(single["score"], abs=0.05)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        ({"emails": []}, "application/json", 400, "'instances' or 'inputs'"),
        ({"instances": []}, "application/json", 400, "non-empty list"),
        ({"instances": [42]}, "application/json", 400, "instances[0]: expected an object"),
        ({"instances": [{"bdy": "x"}]}, "application/json", 400, "bdy"),
        ({"instances": [{}]}, "application/json", 400, "needs 'text'"),
        ({"instances": ["x"], "top_k": 0}, "application/json", 400, "top_k"),
        ({"instances": ["x"], "embed": "yes"}, "application/json", 400, "'embed'"),
        ({"inputs": [1, 2]}, "application/json", 400, "list of strings"),
        (b'{"text": "ok"}\n{broken\n', "application/jsonlines", 400, "line 2"),
        (b"\n\n", "application/jsonlines", 400, "no instances"),
        (b"hello", "text/plain", 415, "unsupported content type"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "application/json", 413, "payload over"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(endpoint, body, content_type, status, reason):
    answer = invoke(endpoint, body, content_type)
    assert answer.status_code == status
    assert reason in answer.json()["error"]


def test_execution_parameters(endpoint):
    parameters = httpx.get(f"{endpoint}/execution-parameters").json()
    assert parameters == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_several_workers_serve_the_same_port(trained_job):
    with serving(trained_job, SAGEMAKER_MODEL_SERVER_WORKERS="2") as url:
        answers = [invoke(url, {"instances": EMAILS[:2]}) for _ in range(4)]
        assert all(a.status_code == 200 for a in answers)
        parameters = httpx.get(f"{url}/execution-parameters").json()
        assert parameters["MaxConcurrentTransforms"] == 2


def test_oversized_body_without_content_length_is_refused(endpoint):
    def chunks():
        for _ in range(7):
            yield b" " * (1024 * 1024)

    answer = httpx.post(
        f"{endpoint}/invocations",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413


def test_model_server_timeout_answers_504(trained_job):
    with serving(trained_job, SAGEMAKER_MODEL_SERVER_TIMEOUT="0.000001") as url:
        answer = invoke(url, {"instances": EMAILS})
        assert answer.status_code == 504
        assert "timed out" in answer.json()["error"]
