"""Settings of the functions (environment prefix POSTWERK_), set by the stack's template."""

from typing import Annotated

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Team = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,40}$")]  # a queue's name ends with it


class RoutingTable(BaseModel):
    """Which team answers which category (services/routing.py); unlisted: the default."""

    model_config = {"frozen": True}

    default: Team = "care"
    teams: dict[str, Team] = {}  # category -> team

    def team(self, category: str) -> str:
        return self.teams.get(category, self.default)


class FunctionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_", frozen=True)

    emails_stream: str = "emails"
    results_table: str = "results"
    results_bucket: str = "results"
    endpoint_name: str = "postwerk-emails"
    # Results scoring below need review, for a model without per-label review thresholds
    # (calibration.json); the endpoint's answer carries those where the model has them.
    review_threshold: float = Field(0.75, ge=0, le=1)
    artifacts_bucket: str = "artifacts"  # the model registry and the feedback/ training rows
    raw_bucket: str = "raw"  # raw e-mails: where the mailbox door stores what it fetches
    review_token: str = ""  # the review API's bearer token; empty: open (local stacks only)
    code_version: str = "unknown"  # the functions' package key, set by the stack
    event_bus: str = ""  # where results are routed (services/routing.py); empty: nowhere
    routing: RoutingTable = RoutingTable()  # POSTWERK_ROUTING: JSON, the RoutingTable parameter
    support_address: str = ""  # replies go out from it (SES); empty: no replies are sent
    auto_reply_every_days: float = Field(7.0, gt=0)  # one automatic reply per sender in it

    # The monitor: its sliding window and the rules that start retraining and promote.
    window_hours: float = Field(24.0, gt=0)
    min_accuracy: float = Field(0.8, ge=0, le=1)  # live accuracy on reviewed e-mails
    min_reviewed: int = Field(20, ge=1)  # ... judged only with this many reviews
    max_label_psi: float = Field(0.25, gt=0)  # predicted labels against training's
    # Calibration error of the served scores on reviewed e-mails above training's by this
    # (judged, like live accuracy, on min_reviewed reviews at least)
    max_ece_increase: float = Field(0.1, gt=0, le=1)
    promotion_margin: float = Field(0.0, ge=0, le=1)  # held-out accuracy points to beat


# What `postwerk monitor` (and a scheduled event) may override for one run.
MONITOR_OVERRIDES = ("window_hours", "min_accuracy", "min_reviewed", "max_label_psi",
                     "max_ece_increase", "promotion_margin")  # fmt: skip
