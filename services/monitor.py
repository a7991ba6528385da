"""monitor: on a schedule (and on `postwerk monitor`), measure the serving model over a
sliding window and close the life cycle.

1. Report: live accuracy and macro-F1 on reviewed e-mails, the needs-review rate, the
   confidence histogram, predicted labels against the champion's training labels (PSI),
   input drift against the results before the window (length, language). Published as
   CloudWatch metrics (Powertools Metrics) and as report.json with plots under
   `monitoring/reports/<time>/` in the artifacts bucket.
2. Retrain when a rule fires: a SageMaker training job like the champion's, on its
   training data plus every correction under `feedback/`, tested on the champion's
   held-out set; the exact objects (with SHA-256) are the job's data manifest.
3. Decide when that job has finished (a later run): the challenger is registered and
   promoted (UpdateEndpoint, blue/green) only if its held-out accuracy beats the
   champion's by more than POSTWERK_PROMOTION_MARGIN (a tie keeps the champion); the
   decision and both scores are recorded.
"""

import io
import json
from datetime import UTC, datetime, timedelta

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services import monitoring, registry, results

logger = Logger(service="monitor")
metrics = Metrics(namespace="postwerk", service="monitor")
PENDING = "monitoring/retraining.json"
OVERRIDABLE = ("window_hours", "min_accuracy", "min_reviewed", "max_label_psi", "promotion_margin")


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_", frozen=True)

    results_table: str = "results"
    artifacts_bucket: str = "artifacts"
    endpoint_name: str = "postwerk-emails"
    window_hours: float = Field(24.0, gt=0)
    min_accuracy: float = Field(0.8, ge=0, le=1)
    min_reviewed: int = Field(20, ge=1)
    max_label_psi: float = Field(0.25, gt=0)
    promotion_margin: float = Field(0.0, ge=0, le=1)  # held-out accuracy points
    code_version: str = "unknown"  # the functions' package key, set by the stack


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    """event: a scheduled event, or from `postwerk monitor` overrides of the window and
    the rules ({"window_hours": 6, "min_accuracy": 0.9, ...})."""
    settings = MonitorSettings(**{k: v for k, v in event.items() if k in OVERRIDABLE})
    stored = results.scan(settings.results_table)
    if not stored:
        metrics.add_metric("Classified", MetricUnit.Count, 0)
        return {"status": "no data", "message": "no results in the table yet: nothing to monitor"}
    champion = champion_entry(settings.artifacts_bucket)
    if champion:  # judge the serving model, not the one it replaced (no retraining loop)
        serving = champion["model_info"]["version"]
        stored = [r for r in stored if r.model.version == serving]
    start = datetime.now(UTC) - timedelta(hours=settings.window_hours)
    window = [r for r in stored if r.classified_at >= start]
    baseline = [r for r in stored if r.classified_at < start]
    training_labels = champion["model_info"].get("train_label_counts", {}) if champion else {}
    rules = monitoring.Rules(settings.min_accuracy, settings.min_reviewed, settings.max_label_psi)
    built = monitoring.report(window, baseline, training_labels, rules)
    publish(built)
    folder = write_report(settings.artifacts_bucket, built, settings.window_hours)
    actions = close_the_loop(settings, built, champion)
    logger.info("monitored", results=built.results, fired=built.fired, actions=actions)
    return {"status": "ok", "report": built.as_dict(), "report_prefix": folder, "actions": actions}


def champion_entry(bucket: str) -> dict | None:
    current = registry.champion(bucket)
    return registry.version(bucket, current["version"]) if current else None


def publish(built: monitoring.Report) -> None:
    metrics.add_metric("Classified", MetricUnit.Count, built.results)
    metrics.add_metric("Reviewed", MetricUnit.Count, built.reviewed)
    for name, value in (
        ("NeedsReviewRate", built.needs_review_rate),
        ("LiveAccuracy", built.live_accuracy),
        ("LiveMacroF1", built.live_macro_f1),
        ("PredictedLabelPSI", built.label_psi),
        ("LengthPSI", built.length_psi),
        ("LanguagePSI", built.language_psi),
    ):
        if value is not None:
            metrics.add_metric(name, MetricUnit.NoUnit, value)


def write_report(bucket: str, built: monitoring.Report, window_hours: float) -> str:
    folder = f"monitoring/reports/{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    s3 = boto3.client("s3")
    document = {"window_hours": window_hours, "created_at": registry.now(), **built.as_dict()}
    s3.put_object(Bucket=bucket, Key=f"{folder}/report.json", Body=json.dumps(document).encode())
    for name, image in plots(built).items():
        s3.put_object(Bucket=bucket, Key=f"{folder}/{name}", Body=image, ContentType="image/png")
    return folder


def plots(built: monitoring.Report) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    charts = {
        "confidence.png": (
            "confidence of the window's predictions",
            [f"{i / 10:.1f}" for i in range(len(built.confidence_histogram))],
            built.confidence_histogram,
        ),
        "labels.png": (
            "predicted labels in the window",
            list(built.predicted_labels),
            list(built.predicted_labels.values()),
        ),
    }
    images = {}
    for name, (title, names, counts) in charts.items():
        figure, axes = pyplot.subplots(figsize=(7, 3.5))
        axes.bar(names, counts, color="#2457c5")
        axes.set_ylim(bottom=0)
        if not any(counts):
            axes.text(0.5, 0.5, "no results in the window", ha="center", transform=axes.transAxes)
        axes.set_title(title)
        axes.set_ylabel("e-mails")
        axes.tick_params(axis="x", labelrotation=30)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        pyplot.close(figure)
        images[name] = buffer.getvalue()
    return images


def close_the_loop(settings: MonitorSettings, built: monitoring.Report, champion) -> list[str]:
    pending = registry.read(settings.artifacts_bucket, PENDING)
    if pending:
        return [follow_retraining(settings, pending, champion)]
    if built.fired and champion:
        return [start_retraining(settings, champion, built.fired)]
    if built.fired:
        return ["rules fired, but no champion in the registry to retrain from"]
    return []


def start_retraining(settings: MonitorSettings, champion: dict, reasons: list[str]) -> str:
    """A job like the champion's, on its training data plus the corrections."""
    bucket = settings.artifacts_bucket
    job = f"retrain-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    prefix = f"retraining/{job}"
    copy_channel(champion, "train", bucket, f"{prefix}/train/")
    copy_prefix(bucket, "feedback/", f"{prefix}/train/feedback-")
    copy_channel(champion, "test", bucket, f"{prefix}/test/")
    sm = boto3.client("sagemaker")
    template = sm.describe_training_job(TrainingJobName=champion["version"])
    channels = [
        channel_config(name, f"s3://{bucket}/{prefix}/{name}/") for name in ("train", "test")
    ]
    sm.create_training_job(
        TrainingJobName=job,
        AlgorithmSpecification=template["AlgorithmSpecification"],
        RoleArn=template["RoleArn"],
        InputDataConfig=channels,
        OutputDataConfig=template["OutputDataConfig"],
        ResourceConfig=template["ResourceConfig"],
        StoppingCondition=template["StoppingCondition"],
        HyperParameters=template.get("HyperParameters", {}),
    )
    registry.write(
        bucket,
        PENDING,
        {
            "job": job,
            "started_at": registry.now(),
            "reasons": reasons,
            "champion": champion["version"],
        },
    )
    return f"started retraining job {job}: {'; '.join(reasons)}"


def copy_channel(entry: dict, channel: str, bucket: str, prefix: str) -> None:
    s3 = boto3.client("s3")
    for item in entry["data_manifest"]:
        if item["channel"] == channel:
            source_bucket, key = registry.s3_parts(item["uri"])
            name = key.rsplit("/", 1)[-1]
            s3.copy_object(
                Bucket=bucket,
                Key=f"{prefix}{name}",
                CopySource={"Bucket": source_bucket, "Key": key},
            )


def copy_prefix(bucket: str, source: str, target: str) -> None:
    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=source)
    for obj in (obj for page in pages for obj in page.get("Contents", [])):
        name = obj["Key"].removeprefix(source).replace("/", "-")
        s3.copy_object(
            Bucket=bucket, Key=f"{target}{name}", CopySource={"Bucket": bucket, "Key": obj["Key"]}
        )


def channel_config(name: str, uri: str) -> dict:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


def follow_retraining(settings: MonitorSettings, pending: dict, champion: dict | None) -> str:
    job = pending["job"]
    status = boto3.client("sagemaker").describe_training_job(TrainingJobName=job)
    if status["TrainingJobStatus"] in ("InProgress", "Stopping"):
        return f"retraining job {job} is still running ({status['SecondaryStatus']})"
    boto3.client("s3").delete_object(Bucket=settings.artifacts_bucket, Key=PENDING)
    if status["TrainingJobStatus"] != "Completed":
        reason = status.get("FailureReason", status["TrainingJobStatus"])
        return f"retraining job {job} ended {status['TrainingJobStatus']}: {reason}"
    challenger = registry.register_job(settings.artifacts_bucket, job, settings.code_version)
    return decide(settings, challenger, champion, pending["reasons"])


def decide(settings: MonitorSettings, challenger: dict, champion: dict | None, reasons) -> str:
    """Promote the challenger only if it beats the champion on the same held-out set."""
    challenger_score = held_out_accuracy(challenger)
    champion_score = held_out_accuracy(champion) if champion else None
    same_set = champion is not None and held_out(champion) == held_out(challenger)
    promote = (
        same_set
        and challenger_score is not None
        and champion_score is not None
        and challenger_score > champion_score + settings.promotion_margin
    )
    decision = {
        "challenger": challenger["version"],
        "champion": champion["version"] if champion else None,
        "challenger_accuracy": challenger_score,
        "champion_accuracy": champion_score,
        "margin": settings.promotion_margin,
        "same_held_out_set": same_set,
        "promoted": promote,
        "reasons": reasons,
    }
    registry.record_decision(settings.artifacts_bucket, decision)
    if not promote:
        return f"challenger {challenger['version']} not promoted: {json.dumps(decision)}"
    update_endpoint(settings.endpoint_name, challenger)
    registry.set_champion(
        settings.artifacts_bucket,
        challenger["version"],
        f"monitor: {challenger_score:.4f} vs {champion_score:.4f} on the held-out set",
    )
    return f"promoted {challenger['version']} ({challenger_score:.4f} vs {champion_score:.4f})"


def held_out_accuracy(entry: dict) -> float | None:
    return entry["model_info"]["metrics"].get("test", {}).get("accuracy")


def held_out(entry: dict) -> set[str]:
    return {item["sha256"] for item in entry["data_manifest"] if item["channel"] == "test"}


def update_endpoint(endpoint: str, challenger: dict) -> None:
    """A new model and config like the serving one, then UpdateEndpoint (blue/green)."""
    sm = boto3.client("sagemaker")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )
    [variant] = config["ProductionVariants"]
    serving = sm.describe_model(ModelName=variant["ModelName"])
    name = f"{challenger['version'][:40]}-{datetime.now(UTC):%H%M%S}"
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=serving["ExecutionRoleArn"],
        PrimaryContainer={
            "Image": serving["PrimaryContainer"]["Image"],
            "ModelDataUrl": challenger["model_data_url"],
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[variant | {"ModelName": name}]
    )
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=name)
