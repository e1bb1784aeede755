"""Request and response declarations of /api/v1 (pydantic). The routes validate their query
parameters with these models, and the OpenAPI document is generated from the same models, so
the document cannot drift from what the server accepts and returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics import columns as C

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50

Number = float | None


class Query(BaseModel):
    """Query parameters: unknown ones are the filters (checked against the data's levels)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class AtRiskQuery(Query):
    sort: list[str] = Field(
        default_factory=list,
        description="Sort keys: a column name, '-' in front for descending (repeatable). "
        "Default: expected_loss descending.",
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size.")
    offset: int = Field(0, ge=0, description="Rows to skip.")


class AuditQuery(Query):
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="The newest N events.")


class TrendQuery(Query):
    split: bool = Field(False, description="One line per segment.")


class DriversQuery(Query):
    factor: str | None = Field(
        None, description="The factor to break churn down by (a feature or 'segment')."
    )


class PlannerQuery(Query):
    save_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of would-be churners an offer keeps (default: RETENTION_SAVE_RATE).",
    )
    cost_per_contact: float | None = Field(
        None, ge=0, description="Cost of one contact (default: RETENTION_COST_PER_CONTACT)."
    )
    margin: float | None = Field(
        None, gt=0, le=1, description="Gross margin m (default: RETENTION_MARGIN)."
    )
    discount: float | None = Field(
        None, ge=0, le=1, description="Monthly discount rate d (default: RETENTION_DISCOUNT)."
    )
    contacts: int = Field(50, ge=0, le=MAX_LIMIT, description="Contacts listed with the plan.")


class ThresholdQuery(Query):
    threshold: float | None = Field(
        None, ge=0, le=1, description="Decision threshold t (default: the model's)."
    )


# -- responses ---------------------------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldError(Out):
    field: str
    message: str


class Error(Out):
    error: str
    errors: list[FieldError] = Field(
        [], description="the first 50 problems, each field and message cut to 120 characters"
    )
    errors_total: int | None = Field(None, description="how many problems, when over 50")


class NotReady(Out):
    status: Literal["not ready"]
    reason: str
    error: str


ModelState = Literal["ready", "training", "no model"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class TrainingFields(Out):
    """How far the first model is, on a server that started without one."""

    job_id: str | None = Field(None, description="The training job, null when there is none.")
    state: JobState | None = Field(None, description="The training job's state.")
    progress: Number = Field(None, description="The training job's progress, 0 to 1.")
    step: str | None = Field(None, description="What the training job is doing.")
    error: str | None = None


class Health(TrainingFields):
    status: ModelState = Field(
        description="ready: the model is loaded. training: the server answers the routes that "
        "need no model while its first model trains (job_id, state, progress, step). no model: "
        "no training job, or it failed (error) or was cancelled."
    )
    message: str | None = Field(None, description="The status in words, without a model.")
    rows: int
    model_version: str | None = Field(description="null until the first model is trained.")
    data_hash: str | None
    data: str
    currency: str = Field(
        description="The currency of every amount of money this API returns (RETENTION_CURRENCY); "
        "amounts themselves are plain numbers."
    )


class ModelPending(TrainingFields):
    """503 from a route that needs the churn model before the server has one."""

    error: str = Field(description="What is happening and when to try again.")
    status: Literal["training", "no model"]
    needs_model: str = Field(description="What needed the model.")


class Filters(Out):
    query: str
    levels: dict[str, list[str]]
    tenure_min: Number = None
    tenure_max: Number = None


class Kpis(Out):
    customers: int
    active_customers: int
    churned: int | None = None
    churn_rate: Number = None
    retention_rate: Number = None
    mrr: Number = None
    avg_clv: Number = None
    mrr_at_risk: Number = None
    reasons: dict[str, str] = Field(description="Why a KPI the data cannot give is null.")
    filters: Filters
    definitions: dict[str, str]


class TrendPoint(Out):
    """A month ("kind": "monthly") or a tenure step ("kind": "survival")."""

    month: str | None = Field(None, description="YYYY-MM (monthly).")
    customers: int | None = Field(None, description="Active at the month's start (monthly).")
    churned: int | None = None
    churn_rate: Number = None
    retention_rate: Number = None
    time: Number = Field(None, description="Tenure in months (survival).")
    at_risk: int | None = None
    events: int | None = None
    censored: int | None = None
    survival: Number = None
    ci_low: Number = None
    ci_high: Number = None
    segment: str | None = Field(None, description="With split=true.")


class Trend(Out):
    kind: Literal["monthly", "survival"]
    split: bool
    points: list[TrendPoint]
    note: str
    filters: Filters


class Cohort(Out):
    cohort: str = Field(description="Signup month, YYYY-MM.")
    customers: int
    retention: list[Number] = Field(
        description="Share still active k months after signup, k running over `months`."
    )


class Cohorts(Out):
    months: list[int] = Field(
        description="Months since signup of the retention cells: 0, 1, ... or the tenure "
        "filter's range."
    )
    cohorts: list[Cohort]
    note: str
    filters: Filters


class Rate(Out):
    customers: int
    churned: int | None = None
    churn_rate: Number = None
    ci_low: Number = Field(None, description="Wilson 95% interval.")
    ci_high: Number = None
    small: bool = Field(description="Under 30 customers: too small to read.")


class Segment(Rate):
    name: str
    defined_by: str


class Segments(Out):
    segments: list[Segment]
    base_churn_rate: Number
    note: str
    filters: Filters


class Level(Rate):
    level: str


class Importance(Out):
    feature: str
    importance_mean: float = Field(description="Drop in ROC-AUC when shuffled (held-out folds).")
    importance_std: float


class Drivers(Out):
    factor: str | None
    base_churn_rate: Number = Field(description="All customers.")
    selection_churn_rate: Number = Field(description="The customers the filters select.")
    levels: list[Level]
    importance: list[Importance]
    importance_note: str | None = Field(
        None, description="Why importance is empty: no model yet (it is training)."
    )
    note: str
    filters: Filters


class ScatterPoint(Out):
    customer_id: str | int
    p_churn: float
    value: Number = None
    expected_loss: Number = None
    risk_band: str | None = None


class Scatter(Out):
    total: int = Field(description="Active customers the sample stands for.")
    threshold: float
    value_cut: Number
    points: list[ScatterPoint]
    note: str
    filters: Filters


class AtRiskPage(Out):
    total: int
    total_expected_loss: Number
    list_customers: int
    list_expected_loss: float
    limit: int
    offset: int
    sort: list[str]
    filters: Filters
    items: list[dict]


class CustomerDetail(Out):
    customer_id: str
    profile: dict = Field(description="Feature values: accepted as is by POST /predict.")
    churned: int | None = None
    probability: Number
    risk_band: str | None
    threshold: float
    segment: str | None = None
    monthly_revenue: Number = None
    clv: Number = None
    value: Number = None
    expected_loss: Number = None
    value_tier: str | None = None
    drivers: list[str]
    recommended_action: str


class CurvePoint(Out):
    n: int
    net_benefit: float
    saved_value: float
    cost: float


class Plan(Out):
    assumptions: dict[str, float]
    curve: list[CurvePoint]
    best_n: int | None = None
    saved_value: Number = None
    cost: Number = None
    net_benefit: Number = None
    roi: Number = None
    candidates: int | None = None
    contacts: list[dict]
    note: str
    filters: Filters


class ModelCurves(Out):
    customers: int
    churned: int
    roc_auc: Number = None
    roc_auc_ci: list[float] | None = Field(None, description="Hanley-McNeil 95% interval.")
    pr_auc: Number = None
    base_rate: Number = None
    roc: dict[str, list[float]] | None = None
    pr: dict[str, list[float]] | None = None
    calibration: dict[str, list[float]] | None = None
    lift: list[dict] | None = None
    warning: str
    note: str
    filters: Filters


class ThresholdMetrics(Out):
    customers: int
    threshold: float
    saved_threshold: float
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None
    tn: int | None = None
    precision: Number = None
    recall: Number = None
    f1: Number = None
    flagged: int | None = None
    note: str
    filters: Filters


class Driver(Out):
    feature: str
    value: object
    change_in_probability: float


class Prediction(Out):
    customer_id: str | None = None
    probability: float
    risk_band: Literal[C.RISK_BANDS]  # type: ignore[valid-type]
    threshold: float
    clv: Number = None
    value: Number = None
    expected_loss: Number = None
    drivers: list[Driver]


class SinglePrediction(Prediction):
    model_version: str


class BatchPrediction(Out):
    model_version: str
    count: int
    predictions: list[Prediction]


class Model(Out):
    version: str
    created_at: str | None
    data_hash: str | None
    chosen: str | None
    candidates: list[dict]
    metrics: dict
    holdout: dict | None
    threshold: float
    threshold_rule: object = None
    protocol: object = None
    window_months: int
    base_rows: int | None = None
    features: dict
    importance: list[Importance]
    segments: object = None
    definitions: dict[str, str]


class AuditEvent(Out):
    id: int
    at: str = Field(description="UTC, ISO 8601.")
    actor: str | None = Field(description="Who (username); null: the system.")
    action: str = Field(
        description="login, login.failed, logout, user.add, user.role, "
        "user.scope, user.disable, user.enable, user.password, token.create, "
        "token.revoke, export."
    )
    target: str | None
    address: str | None
    details: dict


class UsageCount(Out):
    day: str
    username: str
    action: str
    count: int


class Audit(Out):
    events: list[AuditEvent] = Field(description="Newest first.")
    usage: list[UsageCount] = Field(description="Calls counted per day (predictions).")
    limit: int


RESPONSES = (
    Audit,
    Error,
    NotReady,
    ModelPending,
    Health,
    Kpis,
    Trend,
    Cohorts,
    Segments,
    Drivers,
    Scatter,
    AtRiskPage,
    CustomerDetail,
    Plan,
    ModelCurves,
    ThresholdMetrics,
    SinglePrediction,
    BatchPrediction,
    Model,
)
