"""The life cycle that training, batch transform and hyperparameter tuning jobs share.

Create checks the job's name, stores its Describe document (InProgress) and starts its work
on a thread of its own; Describe, List and Stop read and change that document. A stop asks
the work to end (InProgress -> Stopping); the work ends the job Completed, Failed or Stopped,
with its end time. A job still in progress when the service stopped ends Failed when the
service starts again: nothing runs it any more.

Each kind of job (a subclass) says what differs: its names and AWS's words, its checks of
the request and its document (`new_document`), its List summary, its work (`execute`), and
what a change of status records beyond the status itself (`record_status`).
"""

import logging
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from emulation.sagemaker.protocol import (
    filter_jobs,
    in_use,
    not_found,
    now,
    paginate,
    required,
    resource_arn,
    validation,
)
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Document, Store

FINISHED = ("Completed", "Failed", "Stopped")
INTERRUPTED = "InternalServerError: the local SageMaker service stopped while the job ran"

log = logging.getLogger("postwerk.sagemaker")


@dataclass
class Run:
    """What the service knows of a job in flight, beyond its stored document."""

    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class JobStopped(Exception):
    """The work ends because it was asked to: the job ends Stopped. `message` and
    `secondary` say why, where the kind records it (training: MaxRuntimeExceeded)."""

    def __init__(self, message: str = "", secondary: str = ""):
        super().__init__(message)
        self.message, self.secondary = message, secondary


class JobFailed(Exception):
    """The work found the job failed: it ends Failed, with this reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Jobs:
    """The jobs of one kind: its API operations, and each job's life."""

    kind: ClassVar[str]  # "TrainingJob": the store's kind, and the prefix of the document's
    # <kind>Name, <kind>Arn and <kind>Status, and of the List answer's <kind>Summaries
    arn_type: ClassVar[str]  # "training-job", in the job's ARN
    noun: ClassVar[str]  # "training job", in messages
    name_pattern: ClassVar[re.Pattern[str]]  # AWS's rule for the job's name
    not_found_message: ClassVar[str]  # AWS's words, with {name}
    in_use_message: ClassVar[str]  # AWS's words, with {name} and {arn}
    end_time_key: ClassVar[str]  # "TrainingEndTime"
    summary_keys: ClassVar[tuple[str, ...]]  # the List summary's members, when present
    list_time_filters: ClassVar[tuple[str, ...]] = ("CreationTime",)  # <field>After/Before
    has_last_modified_time: ClassVar[bool] = True  # in the document, set on every change
    client_errors: ClassVar[tuple[type[Exception], ...]] = ()  # the request's fault: ClientError
    interrupted_reason: ClassVar[str] = INTERRUPTED
    stop_grace_seconds: ClassVar[float] = 60  # how long shutdown() waits for the jobs to end
    run_type: ClassVar[type[Run]] = Run  # what the kind knows of a job in flight

    def __init__(self, store: Store, settings: ServiceSettings):
        self.store, self.settings = store, settings
        self._runs: dict[str, Run] = {}
        self._fail_interrupted_jobs()

    @property
    def name_key(self) -> str:
        return f"{self.kind}Name"

    @property
    def arn_key(self) -> str:
        return f"{self.kind}Arn"

    @property
    def status_key(self) -> str:
        return f"{self.kind}Status"

    # --- the API -------------------------------------------------------------------------

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = self.checked_name(request)
        return self.start(name, self.new_document(name, request), self.run_type())

    def describe(self, name: str) -> Document:
        document = self.store.get(self.kind, name)
        if document is None:
            raise not_found(self.not_found_message.format(name=name))
        return document

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = self.name_key, self.status_key, self.list_time_filters
        jobs = filter_jobs(request, self.store.all(self.kind), *keys)
        return paginate(
            request,
            [self.summary(job) for job in jobs],
            f"{self.kind}Summaries",
            sort_keys={
                "Name": self.name_key,
                "CreationTime": "CreationTime",
                "Status": self.status_key,
            },
        )

    def stop(self, name: str) -> dict[str, Any]:
        status = self.describe(name)[self.status_key]
        if status != "InProgress":
            raise validation(
                f"The request was rejected because the {self.noun} is in status {status}."
            )
        self.set_status(name, "Stopping")
        self._runs[name].stop_requested.set()
        return {}

    def wait(self, name: str, timeout: float | None = None) -> Document:
        """Block until the job has ended (its work done); returns its document."""
        run = self._runs.get(name)
        if run is not None:
            run.done.wait(timeout)
        return self.describe(name)

    def shutdown(self) -> None:
        """Ask every job in flight to stop, and wait for them (stop_grace_seconds at most)."""
        runs = [run for run in self._runs.values() if not run.done.is_set()]
        for run in runs:
            run.stop_requested.set()
        deadline = time.monotonic() + self.stop_grace_seconds
        for run in runs:
            run.done.wait(max(0.0, deadline - time.monotonic()))

    # --- what each kind says -------------------------------------------------------------

    def new_document(self, name: str, request: dict[str, Any]) -> Document:
        """The request checked (ValidationException), as the job's first Describe document."""
        raise NotImplementedError

    def execute(self, name: str, run: Run) -> None:
        """The job's work. Returning ends the job Completed; it raises JobStopped once it has
        stopped on `run.stop_requested`, JobFailed when the job failed, a client error
        (ClientError) or anything else (InternalServerError)."""
        raise NotImplementedError

    def summary(self, document: Document) -> Document:
        """The job in a List answer."""
        return {key: document[key] for key in self.summary_keys if key in document}

    def record_status(
        self, document: Document, moment: float, status: str, secondary: str, message: str
    ) -> None:
        """What a change of status writes beyond the status, the end time and the reason of
        a failure (training: its secondary status and its duration)."""

    # --- for the kinds ---------------------------------------------------------------------

    def checked_name(self, request: dict[str, Any]) -> str:
        name = required(request, self.name_key)
        if not self.name_pattern.match(name):
            member = self.name_key[0].lower() + self.name_key[1:]
            raise validation(
                f"1 validation error detected: Value '{name}' at '{member}' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: "
                f"{self.name_pattern.pattern}"
            )
        return name

    def arn(self, name: str) -> str:
        return resource_arn(self.settings, self.arn_type, name)

    def start(self, name: str, document: Document, run: Run) -> dict[str, Any]:
        """Store the new job and start its work."""
        if not self.store.insert(self.kind, name, document):
            raise in_use(self.in_use_message.format(name=name, arn=document[self.arn_key]))
        self._runs[name] = run
        threading.Thread(
            target=self._work, args=(name, run), name=f"{self.arn_type}-{name}", daemon=True
        ).start()
        return {self.arn_key: document[self.arn_key]}

    def update(self, name: str, **fields: Any) -> Document:
        """Record the job's progress in its document."""
        return self._change(name, lambda document, _: document.update(fields))

    def set_status(
        self, name: str, status: str, message: str = "", secondary: str = ""
    ) -> Document:
        """Move the job to `status`: once it has ended, with its end time, and when it failed,
        with `message` as its FailureReason. `secondary` is a more precise status where the
        kind has one (by default, the status)."""

        def change(document: Document, moment: float) -> None:
            document[self.status_key] = status
            if status in FINISHED:
                document[self.end_time_key] = moment
            if status == "Failed":
                document["FailureReason"] = message
            self.record_status(document, moment, status, secondary or status, message)

        return self._change(name, change)

    def _change(self, name: str, change: Callable[[Document, float], None]) -> Document:
        def apply(document: Document) -> None:
            moment = now()
            change(document, moment)
            if self.has_last_modified_time:
                document["LastModifiedTime"] = moment

        return self.store.update(self.kind, name, apply)

    # --- one job's life ------------------------------------------------------------------

    def _work(self, name: str, run: Run) -> None:
        try:
            self.execute(name, run)
            self.set_status(name, "Completed")
        except JobStopped as stopped:
            self.set_status(name, "Stopped", stopped.message, stopped.secondary)
        except JobFailed as failure:
            self.set_status(name, "Failed", failure.reason)
        except self.client_errors as error:
            self.set_status(name, "Failed", f"ClientError: {error}")
        except Exception as error:
            log.error("%s %s: %s", self.noun, name, traceback.format_exc())
            self.set_status(name, "Failed", f"InternalServerError: {type(error).__name__}: {error}")
        finally:
            run.done.set()

    def _fail_interrupted_jobs(self) -> None:
        for document in self.store.all(self.kind):
            if document[self.status_key] not in FINISHED:
                self.set_status(document[self.name_key], "Failed", self.interrupted_reason)
