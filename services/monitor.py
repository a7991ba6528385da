"""monitor: on a schedule (and on `postwerk monitor`), measure the serving model over a
sliding window and decide what the life cycle does next. It only measures and decides;
the steps themselves are services/lifecycle.py, the measures services/measures.py.

1. Report: live accuracy and macro-F1 on reviewed e-mails, the needs-review rate, the
   confidence histogram, predicted labels against the champion's training labels (PSI),
   input drift against the results before the window (length, language). Published as
   CloudWatch metrics (Powertools Metrics) and as `monitoring/reports/<time>/report.json`
   in the artifacts bucket (`postwerk monitor` draws its plots).
2. Retrain when a rule fires: a training job like the champion's, on its training data
   plus every correction, tested on the champion's held-out set.
3. Decide when that job has finished (a later run): the challenger is registered and
   promoted (UpdateEndpoint, blue/green) only if its held-out accuracy beats the
   champion's by more than POSTWERK_PROMOTION_MARGIN (a tie keeps the champion).
4. Refresh the reply-suggestion index: a promotion here does not wait for the endpoint
   (a Lambda cannot wait minutes), so a later run, once the endpoint serves the new model,
   rebuilds an index holding the old model's vectors (services/replies/reindex.py).
   Its failure is logged and said in `actions`; the report and the decision stand.
"""

import json
import time
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from services import clients, lifecycle, measures, registry, results, storage
from services.registry import ModelVersion
from services.replies import reindex
from services.settings import MONITOR_OVERRIDES, FunctionSettings

logger = Logger(service="monitor")
metrics = Metrics(namespace="postwerk", service="monitor")
RETURN_MARGIN_S = 30  # of the function's time, kept for the answer after a reindex


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    """event: a scheduled event, or from `postwerk monitor` overrides of the window and
    the rules ({"window_hours": 6, "min_accuracy": 0.9, ...})."""
    settings = FunctionSettings(**{k: v for k, v in event.items() if k in MONITOR_OVERRIDES})
    stored = results.scan(settings.results_table)
    if not stored:
        metrics.add_metric("Classified", MetricUnit.Count, 0)
        return {"status": "no data", "message": "no results in the table yet: nothing to monitor"}
    champion = registry.champion_version(settings.artifacts_bucket)
    if champion:  # judge the serving model, not the one it replaced (no retraining loop)
        stored = [r for r in stored if r.model.version == champion.model_info.version]
    start = datetime.now(UTC) - timedelta(hours=settings.window_hours)
    window = [r for r in stored if r.classified_at >= start]
    baseline = [r for r in stored if r.classified_at < start]
    training_labels = champion.model_info.train_label_counts if champion else {}
    rules = measures.Rules(settings.min_accuracy, settings.min_reviewed, settings.max_label_psi,
                           settings.max_ece_increase)  # fmt: skip
    built = measures.report(window, baseline, training_labels, rules, training_ece(champion))
    publish(built)
    folder = write_report(settings.artifacts_bucket, built, settings.window_hours)
    actions = decide(settings, built, champion)
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RETURN_MARGIN_S
    actions += refresh_reply_index(settings, deadline)
    logger.info("monitored", results=built.results, fired=built.fired, actions=actions)
    return {"status": "ok", "report": built.as_dict(), "window_hours": settings.window_hours,
            "report_prefix": folder, "actions": actions}  # fmt: skip


def publish(built: measures.Report) -> None:
    metrics.add_metric("Classified", MetricUnit.Count, built.results)
    metrics.add_metric("Reviewed", MetricUnit.Count, built.reviewed)
    for name, value in (
        ("NeedsReviewRate", built.needs_review_rate),
        ("LiveAccuracy", built.live_accuracy),
        ("LiveMacroF1", built.live_macro_f1),
        ("LiveCalibrationError", built.live_ece),
        ("PredictedLabelPSI", built.label_psi),
        ("LengthPSI", built.length_psi),
        ("LanguagePSI", built.language_psi),
    ):
        if value is not None:
            metrics.add_metric(name, MetricUnit.NoUnit, value)


def training_ece(champion: ModelVersion | None) -> float | None:
    """The champion's calibration error on its held-out split as training measured it (test,
    else validation; model_info.json's `calibrated_ece`, the score serving gives); None for
    a model trained before calibration."""
    metrics = champion.model_info.metrics if champion else {}
    split = metrics.get("test") or metrics.get("validation") or {}
    return split.get("calibrated_ece")


def write_report(bucket: str, built: measures.Report, window_hours: float) -> str:
    folder = f"monitoring/reports/{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    document = {"window_hours": window_hours, "created_at": registry.now(), **built.as_dict()}
    storage.write(bucket, f"{folder}/report.json", json.dumps(document).encode())
    return folder


def decide(
    settings: FunctionSettings, built: measures.Report, champion: ModelVersion | None
) -> list[str]:
    """What the life cycle does next, in words: follow a pending retraining, or start one."""
    bucket = settings.artifacts_bucket
    if pending := lifecycle.pending_retraining(bucket):
        return [follow_retraining(settings, pending, champion)]
    if built.fired and champion:
        job = lifecycle.start_retraining(bucket, champion, built.fired)
        return [f"started retraining job {job}: {'; '.join(built.fired)}"]
    if built.fired:
        return ["rules fired, but no champion in the registry to retrain from"]
    return []


def refresh_reply_index(settings: FunctionSettings, deadline: float) -> list[str]:
    """The reply index rebuilt if the serving model is not the one whose vectors it holds,
    in words (nothing when there is no index or it is current). Never raises: the report
    is written and the decision taken by now."""
    try:
        done = reindex.refresh_index(settings.artifacts_bucket, settings.endpoint_name, deadline)
    except Exception as error:  # whatever it is, the monitor's run stands; `actions` says it
        logger.warning("reply index not refreshed", error=type(error).__name__, reason=str(error))
        return [f"reply index not refreshed ({error}): run `postwerk reindex-replies`"]
    return [done] if done else []


def follow_retraining(
    settings: FunctionSettings, pending: dict, champion: ModelVersion | None
) -> str:
    job = pending["job"]
    status = clients.client("sagemaker").describe_training_job(TrainingJobName=job)
    if status["TrainingJobStatus"] in ("InProgress", "Stopping"):
        return f"retraining job {job} is still running ({status['SecondaryStatus']})"
    bucket = settings.artifacts_bucket
    lifecycle.forget_retraining(bucket)
    if status["TrainingJobStatus"] != "Completed":
        reason = status.get("FailureReason", status["TrainingJobStatus"])
        return f"retraining job {job} ended {status['TrainingJobStatus']}: {reason}"
    challenger = registry.register_job(bucket, job, settings.code_version)
    decision = lifecycle.decide(
        bucket, challenger, champion, settings.promotion_margin, pending["reasons"]
    )
    if decision.promoted:
        scores = f"{decision.challenger_accuracy:.4f} vs {decision.champion_accuracy:.4f}"
        lifecycle.promote(
            bucket,
            job,
            settings.endpoint_name,
            lifecycle.serving_like(settings.endpoint_name),
            reason=f"monitor: {scores} on the held-out set",
            code_version=settings.code_version,
            wait=False,
        )
    return lifecycle.describe_decision(decision)
