"""boto3 clients, the one way services/ and the `postwerk` command make them: made on first
use, rather than at import, and reused (as Powertools' examples do with module-level
clients: once per cold start in a function). One is made per AWS environment: a process
that points boto3 elsewhere later (`postwerk env` and `status` adopt the local stack's
variables, a test its backend's) gets clients that reach the new place, not cached ones
that reach the old. boto3 itself is imported on first use too: `postwerk --help` and
`postwerk env` need none (a tenth of a second of their start-up)."""

import functools
import os
import threading

MAKING = threading.Lock()  # boto3's default session makes clients one thread at a time


def client(service: str, read_timeout: float | None = None):
    """A client: thread-safe, so one serves every thread of an invocation. With a
    read_timeout, one that gives up soon (2 s to connect, two attempts): for calls a page
    waits on, within API Gateway's 29 s."""
    with MAKING:
        return made(service, read_timeout, aws_environment())


def table(name: str):
    """A DynamoDB table resource (resources are not thread-safe: one thread each)."""
    with MAKING:
        return table_made(name, aws_environment())


def aws_environment() -> tuple[tuple[str, str], ...]:
    """The variables boto3 reads for where and as whom it calls (endpoints, region,
    credentials, profile, retries); not the Lambda runtime's own, some of which change with
    each invocation (a durable execution's token)."""
    return tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name.startswith("AWS_") and not name.startswith("AWS_LAMBDA_")
        )
    )


def session():
    """boto3's default session: the region and credentials it would call with."""
    import boto3

    return boto3.DEFAULT_SESSION or boto3.Session()


def region() -> str | None:
    """The region boto3 would call (None where none is configured)."""
    return session().region_name


def use(region_name: str | None = None, profile: str | None = None) -> None:
    """Call AWS with this region and profile from now on (the commands' --region, --profile)."""
    import boto3

    with MAKING:
        boto3.setup_default_session(region_name=region_name, profile_name=profile)
        made.cache_clear()
        table_made.cache_clear()


@functools.cache
def made(service: str, read_timeout: float | None, environment: tuple) -> object:
    """A new client (`environment` only keys the cache)."""
    import boto3
    from botocore.config import Config

    if read_timeout is None:
        return boto3.client(service)
    config = Config(connect_timeout=2, read_timeout=read_timeout, retries={"max_attempts": 2})
    return boto3.client(service, config=config)


@functools.cache
def table_made(name: str, environment: tuple) -> object:
    """A new table resource (`environment` only keys the cache)."""
    import boto3

    return boto3.resource("dynamodb").Table(name)
