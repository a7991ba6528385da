"""Training jobs: CreateTrainingJob and friends, run as the SageMaker platform runs them.

A job goes Starting (queued while all slots are busy) -> Downloading (S3 channels into the
/opt/ml layout) -> Training (the container, its log to CloudWatch Logs, metrics from the
MetricDefinitions) -> Uploading (model.tar.gz, output.tar.gz, checkpoints) -> Completed,
Failed or Stopped. Each job runs on its own thread; the store holds its Describe document.
"""

import contextlib
import json
import logging
import os
import re
import shutil
import tarfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulation.sagemaker.artifacts import S3, ArtifactError, LogStream, MetricPublisher
from emulation.sagemaker.containers import Containers
from emulation.sagemaker.protocol import (
    filter_jobs,
    in_use,
    not_found,
    now,
    paginate,
    required,
    validation,
)
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Document, Store

KIND = "TrainingJob"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
FINISHED = {"Completed", "Failed", "Stopped"}
STOP_GRACE_SECONDS = 120  # what SageMaker gives a container between SIGTERM and SIGKILL
MAX_INSTANCES = 8  # hosts of one job, all on this machine

log = logging.getLogger("postwerk.sagemaker")

# Called with (job name, metric name, value) for every metric line of a job's log.
MetricListener = Callable[[str, str, float], None]


@dataclass
class Run:
    """What the service knows of a job in flight, beyond its stored document."""

    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    on_metric: MetricListener | None = None
    max_runtime_exceeded: bool = False
    failed_hosts: list[str] = field(default_factory=list)  # the first to fail, first


class JobStopped(Exception):
    pass


class TrainingJobs:
    def __init__(self, store: Store, settings: ServiceSettings, containers: Containers):
        self.store, self.settings, self.containers = store, settings, containers
        self._slots = threading.Semaphore(settings.max_training_jobs)
        self._runs: dict[str, Run] = {}
        self._fail_interrupted_jobs()

    # --- the API -------------------------------------------------------------------------

    def create(
        self,
        request: dict[str, Any],
        tuning_job_arn: str | None = None,
        on_metric: MetricListener | None = None,
    ) -> dict[str, Any]:
        name = required(request, "TrainingJobName")
        document = self._new_document(name, request, tuning_job_arn)
        if not self.store.insert(KIND, name, document):
            raise in_use(
                f"Training job names must be unique within an AWS account and region, "
                f"and a training job with this name already exists ({document['TrainingJobArn']})"
            )
        self._runs[name] = Run(on_metric=on_metric)
        threading.Thread(target=self._run, args=(name,), name=f"job-{name}", daemon=True).start()
        return {"TrainingJobArn": document["TrainingJobArn"]}

    def describe(self, name: str) -> Document:
        document = self.store.get(KIND, name)
        if document is None:
            raise not_found(f"Requested resource not found: training job '{name}'")
        return document

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        jobs = filter_jobs(request, self.store.all(KIND), "TrainingJobName", "TrainingJobStatus")
        return paginate(
            request,
            [summary(j) for j in jobs],
            "TrainingJobSummaries",
            sort_keys={
                "Name": "TrainingJobName",
                "CreationTime": "CreationTime",
                "Status": "TrainingJobStatus",
            },
        )

    def stop(self, name: str) -> dict[str, Any]:
        status = self.describe(name)["TrainingJobStatus"]
        if status != "InProgress":
            raise validation(
                f"The request was rejected because the training job is in status {status}."
            )
        self._set_status(name, "Stopping", "Stopping", "Stopping the training job")
        self._runs[name].stop_requested.set()
        return {}

    def wait(self, name: str, timeout: float | None = None) -> Document:
        """Block until the job has finished (for tuning jobs); returns its document."""
        run = self._runs.get(name)
        if run is not None:
            run.done.wait(timeout)
        return self.describe(name)

    def shutdown(self) -> None:
        for _name, run in list(self._runs.items()):
            if not run.done.is_set():
                run.stop_requested.set()
        for run in list(self._runs.values()):
            run.done.wait(STOP_GRACE_SECONDS)

    # --- one job's life ------------------------------------------------------------------

    def _new_document(self, name: str, request: dict, tuning_job_arn: str | None) -> Document:
        if not NAME.match(name):
            raise validation(
                f"1 validation error detected: Value '{name}' at 'trainingJobName' "
                f"failed to satisfy constraint: Member must satisfy regular "
                f"expression pattern: {NAME.pattern}"
            )
        algorithm = required(request, "AlgorithmSpecification")
        output = required(request, "OutputDataConfig")
        resources = required(request, "ResourceConfig")
        if not 1 <= int(resources.get("InstanceCount", 1)) <= MAX_INSTANCES:
            raise validation(
                f"ResourceConfig.InstanceCount must be from 1 to {MAX_INSTANCES} "
                "on the local SageMaker service"
            )
        for definition in algorithm.get("MetricDefinitions", []):
            try:
                re.compile(definition["Regex"])
            except re.error as error:
                raise validation(
                    f"MetricDefinitions '{definition['Name']}': invalid regex ({error})"
                ) from error
        for channel in request.get("InputDataConfig", []):
            required(channel, "ChannelName")
            required(required(channel, "DataSource"), "S3DataSource")
        created = now()
        return {
            "TrainingJobName": name,
            "TrainingJobArn": self._arn(name),
            **({"TuningJobArn": tuning_job_arn} if tuning_job_arn else {}),
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "HyperParameters": request.get("HyperParameters", {}),
            "AlgorithmSpecification": algorithm,
            "RoleArn": request.get("RoleArn", ""),
            "InputDataConfig": request.get("InputDataConfig", []),
            "OutputDataConfig": {"KmsKeyId": ""} | output,  # AWS's empty key when unset
            "ResourceConfig": resources,
            "StoppingCondition": request.get("StoppingCondition", {}),
            "Environment": request.get("Environment", {}),
            **(
                {"CheckpointConfig": request["CheckpointConfig"]}
                if "CheckpointConfig" in request
                else {}
            ),
            "CreationTime": created,
            "LastModifiedTime": created,
            "SecondaryStatusTransitions": [
                {
                    "Status": "Starting",
                    "StartTime": created,
                    "StatusMessage": "Preparing the instances for training",
                }
            ],
            "FinalMetricDataList": [],
        }

    def _arn(self, name: str) -> str:
        s = self.settings
        return f"arn:aws:sagemaker:{s.region}:{s.account_id}:training-job/{name.lower()}"

    def _run(self, name: str) -> None:
        run = self._runs[name]
        job_dir = self.settings.state_dir / "training-jobs" / name
        try:
            if not self._slots.acquire(blocking=False):
                self._set_secondary(
                    name,
                    "Starting",
                    "Waiting for a free training slot "
                    f"(POSTWERK_SAGEMAKER_MAX_TRAINING_JOBS={self.settings.max_training_jobs})",
                )
                while not self._slots.acquire(timeout=0.5):
                    if run.stop_requested.is_set():
                        raise JobStopped
            try:
                self._train_and_upload(name, run, job_dir)
            finally:
                self._slots.release()
        except JobStopped:
            self._set_status(name, "Stopped", "Stopped", "The training job was stopped")
        except ArtifactError as error:
            self._fail(name, f"ClientError: {error}")
        except Exception as error:
            log.error("training job %s: %s", name, traceback.format_exc())
            self._fail(name, f"InternalServerError: {type(error).__name__}: {error}")
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
            run.done.set()

    def _train_and_upload(self, name: str, run: Run, job_dir: Path) -> None:
        document = self.describe(name)
        s3 = S3()
        self._set_secondary(name, "Downloading", "Downloading input data")
        bases = self._lay_out(document, job_dir, s3)
        if run.stop_requested.is_set():
            raise JobStopped
        self._set_secondary(name, "Training", "Training in progress", training_start=True)
        failure = self._train(name, run, document, bases)
        self._set_secondary(name, "Uploading", "Uploading generated training model")
        self._upload(name, document, bases["algo-1"], s3)  # the first host's, as on AWS
        if run.max_runtime_exceeded:
            self._set_status(
                name, "Stopped", "MaxRuntimeExceeded", "The job exceeded MaxRuntimeInSeconds"
            )
        elif run.stop_requested.is_set():
            raise JobStopped
        elif failure is None:
            self._set_status(name, "Completed", "Completed", "Training job completed")
        else:
            self._fail(name, failure)

    def _lay_out(self, document: Document, job_dir: Path, s3: S3) -> dict[str, Path]:
        """The /opt/ml tree of the SageMaker training contract for each host: job_dir itself
        for one instance, job_dir/algo-<i> for several (channels FullyReplicated, or the
        objects dealt out by key for ShardedByS3Key). Returns host name -> its tree."""
        shutil.rmtree(job_dir, ignore_errors=True)
        names = hosts(document)
        bases = {names[0]: job_dir} if len(names) == 1 else {h: job_dir / h for h in names}
        first = bases[names[0]]
        channels = {}
        for channel in document["InputDataConfig"]:
            source = channel["DataSource"]["S3DataSource"]
            folder = Path("input") / "data" / channel["ChannelName"]
            s3.download_prefix(source["S3Uri"], first / folder)
            distribution = source.get("S3DataDistributionType", "FullyReplicated")
            share(first / folder, [bases[h] / folder for h in names], distribution)
            channels[channel["ChannelName"]] = {
                "ContentType": channel.get("ContentType", ""),
                "TrainingInputMode": channel.get("InputMode", "File"),
                "S3DistributionType": distribution,
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
        checkpoints = document.get("CheckpointConfig", {}).get("S3Uri")
        for host, base in bases.items():
            if checkpoints:
                # no checkpoints yet: the first run of this job
                with contextlib.suppress(ArtifactError):
                    s3.download_prefix(checkpoints, base / "checkpoints")
            files = {
                "hyperparameters.json": document["HyperParameters"],
                "inputdataconfig.json": channels,
                "resourceconfig.json": {
                    "current_host": host,
                    "hosts": names,
                    "network_interface_name": "eth0",
                },
            }
            (base / "input" / "config").mkdir(parents=True, exist_ok=True)
            for filename, content in files.items():
                (base / "input" / "config" / filename).write_text(json.dumps(content))
            for folder in ("model", "output/data", "checkpoints"):
                (base / folder).mkdir(parents=True, exist_ok=True)
        return bases

    def _train(self, name: str, run: Run, document: Document, bases: dict[str, Path]):
        """Run a container per host to their end, each streaming its log (metrics from the
        first host, where rank 0 prints them). Returns the failure reason, None when every
        host exited 0; the first host to fail stops the others."""
        image = document["AlgorithmSpecification"]["TrainingImage"]
        several = len(bases) > 1
        processes = {
            host: self.containers.train(
                image, base, document["Environment"], host=host if several else "", job=name
            )
            for host, base in bases.items()
        }
        watchdog = threading.Thread(
            target=self._watch, args=(run, processes, document), daemon=True
        )
        watchdog.start()
        final: dict[str, dict] = {}
        pumps = [
            threading.Thread(
                target=self._pump,
                args=(name, run, document, host, process, final if host == "algo-1" else None),
            )
            for host, process in processes.items()
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        codes = {host: process.wait() for host, process in processes.items()}
        watchdog.join()
        self.containers.release(name)
        self.store.update(KIND, name, lambda d: d.update(FinalMetricDataList=list(final.values())))
        failed = [host for host in run.failed_hosts if codes[host] != 0] or [
            host for host, code in codes.items() if code != 0
        ]
        if not failed:
            return None
        host = failed[0]
        reason = failure_reason(bases[host], codes[host])
        return (
            reason.replace("AlgorithmError: ", f"AlgorithmError: {host}: ") if several else reason
        )

    def _pump(self, name, run, document, host, process, final: dict | None) -> None:
        """One host's output to its log stream; its metric lines when `final` is given."""
        definitions = [
            (d["Name"], re.compile(d["Regex"]))
            for d in document["AlgorithmSpecification"].get("MetricDefinitions", [])
        ]
        stream = LogStream(LOG_GROUP, f"{name}/{host}-{int(document['CreationTime'])}")
        metrics = MetricPublisher(LOG_GROUP, {"TrainingJobName": name})
        for line in process.stdout:
            line = line.rstrip("\n")
            stream.write(line)
            if final is None:
                continue
            for metric, regex in definitions:
                match = regex.search(line)
                if match:
                    value = float(match.group(1))
                    final[metric] = {"MetricName": metric, "Value": value, "Timestamp": now()}
                    metrics.put(metric, value)
                    if run.on_metric:
                        run.on_metric(name, metric, value)
        stream.flush()

    def _watch(self, run: Run, processes: dict, document: Document) -> None:
        """Stop every host on StopTrainingJob, when MaxRuntimeInSeconds passes, or when one
        host fails (its peers would wait for it until their own timeouts)."""
        max_runtime = document["StoppingCondition"].get("MaxRuntimeInSeconds")
        deadline = time.monotonic() + max_runtime if max_runtime else None
        while any(process.poll() is None for process in processes.values()):
            failed = [h for h, p in processes.items() if p.poll() not in (None, 0)]
            if failed:
                run.failed_hosts = failed
                break
            if run.stop_requested.wait(0.5):
                break
            if deadline and time.monotonic() > deadline:
                run.max_runtime_exceeded = True
                break
        for process in processes.values():
            self.containers.terminate(process, STOP_GRACE_SECONDS)

    def _upload(self, name: str, document: Document, job_dir: Path, s3: S3) -> None:
        prefix = f"{document['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
        model_dir = job_dir / "model"
        if any(model_dir.iterdir()):
            s3.upload_file(pack(model_dir, job_dir / "model.tar.gz"), f"{prefix}/model.tar.gz")
            self.store.update(
                KIND,
                name,
                lambda d: d.update(ModelArtifacts={"S3ModelArtifacts": f"{prefix}/model.tar.gz"}),
            )
        output_dir = job_dir / "output" / "data"
        if any(output_dir.iterdir()):
            s3.upload_file(pack(output_dir, job_dir / "output.tar.gz"), f"{prefix}/output.tar.gz")
        checkpoints = document.get("CheckpointConfig", {}).get("S3Uri")
        if checkpoints:
            s3.upload_folder(job_dir / "checkpoints", checkpoints)

    # --- status bookkeeping ---------------------------------------------------------------

    def _set_secondary(self, name: str, secondary: str, message: str, training_start=False):
        def change(document: Document) -> None:
            moment = now()
            transitions = document["SecondaryStatusTransitions"]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = moment
            if not transitions or transitions[-1]["Status"] != secondary:
                transitions.append({"Status": secondary, "StartTime": moment})
            transitions[-1]["StatusMessage"] = message
            document["SecondaryStatus"] = secondary
            document["LastModifiedTime"] = moment
            if training_start:
                document["TrainingStartTime"] = moment

        self.store.update(KIND, name, change)

    def _set_status(self, name: str, status: str, secondary: str, message: str, **extra):
        self._set_secondary(name, secondary, message)

        def change(document: Document) -> None:
            document["TrainingJobStatus"] = status
            document.update(extra)
            if status in FINISHED:
                document["TrainingEndTime"] = document["LastModifiedTime"]
                document["SecondaryStatusTransitions"][-1]["EndTime"] = document["TrainingEndTime"]
                started = document.get("TrainingStartTime", document["TrainingEndTime"])
                seconds = max(0, round(document["TrainingEndTime"] - started))
                document["TrainingTimeInSeconds"] = document["BillableTimeInSeconds"] = seconds

        self.store.update(KIND, name, change)

    def _fail(self, name: str, reason: str) -> None:
        self._set_status(name, "Failed", "Failed", reason, FailureReason=reason)

    def _fail_interrupted_jobs(self) -> None:
        for document in self.store.all(KIND):
            if document["TrainingJobStatus"] in ("InProgress", "Stopping"):
                self._fail(
                    document["TrainingJobName"],
                    "InternalServerError: the local SageMaker service stopped while the "
                    "job ran; start it again (it resumes from CheckpointConfig, if set)",
                )


def hosts(document: Document) -> list[str]:
    return [
        f"algo-{i}" for i in range(1, int(document["ResourceConfig"].get("InstanceCount", 1)) + 1)
    ]


def share(folder: Path, targets: list[Path], distribution: str) -> None:
    """A channel downloaded into `folder` (the first host's), on every host: all of it
    (FullyReplicated, hard links), or every N-th object (ShardedByS3Key)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for index, target in reversed(list(enumerate(targets))):  # the first host's folder last
        for number, path in enumerate(files):
            mine = distribution != "ShardedByS3Key" or number % len(targets) == index
            if target == folder:
                if not mine:
                    path.unlink()
                continue
            if mine:
                (target / path.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target / path.relative_to(folder))


def failure_reason(job_dir: Path, exit_code: int) -> str:
    """AWS's form: the container's output/failure, else its exit code."""
    failure = job_dir / "output" / "failure"
    reason = failure.read_text().strip() if failure.is_file() else ""
    detail = f"{reason} (exit code {exit_code})" if reason else f"exit code {exit_code}"
    return f"AlgorithmError: {detail}"


def pack(folder: Path, archive: Path) -> Path:
    """A .tar.gz of the folder's content at the archive's root, as SageMaker packs it."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def summary(document: Document) -> Document:
    keys = (
        "TrainingJobName",
        "TrainingJobArn",
        "CreationTime",
        "TrainingEndTime",
        "LastModifiedTime",
        "TrainingJobStatus",
        "SecondaryStatus",
    )
    return {key: document[key] for key in keys if key in document}
