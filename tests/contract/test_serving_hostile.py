"""The serving container against hostile and broken clients: every bad request gets its own
4xx with a JSON reason, and slow or greedy clients cannot starve the others (issue 12)."""

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from urllib.parse import urlparse

import httpx
import pytest
from starlette.requests import ClientDisconnect

from model.serving import openapi
from model.serving.app import read_body
from model.serving.requests import SUPPORTED_TYPES, BadRequest
from tests.support.jobs import serving

LIMITS = {
    "POSTWERK_MAX_INSTANCES": "50",
    "POSTWERK_HEADER_TIMEOUT_SECONDS": "1",
    "POSTWERK_BODY_TIMEOUT_SECONDS": "1",
    "POSTWERK_MAX_IDLE_CONNECTIONS": "20",
    "POSTWERK_MAX_HEADER_BYTES": "8192",
    "POSTWERK_MAX_REQUEST_TARGET_BYTES": "1024",
}
MAIL = '{"id": "m1", "subject": "Kündigung", "body": "Hiermit kündige ich"}'


@pytest.fixture(scope="module")
def endpoint(trained_job):
    with serving(trained_job, **LIMITS) as url:
        yield url


def invoke(url: str, body: bytes | str, content_type="application/json", **headers):
    headers = {"content-type": content_type} | headers
    return httpx.post(f"{url}/invocations", content=body, headers=headers, timeout=30)


def raw(url: str, data: bytes, seconds: float = 5) -> bytes:
    """Send bytes as they are; everything the server answers until it closes."""
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=seconds) as sock:
        sock.sendall(data)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def post_head(length: int, extra: str = "") -> bytes:
    return (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


@pytest.mark.parametrize(
    "body",
    [
        r'{"instances": ["\ud800"]}',
        r'{"inputs": ["fine", "\udfff"]}',
        r'{"instances": [{"id": "\ud800", "text": "x"}]}',
        r'{"instances": [{"subject": "\ud83d", "body": "x"}]}',
        r'{"instances": [{"body": "x\ud800y"}]}',
        r'{"instances": [{"\ud800": "unknown field"}]}',
    ],
)
def test_lone_surrogates_get_400(endpoint, body):
    answer = invoke(endpoint, body)
    assert answer.status_code == 400
    assert "error" in answer.json()


def test_a_bad_request_fails_alone_in_its_batch(endpoint):
    bodies = [MAIL] * 5 + [r'{"id": "bad", "body": "\ud800"}']

    async def all_at_once():
        async with httpx.AsyncClient(base_url=endpoint, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/invocations",
                        content=f'{{"instances": [{body}]}}',
                        headers={"content-type": "application/json"},
                    )
                    for body in bodies
                )
            )

    statuses = [answer.status_code for answer in asyncio.run(all_at_once())]
    assert statuses == [200] * 5 + [400]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"instances": ["x"], "top_k": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"instances": [{"id": ' + "1" * 5000 + ', "text": "x"}]}', "not valid JSON"),
        ('{"instances": [{"id": false, "text": "x"}]}', "string or an integer"),
        ('{"instances": [{"id": 1e2, "text": "x"}]}', "string or an integer"),
        ('{"instances": [{"id": [1], "text": "x"}]}', "string or an integer"),
    ],
)
def test_hostile_json_gets_400(endpoint, body, reason):
    answer = invoke(endpoint, body)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]


def test_ids_are_echoed_as_given(endpoint):
    body = '{"instances": [{"id": 7, "text": "a"}, {"id": "007", "text": "b"}, "c"]}'
    assert [p["id"] for p in invoke(endpoint, body).json()["predictions"]] == [7, "007", None]


def test_instances_per_request_are_capped(endpoint):
    at_limit = json.dumps({"inputs": ["x"] * 50})
    assert invoke(endpoint, at_limit).status_code == 200
    for body, kind in [
        (json.dumps({"inputs": ["x"] * 51}), "application/json"),
        ('"x"\n' * 51, "application/jsonlines"),
    ]:
        answer = invoke(endpoint, body, kind)
        assert answer.status_code == 413
        assert "at most 50 (POSTWERK_MAX_INSTANCES)" in answer.json()["error"]


@pytest.mark.parametrize(
    ("accept", "answer_type"),
    [
        ("text/html, application/json", "application/json"),
        ("application/*", "application/json"),
        ("*/*;q=0.1", "application/json"),
        ("application/jsonlines;q=0.5, application/json", "application/json"),
        ("application/json;q=0.2, application/jsonlines", "application/jsonlines"),
        ("application/json;q=0, */*", "application/jsonlines"),
    ],
)
def test_accept_is_a_list_of_media_ranges(endpoint, accept, answer_type):
    answer = invoke(endpoint, MAIL.join(['{"instances": [', "]}"]), accept=accept)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(answer_type)


@pytest.mark.parametrize("accept", ["application/json;q=0", "text/csv"])
def test_an_accept_without_a_type_we_answer_in_gets_406(endpoint, accept):
    answer = invoke(endpoint, MAIL.join(['{"instances": [', "]}"]), accept=accept)
    assert answer.status_code == 406
    assert "cannot answer" in answer.json()["error"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"content-encoding": "gzip"}, "content encoding 'gzip'"),
        ({"content-type": "application/json; charset=latin-1"}, "charset 'latin-1'"),
        ({"content-type": "application/jsonlines; charset=utf-16"}, "charset 'utf-16'"),
    ],
)
def test_codings_and_charsets_we_do_not_decode_get_415(endpoint, headers, reason):
    answer = invoke(endpoint, MAIL, "application/jsonlines", **headers)
    assert answer.status_code == 415
    assert reason in answer.json()["error"]


def test_utf8_charset_is_fine(endpoint):
    answer = invoke(endpoint, MAIL, 'application/jsonlines; charset="UTF-8"')
    assert answer.status_code == 200


def test_a_long_request_target_gets_414_with_a_reason(endpoint):
    request = f"GET /ping?{'q' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert status_and_error(raw(endpoint, request)) == (414, "request target over 1024 bytes")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("".join(f"X-{i}: {i}\r\n" for i in range(101)), "more than 100 header fields"),
        (f"X-Big: {'b' * 9000}\r\n", "header fields over 8192 bytes"),
    ],
)
def test_too_many_or_too_large_headers_get_431(endpoint, extra, reason):
    status, error = status_and_error(raw(endpoint, post_head(2, extra) + b"{}"))
    assert (status, reason in error) == (431, True)


def test_a_huge_header_is_refused_before_it_is_all_sent(endpoint):
    address = urlparse(endpoint)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nX-Huge: ")
        with pytest.raises(OSError):  # the server closes long before 64 MB
            for _ in range(64 * 16):
                sock.sendall(b"h" * 65536)
        answer = read_all(sock)
    assert status_and_error(answer)[0] == 431


def test_a_body_shorter_than_its_length_gets_408(endpoint):
    started = time.monotonic()
    status, error = status_and_error(raw(endpoint, post_head(100) + b'{"inputs":'))
    assert (status, "body not received in 1.0 s") == (408, error)
    assert time.monotonic() - started < 4


def trickle(url: str, cut_off: list[float]) -> None:
    """A client sending its request line a byte every 0.1 s, until the server cuts it off."""
    address = urlparse(url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        try:
            for byte in b"GET /ping HTTP/1.1\r\nHost: slow\r\n" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass
    cut_off.append(time.monotonic() - started)


def test_slow_clients_are_cut_off_while_others_are_served(endpoint):
    cut_off: list[float] = []
    slow = [threading.Thread(target=trickle, args=(endpoint, cut_off)) for _ in range(40)]
    for thread in slow:
        thread.start()
    time.sleep(0.3)
    assert httpx.get(f"{endpoint}/ping", timeout=2).status_code == 200
    assert invoke(endpoint, MAIL, "application/jsonlines").status_code == 200
    for thread in slow:
        thread.join(timeout=10)
    assert len(cut_off) == 40
    assert max(cut_off) < 5, "the header timeout is 1 s"


def test_idle_connections_are_bounded(endpoint):
    address = urlparse(endpoint)
    idle = [socket.create_connection((address.hostname, address.port)) for _ in range(60)]
    try:
        assert httpx.get(f"{endpoint}/ping", timeout=2).status_code == 200
        time.sleep(0.3)
        closed = 0
        for sock in idle:
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                closed += sock.recv(1) == b""
        assert closed >= 40, "beyond 20 idle connections, the longest idle are closed"
    finally:
        for sock in idle:
            sock.close()


def test_the_openapi_schema_describes_the_contract(endpoint):
    schema = httpx.get(f"{endpoint}/openapi.json").json()
    operation = schema["paths"]["/invocations"]["post"]
    assert set(operation["requestBody"]["content"]) == SUPPORTED_TYPES
    assert {"200", *map(str, openapi.ERRORS)} <= set(operation["responses"])
    instances = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert instances["properties"]["instances"]["maxItems"] == 50


def test_a_client_gone_mid_body_is_one_line_without_a_traceback(caplog):
    class GoneClient:
        headers: dict = {}  # noqa: RUF012

        async def stream(self):
            yield b'{"inputs": '
            raise ClientDisconnect

    with caplog.at_level(logging.WARNING), pytest.raises(BadRequest):
        asyncio.run(read_body(GoneClient()))
    assert [r.exc_info for r in caplog.records] == [None]
    assert "went away before the end of its body" in caplog.text


def test_a_timed_out_request_does_not_hold_up_the_next(trained_job):
    """Texts one per pass, many of them: a 504 after 1 s, and the model is free again."""
    environment = {
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "1",
        "POSTWERK_MAX_BATCH_SIZE": "1",
        "POSTWERK_MAX_INSTANCES": "100000",
    }
    with serving(trained_job, **environment) as url:
        huge = json.dumps({"inputs": ["Hiermit kündige ich meinen Vertrag " * 5] * 20_000})
        assert invoke(url, huge).status_code == 504
        started = time.monotonic()
        assert invoke(url, MAIL, "application/jsonlines").status_code == 200
        assert time.monotonic() - started < 1
