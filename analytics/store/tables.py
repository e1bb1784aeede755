"""The state database's tables (SQLAlchemy 2 declarative). Their schema changes only by an
Alembic migration (analytics/store/migrations): a test checks the two agree.

Accounts first (issue 10): users with a role and an optional scope, their API tokens (stored
hashed) and the audit log. Datasets, model versions, jobs, snapshots and alerts join them here.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2; None: SSO only
    role: Mapped[str] = mapped_column(String(16))
    # A manager's scope: customers whose `scope_column` is one of `scope_values`.
    scope_column: Mapped[str | None] = mapped_column(String(128))
    scope_values: Mapped[list[str] | None] = mapped_column(JSON)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)  # sha256 of the secret
    # The token's first characters and a label: enough to tell tokens apart, useless to use one.
    prefix: Mapped[str | None] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginSession(Base):
    """A browser session: the signed cookie names it by a random key (stored hashed), and
    logging out ends the row, so a copy of the cookie, or one a late response sets again, is
    refused from then on."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the key
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    actor: Mapped[str | None] = mapped_column(String(64))  # username; None: the system
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict | None] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text)


class UsageCount(Base):
    """Calls counted per day, user and action (predictions: counted, not logged one by one)."""

    __tablename__ = "usage_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


# -- living data (issue 12): datasets, model versions, jobs, the live model, customer updates --


class Dataset(Base):
    """A customer table brought in by an admin (upload, API, database source) or configured at
    start. Immutable: the id is the sha256 of the stored file's bytes and the mapping, so the
    same file with the same mapping is the same dataset."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))  # the file's name, or the source table/query
    kind: Mapped[str] = mapped_column(String(16))  # file | upload | database
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(255))  # under RETENTION_STATE_DIR/datasets
    mapping: Mapped[dict] = mapped_column(JSON)  # as given; the report holds the resolved one
    rows: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(String(64))


class ModelVersion(Base):
    """A trained model version (its files under RETENTION_MODELS_DIR/<version>, signed)."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(32))
    metrics: Mapped[dict] = mapped_column(JSON)
    pruned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """Background work (training a dataset): the embedded runner claims queued rows."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    # The dataset's id while the job is queued or running, else NULL: unique, so one job per
    # dataset at a time holds under concurrent requests on every database.
    active_dataset: Mapped[str | None] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    runner: Mapped[str | None] = mapped_column(String(128))  # host:pid of the process running it
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LiveModel(Base):
    """The one row naming the live model version (and the one before it, for rollback).
    `serial` grows on each change: a worker compares it to what it serves."""

    __tablename__ = "live_model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    previous: Mapped[str | None] = mapped_column(String(100))
    serial: Mapped[int] = mapped_column(Integer, default=1)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    changed_by: Mapped[str | None] = mapped_column(String(64))


class CustomerUpdate(Base):
    """A customer's current data as a CRM sent it (PUT /api/v1/customers/<id>), on top of a
    dataset until the next training; workers apply the rows after the last id they saw."""

    __tablename__ = "customer_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    customer_id: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    by: Mapped[str | None] = mapped_column(String(64))


# -- over time (issue 13): snapshots, campaigns, alert rules and their deliveries --


class Snapshot(Base):
    """One scoring of a dataset's base by one model version, as of a date. Immutable: the
    per-customer rows are a Parquet file under RETENTION_STATE_DIR/snapshots, written whole
    before this row is added."""

    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("as_of", "model_version", "dataset_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    model_version: Mapped[str] = mapped_column(String(100))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # promote | refresh | history | manual
    path: Mapped[str] = mapped_column(String(255))  # relative to RETENTION_STATE_DIR
    rows: Mapped[int] = mapped_column(Integer)
    # threshold, window, the model's training reference, KPIs of the whole base
    summary: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(String(64))


class Campaign(Base):
    """A contact list with a held-out control group, drawn from one snapshot."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    snapshot_id: Mapped[str] = mapped_column(ForeignKey("snapshots.id"), index=True)
    as_of: Mapped[date] = mapped_column(Date)  # the snapshot's; the outcome is the next window
    control_share: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[dict] = mapped_column(JSON)  # filters, limit or planner inputs as given
    treated: Mapped[int] = mapped_column(Integer)
    control: Mapped[int] = mapped_column(Integer)
    # A manager's campaign is visible to managers of the same scope (and analysts, admins).
    scope_column: Mapped[str | None] = mapped_column(String(128))
    scope_values: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(String(64))


class CampaignMember(Base):
    __tablename__ = "campaign_members"

    campaign_id: Mapped[str] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    grp: Mapped[str] = mapped_column(String(8))  # treated | control
    risk_band: Mapped[str | None] = mapped_column(String(16))
    p_churn: Mapped[float | None] = mapped_column(Float)


class AlertRule(Base):
    """A condition checked at each new snapshot, and where to say it fired."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    threshold: Mapped[float] = mapped_column(Float)
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email
    target: Mapped[str] = mapped_column(String(512))  # URL or e-mail address
    # The owner's scope when a manager made it: the rule sees only those customers.
    owner: Mapped[str | None] = mapped_column(String(64))
    scope_column: Mapped[str | None] = mapped_column(String(128))
    scope_values: Mapped[list[str] | None] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AlertDelivery(Base):
    """One alert to deliver: `key` (rule and snapshot, or a test's nonce) is unique, so an
    alert is recorded, and so sent, once however often the evaluation runs."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True
    )
    snapshot_id: Mapped[str | None] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(160), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
