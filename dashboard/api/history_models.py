"""What the over-time routes (dashboard/api/history.py) accept and answer, declared once for
validation and for the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from analytics.formatting import NAME_RULE, plain_name
from analytics.services.history import MAX_CAMPAIGN, MAX_SEED
from dashboard.api.models import MAX_LIMIT, Number, Out, Query


class MoversQuery(Query):
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description="Movers (and newly at risk) listed.")


class SnapshotItem(Out):
    snapshot_id: str
    as_of: str = Field(description="the date the snapshot is of (YYYY-MM-DD): ?snapshot=<as_of>")
    model_version: str
    kind: str = Field(description="promote | refresh | history | manual")
    customers: int
    in_sample: bool = Field(description="scored by a model trained on this very data")
    outcome_known: bool = Field(description="the data says who left in its window")
    predicted_churn: Number = Field(None, description="mean p over the snapshot's base")
    realised_churn: Number = Field(None, description="share who left in its window, once known")
    current: bool = Field(description="the snapshot the live views show")


class Snapshots(Out):
    snapshots: list[SnapshotItem] = Field(description="newest first, one per as_of")
    note: str


class Mover(Out):
    customer_id: str
    p_churn: float
    p_churn_previous: float
    rise: float
    newly_at_risk: bool


class Movers(Out):
    as_of: str | None
    previous_as_of: str | None
    items: list[Mover] = Field(description="ranked by the rise in p_churn, largest first")
    newly_at_risk: list[Mover] = Field(description="on the at-risk list now, not before")
    note: str


class RevenueMonth(Out):
    month: str
    mrr_start: float
    mrr_end: float
    new: float
    reactivation: float
    expansion: float
    contraction: float
    churned: float
    net: float
    grr: Number
    nrr: Number
    revenue_churn_rate: Number


class Revenue(Out):
    months: list[RevenueMonth]
    note: str


class RealisedSnapshot(Out):
    as_of: str
    model_version: str
    in_sample: bool
    realised_roc_auc: Number = None
    realised_pr_auc: Number = None
    realised_lift: Number = None
    expected_roc_auc: Number = None
    calibration: list[dict]


class Drift(Out):
    feature: str
    psi: Number
    level: str = Field(description="stable < 0.1, moderate 0.1-0.25, large > 0.25, or missing")


class Monitoring(Out):
    snapshots: list[RealisedSnapshot]
    drift: list[Drift]
    watched_model: str | None = Field(
        description="the model that scored the newest snapshot of data it was not trained on"
    )
    banner: str | None = Field(description="why a retrain is suggested, or null")
    note: str


class CampaignBody(BaseModel):
    """A campaign from the planner's contact list of the selection (the query's filters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    control_share: float = Field(0.10, gt=0, le=0.5, description="share held out as control")
    limit: int | None = Field(
        None,
        ge=1,
        le=MAX_CAMPAIGN,
        description="the first N by expected loss; default: the planner's best N",
    )
    save_rate: float | None = Field(None, ge=0, le=1)
    cost_per_contact: float | None = Field(None, ge=0)
    margin: float | None = Field(None, gt=0, le=1)
    discount: float | None = Field(None, ge=0, le=1)
    seed: int | None = Field(
        None, ge=1, le=MAX_SEED, description="for a reproducible control group"
    )

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not plain_name(value):
            raise ValueError(NAME_RULE)
        return value


class CampaignCreated(Out):
    campaign_id: str
    name: str
    as_of: str
    treated: int
    control: int
    treated_ids: list[str] = Field(description="only the treated are contacted")


class CampaignItem(Out):
    campaign_id: str
    name: str
    as_of: str
    control_share: float
    treated: int
    control: int
    outcome_as_of: str | None
    measured_save_rate: Number = None
    ci_low: Number = None
    ci_high: Number = None
    note: str | None = None


class Campaigns(Out):
    campaigns: list[CampaignItem]
    note: str


class AlertRule(Out):
    id: int
    name: str
    kind: str = Field(description="mrr_at_risk_up | new_at_risk | high_value_to_high | "
                      "segment_churn | model_decay")  # fmt: skip
    threshold: float
    channel: str = Field(description="webhook | email")
    target: str = Field(description="shown whole to admins, without its path to managers")
    owner: str | None = Field(description="the manager whose scope the rule covers, or null")


class AlertRules(Out):
    rules: list[AlertRule]


class Delivery(Out):
    id: int
    rule_id: int
    state: str = Field(description="pending | sending | sent | failed")
    attempts: int
    last_error: str | None


class Deliveries(Out):
    deliveries: list[Delivery]


RESPONSES = (Snapshots, Movers, Revenue, Monitoring, CampaignCreated, Campaigns, AlertRules,
             AlertRule, Delivery, Deliveries)  # fmt: skip
