"""The embedded AWS backend: MiniStack from its own venv, started, reset and stopped."""

import boto3
import httpx
import pytest

from emulation.ministack import BackendError, MiniStack
from emulation.processes import free_port
from tests.support.aws import with_ministack_venv


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory, ministack_venv):
    return with_ministack_venv(tmp_path_factory.mktemp("postwerk-state"), ministack_venv)


def s3(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="eu-central-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_start_reset_and_stop_leave_nothing_behind(state_dir):
    backend = MiniStack(state_dir, free_port())
    url = backend.start()
    try:
        client = s3(url)
        client.create_bucket(
            Bucket="raw", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        client.put_object(Bucket="raw", Key="a.eml", Body=b"hello")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["raw"]
        backend.reset()
        assert client.list_buckets()["Buckets"] == []
        pid = backend.running_pid()
        assert pid and str(pid) == backend.pid_file.read_text()
    finally:
        assert backend.stop()
    assert backend.running_pid() is None and not backend.pid_file.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_ministack/health")
    assert not backend.stop(), "stopping twice is harmless"


def test_answers_carry_one_date_and_no_server_banner_as_aws_does(aws):
    """The app adds a Date itself: a second one from the HTTP server ("Date: X, X" to a
    client that joins them) would not parse as a date."""
    client = boto3.client("s3")
    client.create_bucket(
        Bucket="raw", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    client.put_object(Bucket="raw", Key="a.eml", Body=b"hello")
    for answer in (
        httpx.get(f"{aws.endpoint_url}/_ministack/health"),
        httpx.get(
            client.generate_presigned_url("get_object", Params={"Bucket": "raw", "Key": "a.eml"})
        ),
    ):
        assert answer.status_code == 200
        assert len(answer.headers.get_list("date")) == 1, answer.headers
        assert "server" not in answer.headers


def test_state_survives_a_clean_restart_when_persisted(state_dir):
    backend = MiniStack(state_dir, free_port(), persist_state=True)
    client = s3(backend.start())
    try:
        client.create_bucket(
            Bucket="kept", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        client.put_object(Bucket="kept", Key="k", Body=b"still here")
    finally:
        backend.stop()
    backend.start()
    try:
        assert client.get_object(Bucket="kept", Key="k")["Body"].read() == b"still here"
    finally:
        backend.stop()


def test_refuses_to_start_twice_or_on_a_busy_port(state_dir):
    backend = MiniStack(state_dir, free_port())
    backend.start()
    try:
        with pytest.raises(BackendError, match="already runs"):
            backend.start()
        with pytest.raises(BackendError, match="already answers"):
            MiniStack(state_dir / "other", backend.port).start()
    finally:
        backend.stop()


@pytest.mark.parametrize("bucket", ["first", "second"])
def test_each_test_gets_a_clean_backend(aws, bucket):
    client = boto3.client("s3")  # configured by the environment alone
    assert client.list_buckets()["Buckets"] == [], "the previous test's bucket is gone"
    client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    assert client.meta.endpoint_url == aws.endpoint_url
