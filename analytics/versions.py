"""Model versions side by side, and pruning the old ones.

`compare` puts a candidate beside the live version on the same metrics and, when both scored
the same customers (their datasets share customer ids), counts how many customers change risk
band. `prune` removes versions beyond RETENTION_KEEP_VERSIONS, never the live one or the
previous (the rollback), and model folders that no record names (a job killed between writing
its version and recording it).
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from analytics import columns as C
from analytics import workflow
from analytics.store import artifacts, lifecycle

log = logging.getLogger("analytics.versions")

METRICS = ("roc_auc", "pr_auc", "brier", "lift_top_decile", "precision", "recall", "f1")
# A folder no record names, this old, is no job's version about to be recorded.
ORPHAN_AFTER_SECONDS = 600


def version_metrics(meta: Mapping) -> dict:
    """What a version's list and comparison show: the CV metrics, the holdout's, the base."""
    metrics = {k: meta.get("metrics", {}).get(k) for k in (
        "roc_auc", "pr_auc", "brier", "lift_top_decile", "precision", "recall", "f1",
    )}  # fmt: skip
    metrics.update(
        chosen=meta.get("chosen"),
        threshold=meta.get("threshold"),
        customers=meta.get("base_rows"),
        churned=meta.get("churned"),
        holdout_roc_auc=(meta.get("holdout") or {}).get("roc_auc"),
    )
    return metrics


@functools.lru_cache(maxsize=16)
def _bands(models_dir: str, version: str, key: bytes) -> pd.Series:
    """A version's risk band per customer id (versions are immutable: cached)."""
    model = workflow.load(Path(models_dir), version, key=key)
    bands = model.scored.drop_duplicates(C.CUSTOMER_ID).set_index(C.CUSTOMER_ID)[C.RISK_BAND]
    bands.index = bands.index.astype(str)
    return bands.astype(str)


def band_changes(models_dir: Path, key: bytes, old: str, new: str) -> dict:
    """How many customers both versions scored, and how many change band (from -> to)."""
    a, b = _bands(str(models_dir), old, key), _bands(str(models_dir), new, key)
    both = a.index.intersection(b.index)
    if not len(both):
        return {"common_customers": 0, "changed": None, "moves": []}
    moves = pd.crosstab(a.loc[both], b.loc[both])
    changed = [
        {"from": f, "to": t, "customers": int(moves.loc[f, t])}
        for f in moves.index
        for t in moves.columns
        if f != t and moves.loc[f, t]
    ]
    return {
        "common_customers": len(both),
        "changed": int(sum(m["customers"] for m in changed)),
        "moves": sorted(changed, key=lambda m: -m["customers"]),
    }


def compare(engine: Engine, models_dir: Path, key: bytes, version: str, against: str | None):
    """`version` beside `against` (default the live one): both metric sets, the differences,
    and the band changes when both scored the same customers."""
    found = lifecycle.version(engine, version)
    if found is None:
        raise lifecycle.LifecycleError(f"no model version {version!r}", 404)
    if against is None:
        live = lifecycle.live(engine)
        against = live.version if live is not None else None
    other = lifecycle.version(engine, against) if against else None
    if against and other is None:
        raise lifecycle.LifecycleError(f"no model version {against!r}", 404)
    out = {"version": found.public(), "against": other.public() if other else None}
    if other is None:
        return {**out, "differences": {}, "band_changes": None}
    out["differences"] = {
        m: round(found.metrics[m] - other.metrics[m], 4)
        for m in METRICS
        if isinstance(found.metrics.get(m), (int, float))
        and isinstance(other.metrics.get(m), (int, float))
    }
    try:
        out["band_changes"] = band_changes(models_dir, key, other.version, found.version)
    except artifacts.ArtifactError as exc:
        out["band_changes"] = {"error": str(exc)}
    return out


def prune(engine: Engine, models_dir: Path, keep: int, actor: str | None = None) -> list[str]:
    """Remove versions beyond the newest `keep` (never live or previous) and unrecorded
    folders; returns the removed names."""
    live = lifecycle.live(engine)
    protected = {v for v in (live.version, live.previous) if v} if live else set()
    recorded = lifecycle.versions(engine)
    old = [v.version for v in recorded[keep:] if v.version not in protected]
    names = {v.version for v in lifecycle.versions(engine, include_pruned=True)}
    orphans = [
        name
        for name in artifacts.list_model_versions(models_dir)
        if name not in names
        and name not in protected
        and not _current(models_dir, name)
        and time.time() - (Path(models_dir) / name).stat().st_mtime > ORPHAN_AFTER_SECONDS
    ]
    # Marked first, and only what was marked is removed: a version promoted since `live` was
    # read (a rollback at this moment) is not marked, so its files stay.
    marked = lifecycle.mark_pruned(engine, old, actor)
    removed = []
    for name in [*marked, *orphans]:
        folder = Path(models_dir) / name
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        removed.append(name)
    if removed:
        log.info("pruned model versions: %s", ", ".join(removed))
    return removed


def _current(models_dir: Path, name: str) -> bool:
    """Whether models_dir/CURRENT names `name` (the CLI's current model is never pruned)."""
    try:
        return (Path(models_dir) / artifacts.CURRENT_FILE).read_text().strip() == name
    except OSError:
        return False
