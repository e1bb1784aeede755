"""The data and model lifecycle as the API, the admin pages and the CLI ask for it: datasets in,
training jobs, versions compared, promoted and rolled back. Admin-only (the web layer checks the
role); every change is audited by analytics.store.lifecycle in the transaction that makes it.
Nothing here trains or scores in the caller's thread: training is a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine

from analytics import datasets, jobs, versions
from analytics.config import ServeSettings, Settings
from analytics.ingest import read
from analytics.store import lifecycle
from analytics.store.lifecycle import LifecycleError

SOURCE_KINDS = ("table", "query")


@dataclass(frozen=True)
class Lifecycle:
    engine: Engine
    config: ServeSettings
    settings: Settings
    key: bytes

    @property
    def state_dir(self) -> Path:
        return Path(self.config.state_dir)

    @property
    def models_dir(self) -> Path:
        return Path(self.config.models_dir)

    # -- datasets --------------------------------------------------------------------------

    def mapping(self, value: object, what: str = "mapping") -> dict[str, str]:
        """A mapping from a form or a body: {} when absent; a MappingError when malformed."""
        if value in (None, "", {}):
            return {}
        return read.mapping_from_json(value, what)

    def upload(
        self, stream: BinaryIO, name: str, mapping: Mapping, actor: str, address: str | None
    ) -> tuple[lifecycle.DatasetInfo, bool]:
        info, _, created = datasets.add_stream(
            self.engine, self.state_dir, stream, name, self.settings,
            mapping=mapping, actor=actor, address=address, require_label=False,
        )  # fmt: skip
        return info, created

    def from_source(
        self, kind: str, text: str, mapping: Mapping, actor: str, address: str | None
    ) -> tuple[lifecycle.DatasetInfo, bool]:
        """A dataset read from RETENTION_SOURCE_URL's `table` or `query`."""
        url = getattr(self.config, "source_url", None)
        if not url:
            raise LifecycleError(
                "no database source is configured: set RETENTION_SOURCE_URL (and restart)", 409
            )
        if kind not in SOURCE_KINDS or not str(text or "").strip():
            raise LifecycleError('a database source needs "table" or "query" (one of them)')
        from analytics.ingest import source

        raw = source.read_source(
            url,
            table=text if kind == "table" else None,
            query=text if kind == "query" else None,
            max_rows=self.settings.max_rows,
            max_columns=self.settings.max_columns,
        )
        name = f"table {text}" if kind == "table" else "query"
        info, _, created = datasets.add_frame(
            self.engine, self.state_dir, raw, name, self.settings,
            mapping=mapping, actor=actor, address=address, require_label=False,
        )  # fmt: skip
        return info, created

    def remap(
        self, dataset_id: str, mapping: Mapping, actor: str, address: str | None
    ) -> tuple[lifecycle.DatasetInfo, bool]:
        info, _, created = datasets.remap(
            self.engine, self.state_dir, self.dataset(dataset_id), mapping, self.settings,
            actor=actor, address=address, require_label=False,
        )  # fmt: skip
        return info, created

    def dataset(self, dataset_id: str) -> lifecycle.DatasetInfo:
        found = lifecycle.dataset(self.engine, str(dataset_id))
        if found is None:
            raise LifecycleError(f"no dataset {dataset_id!r}: see GET /api/v1/datasets", 404)
        return found

    def datasets(self) -> list[lifecycle.DatasetInfo]:
        return lifecycle.datasets(self.engine)

    # -- jobs ------------------------------------------------------------------------------

    def train(self, dataset_id: str, actor: str, address: str | None) -> lifecycle.JobInfo:
        info = self.dataset(dataset_id)
        if not info.report.get("has_label"):
            raise LifecycleError(
                f"dataset {info.id[:12]} has no churn label: map one (churned=<column>) first",
                422,
            )
        return lifecycle.enqueue(
            self.engine, info.id, actor, address, options={"promote": jobs.PROMOTE_NEVER}
        )

    def job(self, job_id: str) -> lifecycle.JobInfo:
        found = lifecycle.job(self.engine, str(job_id))
        if found is None:
            raise LifecycleError(f"no job {job_id!r}", 404)
        return found

    def jobs(self, limit: int = 50) -> list[lifecycle.JobInfo]:
        return lifecycle.jobs(self.engine, limit)

    def cancel(self, job_id: str, actor: str, address: str | None) -> lifecycle.JobInfo:
        return lifecycle.request_cancel(self.engine, str(job_id), actor, address)

    # -- versions --------------------------------------------------------------------------

    def models(self) -> dict:
        live = lifecycle.live(self.engine)
        return {
            "live": live.version if live else None,
            "previous": live.previous if live else None,
            "changed_at": live.changed_at if live else None,
            "changed_by": live.changed_by if live else None,
            "versions": [v.public() for v in lifecycle.versions(self.engine)],
        }

    def compare(self, version: str, against: str | None = None) -> dict:
        return versions.compare(self.engine, self.models_dir, self.key, version, against)

    def promote(self, version: str, actor: str, address: str | None) -> lifecycle.LiveInfo:
        """Make `version` live (rollback = the previous one) and queue its snapshot: scoring
        the base is a job, never part of the request."""
        live = lifecycle.promote(self.engine, str(version), actor, address)
        lifecycle.enqueue(self.engine, live.dataset_id, actor, address, kind=lifecycle.SNAPSHOT,
                          options={"version": live.version})  # fmt: skip
        return live

    def live(self) -> lifecycle.LiveInfo | None:
        return lifecycle.live(self.engine)

    # -- customers -------------------------------------------------------------------------

    def upsert(self, dataset_id: str, rows, actor: str) -> int:
        """Store checked customers' data for `dataset_id`; returns the last update id."""
        return lifecycle.add_customer_updates(self.engine, dataset_id, rows, actor)
