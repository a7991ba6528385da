"""The life cycle every kind of job shares (emulation/sagemaker/jobs.py), with a kind whose
work is a function of the test, and the recovery of each real kind after a restart: no
model, no backend, no subprocess."""

import re
import threading

import pytest

from emulation.sagemaker.artifacts import ArtifactError
from emulation.sagemaker.jobs import JobFailed, Jobs, JobStopped, Run
from emulation.sagemaker.protocol import SageMakerError, now
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Store
from emulation.sagemaker.training import TrainingJobs
from emulation.sagemaker.transform import TransformJobs
from emulation.sagemaker.tuning import TuningJobs

WAIT_S = 10


class Chores(Jobs):
    """A kind of job whose work is `work(run)`, set by the test."""

    kind = "ChoreJob"
    arn_type = "chore-job"
    noun = "chore job"
    name_pattern = re.compile(r"^[a-z]+(-[a-z0-9]+)*$")
    not_found_message = "no chore job {name}"
    in_use_message = "chore job {name} exists already ({arn})"
    end_time_key = "ChoreEndTime"
    summary_keys = ("ChoreJobName", "ChoreJobStatus")
    client_errors = (ArtifactError,)
    stop_grace_seconds = WAIT_S

    def __init__(self, store: Store, settings: ServiceSettings, work=lambda run: None):
        super().__init__(store, settings)
        self.work = work

    def new_document(self, name: str, request: dict) -> dict:
        return {
            "ChoreJobName": name,
            "ChoreJobArn": self.arn(name),
            "ChoreJobStatus": "InProgress",
            "CreationTime": now(),
            "LastModifiedTime": now(),
        }

    def execute(self, name: str, run: Run) -> None:
        self.work(run)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "sagemaker.db")


@pytest.fixture
def settings(tmp_path) -> ServiceSettings:
    return ServiceSettings(state_dir=tmp_path)


def ended(jobs: Jobs, name: str) -> dict:
    job = jobs.wait(name, WAIT_S)
    assert job[jobs.status_key] not in ("InProgress", "Stopping"), job
    return job


def fails_with(error: Exception):
    def work(run: Run) -> None:
        raise error

    return work


def test_a_job_is_created_described_and_completes(store, settings):
    jobs = Chores(store, settings)
    answer = jobs.create({"ChoreJobName": "dishes"})
    assert answer == {"ChoreJobArn": "arn:aws:sagemaker:eu-central-1:000000000000:chore-job/dishes"}
    job = ended(jobs, "dishes")
    assert job["ChoreJobStatus"] == "Completed"
    assert job["CreationTime"] <= job["ChoreEndTime"] == job["LastModifiedTime"]
    assert "FailureReason" not in job


def test_names_are_checked_unique_and_found(store, settings):
    jobs = Chores(store, settings)
    with pytest.raises(SageMakerError, match="Value null at 'ChoreJobName'") as missing:
        jobs.create({})
    with pytest.raises(SageMakerError, match=r"at 'choreJobName' failed .* pattern") as invalid:
        jobs.create({"ChoreJobName": "Dishes_2"})
    assert missing.value.code == invalid.value.code == "ValidationException"
    jobs.create({"ChoreJobName": "dishes"})
    with pytest.raises(SageMakerError, match=r"dishes exists already \(arn:.*/dishes\)") as twice:
        jobs.create({"ChoreJobName": "dishes"})
    assert twice.value.code == "ResourceInUse"
    with pytest.raises(SageMakerError, match="no chore job laundry") as unknown:
        jobs.describe("laundry")
    assert unknown.value.code == "ResourceNotFound"
    ended(jobs, "dishes")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (JobFailed("AlgorithmError: exit code 1"), "AlgorithmError: exit code 1"),
        (ArtifactError("no S3 objects"), "ClientError: no S3 objects"),
        (KeyError("oops"), "InternalServerError: KeyError: 'oops'"),
    ],
)
def test_a_failure_ends_the_job_with_its_reason(store, settings, error, reason):
    jobs = Chores(store, settings, work=fails_with(error))
    jobs.create({"ChoreJobName": "dishes"})
    job = ended(jobs, "dishes")
    assert (job["ChoreJobStatus"], job["FailureReason"]) == ("Failed", reason)
    assert "ChoreEndTime" in job


def test_stop_asks_the_work_to_end_and_a_finished_job_cannot_stop(store, settings):
    working = threading.Event()

    def work(run: Run) -> None:
        working.set()
        assert run.stop_requested.wait(WAIT_S)
        raise JobStopped

    jobs = Chores(store, settings, work=work)
    jobs.create({"ChoreJobName": "dishes"})
    assert working.wait(WAIT_S)
    assert jobs.stop("dishes") == {}
    assert ended(jobs, "dishes")["ChoreJobStatus"] == "Stopped"
    with pytest.raises(SageMakerError, match="the chore job is in status Stopped") as again:
        jobs.stop("dishes")
    assert again.value.code == "ValidationException"


def test_list_filters_by_status_and_summarises(store, settings):
    jobs = Chores(store, settings)
    jobs.create({"ChoreJobName": "dishes"})
    ended(jobs, "dishes")
    jobs.work = fails_with(JobFailed("broken"))
    jobs.create({"ChoreJobName": "laundry"})
    ended(jobs, "laundry")
    assert jobs.list({"StatusEquals": "Failed"}) == {
        "ChoreJobSummaries": [{"ChoreJobName": "laundry", "ChoreJobStatus": "Failed"}]
    }
    names = jobs.list({"SortBy": "Name", "SortOrder": "Descending"})["ChoreJobSummaries"]
    assert [job["ChoreJobName"] for job in names] == ["laundry", "dishes"]


def test_shutdown_stops_the_jobs_in_flight(store, settings):
    def work(run: Run) -> None:
        assert run.stop_requested.wait(WAIT_S)
        raise JobStopped

    jobs = Chores(store, settings, work=work)
    jobs.create({"ChoreJobName": "dishes"})
    jobs.shutdown()
    assert jobs.describe("dishes")["ChoreJobStatus"] == "Stopped"


def interrupted(store: Store, kind: str, name: str, status: str, **fields) -> None:
    """A job as the store holds it when the service stopped while the job ran."""
    document = {f"{kind}Name": name, f"{kind}Status": status, "CreationTime": now()}
    store.insert(kind, name, document | fields)


def test_jobs_that_ran_when_the_service_stopped_fail_when_it_starts(store, settings):
    started = now()
    interrupted(
        store, "TrainingJob", "train", "InProgress",
        SecondaryStatus="Training",
        TrainingStartTime=started,
        SecondaryStatusTransitions=[{"Status": "Training", "StartTime": started}],
    )  # fmt: skip
    interrupted(store, "TransformJob", "transform", "Stopping")
    interrupted(store, "HyperParameterTuningJob", "tune", "InProgress")
    interrupted(store, "ChoreJob", "chore", "InProgress")

    training = TrainingJobs(store, settings, containers=None)
    kinds = [
        training,
        TransformJobs(store, settings, endpoints=None),
        TuningJobs(store, settings, training),
        Chores(store, settings),
    ]
    for jobs, name in zip(kinds, ("train", "transform", "tune", "chore"), strict=True):
        job = jobs.describe(name)
        assert job[jobs.status_key] == "Failed"
        assert job["FailureReason"].startswith(
            "InternalServerError: the local SageMaker service stopped while the job ran"
        )
        assert job[jobs.end_time_key] >= job["CreationTime"]
    train = training.describe("train")
    assert train["FailureReason"].endswith("(it resumes from CheckpointConfig, if set)")
    assert train["SecondaryStatus"] == "Failed"
    assert [t["Status"] for t in train["SecondaryStatusTransitions"]] == ["Training", "Failed"]
    assert train["TrainingTimeInSeconds"] == train["BillableTimeInSeconds"] >= 0
