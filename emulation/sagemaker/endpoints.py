"""Models, endpoint configs and endpoints, and the replicas that serve them.

An endpoint is a name that stays put while what serves it changes: CreateEndpoint starts a
fleet (each production variant's InitialInstanceCount replicas of the serving container),
UpdateEndpoint starts the new config's fleet next to the old one, switches traffic once every
new replica answers /ping, and stops the old fleet when its requests have drained (blue/green:
no request fails during the swap). A supervisor restarts replicas that die, and stops the
replicas of a serverless variant that has been idle (POSTWERK_SAGEMAKER_SERVERLESS_IDLE_SECONDS):
its next request starts one again and waits for it, as AWS's cold start (fleets.Serverless).

The replicas and fleets are fleets.py, their files model_files.py, InvokeEndpoint's hop to
them invocations.py; this module is the control plane and the deploying.
"""

import contextlib
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from emulation.sagemaker.artifacts import ArtifactError
from emulation.sagemaker.containers import Containers
from emulation.sagemaker.fleets import DRAIN_SECONDS, Fleet, Replica, ReplicaError, Serverless
from emulation.sagemaker.invocations import Invocations
from emulation.sagemaker.model_files import model_folder, replica_folder
from emulation.sagemaker.protocol import now, paginate, required, resource_arn, validation
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Document, Store

MODEL, CONFIG, ENDPOINT = "Model", "EndpointConfig", "Endpoint"

log = logging.getLogger("postwerk.sagemaker")


class Endpoints:
    def __init__(self, store: Store, settings: ServiceSettings, containers: Containers):
        self.store, self.settings, self.containers = store, settings, containers
        self._fleets: dict[str, Fleet] = {}
        self._retiring: set[Fleet] = set()  # swapped out or deleted, being drained
        self.invocations = Invocations(self._fleets, settings, self._not_serving)
        self._stopped = threading.Event()
        self._restore()
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()

    # --- models ----------------------------------------------------------------------------

    def create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        name = required(request, "ModelName")
        container = request.get("PrimaryContainer") or (request.get("Containers") or [None])[0]
        if not container:
            raise validation("PrimaryContainer is required")
        arn = resource_arn(self.settings, "model", name)
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
            if (
                "ServerlessConfig" not in variant
                and int(variant.get("InitialInstanceCount", 1)) < 1
            ):
                raise validation("InitialInstanceCount must be at least 1")
        arn = resource_arn(self.settings, "endpoint-config", name)
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
        arn = resource_arn(self.settings, "endpoint", name)
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
        if any("DesiredInstanceCount" in desired[v] for v in set(desired) & set(fleet.serverless)):
            raise validation("DesiredInstanceCount cannot be set for a serverless variant")
        weights = [
            float(desired.get(variant, {}).get("DesiredWeight", weight))
            for variant, weight, _ in fleet.variants
        ]
        if all(weight == 0 for weight in weights):
            raise validation(
                "The weight of at least one production variant must be greater than 0; "
                "all would be 0"
            )
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
            if variant in fleet.serverless:
                continue  # its replicas come and go with its requests
            try:
                self._scale(name, replicas, int(wanted.get("DesiredInstanceCount", len(replicas))))
            except ReplicaError as error:
                failure = f"ClientError: {error}"
        config = self.store.get(CONFIG, fleet.config_name) or {"ProductionVariants": []}
        serverless = {
            v["VariantName"]: v["ServerlessConfig"]
            for v in config["ProductionVariants"]
            if "ServerlessConfig" in v
        }
        summaries = []
        for variant, weight, replicas in fleet.variants:
            summary = {"VariantName": variant, "CurrentWeight": weight, "DesiredWeight": weight}
            if variant in serverless:
                summary |= serverless_summary(serverless[variant])
            else:
                summary |= {
                    "CurrentInstanceCount": sum(r.ready for r in replicas),
                    "DesiredInstanceCount": len(replicas),
                }
            summaries.append(summary)
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
                replica_folder(self.settings.state_dir, name, model_dir),
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
        for pool in fleet.serverless.values():
            pool.touch()  # its idle time starts now, not when its replica began to start
        self._change(
            name,
            EndpointStatus="InService",
            EndpointConfigName=config["EndpointConfigName"],
            ProductionVariants=variant_summaries(config, current=None),
            FailureReason=None,
        )
        if previous is not None:
            self._retire(previous)

    def _start_fleet(self, name: str, config: Document) -> Fleet:
        """Each variant's replicas started and answering /ping. A serverless variant starts
        with one too (the container is checked as AWS checks it at creation), which stops
        once the variant has been idle unless it is provisioned."""
        variants, pools = [], {}
        for variant in config["ProductionVariants"]:
            model = self.describe_model(variant["ModelName"])
            model_dir = model_folder(self.settings.state_dir, model)
            environment = model["PrimaryContainer"].get("Environment", {})

            def replica(number, variant=variant, model=model, model_dir=model_dir,
                        environment=environment) -> Replica:  # fmt: skip
                return Replica(
                    name,
                    variant["VariantName"],
                    number,
                    model["PrimaryContainer"]["Image"],
                    replica_folder(self.settings.state_dir, name, model_dir),
                    environment,
                )

            serverless = variant.get("ServerlessConfig")
            count = 1 if serverless else int(variant.get("InitialInstanceCount", 1))
            replicas = [replica(number) for number in range(count)]
            if serverless:
                pools[variant["VariantName"]] = Serverless(
                    serverless,
                    replicas,
                    replica,
                    self._start_replica,
                    self.settings.serverless_idle_seconds,
                )
            variants.append(
                (variant["VariantName"], float(variant.get("InitialVariantWeight", 1.0)), replicas)
            )
        fleet = Fleet(config["EndpointConfigName"], variants, pools)
        try:
            for replica in fleet.replicas:
                replica.start(self.containers)
            for replica in fleet.replicas:
                replica.wait_ready(self.settings.replica_start_timeout)
        except BaseException:
            fleet.stop()
            raise
        return fleet

    def _start_replica(self, replica: Replica) -> None:
        try:
            replica.start(self.containers)
            replica.wait_ready(self.settings.replica_start_timeout)
        except BaseException:
            replica.stop()
            raise

    def _remove(self, name: str, fleet: Fleet | None) -> None:
        if fleet is not None:
            self._retire(fleet)
        self.store.delete(ENDPOINT, name)

    def _retire(self, fleet: Fleet) -> None:
        """Drain and stop a fleet that no longer takes traffic; until it is stopped,
        shutdown() stops it too (a service stopped meanwhile leaves no replica behind)."""
        self._retiring.add(fleet)
        try:
            fleet.drain()
        finally:
            self._retiring.discard(fleet)

    def _supervise(self) -> None:
        """Notice replicas that died; report them and start them again."""
        while not self._stopped.wait(0.5):
            for name, fleet in list(self._fleets.items()):
                for pool in fleet.serverless.values():
                    if idle := pool.idle_replicas():
                        log.info("endpoint %s: serverless variant idle; stopping %d replica(s)",
                                 name, len(idle))  # fmt: skip
                        for replica in idle:
                            self._in_background(replica.stop)
                for variant, _, replicas in fleet.variants:
                    if variant in fleet.serverless:
                        for replica in [r for r in replicas if r.died()]:
                            log.warning("endpoint %s: serverless replica %s exited",
                                        name, replica.log_stream_name)  # fmt: skip
                            fleet.serverless[variant].forget(replica)
                for replica in fleet.replicas:
                    if replica.variant in fleet.serverless:
                        continue
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
        fleets = [*self._fleets.values(), *self._retiring]
        replicas = [replica for fleet in fleets for replica in fleet.close()]
        self._fleets.clear()
        with ThreadPoolExecutor() as pool:  # together: one grace period, not one per replica
            list(pool.map(Replica.stop, replicas))

    # --- helpers ---------------------------------------------------------------------------

    def _get(self, kind: str, name: str, what: str) -> Document:
        document = self.store.get(kind, name)
        if document is None:
            resource = "endpoint-config" if kind == CONFIG else kind.lower()
            arn = resource_arn(self.settings, resource, name)
            raise validation(f'Could not find {what} "{arn}".')
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
    """DescribeEndpoint's ProductionVariants: instance counts, or for a serverless variant
    its Current/DesiredServerlessConfig (AWS shows no instance count for it)."""
    summaries = []
    for v in config["ProductionVariants"]:
        weight = float(v.get("InitialVariantWeight", 1.0))
        summary = {
            "VariantName": v["VariantName"],
            "CurrentWeight": weight,
            "DesiredWeight": weight,
        }
        if "ServerlessConfig" in v:
            summary |= serverless_summary(v["ServerlessConfig"])
        else:
            wanted = int(v.get("InitialInstanceCount", 1))
            summary |= {
                "CurrentInstanceCount": wanted if current is None else current,
                "DesiredInstanceCount": wanted,
            }
        summaries.append(summary)
    return summaries


def serverless_summary(serverless: Document) -> Document:
    return {"CurrentServerlessConfig": serverless, "DesiredServerlessConfig": serverless}
