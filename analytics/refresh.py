"""Scheduled refresh: re-read the source, validate, train, and promote only when the new model
is not worse than the live one by more than RETENTION_PROMOTE_MARGIN (analytics.jobs decides
and records why in the audit log either way).

The source is RETENTION_SOURCE_URL with RETENTION_SOURCE_TABLE or _QUERY when set, else the
RETENTION_DATA file (mapped by RETENTION_MAPPING). `python -m analytics refresh` runs it for
cron or a systemd timer; RETENTION_REFRESH_CRON runs it inside the server's job runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from analytics import datasets, jobs
from analytics.config import ServeSettings, Settings
from analytics.ingest import read
from analytics.store import accounts, lifecycle

ACTOR = "refresh"


@dataclass(frozen=True)
class Refreshed:
    dataset: lifecycle.DatasetInfo
    job: lifecycle.JobInfo | None  # None: the source had not changed
    message: str


def read_source(engine: Engine, config: ServeSettings, settings: Settings, actor: str = ACTOR):
    """The configured source as a dataset (stored and recorded): (dataset, newly created)."""
    mapping = read.load_mapping_file(config.mapping) if config.mapping else None
    url = getattr(config, "source_url", None)
    if url:
        from analytics.ingest import source

        table, query = config.source_table, config.source_query
        raw = source.read_source(
            url,
            table=table,
            query=query,
            max_rows=settings.max_rows,
            max_columns=settings.max_columns,
        )
        name = f"table {table}" if table else "query"
        info, _, created = datasets.add_frame(
            engine, config.state_dir, raw, name, settings, mapping=mapping, actor=actor
        )
    else:
        info, _, created = datasets.add_path(
            engine, config.state_dir, config.data, settings, mapping=mapping, actor=actor
        )
    return info, created


def refresh(
    engine: Engine,
    config: ServeSettings,
    settings: Settings,
    *,
    key: bytes,
    actor: str = ACTOR,
    run_here: bool = True,
) -> Refreshed:
    """Read the source; when it changed, train on it (here, or queued for the job runner)."""
    info, _ = read_source(engine, config, settings, actor)
    live = lifecycle.live(engine)
    if live is not None and live.dataset_id == info.id:
        message = f"the source has not changed since the live model {live.version}: nothing to do"
        accounts.record(engine, "refresh.unchanged", actor, info.id[:12], message=message)
        return Refreshed(info, None, message)
    job = lifecycle.enqueue(
        engine,
        info.id,
        actor,
        options={"promote": jobs.PROMOTE_IF_NOT_WORSE},
        runner=jobs.runner_name() if run_here else None,
    )
    if not run_here:
        return Refreshed(info, job, f"queued job {job.id} for dataset {info.id[:12]}")
    job = jobs.run_job(
        engine,
        job.id,
        state_dir=config.state_dir,
        models_dir=config.models_dir,
        settings=settings,
        key=key,
        promote_margin=config.promote_margin,
        keep_versions=config.keep_versions,
    )
    if job.state != lifecycle.DONE:
        return Refreshed(info, job, f"job {job.id} {job.state}: {job.error}")
    return Refreshed(info, job, str((job.result or {}).get("decision")))


def next_run(cron: str, after: datetime) -> datetime:
    from croniter import croniter

    return croniter(cron, after).get_next(datetime)
