"""Datasets, model versions, jobs and the live model in the state database.

The one home of the lifecycle's rules for the API, the admin pages, the job runner and the CLI:
- a dataset and a model version are immutable once written;
- one job per dataset at a time (a unique column holds while a job is queued or running, so two
  concurrent requests cannot both start one);
- a job moves queued -> running -> done | failed | cancelled, and only forward;
- promoting writes the live row and its audit event in one transaction; promoting the previous
  version is the rollback.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analytics.store.accounts import _aware, audit_in, now
from analytics.store.tables import CustomerUpdate, Dataset, Job, LiveModel, ModelVersion

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED)
TRAIN = "train"
SNAPSHOT = "snapshot"  # the live version's snapshot, after a promotion
HISTORY = "history"  # the demo's year of monthly snapshots
LIVE_ROW = 1


class LifecycleError(ValueError):
    """A lifecycle request cannot be done; `status` is the HTTP status that fits it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _unkeyable(key: str) -> bool:
    """A key no row can have, asked for by a client: PostgreSQL refuses text holding a NUL byte
    with an error (a 500 for the client) where the lookup must simply find nothing."""
    return "\x00" in key


def _iso(moment: datetime | None) -> str | None:
    moment = _aware(moment)
    return moment.isoformat(timespec="seconds") if moment else None


# -- datasets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    name: str
    kind: str
    file_sha256: str
    path: str
    mapping: dict
    rows: int
    report: dict
    created_at: str | None = None
    created_by: str | None = None

    @classmethod
    def of(cls, row: Dataset) -> DatasetInfo:
        return cls(
            id=row.id,
            name=row.name,
            kind=row.kind,
            file_sha256=row.file_sha256,
            path=row.path,
            mapping=dict(row.mapping or {}),
            rows=row.rows,
            report=dict(row.report or {}),
            created_at=_iso(row.created_at),
            created_by=row.created_by,
        )

    def public(self) -> dict:
        return {
            "dataset_id": self.id,
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "mapping": self.mapping,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "report": self.report,
        }


def add_dataset(engine: Engine, info: DatasetInfo, actor: str | None, address=None) -> bool:
    """Record a dataset (and its audit event); False when this id exists already (the same
    file with the same mapping): datasets are immutable, so there is nothing to change."""
    with Session(engine) as session:
        if session.get(Dataset, info.id) is not None:
            return False
        session.add(
            Dataset(
                id=info.id,
                name=info.name,
                kind=info.kind,
                file_sha256=info.file_sha256,
                path=info.path,
                mapping=info.mapping,
                rows=info.rows,
                report=info.report,
                created_at=now(),
                created_by=actor,
            )
        )
        # The columns kept although they look like label leaks: the admin's decision, audited.
        kept = {"keep": info.mapping["keep"]} if info.mapping.get("keep") else {}
        audit_in(
            session, "dataset.add", actor, info.id[:12], address, name=info.name, rows=info.rows,
            **kept,
        )  # fmt: skip
        try:
            session.commit()
        except IntegrityError:  # the same dataset added at the same moment by another request
            return False
    return True


def dataset(engine: Engine, dataset_id: str) -> DatasetInfo | None:
    if _unkeyable(dataset_id):
        return None
    with Session(engine) as session:
        row = session.get(Dataset, dataset_id)
        return DatasetInfo.of(row) if row is not None else None


def datasets(engine: Engine, limit: int = 100) -> list[DatasetInfo]:
    with Session(engine) as session:
        rows = session.scalars(select(Dataset).order_by(Dataset.created_at.desc()).limit(limit))
        return [DatasetInfo.of(r) for r in rows]


def dataset_paths(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(Dataset.path)))


# -- model versions -------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    version: str
    dataset_id: str
    created_at: str | None
    created_by: str | None
    job_id: str | None
    metrics: dict
    pruned: bool

    @classmethod
    def of(cls, row: ModelVersion) -> VersionInfo:
        return cls(
            version=row.version,
            dataset_id=row.dataset_id,
            created_at=_iso(row.created_at),
            created_by=row.created_by,
            job_id=row.job_id,
            metrics=dict(row.metrics or {}),
            pruned=row.pruned_at is not None,
        )

    def public(self) -> dict:
        return {
            "version": self.version,
            "dataset_id": self.dataset_id,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "job_id": self.job_id,
            "metrics": self.metrics,
            "pruned": self.pruned,
        }


def add_version(
    engine: Engine,
    version: str,
    dataset_id: str,
    metrics: Mapping,
    actor: str | None,
    job_id: str | None = None,
) -> None:
    with Session(engine) as session:
        if session.get(ModelVersion, version) is not None:
            return
        session.add(
            ModelVersion(
                version=version,
                dataset_id=dataset_id,
                created_at=now(),
                created_by=actor,
                job_id=job_id,
                metrics=dict(metrics),
            )
        )
        audit_in(session, "model.add", actor, version, None, dataset=dataset_id[:12])
        session.commit()


def version(engine: Engine, name: str) -> VersionInfo | None:
    if _unkeyable(name):
        return None
    with Session(engine) as session:
        row = session.get(ModelVersion, name)
        return VersionInfo.of(row) if row is not None else None


def versions(engine: Engine, *, include_pruned: bool = False) -> list[VersionInfo]:
    """Model versions, newest first."""
    with Session(engine) as session:
        query = select(ModelVersion).order_by(ModelVersion.created_at.desc())
        if not include_pruned:
            query = query.where(ModelVersion.pruned_at.is_(None))
        return [VersionInfo.of(r) for r in session.scalars(query)]


def mark_pruned(engine: Engine, names: Sequence[str], actor: str | None = None) -> list[str]:
    """Mark versions pruned; returns those marked, the only ones whose files may go. Never the
    live or the previous version as the live row stands when the mark is written: a promotion
    at that moment waits for it, or it for the promotion (which refuses a version marked)."""
    if not names:
        return []
    with Session(engine) as session:
        session.get(LiveModel, LIVE_ROW, with_for_update=True)  # PostgreSQL: promotions wait
        live_now = select(LiveModel.version).where(LiveModel.id == LIVE_ROW)
        previous = select(LiveModel.previous).where(
            LiveModel.id == LIVE_ROW, LiveModel.previous.is_not(None)
        )
        session.execute(  # one statement: SQLite checks and writes under its write lock
            update(ModelVersion)
            .where(
                ModelVersion.version.in_(list(names)),
                ModelVersion.version.not_in(live_now),
                ModelVersion.version.not_in(previous),
            )
            .values(pruned_at=now())
        )
        row = session.execute(select(LiveModel.version, LiveModel.previous)).first()
        marked = [n for n in names if row is None or n not in (row.version, row.previous)]
        if marked:
            audit_in(session, "model.prune", actor, None, None, versions=marked)
        session.commit()
    return marked


# -- the live model -------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveInfo:
    version: str
    dataset_id: str
    previous: str | None
    serial: int
    changed_at: str | None
    changed_by: str | None


def live(engine: Engine) -> LiveInfo | None:
    """The live version, or None before any version was promoted."""
    with Session(engine) as session:
        row = session.get(LiveModel, LIVE_ROW)
        if row is None:
            return None
        owner = session.get(ModelVersion, row.version)
        return LiveInfo(
            version=row.version,
            dataset_id=owner.dataset_id if owner else "",
            previous=row.previous,
            serial=row.serial,
            changed_at=_iso(row.changed_at),
            changed_by=row.changed_by,
        )


def live_serial(engine: Engine) -> tuple[int, str] | None:
    """(serial, version) of the live row: the one cheap read each worker polls."""
    with engine.connect() as connection:
        found = connection.execute(
            select(LiveModel.serial, LiveModel.version).where(LiveModel.id == LIVE_ROW)
        ).first()
    return (int(found[0]), str(found[1])) if found else None


def promote(
    engine: Engine, name: str, actor: str | None, address=None, *, reason: str | None = None
) -> LiveInfo:
    """Make `name` live. Promoting the previous version is the rollback (audited as such)."""
    with Session(engine) as session:
        target = None if _unkeyable(name) else session.get(ModelVersion, name)
        if target is None:
            raise LifecycleError(f"no model version {name!r}: see GET /api/v1/models", 404)
        if target.pruned_at is not None:
            raise LifecycleError(f"model version {name!r} was pruned: its files are gone", 409)
        row = session.get(LiveModel, LIVE_ROW, with_for_update=True)
        if row is not None and row.version == name:
            raise LifecycleError(f"model version {name!r} is live already", 409)
        action = "model.rollback" if row is not None and row.previous == name else "model.promote"
        if row is None:
            row = LiveModel(id=LIVE_ROW, version=name, previous=None, serial=1)
            session.add(row)
        else:
            row.previous, row.version, row.serial = row.version, name, row.serial + 1
        row.changed_at, row.changed_by = now(), actor
        details = {"dataset": target.dataset_id[:12], "previous": row.previous}
        if reason:
            details["reason"] = reason
        audit_in(session, action, actor, name, address, **details)
        try:
            session.flush()  # holds SQLite's write lock (PostgreSQL: the live row's) from here
            session.refresh(target)  # so a prune marking it just now is seen, or waits for us
            if target.pruned_at is not None:
                raise LifecycleError(f"model version {name!r} was pruned: its files are gone", 409)
            session.commit()
        except IntegrityError:  # two first promotions at once: the other one won
            raise LifecycleError(
                "another promotion happened at the same moment: retry", 409
            ) from None
    found = live(engine)
    assert found is not None
    return found


# -- jobs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    id: str
    kind: str
    dataset_id: str
    state: str
    progress: float
    step: str | None
    options: dict
    result: dict | None
    error: str | None
    cancel_requested: bool
    runner: str | None
    created_by: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None

    @classmethod
    def of(cls, row: Job) -> JobInfo:
        return cls(
            id=row.id,
            kind=row.kind,
            dataset_id=row.dataset_id,
            state=row.state,
            progress=float(row.progress or 0.0),
            step=row.step,
            options=dict(row.options or {}),
            result=dict(row.result) if row.result else None,
            error=row.error,
            cancel_requested=bool(row.cancel_requested),
            runner=row.runner,
            created_by=row.created_by,
            created_at=_iso(row.created_at),
            started_at=_iso(row.started_at),
            finished_at=_iso(row.finished_at),
            heartbeat_at=_iso(row.heartbeat_at),
        )

    def public(self) -> dict:
        return {
            "job_id": self.id,
            "kind": self.kind,
            "dataset_id": self.dataset_id,
            "state": self.state,
            "progress": round(self.progress, 4),
            "step": self.step,
            "result": self.result,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def enqueue(
    engine: Engine,
    dataset_id: str,
    actor: str | None,
    address=None,
    *,
    kind: str = TRAIN,
    options: Mapping | None = None,
    runner: str | None = None,
) -> JobInfo:
    """Queue a job for `dataset_id`; a 409 LifecycleError when one is queued or running.
    With `runner`, the job is claimed by it at once (a command that runs its own job)."""
    job_id = secrets.token_hex(8)
    moment = now()
    with Session(engine) as session:
        if _unkeyable(dataset_id) or session.get(Dataset, dataset_id) is None:
            raise LifecycleError(f"no dataset {dataset_id!r}: see GET /api/v1/datasets", 404)
        session.add(
            Job(
                id=job_id,
                kind=kind,
                dataset_id=dataset_id,
                # Only training holds the dataset: snapshots and the demo's history may run
                # beside it (they never write a model the live row could point at meanwhile).
                active_dataset=dataset_id if kind == TRAIN else None,
                state=RUNNING if runner else QUEUED,
                progress=0.0,
                step="starting" if runner else "queued",
                options=dict(options or {}),
                cancel_requested=False,
                runner=runner,
                created_by=actor,
                created_at=moment,
                started_at=moment if runner else None,
                heartbeat_at=moment if runner else None,
            )
        )
        audit_in(session, "job.start", actor, job_id, address, kind=kind, dataset=dataset_id[:12])
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            running = active_job(engine, dataset_id)
            which = f" ({running.id}, {running.state})" if running else ""
            raise LifecycleError(
                f"a job for dataset {dataset_id[:12]} is already queued or running{which}: "
                "wait for it or cancel it",
                409,
            ) from None
    found = job(engine, job_id)
    assert found is not None
    return found


def job(engine: Engine, job_id: str) -> JobInfo | None:
    if _unkeyable(job_id):
        return None
    with Session(engine) as session:
        row = session.get(Job, job_id)
        return JobInfo.of(row) if row is not None else None


def jobs(
    engine: Engine, limit: int = 50, dataset_id: str | None = None, kind: str | None = None
) -> list[JobInfo]:
    with Session(engine) as session:
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if dataset_id:
            query = query.where(Job.dataset_id == dataset_id)
        if kind:
            query = query.where(Job.kind == kind)
        return [JobInfo.of(r) for r in session.scalars(query)]


def active_job(engine: Engine, dataset_id: str) -> JobInfo | None:
    with Session(engine) as session:
        row = session.scalars(select(Job).where(Job.active_dataset == dataset_id)).first()
        return JobInfo.of(row) if row is not None else None


def latest_job(engine: Engine, dataset_id: str, kind: str = TRAIN) -> JobInfo | None:
    found = jobs(engine, limit=1, dataset_id=dataset_id, kind=kind)
    return found[0] if found else None


def claim(engine: Engine, runner: str) -> JobInfo | None:
    """Take the oldest queued job for `runner`; None when there is none. The conditional update
    makes the claim atomic: of two runners, one gets the job, the other moves on."""
    with Session(engine) as session:
        candidates = session.scalars(
            select(Job.id).where(Job.state == QUEUED).order_by(Job.created_at).limit(5)
        ).all()
        for job_id in candidates:
            moment = now()
            taken = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == QUEUED)
                .values(
                    state=RUNNING,
                    runner=runner,
                    started_at=moment,
                    heartbeat_at=moment,
                    step="starting",
                )
            ).rowcount
            session.commit()
            if taken:
                return job(engine, job_id)
    return None


def report_progress(engine: Engine, job_id: str, progress: float, step: str) -> bool:
    """Record a running job's progress and heartbeat; True when a cancel was requested."""
    with Session(engine) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == RUNNING)
            .values(progress=max(0.0, min(1.0, progress)), step=step[:500], heartbeat_at=now())
        )
        session.commit()
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def heartbeat(engine: Engine, job_id: str) -> None:
    with Session(engine) as session:
        session.execute(
            update(Job).where(Job.id == job_id, Job.state == RUNNING).values(heartbeat_at=now())
        )
        session.commit()


def finish(
    engine: Engine,
    job_id: str,
    state: str,
    *,
    result: Mapping | None = None,
    error: str | None = None,
) -> bool:
    """End a queued or running job; False when it had ended already (the first end wins)."""
    if state not in FINISHED:
        raise ValueError(f"not a final state: {state}")
    values = {
        "state": state,
        "active_dataset": None,
        "finished_at": now(),
        "error": error[:2000] if error else None,
    }
    if state == DONE:
        values["progress"] = 1.0
        values["step"] = "done"
    elif state == CANCELLED:
        values["step"] = "cancelled"
    else:
        values["step"] = "failed"
    if result is not None:
        values["result"] = dict(result)
    with Session(engine) as session:
        ended = session.execute(
            update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE)).values(**values)
        ).rowcount
        if ended:
            audit_in(session, f"job.{state}", None, job_id, None, error=(error or "")[:200])
        session.commit()
    return bool(ended)


def request_cancel(engine: Engine, job_id: str, actor: str | None, address=None) -> JobInfo:
    """Cancel a job: a queued one ends now; a running one stops at its next step."""
    found = job(engine, job_id)
    if found is None:
        raise LifecycleError(f"no job {job_id!r}", 404)
    if found.state not in ACTIVE:
        raise LifecycleError(f"job {job_id} has ended ({found.state}): nothing to cancel", 409)
    with Session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        audit_in(session, "job.cancel", actor, job_id, address)
        session.commit()
    if found.state == QUEUED:
        finish(engine, job_id, CANCELLED, error="cancelled before it started")
    return job(engine, job_id)  # type: ignore[return-value]


def fail_stale(engine: Engine, after_seconds: float) -> list[str]:
    """Fail running jobs whose heartbeat stopped `after_seconds` ago: the process running them
    died (killed, crashed, the host restarted). Their output was never made visible."""
    cutoff = now() - timedelta(seconds=after_seconds)
    with Session(engine) as session:
        stale = session.scalars(
            select(Job.id).where(Job.state == RUNNING, Job.heartbeat_at < cutoff)
        ).all()
    failed = []
    for job_id in stale:
        if finish(
            engine,
            job_id,
            FAILED,
            error=f"no heartbeat for {after_seconds:.0f} s: the process running it stopped "
            "(killed or crashed); nothing it wrote was kept",
        ):
            failed.append(job_id)
    return failed


# -- customer updates -----------------------------------------------------------------------


def add_customer_updates(
    engine: Engine, dataset_id: str, rows: Sequence[tuple[str, dict]], actor: str | None
) -> int:
    """Store upserted customers (id, canonical data); returns the last update id."""
    moment = now()
    with Session(engine) as session:
        added = [
            CustomerUpdate(dataset_id=dataset_id, customer_id=cid, data=data, at=moment, by=actor)
            for cid, data in rows
        ]
        session.add_all(added)
        audit_in(session, "customers.upsert", actor, None, None, count=len(rows))
        session.commit()
        return max(u.id for u in added) if added else 0


def customer_updates(
    engine: Engine, dataset_id: str, after: int = 0
) -> list[tuple[int, str, dict]]:
    """(id, customer id, data) of the updates to `dataset_id` after update `after`, in order."""
    with Session(engine) as session:
        rows = session.execute(
            select(CustomerUpdate.id, CustomerUpdate.customer_id, CustomerUpdate.data)
            .where(CustomerUpdate.dataset_id == dataset_id, CustomerUpdate.id > after)
            .order_by(CustomerUpdate.id)
        ).all()
    return [(int(i), str(c), dict(d)) for i, c, d in rows]


def last_update_id(engine: Engine, dataset_id: str) -> int:
    from sqlalchemy import func

    with Session(engine) as session:
        found = session.scalar(
            select(func.max(CustomerUpdate.id)).where(CustomerUpdate.dataset_id == dataset_id)
        )
    return int(found or 0)
