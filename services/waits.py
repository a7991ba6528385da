"""Waiting on jobs, stacks and endpoints, bounded: every wait has a timeout and, when it
passes, raises TimedOut saying what it waited for and how long.

`until` runs botocore's own waiter for the state (endpoint_in_service,
transform_job_completed_or_stopped, stack_create_complete, ...). `polls` paces a loop of
one's own, where there is no waiter or the wait shows progress as it goes (the CLI follows a
training job's log, a tuning job's trials).
"""

import itertools
import math
import time
from collections.abc import Iterator

from botocore.exceptions import WaiterError


class TimedOut(Exception):
    """A wait's timeout passed; the message says what it waited for, and how long."""


def until(client, waiter: str, what: str, timeout_s: float, delay_s: float, **params) -> None:
    """botocore's `waiter` with these parameters, every delay_s seconds, until its state is
    reached, a terminal failure state (Failed) is, or an error stops it: the caller's next
    Describe tells which. TimedOut once timeout_s passed."""
    attempts = max(1, math.ceil(timeout_s / delay_s))
    try:
        client.get_waiter(waiter).wait(
            **params, WaiterConfig={"Delay": delay_s, "MaxAttempts": attempts}
        )
    except WaiterError as error:
        if error.kwargs["reason"].startswith("Max attempts exceeded"):
            raise TimedOut(f"{what}: not done after {timeout_s:g} s") from None


def polls(what: str, timeout_s: float, every_s: float) -> Iterator[int]:
    """The numbers of a loop's rounds (0, 1, ...), every_s seconds apart; TimedOut in place
    of a round that would begin after timeout_s. The loop ends itself (break, return) once
    what it waits for is done."""
    deadline = time.monotonic() + timeout_s
    for number in itertools.count():
        yield number
        if time.monotonic() + every_s > deadline:
            raise TimedOut(f"{what}: not done after {timeout_s:g} s")
        time.sleep(every_s)
