"""Training jobs: CreateTrainingJob and friends, run as the SageMaker platform runs them.

A job goes Starting (queued while all slots are busy) -> Downloading (S3 channels into the
/opt/ml layout) -> Training (the container, its log to CloudWatch Logs, metrics from the
MetricDefinitions) -> Uploading (model.tar.gz, output.tar.gz, checkpoints) -> Completed,
Failed or Stopped; the life cycle all jobs share is emulation/sagemaker/jobs.py.
"""

import contextlib
import itertools
import json
import os
import re
import shutil
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulation.sagemaker.artifacts import S3, ArtifactError, LogStream, MetricPublisher
from emulation.sagemaker.containers import Containers
from emulation.sagemaker.jobs import FINISHED, INTERRUPTED, JobFailed, Jobs, JobStopped, Run
from emulation.sagemaker.protocol import now, required, validation
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.spot import (
    INTERRUPTED_MESSAGE,
    MAX_WAIT_MESSAGE,
    RESTART_MESSAGE,
    CheckpointSync,
    Plan,
    check_local_path,
    local_folder,
    plan_text,
    unbilled_seconds,
)
from emulation.sagemaker.store import Document, Store

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
STOP_GRACE_SECONDS = 120  # what SageMaker gives a container between SIGTERM and SIGKILL
MAX_INSTANCES = 8  # hosts of one job, all on this machine
STATUS_MESSAGES = {
    "Stopping": "Stopping the training job",
    "Stopped": "The training job was stopped",
    "Completed": "Training job completed",
}

# Called with (job name, metric name, value) for every metric line of a job's log.
MetricListener = Callable[[str, str, float], None]


@dataclass
class TrainingRun(Run):
    on_metric: MetricListener | None = None
    max_runtime_exceeded: bool = False
    failed_hosts: list[str] = field(default_factory=list)  # the first to fail, first
    # managed spot training (spot.py)
    plan: Plan | None = None  # None: on demand
    interrupted: bool = False  # the current attempt was
    max_wait_exceeded: bool = False
    trained_seconds: float = 0.0  # the containers' time over the attempts before this one
    final_metrics: dict[str, dict] = field(default_factory=dict)  # the last of each, any attempt


class TrainingJobs(Jobs):
    kind = "TrainingJob"
    arn_type = "training-job"
    noun = "training job"
    name_pattern = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    not_found_message = "Requested resource not found: training job '{name}'"
    in_use_message = (
        "Training job names must be unique within an AWS account and region, "
        "and a training job with this name already exists ({arn})"
    )
    end_time_key = "TrainingEndTime"
    summary_keys = (
        "TrainingJobName",
        "TrainingJobArn",
        "CreationTime",
        "TrainingEndTime",
        "LastModifiedTime",
        "TrainingJobStatus",
        "SecondaryStatus",
    )
    client_errors = (ArtifactError,)
    interrupted_reason = f"{INTERRUPTED}; start it again (it resumes from CheckpointConfig, if set)"
    stop_grace_seconds = STOP_GRACE_SECONDS
    run_type = TrainingRun

    def __init__(self, store: Store, settings: ServiceSettings, containers: Containers):
        self.containers = containers
        self._slots = threading.Semaphore(settings.max_training_jobs)
        self._plans: dict[str, Plan] = {}  # spot jobs' interruption plans, until they start
        super().__init__(store, settings)

    def start(self, name: str, document: Document, run) -> dict[str, Any]:
        run.plan = self._plans.pop(name, None)
        return super().start(name, document, run)

    def create_trial(
        self, request: dict[str, Any], tuning_job_arn: str, on_metric: MetricListener
    ) -> dict[str, Any]:
        """CreateTrainingJob as a tuning job starts its trials: described with the tuning
        job's ARN, every metric value of its log passed to `on_metric`."""
        name = self.checked_name(request)
        document = self.new_document(name, request) | {"TuningJobArn": tuning_job_arn}
        return self.start(name, document, TrainingRun(on_metric=on_metric))

    # --- one job's life ------------------------------------------------------------------

    def new_document(self, name: str, request: dict[str, Any]) -> Document:
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
        if "LocalPath" in request.get("CheckpointConfig", {}):
            check_local_path(request["CheckpointConfig"]["LocalPath"])
        spot = bool(request.get("EnableManagedSpotTraining"))
        if spot:
            self._plans[name] = Plan.parse(plan_text(request, self.settings.spot_interruptions))
        created = now()
        return {
            "TrainingJobName": name,
            "TrainingJobArn": self.arn(name),
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
            **({"EnableManagedSpotTraining": True} if spot else {}),
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

    def execute(self, name: str, run: TrainingRun) -> None:
        job_dir = self.settings.state_dir / "training-jobs" / name
        try:
            with self._slot(name, run):
                self._train_and_upload(name, run, job_dir)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    @contextlib.contextmanager
    def _slot(self, name: str, run: TrainingRun) -> Iterator[None]:
        """One of POSTWERK_SAGEMAKER_MAX_TRAINING_JOBS: a job waits (Starting) for a free one."""
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
            yield
        finally:
            self._slots.release()

    def _train_and_upload(self, name: str, run: TrainingRun, job_dir: Path) -> None:
        document = self.describe(name)
        s3 = S3()
        for attempt in itertools.count():
            self._set_secondary(name, "Downloading", "Downloading input data")
            bases = self._lay_out(document, job_dir, s3)
            if run.stop_requested.is_set():
                raise JobStopped
            self._set_secondary(
                name, "Training", "Training in progress", training_start=not attempt
            )
            failure = self._train(name, run, document, bases)
            if not run.interrupted:
                break
            # a spot interruption: the instances are gone; wait for capacity, start again
            self._set_secondary(name, "Interrupted", INTERRUPTED_MESSAGE)
            self._wait_for_capacity(name, run, document)
            self._set_secondary(name, "Starting", RESTART_MESSAGE)
        self._set_secondary(name, "Uploading", "Uploading generated training model")
        self._upload(name, document, bases["algo-1"], s3)  # the first host's, as on AWS
        if run.max_runtime_exceeded:
            raise JobStopped("The job exceeded MaxRuntimeInSeconds", "MaxRuntimeExceeded")
        if run.max_wait_exceeded:
            raise JobStopped(MAX_WAIT_MESSAGE, "MaxWaitTimeExceeded")
        if run.stop_requested.is_set():
            raise JobStopped
        if failure is not None:
            raise JobFailed(failure)

    def _wait_for_capacity(self, name: str, run: TrainingRun, document: Document) -> None:
        """After an interruption: the plan's wait, unless the job is stopped or passes
        MaxWaitTimeInSeconds meanwhile (then it ends Stopped: nothing left to upload)."""
        run.interrupted = False
        waited_until = time.monotonic() + run.plan.wait_seconds
        while time.monotonic() < waited_until:
            if max_wait_passed(document):
                raise JobStopped(MAX_WAIT_MESSAGE, "MaxWaitTimeExceeded")
            if run.stop_requested.wait(0.2):
                raise JobStopped

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
        local_path = document.get("CheckpointConfig", {}).get("LocalPath", "")
        for host, base in bases.items():
            if checkpoints:
                # no checkpoints yet: the first run of this job
                with contextlib.suppress(ArtifactError):
                    s3.download_prefix(checkpoints, local_folder(base, local_path))
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
            local_folder(base, local_path).mkdir(parents=True, exist_ok=True)
        return bases

    def _train(self, name: str, run: TrainingRun, document: Document, bases: dict[str, Path]):
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
        checkpoints = document.get("CheckpointConfig", {})
        sync = (
            CheckpointSync(
                local_folder(bases["algo-1"], checkpoints.get("LocalPath", "")),
                checkpoints["S3Uri"],
                self.settings.checkpoint_sync_seconds,
            )
            if checkpoints.get("S3Uri")
            else contextlib.nullcontext()
        )
        with sync:
            final = self._run_hosts(name, run, document, processes)
        watchdog.join()
        self.containers.release(name)
        self.update(name, FinalMetricDataList=list(final.values()))
        if run.interrupted:
            return None  # the exit codes of stopped containers say nothing
        codes = {host: process.wait() for host, process in processes.items()}
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

    def _run_hosts(self, name, run, document, processes) -> dict[str, dict]:
        """Each host's log pumped to its end; the first host's last metric values."""
        final = run.final_metrics
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
        for process in processes.values():
            process.wait()
        return final

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

    def _watch(self, run: TrainingRun, processes: dict, document: Document) -> None:
        """Stop every host on StopTrainingJob, when MaxRuntimeInSeconds (training time, over
        all attempts) or MaxWaitTimeInSeconds passes, when one host fails (its peers would
        wait for it until their own timeouts), or on a spot interruption of its plan."""
        max_runtime = document["StoppingCondition"].get("MaxRuntimeInSeconds")
        started, tick = time.monotonic(), 0.5
        while any(process.poll() is None for process in processes.values()):
            failed = [h for h, p in processes.items() if p.poll() not in (None, 0)]
            if failed:
                run.failed_hosts = failed
                break
            if run.stop_requested.wait(tick):
                break
            trained = run.trained_seconds + time.monotonic() - started
            if max_runtime and trained > max_runtime:
                run.max_runtime_exceeded = True
                break
            if run.plan is not None and max_wait_passed(document):
                run.max_wait_exceeded = True
                break
            if run.plan is not None and run.plan.due(trained, tick):
                run.interrupted = True
                break
        for process in processes.values():
            self.containers.terminate(process, self.settings.stop_grace_seconds)
        run.trained_seconds += time.monotonic() - started

    def _upload(self, name: str, document: Document, job_dir: Path, s3: S3) -> None:
        prefix = f"{document['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
        model_dir = job_dir / "model"
        if any(model_dir.iterdir()):
            s3.upload_file(pack(model_dir, job_dir / "model.tar.gz"), f"{prefix}/model.tar.gz")
            self.update(name, ModelArtifacts={"S3ModelArtifacts": f"{prefix}/model.tar.gz"})
        output_dir = job_dir / "output" / "data"
        if any(output_dir.iterdir()):
            s3.upload_file(pack(output_dir, job_dir / "output.tar.gz"), f"{prefix}/output.tar.gz")
        checkpoints = document.get("CheckpointConfig", {})
        if checkpoints.get("S3Uri"):
            folder = local_folder(job_dir, checkpoints.get("LocalPath", ""))
            s3.upload_folder(folder, checkpoints["S3Uri"])

    # --- secondary statuses -------------------------------------------------------------

    def _set_secondary(self, name: str, secondary: str, message: str, training_start=False):
        def change(document: Document, moment: float) -> None:
            record_secondary(document, moment, secondary, message)
            if training_start:
                document["TrainingStartTime"] = moment

        self._change(name, change)

    def record_status(
        self, document: Document, moment: float, status: str, secondary: str, message: str
    ) -> None:
        record_secondary(document, moment, secondary, message or STATUS_MESSAGES[status])
        if status in FINISHED:
            document["SecondaryStatusTransitions"][-1]["EndTime"] = moment
            started = document.get("TrainingStartTime", moment)
            seconds = max(0, round(moment - started))
            document["TrainingTimeInSeconds"] = seconds
            # spot: not the time without instances, from an interruption to the next start
            unbilled = unbilled_seconds(document["SecondaryStatusTransitions"], moment)
            document["BillableTimeInSeconds"] = max(0, round(moment - started - unbilled))


def record_secondary(document: Document, moment: float, secondary: str, message: str) -> None:
    """The job's secondary status, and its transitions: the one before ends now."""
    transitions = document["SecondaryStatusTransitions"]
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = moment
    if not transitions or transitions[-1]["Status"] != secondary:
        transitions.append({"Status": secondary, "StartTime": moment})
    transitions[-1]["StatusMessage"] = message
    document["SecondaryStatus"] = secondary


def max_wait_passed(document: Document) -> bool:
    """A spot job's MaxWaitTimeInSeconds, counted from its creation (waiting and running)."""
    max_wait = document["StoppingCondition"].get("MaxWaitTimeInSeconds")
    return bool(max_wait) and now() - document["CreationTime"] > max_wait


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
