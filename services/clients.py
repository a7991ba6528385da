"""boto3 clients, made once per cold start and reused by every invocation (as Powertools'
examples do with module-level clients), but on first use rather than at import, so that
they read the endpoint and region the runtime (or a test) has set by then."""

import functools

import boto3
from botocore.config import Config


@functools.cache
def client(service: str, read_timeout: float | None = None):
    """A client: thread-safe, so one serves every thread of an invocation. With a
    read_timeout, one that gives up soon (2 s to connect, two attempts): for calls a page
    waits on, within API Gateway's 29 s."""
    if read_timeout is None:
        return boto3.client(service)
    config = Config(connect_timeout=2, read_timeout=read_timeout, retries={"max_attempts": 2})
    return boto3.client(service, config=config)


@functools.cache
def table(name: str):
    """A DynamoDB table resource (resources are not thread-safe: one thread each)."""
    return boto3.resource("dynamodb").Table(name)
