"""Settings of the functions (environment prefix POSTWERK_), set by the stack's template."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FunctionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_", frozen=True)

    emails_stream: str = "emails"
    results_table: str = "results"
    results_bucket: str = "results"
    endpoint_name: str = "postwerk-emails"
    review_threshold: float = Field(0.75, ge=0, le=1)  # results scoring below need review
    artifacts_bucket: str = "artifacts"  # the model registry and the feedback/ training rows
    review_token: str = ""  # the review API's bearer token; empty: open (local stacks only)
