"""The mailbox door on the local stack (emulation/mailbox_door.py): started once the stack
exists, with the buckets of its outputs, it stores new mail of a configured mailbox; a stop
leaves no process behind."""

import json
import time

import boto3

from emulation.mailbox_door import DoorLauncher
from services.mailbox import state
from tests.support.dovecot import message
from tests.support.mailbox import arrives, mailbox_of, stored


def deploy_stack(buckets) -> str:
    """A stack whose outputs name the door's buckets, as the pipeline's stack does."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "RawBucket": {"Value": buckets.raw},
            "ArtifactsBucket": {"Value": buckets.artifacts},
        },
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName="door-test", TemplateBody=json.dumps(template))
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName="door-test", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return "door-test"


def test_the_local_door_starts_once_the_stack_is_there_and_stops_with_the_stack(
    dovecot, buckets, tmp_path, monkeypatch
):
    for name in ("POSTWERK_RAW_BUCKET", "POSTWERK_ARTIFACTS_BUCKET"):
        monkeypatch.delenv(name)  # the launcher finds them in the stack's outputs
    state.save_mailbox(buckets.artifacts, mailbox_of(dovecot))
    dovecot.deliver(message(1))
    launcher = DoorLauncher("door-test", tmp_path / "door.log").start()
    try:
        time.sleep(3)  # no stack yet: nothing started
        assert launcher.process is None
        deploy_stack(buckets)
        assert arrives(buckets, 1, within=60), (tmp_path / "door.log").read_text()
        dovecot.deliver(message(2))
        assert arrives(buckets, 2, within=15), "IDLE"
    finally:
        launcher.stop(timeout=5)
    assert launcher.process.poll() is not None
    assert sorted(stored(buckets).values()) == sorted(
        raw.replace(b"\n", b"\r\n") for raw in (message(1), message(2))
    )
