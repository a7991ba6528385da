"""InvokeEndpoint: forward a request to a ready replica of the endpoint's fleet, with
SageMaker Runtime's limits and errors (ValidationError, ModelError, ServiceUnavailable,
and ThrottlingException from a serverless variant at its MaxConcurrency: HTTP 400, as
AWS answers it; botocore's retry handler retries that code by itself)."""

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from emulation.sagemaker.fleets import Fleet, Replica, ReplicaError, Serverless, Throttled
from emulation.sagemaker.protocol import SageMakerError
from emulation.sagemaker.settings import ServiceSettings

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's limit


class Invocations:
    def __init__(
        self,
        fleets: dict[str, Fleet],
        settings: ServiceSettings,
        not_serving: Callable[[str], str],
    ):
        """fleets: what serves each endpoint now (the endpoints' own dict); not_serving:
        why an endpoint without a fleet does not answer."""
        self.fleets, self.settings, self.not_serving = fleets, settings, not_serving
        self._session: aiohttp.ClientSession | None = None  # made in the event loop

    async def invoke(
        self, name: str, body: bytes, headers: dict[str, str], target: str = ""
    ) -> tuple[bytes, dict[str, str]]:
        """Forward to a ready replica (of the variant `target` when given); returns the
        container's body and response headers."""
        fleet = self.fleets.get(name)
        if fleet is None:
            raise runtime_error("ValidationError", 400, self.not_serving(name))
        if target and not fleet.has_variant(target):
            raise runtime_error(
                "ValidationError",
                400,
                f"Variant {target} not found for Endpoint: arn:aws:sagemaker:"
                f"{self.settings.region}:{self.settings.account_id}:endpoint/{name.lower()}",
            )
        if len(body) > MAX_PAYLOAD_BYTES:
            raise runtime_error(
                "ValidationError",
                400,
                f"Received payload of {len(body)} bytes, "
                f"over the maximum of {MAX_PAYLOAD_BYTES} bytes",
            )
        tried: set[int] = set()
        while (picked := fleet.pick(tried, target)) is not None:
            tried.add(id(picked))
            if isinstance(picked, Serverless):
                answer = await self._serverless(picked, name, body, headers)
                if answer is None:
                    continue  # its replica died under the request
                return answer
            picked.in_flight += 1
            try:
                return await self._forward(picked, body, headers)
            except aiohttp.ClientError:
                picked.ready = False  # it died; the supervisor restarts it
            finally:
                picked.in_flight -= 1

        raise runtime_error(
            "ServiceUnavailable", 503, f"Endpoint {name} has no replica ready; try again"
        )

    async def _serverless(
        self, pool: Serverless, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bytes, dict[str, str]] | None:
        """A serverless variant: admitted under MaxConcurrency, a replica started if it has
        none (the request waits: the cold start), then forwarded. None when the replica
        died meanwhile."""
        try:
            pool.admit()
        except Throttled as error:
            raise runtime_error(
                "ThrottlingException",
                400,
                f"Endpoint {name} is at the MaxConcurrency of its serverless variant "
                f"({pool.max_concurrency}); retry with backoff",
            ) from error
        try:
            try:
                replica = await asyncio.to_thread(pool.replica)
            except ReplicaError as error:
                raise runtime_error(
                    "ServiceUnavailable", 503, f"Endpoint {name} could not start: {error}"
                ) from error
            replica.in_flight += 1
            try:
                return await self._forward(replica, body, headers)
            except aiohttp.ClientError:
                pool.forget(replica)
                return None
            finally:
                replica.in_flight -= 1
        finally:
            pool.done()

    async def _forward(
        self, replica: Replica, body: bytes, headers: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        """The replica's answer (aiohttp.ClientError when it is gone)."""
        try:
            async with self._http().post(
                f"{replica.url}/invocations", data=body, headers=headers
            ) as answer:
                status, content = answer.status, await answer.read()
                content_type = answer.headers.get("Content-Type", "application/json")
        except TimeoutError as error:
            raise self._model_error(
                replica,
                0,
                "Your invocation timed out while waiting for a response from container primary.",
            ) from error
        if status != 200:
            raise self._model_error(replica, status, content.decode(errors="replace"))
        return content, {
            "Content-Type": content_type,
            "x-Amzn-Invoked-Production-Variant": replica.variant,
        }

    def _http(self) -> aiohttp.ClientSession:
        """The session of this hop, all the latency InvokeEndpoint adds (why aiohttp:
        emulation/http_client.py)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.invocation_timeout),
                connector=aiohttp.TCPConnector(limit=0),  # replicas are local: no cap
            )
        return self._session

    def _model_error(self, replica: Replica, status: int, message: str) -> SageMakerError:
        kind = "client" if 400 <= status < 500 else "server"
        arn = (
            f"arn:aws:logs:{self.settings.region}:{self.settings.account_id}:log-group:"
            f"/aws/sagemaker/Endpoints/{replica.endpoint}"
        )
        return runtime_error(
            "ModelError",
            424,
            f'Received {kind} error ({status}) from primary with message "{message}". '
            f"See {arn} for more information.",
            OriginalStatusCode=status,
            OriginalMessage=message,
            LogStreamArn=arn,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def runtime_error(code: str, status: int, message: str, **fields: Any) -> SageMakerError:
    return SageMakerError(code, message, status, **fields)
