"""Recording snapshots (../shared/METRICS.md "Over time"): each scoring of a dataset by a model
version is written once, immutable, and the alert rules are checked against the one before.

- `record_live`: the live version's own base (its out-of-fold scores): after a promotion, a
  rollback, or at start-up when the live version has none yet. In-sample: its realised figures
  are the cross-validated ones, and it has no drift against its own training data.
- `record_scored`: a model scoring data it was not trained on (a refresh's new table scored by
  the live model before any retraining; the demo's monthly history): out of time, so its
  realised performance and its drift against the model's training data are what monitoring
  watches.
- `demo_history`: the built-in demo's year of monthly snapshots (a job at first start).

Runs in jobs and commands, never in a request: scoring a base is seconds to minutes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from analytics import access, datasets, synthetic, timeline, versions, workflow
from analytics import columns as C
from analytics.config import Settings
from analytics.history import monitoring
from analytics.ingest.validate import Table
from analytics.store import lifecycle
from analytics.store import snapshots as store

log = logging.getLogger("analytics.snapshots")

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def as_of_of(table: Table, info: lifecycle.DatasetInfo) -> date:
    """A dated table's as_of (its latest date); an undated export's day it was brought in."""
    found = timeline.resolve_as_of(table.frame) if table.has_dates else None
    if found is not None:
        return found.date()
    if info.created_at:
        return datetime.fromisoformat(info.created_at).date()
    return date.today()


def summary(
    frame: pd.DataFrame, model: workflow.TrainedModel, table: Table, *, in_sample: bool, drift=None
) -> dict:
    """What the snapshot list and monitoring read without opening the file (and which columns
    are categories and numbers, for its filters)."""
    meta = model.meta
    churned = frame.get(C.CHURNED)
    known = churned is not None and bool(churned.notna().all()) and len(frame) > 0
    p = frame[C.P_CHURN].to_numpy(dtype=float)
    return {
        "threshold": float(meta["threshold"]),
        "window_months": int(meta.get("window_months", 1)),
        "expected_roc_auc": (meta.get("metrics") or {}).get("roc_auc"),
        "in_sample": in_sample,
        "outcome_known": known,
        "predicted_churn": float(np.nanmean(p)) if len(p) else None,
        "realised_churn": float(churned.mean()) if known else None,
        "drift": [] if drift is None else drift,
        "categorical": [c for c in table.categorical if c in frame],
        "numeric": [c for c in table.numeric if c in frame],
    }


def _record(engine, state_dir, settings, frame, model, info, table, as_of, *, kind, in_sample,
            drift, actor):  # fmt: skip
    snap, created = store.add_snapshot(
        engine,
        state_dir,
        frame.reset_index(drop=True),
        as_of=as_of,
        model_version=model.version,
        dataset_id=info.id,
        kind=kind,
        summary=summary(frame, model, table, in_sample=in_sample, drift=drift),
        actor=actor,
    )
    if created and kind in ALERTING:
        _alert(engine, Path(state_dir), snap, frame, settings)
    return snap, created


# Snapshots of new data the alert rules are checked on (the demo's history is the past).
ALERTING = ("promote", "refresh")


def previous_of(engine: Engine, snap: store.SnapshotInfo) -> store.SnapshotInfo | None:
    """The snapshot before `snap`: the latest earlier as_of (by the same model version when
    it scored that date too, else the last recorded)."""
    earlier = [s for s in store.snapshots(engine) if s.as_of < snap.as_of]
    if not earlier:
        return None
    last = max(s.as_of for s in earlier)
    same_day = [s for s in earlier if s.as_of == last]
    mine = [s for s in same_day if s.model_version == snap.model_version]
    return (mine or same_day)[-1]


def _alert(engine, state_dir: Path, snap, frame: pd.DataFrame, settings: Settings) -> None:
    """Check the alert rules on a new snapshot and deliver what fired. Never fails the job
    that recorded the snapshot: a rule or a channel that fails is logged (and the delivery
    log says why)."""
    from analytics import alerting
    from analytics.config import ConfigError, serve_settings_from_env
    from analytics.services import history

    try:
        config = serve_settings_from_env()
    except ConfigError as exc:
        log.warning("alerts not checked for snapshot %s: %s", snap.id, exc)
        return
    try:
        before = previous_of(engine, snap)
        previous = store.read_frame(state_dir, before) if before is not None else None
        watched = history.History(engine, state_dir, settings)

        def watch(scope):  # a rule's scope: a manager's decay alert reads their customers only
            with access.scoped(scope):
                return history.monitoring(watched)

        run = alerting.run_for_snapshot(engine, config, snapshot_id=snap.id, current=frame,
                                        previous=previous, monitoring=watch,
                                        currency=settings.currency)  # fmt: skip
        log.info("snapshot %s: %d alert(s) fired, %d delivered", snap.id, len(run.alerts),
                 len(run.delivered))  # fmt: skip
    except Exception:
        log.exception("alerts for snapshot %s could not be checked", snap.id)


def record_live(
    engine: Engine,
    state_dir: Path,
    models_dir: Path,
    settings: Settings,
    key: bytes,
    version: str,
    *,
    kind: str = "promote",
    actor: str | None = None,
) -> tuple[store.SnapshotInfo, bool]:
    """Snapshot of `version` scoring the dataset it was trained on (out of fold)."""
    record = lifecycle.version(engine, version)
    info = lifecycle.dataset(engine, record.dataset_id) if record else None
    if info is None:
        raise ValueError(f"model version {version} has no dataset record")
    model = workflow.load(models_dir, version, key=key)
    table = datasets.open_table(info, state_dir, settings)
    workspace = workflow.model_workspace(model, table, settings, info.name, "snapshot")
    as_of = _known_date(engine, info) or as_of_of(table, info)
    return _record(engine, state_dir, settings, workspace.scored, model, info, table, as_of,
                   kind=kind, in_sample=True, drift=None, actor=actor)  # fmt: skip


def _known_date(engine: Engine, info: lifecycle.DatasetInfo) -> date | None:
    """The as_of another snapshot of this dataset has: the same data is of the same date (an
    undated monthly export that the history dated, then trained on)."""
    dated = [s.as_of for s in store.snapshots(engine) if s.dataset_id == info.id]
    return dated[-1] if dated else None


def score_out_of_time(
    model: workflow.TrainedModel, table: Table, settings: Settings
) -> tuple[pd.DataFrame, list[dict]]:
    """The table's current base scored by `model` (trained on other data), and each feature's
    drift between the model's training base and this base."""
    base, _ = workflow.prepare_base(table, settings)
    scored, _ = workflow.score(model, dataclasses.replace(table, frame=base), settings)
    features = list(model.meta["features"])
    drift = monitoring.drift(model.scored, scored, features)
    return scored, _records(drift)


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict("records"):
        psi = row.get("psi")
        out.append({**row, "psi": None if psi is None or pd.isna(psi) else float(psi)})
    return out


def record_scored(
    engine: Engine,
    state_dir: Path,
    settings: Settings,
    model: workflow.TrainedModel,
    info: lifecycle.DatasetInfo,
    table: Table,
    *,
    kind: str,
    actor: str | None = None,
    as_of: date | None = None,
) -> tuple[store.SnapshotInfo, bool]:
    """Snapshot of `model` scoring `info`'s table, which it was not trained on."""
    scored, drift = score_out_of_time(model, table, settings)
    when = as_of or as_of_of(table, info)
    return _record(engine, state_dir, settings, scored, model, info, table, when, kind=kind,
                   in_sample=False, drift=drift, actor=actor)  # fmt: skip


# -- the demo's year ----------------------------------------------------------------------

HISTORY_ACTOR = "demo-history"


def demo_history(
    engine: Engine,
    state_dir: Path,
    models_dir: Path,
    settings: Settings,
    key: bytes,
    *,
    n_customers: int = synthetic.DEFAULT_CUSTOMERS,
    seed: int = synthetic.DEFAULT_SEED,
    as_of: str = synthetic.DEFAULT_AS_OF,
    progress: Progress = _quiet,
) -> dict:
    """The synthetic business's last HISTORY_SNAPSHOTS months as the product would have seen
    them: each month's export is a dataset; the model trained on the first month (the model
    of a year ago) scores every later month, so monitoring sees it age; the demo's past
    campaign is recorded from the snapshot its contact list was drawn from."""
    progress(f"simulating the demo business ({n_customers:,} customers)")
    history = synthetic.generate_history(n_customers=n_customers, seed=seed, as_of=as_of)
    months = sorted(history.months["as_of"].unique())
    exports = [_export(engine, state_dir, settings, history.months, m) for m in months]
    first_info, first_table = exports[0]
    progress(f"training the model of {pd.Timestamp(months[0]).date()}")
    model = workflow.train(first_table, settings, source=first_info.name, progress=progress)
    model.version = workflow.save(model, models_dir, key=key)
    lifecycle.add_version(engine, model.version, first_info.id,
                          versions.version_metrics(model.meta), HISTORY_ACTOR)  # fmt: skip
    made = []
    for k, (info, table) in enumerate(exports):
        when = pd.Timestamp(months[k]).date()
        progress(f"scoring the snapshot of {when} ({k + 1} of {len(exports)})")
        if k == 0:
            scored = workflow.model_workspace(model, table, settings, info.name, "").scored
            snap, _ = _record(engine, state_dir, settings, scored, model, info, table, when,
                              kind="history", in_sample=True, drift=None,
                              actor=HISTORY_ACTOR)  # fmt: skip
        else:
            snap, _ = record_scored(engine, state_dir, settings, model, info, table,
                                    kind="history", actor=HISTORY_ACTOR, as_of=when)  # fmt: skip
        made.append(snap)
    campaign = _demo_campaign(engine, state_dir, history.campaign, made)
    return {
        "model_version": model.version,
        "snapshots": [s.label for s in made],
        "campaign_id": campaign,
    }


def _export(engine, state_dir, settings, months: pd.DataFrame, month) -> tuple:
    rows = months.loc[months["as_of"] == month].drop(columns=["as_of"])
    name = f"demo export {pd.Timestamp(month).date()}"
    info, table, _ = datasets.add_frame(
        engine, state_dir, rows.reset_index(drop=True), name, settings, kind="file",
        actor=HISTORY_ACTOR,
    )  # fmt: skip
    return info, table


def _demo_campaign(engine, state_dir, groups: pd.DataFrame, made) -> str | None:
    """The generator's past campaign, recorded from the snapshot it was drawn from."""
    if groups is None or groups.empty:
        return None
    when = pd.Timestamp(groups["as_of"].iloc[0]).date()
    source = next((s for s in made if s.as_of == when), None)
    if source is None:
        return None
    frame = store.read_frame(state_dir, source).set_index(C.CUSTOMER_ID)
    members = groups[["customer_id", "group"]].copy()
    found = frame.reindex(members["customer_id"].astype(str))
    members["risk_band"] = found[C.RISK_BAND].astype("string").to_numpy()
    members["p_churn"] = found[C.P_CHURN].to_numpy()
    plan = synthetic.CAMPAIGN
    info = store.add_campaign(
        engine,
        name=str(plan["name"]),
        snapshot=source,
        control_share=float(plan["control_share"]),
        seed=synthetic.DEFAULT_SEED,
        inputs={"source": "the demo's history (data/README.md)"},
        members=members,
        scope=None,
        actor=HISTORY_ACTOR,
        campaign_id="demo-" + when.strftime("%Y%m"),
    )
    return info.id
