"""InvokeEndpoint: forward a request to a ready replica of the endpoint's fleet, with
SageMaker Runtime's limits and errors (ValidationError, ModelError, ServiceUnavailable)."""

from collections.abc import Callable
from typing import Any

import aiohttp

from emulation.sagemaker.fleets import Fleet, Replica
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
        self, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        """Forward to a ready replica; returns the container's body and response headers."""
        fleet = self.fleets.get(name)
        if fleet is None:
            raise runtime_error("ValidationError", 400, self.not_serving(name))
        if len(body) > MAX_PAYLOAD_BYTES:
            raise runtime_error(
                "ValidationError",
                400,
                f"Received payload of {len(body)} bytes, "
                f"over the maximum of {MAX_PAYLOAD_BYTES} bytes",
            )
        session = self._http()
        tried: set[int] = set()
        while (replica := fleet.pick(tried)) is not None:
            tried.add(id(replica))
            replica.in_flight += 1
            try:
                async with session.post(
                    f"{replica.url}/invocations", data=body, headers=headers
                ) as answer:
                    status, content = answer.status, await answer.read()
                    content_type = answer.headers.get("Content-Type", "application/json")
            except TimeoutError as error:
                raise self._model_error(
                    replica,
                    0,
                    "Your invocation timed out while waiting "
                    "for a response from container primary.",
                ) from error
            except aiohttp.ClientError:
                replica.ready = False  # it died; the supervisor restarts it
                continue
            finally:
                replica.in_flight -= 1
            if status != 200:
                raise self._model_error(replica, status, content.decode(errors="replace"))
            return content, {
                "Content-Type": content_type,
                "x-Amzn-Invoked-Production-Variant": replica.variant,
            }

        raise runtime_error(
            "ServiceUnavailable", 503, f"Endpoint {name} has no replica ready; try again"
        )

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
