"""Model versions from the operator's side: make one the champion (serving), roll back.
The registry itself is services/registry.py (S3 objects, shared with the functions); a
version is its training job's name."""

from postwerk import sagemaker
from postwerk.deploy import image_tag
from postwerk.settings import CliSettings
from services import registry


def promote(
    settings: CliSettings,
    version: str,
    endpoint: str,
    reason: str,
    instances: int = 1,
    must_exist: bool = False,
) -> dict:
    """Serve `version` on the endpoint (created, or updated blue/green) and record it as
    the champion; returns the endpoint's description."""
    bucket = sagemaker.artifact_bucket(settings.bucket)
    entry = registry.register_job(bucket, version, code_version=image_tag())
    served = sagemaker.Served(settings.serving_image, entry["model_data_url"], settings.role_arn)
    description = sagemaker.serve_model(
        settings, served, version[:40], endpoint, instances, must_exist
    )
    if description["EndpointStatus"] == "InService" and not description.get("FailureReason"):
        registry.set_champion(bucket, version, reason)
    return description


def previous_champion(bucket: str) -> str:
    """The version that served before the current champion."""
    history = (registry.champion(bucket) or {}).get("history", [])
    current = history[-1]["version"] if history else None
    earlier = [step["version"] for step in history[:-1] if step["version"] != current]
    if not earlier:
        raise ValueError("no earlier champion to roll back to")
    return earlier[-1]
