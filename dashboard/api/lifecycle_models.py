"""What the lifecycle routes (dashboard/api/lifecycle.py) answer, declared for the OpenAPI
document (dashboard/api/openapi.py lists them when the server mounts those routes)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dashboard.api.models import JobState, Number, Out, Prediction


class LoadReport(Out):
    rows: int
    source_columns: list[str]
    mapping: dict[str, str] = Field(description="canonical column <- the table's column")
    features: list[str]
    categorical: list[str]
    numeric: list[str]
    dropped: dict[str, str] = Field(description="columns left out of the model, and why")
    leaks: list[dict] = Field(
        default=[],
        description="probable label leaks: column, why (with its figure), rule, figure, kept",
    )
    coercions: dict[str, int] = Field(description="cells that could not be parsed, per column")
    notes: list[str] = Field(description="repairs and what was inferred")
    has_label: bool
    has_dates: bool
    has_revenue: bool
    churned: int | None
    churn_rate: Number


class Dataset(Out):
    dataset_id: str = Field(description="sha256 of the stored file and the mapping")
    name: str
    kind: Literal["upload", "file", "database"]
    rows: int
    mapping: dict[str, str | list[str]] = Field(
        description='the mapping given (the report has the result); "keep" lists the columns '
        "kept although they look like label leaks"
    )
    created_at: str | None
    created_by: str | None
    report: LoadReport


class DatasetStored(Dataset):
    created: bool = Field(description="false: this file with this mapping was stored already")


class Datasets(Out):
    datasets: list[Dataset]


class Job(Out):
    job_id: str
    kind: Literal["train", "snapshot", "history"]
    dataset_id: str
    state: JobState
    progress: Number = Field(description="0 to 1")
    step: str | None
    result: dict | None = Field(
        description="when done: model_version, metrics, promoted and the decision's reason"
    )
    error: str | None = Field(description="why it failed or was cancelled")
    cancel_requested: bool
    created_by: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class Jobs(Out):
    jobs: list[Job]


class Version(Out):
    version: str
    dataset_id: str
    created_at: str | None
    created_by: str | None
    job_id: str | None
    metrics: dict = Field(description="roc_auc, pr_auc, brier, lift_top_decile, precision, ...")
    pruned: bool


class Versions(Out):
    live: str | None = Field(description="the live version; null before the first")
    previous: str | None = Field(description="the version before it: promoting it rolls back")
    changed_at: str | None
    changed_by: str | None
    versions: list[Version] = Field(description="newest first")


class BandMove(Out):
    from_: str = Field(alias="from")
    to: str
    customers: int


class BandChanges(Out):
    common_customers: int = Field(description="customers both versions scored")
    changed: int | None = Field(description="how many of them change risk band")
    moves: list[BandMove]


class Comparison(Out):
    version: Version
    against: Version | None = Field(description="the live version unless ?against= names one")
    differences: dict[str, float] = Field(description="version minus against, per metric")
    band_changes: BandChanges | None


class Promoted(Out):
    live: str
    previous: str | None
    dataset_id: str
    changed_at: str | None
    changed_by: str | None
    note: str


class Upserted(Prediction):
    model_version: str
    update: int = Field(description="the last update's sequence number")
    note: str


class UpsertedBatch(Out):
    model_version: str
    update: int
    count: int
    predictions: list[Prediction]
    note: str


RESPONSES = (
    Dataset, DatasetStored, Datasets, Job, Jobs, Versions, Comparison, Promoted, Upserted,
    UpsertedBatch,
)  # fmt: skip
