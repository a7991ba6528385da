"""boto3 clients, made once per cold start and reused by every invocation (as Powertools'
examples do with module-level clients), but on first use rather than at import, so that
they read the endpoint and region the runtime (or a test) has set by then."""

import functools

import boto3


@functools.cache
def client(service: str):
    """A client: thread-safe, so one serves every thread of an invocation."""
    return boto3.client(service)


@functools.cache
def table(name: str):
    """A DynamoDB table resource (resources are not thread-safe: one thread each)."""
    return boto3.resource("dynamodb").Table(name)
