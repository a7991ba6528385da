"""Hyperparameter tuning jobs with AWS's request shape, searched by Optuna.

Strategy          Optuna
Bayesian          GPSampler (Gaussian-process Bayesian optimisation, as SageMaker's own);
                  the first third of the jobs (at most 10) are random, to fit the process
Random            RandomSampler
Grid              every combination of the categorical ranges once (AWS allows no other
                  range type), enqueued in a seeded order
Hyperband         RandomSampler + HyperbandPruner on the objective's per-epoch values

TrainingJobEarlyStoppingType=Auto is SageMaker's median stopping rule, Optuna's MedianPruner:
a job whose objective at an epoch is worse than the median of the finished jobs at that epoch
is stopped. Every trial is a real training job (TrainingJobs.create_trial), named as AWS names
them. The life cycle all jobs share is emulation/sagemaker/jobs.py.
"""

import contextlib
import math
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass
from itertools import product
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from emulation.sagemaker.jobs import FINISHED, JobFailed, Jobs, JobStopped, Run
from emulation.sagemaker.protocol import now, paginate, required, validation
from emulation.sagemaker.settings import ServiceSettings
from emulation.sagemaker.store import Document, Store
from emulation.sagemaker.training import TrainingJobs

TRIAL = "TuningTrial"  # per training job: its tuned values and objective
STRATEGIES = ("Bayesian", "Random", "Grid", "Hyperband")

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- the search space --------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    distribution: BaseDistribution
    reverse_log: bool = False  # ReverseLogarithmic: searched as 1 - value on a log scale

    def to_string(self, value: Any) -> str:
        if self.reverse_log:
            value = 1 - value
        return str(value)


def search_space(ranges: dict[str, Any], strategy: str) -> list[Parameter]:
    parameters = []
    for item in ranges.get("ContinuousParameterRanges", []):
        low, high = bounds(item, float)
        scaling = item.get("ScalingType", "Auto")
        if scaling == "ReverseLogarithmic":
            if not 0 <= low < high < 1:
                raise validation(
                    f"'{item['Name']}': ReverseLogarithmic needs 0 <= MinValue < MaxValue < 1"
                )
            distribution = FloatDistribution(1 - high, 1 - low, log=True)
            parameters.append(Parameter(item["Name"], distribution, reverse_log=True))
            continue
        parameters.append(
            Parameter(item["Name"], FloatDistribution(low, high, log=logarithmic(item, low)))
        )
    for item in ranges.get("IntegerParameterRanges", []):
        low, high = bounds(item, int)
        parameters.append(
            Parameter(item["Name"], IntDistribution(low, high, log=logarithmic(item, low)))
        )
    for item in ranges.get("CategoricalParameterRanges", []):
        values = required(item, "Values")
        parameters.append(Parameter(required(item, "Name"), CategoricalDistribution(values)))
    if not parameters:
        raise validation("ParameterRanges must name at least one hyperparameter to tune")
    names = [p.name for p in parameters]
    if len(set(names)) < len(names):
        raise validation(f"a hyperparameter appears in more than one range: {sorted(names)}")
    if strategy == "Grid" and any(
        not isinstance(p.distribution, CategoricalDistribution) for p in parameters
    ):
        raise validation("the Grid strategy takes CategoricalParameterRanges only")
    return parameters


def search_plan(config: dict[str, Any], definition: dict[str, Any]) -> tuple[list[Parameter], int]:
    """The search space and the number of training jobs of a tuning job, once its
    configuration is checked (ValidationException for what AWS refuses)."""
    strategy = required(config, "Strategy")
    if strategy not in STRATEGIES:
        raise validation(f"Strategy must be one of {', '.join(STRATEGIES)}")
    objective = required(config, "HyperParameterTuningJobObjective")
    if objective.get("Type") not in ("Maximize", "Minimize"):
        raise validation("HyperParameterTuningJobObjective.Type must be Maximize or Minimize")
    metrics = [
        d["Name"]
        for d in required(definition, "AlgorithmSpecification").get("MetricDefinitions", [])
    ]
    if required(objective, "MetricName") not in metrics:
        raise validation(
            f"the objective metric '{objective['MetricName']}' is not among "
            f"the MetricDefinitions ({', '.join(metrics) or 'none'})"
        )
    parameters = search_space(required(config, "ParameterRanges"), strategy)
    static = definition.get("StaticHyperParameters", {})
    if clash := sorted({p.name for p in parameters} & set(static)):
        raise validation(f"hyperparameters both static and tuned: {', '.join(clash)}")
    limits = required(config, "ResourceLimits")
    if strategy == "Hyperband" and config.get("TrainingJobEarlyStoppingType", "Off") != "Off":
        raise validation("Hyperband stops jobs itself: TrainingJobEarlyStoppingType must be Off")
    if strategy == "Grid":
        if "MaxNumberOfTrainingJobs" in limits:
            raise validation(
                "with the Grid strategy the number of jobs is the grid's size: "
                "leave MaxNumberOfTrainingJobs out"
            )
        max_jobs = len(list(product(*(p.distribution.choices for p in parameters))))
    else:
        max_jobs = int(required(limits, "MaxNumberOfTrainingJobs"))
    if max_jobs < 1 or int(required(limits, "MaxParallelTrainingJobs")) < 1:
        raise validation("MaxNumberOfTrainingJobs and MaxParallelTrainingJobs must be >= 1")
    return parameters, max_jobs


def bounds(item: dict[str, Any], kind: type) -> tuple[Any, Any]:
    name = required(item, "Name")
    try:
        low, high = kind(required(item, "MinValue")), kind(required(item, "MaxValue"))
    except ValueError as error:
        raise validation(
            f"'{name}': MinValue and MaxValue must be {kind.__name__} values ({error})"
        ) from error
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise validation(f"'{name}': MinValue ({low}) must not exceed MaxValue ({high})")
    return low, high


def logarithmic(item: dict[str, Any], low: float) -> bool:
    scaling = item.get("ScalingType", "Auto")
    if scaling not in ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic"):
        raise validation(f"'{item['Name']}': unknown ScalingType '{scaling}'")
    if scaling == "ReverseLogarithmic":
        raise validation(f"'{item['Name']}': ReverseLogarithmic applies to continuous ranges")
    if scaling == "Logarithmic" and low <= 0:
        raise validation(f"'{item['Name']}': Logarithmic scaling needs MinValue > 0")
    return scaling == "Logarithmic"


def make_study(config: dict[str, Any], parameters: list[Parameter], max_jobs: int):
    strategy = config["Strategy"]
    seed = config.get("RandomSeed")
    direction = (
        "maximize"
        if config["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
        else "minimize"
    )
    if strategy == "Bayesian":
        sampler = optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=min(10, max(1, max_jobs // 3)),
            warn_independent_sampling=False,
        )
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    if strategy == "Hyperband":
        hyperband = config.get("StrategyConfig", {}).get("HyperbandStrategyConfig", {})
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=int(hyperband.get("MinResource", 1)),
            max_resource=int(hyperband.get("MaxResource", "auto"))
            if "MaxResource" in hyperband
            else "auto",
        )
    elif config.get("TrainingJobEarlyStoppingType", "Off") == "Auto":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    else:
        pruner = optuna.pruners.NopPruner()
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
    if strategy == "Grid":  # every combination once, in a seeded order
        # (enqueued rather than GridSampler, which calls study.stop() outside optimize())
        grid = [
            dict(zip([p.name for p in parameters], values, strict=True))
            for values in product(*(p.distribution.choices for p in parameters))
        ]
        for combination in random.Random(seed).sample(grid, len(grid)):
            study.enqueue_trial(combination)
    return study


# --- the service's API -------------------------------------------------------------------


class TuningJobs(Jobs):
    kind = "HyperParameterTuningJob"
    arn_type = "hyper-parameter-tuning-job"
    noun = "hyperparameter tuning job"
    name_pattern = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
    not_found_message = "Amazon SageMaker can't find a tuning job with name {name}"
    in_use_message = "A hyperparameter tuning job named {name} already exists"
    end_time_key = "HyperParameterTuningEndTime"
    summary_keys = (
        "HyperParameterTuningJobName",
        "HyperParameterTuningJobArn",
        "HyperParameterTuningJobStatus",
        "CreationTime",
        "HyperParameterTuningEndTime",
        "LastModifiedTime",
        "TrainingJobStatusCounters",
        "ObjectiveStatusCounters",
    )
    list_time_filters = ("CreationTime", "LastModifiedTime")

    def __init__(self, store: Store, settings: ServiceSettings, training: TrainingJobs):
        self.training = training
        super().__init__(store, settings)

    def new_document(self, name: str, request: dict[str, Any]) -> Document:
        config = required(request, "HyperParameterTuningJobConfig")
        definition = training_definition(required(request, "TrainingJobDefinition"), config)
        search_plan(config, definition)
        created = now()
        return {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": self.arn(name),
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": created,
            "LastModifiedTime": created,
            "TrainingJobStatusCounters": {
                "Completed": 0,
                "InProgress": 0,
                "RetryableError": 0,
                "NonRetryableError": 0,
                "Stopped": 0,
            },
            "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        }

    def execute(self, name: str, run: Run) -> None:
        Search(self, name, run).run()

    def summary(self, document: Document) -> Document:
        """HyperParameterTuningJobSummary."""
        config = document["HyperParameterTuningJobConfig"]
        return super().summary(document) | {
            "Strategy": config["Strategy"],
            "ResourceLimits": config["ResourceLimits"],
        }

    def delete(self, name: str) -> dict[str, Any]:
        """The tuning job's entry only: its training jobs and artifacts stay, as on AWS."""
        status = self.describe(name)["HyperParameterTuningJobStatus"]
        if status in ("InProgress", "Stopping"):
            raise validation(f"the tuning job {name} is {status}; stop it before deleting it")
        self.store.delete(self.kind, name)
        for trial in self.store.all(TRIAL):
            if trial["TuningJobName"] == name:
                self.store.delete(TRIAL, trial["TrainingJobName"])
        return {}

    def list_training_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        name = required(request, "HyperParameterTuningJobName")
        self.describe(name)
        summaries = [
            self.trial_summary(trial)
            for trial in self.store.all(TRIAL)
            if trial["TuningJobName"] == name
        ]
        if "StatusEquals" in request:
            summaries = [s for s in summaries if s["TrainingJobStatus"] == request["StatusEquals"]]
        for summary in summaries:  # sortable by objective; jobs without one sort last
            metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric")
            summary["_objective"] = metric["Value"] if metric else -math.inf
        page = paginate(
            request,
            summaries,
            "TrainingJobSummaries",
            sort_keys={
                "Name": "TrainingJobName",
                "CreationTime": "CreationTime",
                "Status": "TrainingJobStatus",
                "FinalObjectiveMetricValue": "_objective",
            },
        )
        for summary in page["TrainingJobSummaries"]:
            summary.pop("_objective")
        return page

    def trial_summary(self, trial: Document) -> Document:
        """HyperParameterTrainingJobSummary: the training job as its tuning job sees it."""
        job = self.training.describe(trial["TrainingJobName"])
        summary = {
            "TrainingJobName": job["TrainingJobName"],
            "TrainingJobArn": job["TrainingJobArn"],
            "TuningJobName": trial["TuningJobName"],
            "CreationTime": job["CreationTime"],
            "TrainingJobStatus": job["TrainingJobStatus"],
            "TunedHyperParameters": trial["TunedHyperParameters"],
            "ObjectiveStatus": trial["ObjectiveStatus"],
        }
        for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
            if key in job:
                summary[key] = job[key]
        if "Value" in trial:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": trial["ObjectiveType"],
                "MetricName": trial["MetricName"],
                "Value": trial["Value"],
            }
        return summary


def training_definition(definition: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The definition as AWS describes it: with ResourceConfig also when the request had
    HyperParameterTuningResourceConfig (what SDK 2.x sends), and the objective as the
    static hyperparameter `_tuning_objective_metric`."""
    definition = dict(definition)
    if "ResourceConfig" not in definition and "HyperParameterTuningResourceConfig" in definition:
        tuning_resources = definition["HyperParameterTuningResourceConfig"]
        definition["ResourceConfig"] = {
            key: tuning_resources[key]
            for key in ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId")
            if key in tuning_resources
        }
    metric = config.get("HyperParameterTuningJobObjective", {}).get("MetricName")
    if metric:
        static = definition.get("StaticHyperParameters", {})
        definition["StaticHyperParameters"] = static | {"_tuning_objective_metric": metric}
    return definition


class Search:
    """One tuning job's loop: ask Optuna, launch a training job, tell Optuna its result."""

    def __init__(self, jobs: TuningJobs, name: str, run: Run):
        self.jobs, self.name, self.stop_requested = jobs, name, run.stop_requested
        document = jobs.describe(name)
        self.arn = document["HyperParameterTuningJobArn"]
        self.config = document["HyperParameterTuningJobConfig"]
        self.definition = document["TrainingJobDefinition"]
        self.objective = self.config["HyperParameterTuningJobObjective"]
        self.parameters, self.max_jobs = search_plan(self.config, self.definition)
        self.study = make_study(self.config, self.parameters, self.max_jobs)
        self.running: dict[str, optuna.Trial] = {}
        self.steps: dict[str, int] = {}
        self.pruned: set[str] = set()
        self.lock = threading.Lock()
        self.failure = ""  # why the search cannot go on

    def run(self) -> None:
        launched = 0
        max_parallel = int(self.config["ResourceLimits"]["MaxParallelTrainingJobs"])
        deadline = self.config["ResourceLimits"].get("MaxRuntimeInSeconds")
        deadline = time.monotonic() + deadline if deadline else math.inf
        while True:
            if self._collect_finished():
                self._count()
            stopping = self.stop_requested.is_set() or self.failure or time.monotonic() > deadline
            if stopping:
                for job in list(self.running):
                    self._stop_job(job)
            elif (
                launched < self.max_jobs
                and not self._complete()
                and len(self.running) < max_parallel
            ):
                launched += 1
                self._launch(launched)
                self._count()
                continue
            if not self.running:
                break
            time.sleep(0.2)
        self._end()

    def _launch(self, number: int) -> None:
        distributions = {p.name: p.distribution for p in self.parameters}
        trial = self.study.ask(distributions)
        tuned = {p.name: p.to_string(trial.params[p.name]) for p in self.parameters}
        job = f"{self.name}-{number:03d}-{secrets.token_hex(4)}"
        request = {
            "TrainingJobName": job,
            **{
                key: value
                for key, value in self.definition.items()
                if key
                not in (
                    "StaticHyperParameters",
                    "HyperParameterTuningResourceConfig",
                    "DefinitionName",
                    "TuningObjective",
                    "HyperParameterRanges",
                )
            },
            "HyperParameters": self.definition.get("StaticHyperParameters", {}) | tuned,
        }
        if "CheckpointConfig" in request:  # each trial its own: none resumes another's
            checkpoints = request["CheckpointConfig"]
            uri = f"{checkpoints['S3Uri'].rstrip('/')}/{job}/"
            request["CheckpointConfig"] = checkpoints | {"S3Uri": uri}
        self.jobs.store.insert(
            TRIAL,
            job,
            {
                "TrainingJobName": job,
                "TuningJobName": self.name,
                "TunedHyperParameters": tuned,
                "ObjectiveStatus": "Pending",
                "ObjectiveType": self.objective["Type"],
                "MetricName": self.objective["MetricName"],
            },
        )
        with self.lock:
            self.running[job] = trial
        try:
            self.jobs.training.create_trial(request, self.arn, self._on_metric)
        except Exception as error:  # a definition AWS would refuse: the whole search fails
            with self.lock:
                self.running.pop(job)
            self.jobs.store.delete(TRIAL, job)
            self.study.tell(trial, state=TrialState.FAIL)
            self.failure = f"cannot start a training job: {getattr(error, 'message', error)}"

    def _on_metric(self, job: str, metric: str, value: float) -> None:
        """Each objective value of a running job is one step for the pruner."""
        if metric != self.objective["MetricName"]:
            return
        with self.lock:
            trial = self.running.get(job)
            if trial is None or job in self.pruned:
                return
            step = self.steps[job] = self.steps.get(job, 0) + 1
            trial.report(value, step)
            prune = trial.should_prune()
            if prune:
                self.pruned.add(job)
        if prune:
            self._stop_job(job)

    def _stop_job(self, job: str) -> None:
        # finished meanwhile
        with contextlib.suppress(Exception):
            self.jobs.training.stop(job)

    def _collect_finished(self) -> bool:
        """Tell Optuna the results of the jobs that ended; True if any did."""
        finished = False
        for job in list(self.running):
            status = self.jobs.training.describe(job)["TrainingJobStatus"]
            if status not in FINISHED:
                continue
            document = self.jobs.training.wait(job)  # its metrics and artifacts are in
            with self.lock:
                trial = self.running.pop(job)
            self._record(job, trial, document)
            finished = True
        return finished

    def _record(self, job: str, trial: optuna.Trial, document: Document) -> None:
        values = {m["MetricName"]: m["Value"] for m in document.get("FinalMetricDataList", [])}
        value = values.get(self.objective["MetricName"])
        status = document["TrainingJobStatus"]
        if job in self.pruned or (status == "Stopped" and value is not None):
            self.study.tell(trial, state=TrialState.PRUNED)
        elif status == "Completed" and value is not None and math.isfinite(value):
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
        objective = "Succeeded" if value is not None and math.isfinite(value) else "Failed"
        changes = {
            "ObjectiveStatus": objective,
            **({"Value": value} if objective == "Succeeded" else {}),
        }
        self.jobs.store.update(TRIAL, job, lambda d: d.update(changes))

    def _count(self) -> None:
        trials = [t for t in self.jobs.store.all(TRIAL) if t["TuningJobName"] == self.name]
        summaries = [self.jobs.trial_summary(t) for t in trials]
        statuses = [s["TrainingJobStatus"] for s in summaries]
        counters = {
            "Completed": statuses.count("Completed"),
            "InProgress": statuses.count("InProgress") + statuses.count("Stopping"),
            "RetryableError": 0,
            "NonRetryableError": statuses.count("Failed"),
            "Stopped": statuses.count("Stopped"),
        }
        objectives = [s["ObjectiveStatus"] for s in summaries]
        changes: dict[str, Any] = {
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": {
                k: objectives.count(k) for k in ("Succeeded", "Pending", "Failed")
            },
        }
        if best := self._best(summaries):
            changes["BestTrainingJob"] = best
        self.jobs.update(self.name, **changes)

    def _best(self, summaries: list[Document]) -> Document | None:
        scored = [
            s
            for s in summaries
            if s["TrainingJobStatus"] == "Completed"
            and "FinalHyperParameterTuningJobObjectiveMetric" in s
        ]
        if not scored:
            return None
        sign = 1 if self.objective["Type"] == "Maximize" else -1
        return max(
            scored, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        )

    def _complete(self) -> bool:
        """TuningJobCompletionCriteria: a target value reached, or no progress for N jobs."""
        criteria = self.config.get("TuningJobCompletionCriteria", {})
        completed = [t for t in self.study.trials if t.state == TrialState.COMPLETE]
        if not completed:
            return False
        best = self.study.best_value
        target = criteria.get("TargetObjectiveMetricValue")
        maximize = self.objective["Type"] == "Maximize"
        if target is not None and (best >= target if maximize else best <= target):
            return True
        patience = criteria.get("BestObjectiveNotImproving", {}).get(
            "MaxNumberOfTrainingJobsNotImproving"
        )
        if patience:
            since_best = len(completed) - 1 - completed.index(self.study.best_trial)
            return since_best >= patience
        return False

    def _end(self) -> None:
        """How the search ended, for the job's status: returning, it Completed."""
        if self.failure:
            raise JobFailed(self.failure)
        if self.stop_requested.is_set():
            raise JobStopped
        if self.jobs.describe(self.name)["ObjectiveStatusCounters"]["Succeeded"] == 0:
            raise JobFailed(
                f"no training job reported the objective metric '{self.objective['MetricName']}'"
            )
