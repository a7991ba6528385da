"""Models, endpoint configs and endpoints, and the replicas that serve them.

An endpoint is a name that stays put while what serves it changes: CreateEndpoint starts a
fleet (each production variant's InitialInstanceCount replicas of the serving container),
UpdateEndpoint starts the new config's fleet next to the old one, switches traffic once every
new replica answers /ping, and stops the old fleet when its requests have drained (blue/green:
no request fails during the swap). A supervisor restarts replicas that die.
"""

import contextlib
import logging
import random
import threading
import time
import traceback
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from emulation.sagemaker.artifacts import S3, ArtifactError, LogStream
from emulation.sagemaker.containers import Containers
from emulation.sagemaker.protocol import SageMakerError, now, paginate, required, validation
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Document, Store
from model.archive import ArchiveError, unpack

MODEL, CONFIG, ENDPOINT = "Model", "EndpointConfig", "Endpoint"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's limit
DRAIN_SECONDS = 60  # how long an old fleet may finish its requests after a swap

log = logging.getLogger("postwerk.sagemaker")


class ReplicaError(Exception):
    """A replica did not start; the message carries the end of its log."""


class Replica:
    """One serving container on a free local port."""

    def __init__(
        self,
        endpoint: str,
        variant: str,
        number: int,
        image: str,
        base_dir: Path,
        env: dict,
        log: tuple[str, str] | None = None,  # (group, stream): batch transform has its own
    ):
        self.endpoint, self.variant, self.number = endpoint, variant, number
        self.image, self.base_dir, self.environment = image, base_dir, env
        self.containers: Containers | None = None
        self.process = None
        self.url = ""
        self.ready = False  # answers /ping and takes traffic
        self.restarting = False
        self.stopping = False
        self.in_flight = 0
        self.last_lines: list[str] = []
        self.log_group, self.log_stream_name = log or (
            f"/aws/sagemaker/Endpoints/{endpoint}",
            f"{variant}/replica-{number}",
        )

    def start(self, containers: Containers) -> None:
        self.containers = containers
        self.process, self.url = containers.serve(self.image, self.base_dir, self.environment)
        threading.Thread(target=self._pump_log, daemon=True).start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise ReplicaError(
                        f"the serving container exited with code "
                        f"{self.process.returncode}: {self.tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/ping").status_code == 200:
                        self.ready = True
                        return
                if time.monotonic() > deadline:
                    raise ReplicaError(f"no /ping 200 within {timeout:.0f} s: {self.tail()}")
                time.sleep(0.1)

    def stop(self) -> None:
        self.stopping, self.ready = True, False
        if self.process is not None:
            self.containers.terminate(self.process, grace_seconds=30)

    def died(self) -> bool:
        return not self.stopping and self.process is not None and self.process.poll() is not None

    def tail(self) -> str:
        return " | ".join(self.last_lines[-5:]) or "no output"

    def _pump_log(self) -> None:
        stream = LogStream(self.log_group, self.log_stream_name)
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.last_lines = [*self.last_lines[-19:], line]
            stream.write(line)
        stream.flush()


class Fleet:
    """The replicas serving one endpoint config, by variant with its weight."""

    def __init__(self, config_name: str, variants: list[tuple[str, float, list[Replica]]]):
        self.config_name = config_name
        self.variants = variants
        self._turn = count()

    @property
    def replicas(self) -> list[Replica]:
        return [replica for _, _, replicas in self.variants for replica in replicas]

    def pick(self, excluded: set[int]) -> Replica | None:
        """A ready replica: a variant by weight, then round robin within it."""
        candidates = [
            (weight, ready)
            for _, weight, replicas in self.variants
            if (ready := [r for r in replicas if r.ready and id(r) not in excluded])
        ]
        if not candidates:
            return None
        weights = [weight for weight, _ in candidates]
        ready = random.choices([r for _, r in candidates], weights=weights)[0]
        return ready[next(self._turn) % len(ready)]

    def in_flight(self) -> int:
        return sum(replica.in_flight for replica in self.replicas)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


class Endpoints:
    def __init__(self, store: Store, settings: ServiceSettings, containers: Containers):
        self.store, self.settings, self.containers = store, settings, containers
        self._fleets: dict[str, Fleet] = {}
        self._session: aiohttp.ClientSession | None = None  # made in the event loop
        self._stopped = threading.Event()
        self._restore()
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()

    # --- models ----------------------------------------------------------------------------

    def create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = required(request, "ModelName")
        container = request.get("PrimaryContainer") or (request.get("Containers") or [None])[0]
        if not container:
            raise validation("PrimaryContainer is required")
        arn = self._arn("model", name)
        document = {
            "ModelName": name,
            "ModelArn": arn,
            "PrimaryContainer": container,
            "ExecutionRoleArn": request.get("ExecutionRoleArn", ""),
            "CreationTime": now(),
        }
        if not self.store.insert(MODEL, name, document):
            raise validation(f'Cannot create already existing model "{arn}".')
        return {"ModelArn": arn}

    def describe_model(self, name: str) -> Document:
        return self._get(MODEL, name, "model")

    def delete_model(self, name: str) -> dict[str, Any]:
        self._get(MODEL, name, "model")
        self.store.delete(MODEL, name)
        return {}

    def list_models(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = ("ModelName", "ModelArn")
        return self._list(self.store.all(MODEL), request, "Models", "ModelName", keys)

    # --- endpoint configs ------------------------------------------------------------------

    def create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        name = required(request, "EndpointConfigName")
        variants = required(request, "ProductionVariants")
        for variant in variants:
            self._get(MODEL, required(variant, "ModelName"), "model")
            if int(variant.get("InitialInstanceCount", 1)) < 1:
                raise validation("InitialInstanceCount must be at least 1")
        arn = self._arn("endpoint-config", name)
        document = {
            "EndpointConfigName": name,
            "EndpointConfigArn": arn,
            "ProductionVariants": variants,
            "CreationTime": now(),
        }
        if not self.store.insert(CONFIG, name, document):
            raise validation(f'Cannot create already existing endpoint configuration "{arn}".')
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, name: str) -> Document:
        return self._get(CONFIG, name, "endpoint configuration")

    def delete_endpoint_config(self, name: str) -> dict[str, Any]:
        self._get(CONFIG, name, "endpoint configuration")
        self.store.delete(CONFIG, name)
        return {}

    def list_endpoint_configs(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = ("EndpointConfigName", "EndpointConfigArn")
        documents = self.store.all(CONFIG)
        return self._list(documents, request, "EndpointConfigs", "EndpointConfigName", keys)

    # --- endpoints -------------------------------------------------------------------------

    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = required(request, "EndpointName")
        config = self.describe_endpoint_config(required(request, "EndpointConfigName"))
        arn = self._arn("endpoint", name)
        document = {
            "EndpointName": name,
            "EndpointArn": arn,
            "EndpointConfigName": config["EndpointConfigName"],
            "ProductionVariants": variant_summaries(config, current=0),
            "EndpointStatus": "Creating",
            "CreationTime": now(),
            "LastModifiedTime": now(),
        }
        if not self.store.insert(ENDPOINT, name, document):
            raise validation(f'Cannot create already existing endpoint "{arn}".')
        self._in_background(self._deploy, name, config)
        return {"EndpointArn": arn}

    def describe_endpoint(self, name: str) -> Document:
        return self._get(ENDPOINT, name, "endpoint")

    def update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = required(request, "EndpointName")
        endpoint = self.describe_endpoint(name)
        config = self.describe_endpoint_config(required(request, "EndpointConfigName"))
        if endpoint["EndpointStatus"] != "InService":
            raise validation(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
        self._change(name, EndpointStatus="Updating")
        self._in_background(self._deploy, name, config)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        self.describe_endpoint(name)
        self._change(name, EndpointStatus="Deleting")
        fleet = self._fleets.pop(name, None)
        self._in_background(self._remove, name, fleet)
        return {}

    def list_endpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        documents = self.store.all(ENDPOINT)
        if "StatusEquals" in request:
            documents = [d for d in documents if d["EndpointStatus"] == request["StatusEquals"]]
        keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        return self._list(documents, request, "Endpoints", "EndpointName", keys)

    def update_weights_and_capacities(self, request: dict[str, Any]) -> dict[str, Any]:
        """UpdateEndpointWeightsAndCapacities: new weights at once, replicas started or
        drained and stopped to the desired counts (Updating until they are)."""
        name = required(request, "EndpointName")
        endpoint = self.describe_endpoint(name)
        fleet = self._fleets.get(name)
        if endpoint["EndpointStatus"] != "InService" or fleet is None:
            raise validation(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
        desired = {
            required(d, "VariantName"): d for d in required(request, "DesiredWeightsAndCapacities")
        }
        if unknown := sorted(set(desired) - {variant for variant, _, _ in fleet.variants}):
            raise validation(
                f'The variant(s) "{", ".join(unknown)}" are not present on endpoint "{name}".'
            )
        if any(int(d.get("DesiredInstanceCount", 1)) < 1 for d in desired.values()):
            raise validation("DesiredInstanceCount must be at least 1")
        self._change(name, EndpointStatus="Updating")
        self._in_background(self._resize, name, fleet, desired)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def _resize(self, name: str, fleet: Fleet, desired: dict[str, dict]) -> None:
        failure = None
        for index, (variant, weight, replicas) in enumerate(fleet.variants):
            wanted = desired.get(variant)
            if wanted is None:
                continue
            weight = float(wanted.get("DesiredWeight", weight))
            fleet.variants[index] = (variant, weight, replicas)
            try:
                self._scale(name, replicas, int(wanted.get("DesiredInstanceCount", len(replicas))))
            except ReplicaError as error:
                failure = f"ClientError: {error}"
        summaries = [
            {
                "VariantName": variant,
                "CurrentWeight": weight,
                "DesiredWeight": weight,
                "CurrentInstanceCount": sum(r.ready for r in replicas),
                "DesiredInstanceCount": len(replicas),
            }
            for variant, weight, replicas in fleet.variants
        ]
        self._change(
            name, EndpointStatus="InService", ProductionVariants=summaries, FailureReason=failure
        )

    def _scale(self, name: str, replicas: list[Replica], count: int) -> None:
        """Start replicas like the variant's first one, or drain and stop the last ones."""
        while len(replicas) > count:
            surplus = replicas.pop()
            surplus.ready = False
            deadline = time.monotonic() + DRAIN_SECONDS
            while surplus.in_flight and time.monotonic() < deadline:
                time.sleep(0.05)
            surplus.stop()
        template = replicas[0]
        model_dir = (template.base_dir / "model").resolve()
        added = [
            Replica(
                name,
                template.variant,
                max(r.number for r in replicas) + 1 + offset,
                template.image,
                self._replica_folder(name, model_dir),
                template.environment,
            )
            for offset in range(count - len(replicas))
        ]
        try:
            for replica in added:
                replica.start(self.containers)
            for replica in added:
                replica.wait_ready(self.settings.replica_start_timeout)
        except BaseException:
            for replica in added:
                replica.stop()
            raise
        replicas.extend(added)

    # --- InvokeEndpoint --------------------------------------------------------------------

    async def invoke(
        self, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        """Forward to a ready replica; returns the container's body and response headers."""
        fleet = self._fleets.get(name)
        if fleet is None:
            raise runtime_error("ValidationError", 400, self._not_serving(name))
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
        """aiohttp rather than httpx here: its client adds ~2 ms less per request (measured),
        and this hop is all the overhead InvokeEndpoint adds."""
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

    def _not_serving(self, name: str) -> str:
        document = self.store.get(ENDPOINT, name)
        if document is None:
            return f"Endpoint {name} of account {self.settings.account_id} not found."
        return f"Endpoint {name} is {document['EndpointStatus']}, not InService."

    # --- deploying, supervising ------------------------------------------------------------

    def _deploy(self, name: str, config: Document) -> None:
        """Start the config's fleet; then route to it and retire the previous one."""
        try:
            fleet = self._start_fleet(name, config)
        except Exception as error:
            if isinstance(error, ReplicaError | ArtifactError):
                reason = f"ClientError: {error}"
            else:
                log.error("endpoint %s: %s", name, traceback.format_exc())
                reason = f"InternalServerError: {type(error).__name__}: {error}"
            serving = name in self._fleets  # a failed update leaves the old fleet serving
            self._change(
                name, EndpointStatus="InService" if serving else "Failed", FailureReason=reason
            )
            return
        previous = self._fleets.get(name)
        self._fleets[name] = fleet
        self._change(
            name,
            EndpointStatus="InService",
            EndpointConfigName=config["EndpointConfigName"],
            ProductionVariants=variant_summaries(config, current=None),
            FailureReason=None,
        )
        if previous is not None:
            self._drain(previous)

    def _start_fleet(self, name: str, config: Document) -> Fleet:
        variants = []
        for variant in config["ProductionVariants"]:
            model = self.describe_model(variant["ModelName"])
            model_dir = self._model_folder(model)
            environment = model["PrimaryContainer"].get("Environment", {})
            replicas = [
                Replica(
                    name,
                    variant["VariantName"],
                    number,
                    model["PrimaryContainer"]["Image"],
                    self._replica_folder(name, model_dir),
                    environment,
                )
                for number in range(int(variant.get("InitialInstanceCount", 1)))
            ]
            variants.append(
                (variant["VariantName"], float(variant.get("InitialVariantWeight", 1.0)), replicas)
            )
        fleet = Fleet(config["EndpointConfigName"], variants)
        try:
            for replica in fleet.replicas:
                replica.start(self.containers)
            for replica in fleet.replicas:
                replica.wait_ready(self.settings.replica_start_timeout)
        except BaseException:
            fleet.stop()
            raise
        return fleet

    def _model_folder(self, model: Document) -> Path:
        """model.tar.gz from S3, unpacked safely once per model."""
        folder = (
            self.settings.state_dir / "models" / f"{model['ModelName']}-{model['CreationTime']:.0f}"
        )
        unpacked = folder / "model"
        if unpacked.is_dir():
            return unpacked
        url = model["PrimaryContainer"].get("ModelDataUrl")
        if not url:
            raise ArtifactError("the model has no ModelDataUrl")
        archive = folder / "model.tar.gz"
        S3().download_file(url, archive)
        try:
            unpack(archive, unpacked)
        except ArchiveError as error:
            raise ArtifactError(f"cannot unpack {url}: {error}") from error
        finally:
            archive.unlink()
        return unpacked

    def _replica_folder(self, endpoint: str, model_dir: Path) -> Path:
        """A base dir per replica whose model/ is the shared unpacked model."""
        base = self.settings.state_dir / "replicas" / f"{endpoint}-{time.time_ns()}"
        base.mkdir(parents=True)
        (base / "model").symlink_to(model_dir.resolve(), target_is_directory=True)
        return base

    def _drain(self, fleet: Fleet) -> None:
        deadline = time.monotonic() + DRAIN_SECONDS
        while fleet.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        fleet.stop()

    def _remove(self, name: str, fleet: Fleet | None) -> None:
        if fleet is not None:
            self._drain(fleet)
        self.store.delete(ENDPOINT, name)

    def _supervise(self) -> None:
        """Notice replicas that died; report them and start them again."""
        while not self._stopped.wait(0.5):
            for name, fleet in list(self._fleets.items()):
                for replica in fleet.replicas:
                    if replica.died() and not replica.restarting:
                        code = replica.process.returncode
                        log.warning(
                            "endpoint %s: replica %s exited with code %s; restarting",
                            name,
                            replica.log_stream_name,
                            code,
                        )
                        replica.ready, replica.restarting = False, True
                        self._adjust_instances(name, replica.variant, -1)
                        self._in_background(self._restart, name, replica)

    def _restart(self, name: str, replica: Replica) -> None:
        try:
            replica.start(self.containers)
            replica.wait_ready(self.settings.replica_start_timeout)
        except ReplicaError as error:
            log.error(
                "endpoint %s: replica %s did not restart: %s", name, replica.log_stream_name, error
            )
            return  # still dead: the supervisor tries again
        finally:
            replica.restarting = False
        self._adjust_instances(name, replica.variant, +1)

    def _adjust_instances(self, name: str, variant_name: str, delta: int) -> None:
        def change(document: Document) -> None:
            for variant in document["ProductionVariants"]:
                if variant["VariantName"] == variant_name:
                    variant["CurrentInstanceCount"] += delta

        # deleted meanwhile
        with contextlib.suppress(KeyError):
            self.store.update(ENDPOINT, name, change)

    def _restore(self) -> None:
        """After a restart of the service: endpoints that served before serve again."""
        for document in self.store.all(ENDPOINT):
            name = document["EndpointName"]
            if document["EndpointStatus"] == "Deleting":
                self.store.delete(ENDPOINT, name)
            elif document["EndpointStatus"] != "Failed":
                config = self.store.get(CONFIG, document["EndpointConfigName"])
                self._change(name, EndpointStatus="Creating")
                self._in_background(self._deploy, name, config)

    def shutdown(self) -> None:
        self._stopped.set()
        for fleet in list(self._fleets.values()):
            fleet.stop()
        self._fleets.clear()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    # --- helpers ---------------------------------------------------------------------------

    def _arn(self, kind: str, name: str) -> str:
        s = self.settings
        return f"arn:aws:sagemaker:{s.region}:{s.account_id}:{kind}/{name.lower()}"

    def _get(self, kind: str, name: str, what: str) -> Document:
        document = self.store.get(kind, name)
        if document is None:
            resource = "endpoint-config" if kind == CONFIG else kind.lower()
            raise validation(f'Could not find {what} "{self._arn(resource, name)}".')
        return document

    def _change(self, name: str, **changes: Any) -> None:
        def change(document: Document) -> None:
            for key, value in changes.items():
                if value is None:
                    document.pop(key, None)
                else:
                    document[key] = value
            document["LastModifiedTime"] = now()

        # deleted meanwhile
        with contextlib.suppress(KeyError):
            self.store.update(ENDPOINT, name, change)

    def _list(self, documents, request, key, name_key, summary_keys) -> dict[str, Any]:
        if "NameContains" in request:
            documents = [d for d in documents if request["NameContains"] in d[name_key]]
        summaries = [
            {k: d[k] for k in (*summary_keys, "CreationTime") if k in d} for d in documents
        ]
        return paginate(request, summaries, key, {"Name": name_key, "CreationTime": "CreationTime"})

    @staticmethod
    def _in_background(function, *arguments) -> None:
        threading.Thread(target=function, args=arguments, daemon=True).start()


def variant_summaries(config: Document, current: int | None) -> list[Document]:
    return [
        {
            "VariantName": v["VariantName"],
            "CurrentWeight": float(v.get("InitialVariantWeight", 1.0)),
            "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
            "CurrentInstanceCount": int(v.get("InitialInstanceCount", 1))
            if current is None
            else current,
            "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1)),
        }
        for v in config["ProductionVariants"]
    ]


def runtime_error(code: str, status: int, message: str, **fields: Any) -> SageMakerError:
    return SageMakerError(code, message, status, **fields)
