"""Train, save, load and score: the steps the CLI and the dashboard share.

I/O stays in analytics.ingest and analytics.store; this module wires the pure pieces together
in one place so the CLI, the dashboard and the API cannot drift apart.
"""

from __future__ import annotations

import functools
import math
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import leaks as leak_rule
from analytics import timeline
from analytics.config import Settings
from analytics.formatting import DEFAULT_CURRENCY, money
from analytics.ingest import read
from analytics.ingest.errors import DataError
from analytics.ingest.validate import Table
from analytics.metrics import value
from analytics.metrics.rates import churn_by_segment
from analytics.model import explain, fastscore, segmentation
from analytics.model import train as training
from analytics.plain import plain
from analytics.result import Unavailable
from analytics.store import artifacts

# What a saved model holds and how (its scored table's reasons, its meta's keys). A model saved
# in another format is not loaded as current: it is retrained, like one of other data.
# 2: reasons in words ("Tenure: 2 months"), not "tenure_months = 2.0".
FORMAT_VERSION = 2
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass
class TrainedModel:
    """Everything `train` produced; `meta` is the JSON sidecar, `scored` the current base."""

    pipeline: object
    segments: segmentation.SegmentModel
    meta: dict
    scored: pd.DataFrame
    importance: pd.DataFrame
    version: str = ""
    extras: dict = field(default_factory=dict)

    @functools.cached_property
    def scorer(self) -> fastscore.FastScorer | None:
        """The pipeline as numpy arithmetic, checked against it (None: use the pipeline)."""
        return fastscore.compile_scorer(self.pipeline, self.meta)


def prepare_base(table: Table, settings: Settings, as_of: str | None = None):
    """The current base (customers active at the window's start) and, with dates, its snapshot."""
    if not table.has_dates:
        return table.frame, None
    snap = timeline.snapshot(table.frame, as_of=as_of, window_months=settings.window_months)
    return snap.base, snap


# With dates, total_revenue is measured on the file's date, after the window starts: stayers
# keep accruing and leavers stop, so it would tell the model who stays (a label leak).
# tenure_months x monthly_revenue, both as of the window's start, carry its honest part.
LEAKS_WITH_DATES = (C.TOTAL_REVENUE,)


def model_features(
    table: Table, found: Sequence[leak_rule.Leak] = ()
) -> tuple[list[str], list[str], list[str]]:
    """(features, numeric, categorical) the churn model uses for this table: its features (the
    loader left out the label leaks it found) without total_revenue when dated and without the
    leaks `found` on the base (base_leaks) that the user did not keep."""
    leaks = set(LEAKS_WITH_DATES) if table.has_dates else set()
    leaks |= {leak.column for leak in found if not leak.kept}
    features = [f for f in table.features if f not in leaks]
    return (
        features,
        [f for f in table.numeric if f not in leaks],
        [f for f in table.categorical if f not in leaks],
    )


def base_leaks(table: Table, base: pd.DataFrame) -> list[leak_rule.Leak]:
    """Probable label leaks (analytics.leaks, METRICS.md) among the model's features on the
    current base, not already named by the loader. Only dated tables need this: their base's
    label is the window's and its tenure the window start's, not the file's the loader judged;
    an undated table's base is the table itself."""
    if not table.has_dates or C.CHURNED not in base:
        return []
    features = model_features(table)[0]
    found, _ = leak_rule.find(
        {c: base[c] for c in features}, base[C.CHURNED].to_numpy(), keep=table.keep
    )
    named = {leak.column for leak in table.leaks}
    return [leak for leak in found if leak.column not in named]


def _holdout(table: Table, settings: Settings, as_of: str | None, feats: Sequence[str]):
    """Time-ordered holdout: train on an earlier snapshot, test on the current one."""
    if not table.has_dates:
        return None, None
    try:
        train_snap, test_snap = timeline.holdout_split(
            table.frame, as_of=as_of, window_months=settings.window_months
        )
    except ValueError:
        return None, None
    if train_snap.base[C.CHURNED].nunique() < 2 or test_snap.base[C.CHURNED].nunique() < 2:
        return None, None
    data = (
        train_snap.base[feats],
        train_snap.base[C.CHURNED].to_numpy(),
        test_snap.base[feats],
        test_snap.base[C.CHURNED].to_numpy(),
    )
    info = {
        "train_window_end": str(train_snap.as_of.date()),
        "test_window": f"{test_snap.window_start.date()}..{test_snap.as_of.date()}",
    }
    return data, info


def train(
    table: Table,
    settings: Settings,
    *,
    source: str = "",
    as_of: str | None = None,
    target_recall: float | None = None,
    progress: Progress = _quiet,
) -> TrainedModel:
    """Fit segments and the churn model on the current base and score it out of fold."""
    if not table.has_label:
        raise DataError("training needs a churn label column: map one with --map churned=<column>")
    progress(f"validated {len(table.frame):,} rows: {len(table.features)} features")
    base, snap = prepare_base(table, settings, as_of)
    if snap is not None:
        progress(
            f"current base: {len(base):,} customers active on {snap.window_start.date()}, "
            f"window {snap.window_start.date()}..{snap.as_of.date()}"
        )
    base = base.reset_index(drop=True)
    y = base[C.CHURNED].to_numpy().astype(int)
    found = base_leaks(table, base)
    features, numeric, categorical = model_features(table, found)
    for leak in sorted(set(table.features) - set(features) - {f.column for f in found}):
        progress(f"not a model feature: {leak} (measured after the window starts: a label leak)")
    for leak in found:
        progress(f"probable label leak on the base — {leak.line()}")
    X = base[features]

    progress("segmenting customers (k-means, k by silhouette)")
    seg_model = segmentation.fit_segments(base, random_state=settings.random_state)

    holdout, holdout_info = _holdout(table, settings, as_of, features)
    sample = training_sample(y, settings.train_sample_rows, settings.random_state)
    if sample is not None:
        progress(
            f"training on a stratified sample of {len(sample):,} of the {len(base):,} customers "
            "(RETENTION_TRAIN_SAMPLE_ROWS); every customer is scored"
        )
    result = training.train(
        X if sample is None else X.iloc[sample],
        y if sample is None else y[sample],
        numeric=numeric,
        categorical=categorical,
        random_state=settings.random_state,
        holdout=holdout,
        target_recall=target_recall,
        currency=settings.currency,
        seconds_per_10k=settings.train_seconds_per_10k_rows,
        progress=progress,
    )

    scored = base.copy()
    if sample is None:
        scored[C.P_CHURN] = result.oof
        for col in C.REASONS:
            scored[col] = result.oof_reasons[col].to_numpy()
    else:
        _score_beyond_sample(scored, X, sample, result, categorical, numeric, settings, progress)
        result.notes.append(
            f"trained on a stratified sample of {len(sample):,} of the {len(base):,} customers "
            f"(RETENTION_TRAIN_SAMPLE_ROWS = {settings.train_sample_rows:,}): the figures are "
            f"out of fold on the sample; the other {len(base) - len(sample):,} customers are "
            "scored by the final model"
        )
    scored[C.SEGMENT] = seg_model.assign(base).to_numpy()
    scored = value.add_value_columns(
        scored,
        threshold=result.threshold,
        margin=settings.margin,
        discount=settings.discount,
        window_months=settings.window_months,
    )

    data_hash = artifacts.frame_hash(table.frame)
    meta = {
        "format_version": FORMAT_VERSION,
        "source": source,
        "data_hash": data_hash,
        "rows": len(table.frame),
        "base_rows": len(base),
        "churned": int(y.sum()),
        "mapping": table.mapping,
        "source_columns": list(table.source_columns),
        "features": features,
        "numeric": numeric,
        "categorical": categorical,
        "dropped": table.dropped,
        "leaks": [leak.as_dict() for leak in (*table.leaks, *found)],
        "coercions": table.coercions,
        "notes": [*table.notes, *_gap_notes(base, numeric, categorical), *result.notes],
        "feature_levels": {c: [str(v) for v in base[c].cat.categories] for c in categorical},
        "feature_ranges": {c: [_finite(base[c].min()), _finite(base[c].max())] for c in numeric},
        # Counts, months and 0/1 flags: a prediction request with 0.5 of one is a mistake.
        "whole_numbers": [c for c in numeric if _all_whole(base[c])],
        "typical": {k: plain(v) for k, v in result.typical.items()},
        "has_dates": table.has_dates,
        "has_revenue": table.has_revenue,
        "as_of": str(snap.as_of.date()) if snap is not None else None,
        "window_start": str(snap.window_start.date()) if snap is not None else None,
        "window_months": settings.window_months,
        "settings": {"margin": settings.margin, "discount": settings.discount},
        "protocol": "5-fold StratifiedKFold(shuffle=True, random_state=42) on the current base;"
        " threshold for reported precision/recall/F1 chosen on the other folds",
        "candidates": result.candidates,
        "search": result.search,
        "sample_rows": None if sample is None else len(sample),
        "chosen": result.chosen,
        "threshold": result.threshold,
        "threshold_rule": (
            f"highest t with out-of-fold recall >= {target_recall}"
            if target_recall
            else "maximises F1 of the churn class on out-of-fold predictions"
        ),
        "metrics": result.metrics,
        "fold_metrics": result.fold_metrics,
        "curves": result.curves,
        "holdout": (
            {**result.holdout_metrics, **(holdout_info or {})} if result.holdout_metrics else None
        ),
        "segments": {
            "k": seg_model.k,
            "columns": list(seg_model.columns),
            "silhouette": {str(k): v for k, v in seg_model.silhouette.items()},
            "names": [seg_model.names[k] for k in sorted(seg_model.names)],
        },
        "python": platform.python_version(),
    }
    return TrainedModel(
        pipeline=result.pipeline,
        segments=seg_model,
        meta=meta,
        scored=scored,
        importance=result.importance,
    )


def training_sample(y: np.ndarray, most: int, random_state: int) -> np.ndarray | None:
    """Sorted row positions of a stratified sample of `most` rows (churn rate kept), or None
    when the base is not larger than that."""
    if len(y) <= most:
        return None
    rng = np.random.default_rng(random_state)
    churned = np.flatnonzero(y == 1)
    stayed = np.flatnonzero(y != 1)
    take = round(most * len(churned) / len(y))
    take = min(max(take, 1), len(churned), most - 1)
    picked = [
        rng.choice(churned, take, replace=False),
        rng.choice(stayed, most - take, replace=False),
    ]
    return np.sort(np.concatenate(picked))


def _score_beyond_sample(scored, X, sample, result, categorical, numeric, settings, progress):
    """Out-of-fold p and reasons for the sample's customers; the final model's for the rest
    (none of whom it saw), through fast scoring when it compiles."""
    rest = np.setdiff1d(np.arange(len(X)), sample, assume_unique=True)
    p = np.empty(len(X))
    reasons = np.full((len(X), len(C.REASONS)), "", dtype=object)
    p[sample] = result.oof
    reasons[sample] = result.oof_reasons[list(C.REASONS)].to_numpy()
    progress(f"scoring the other {len(rest):,} customers with the final model")
    meta = {
        "features": list(X.columns),
        "numeric": numeric,
        "categorical": categorical,
        "feature_levels": {c: [str(v) for v in X[c].cat.categories] for c in categorical},
        "feature_ranges": {c: [_finite(X[c].min()), _finite(X[c].max())] for c in numeric},
    }
    scorer = fastscore.compile_scorer(result.pipeline, meta)
    if scorer is None:
        progress("fast scoring unavailable for this model: scoring with its own library")
    X_rest = X.iloc[rest]
    p_rest, deltas = explain.probability_and_deltas(
        result.pipeline, X_rest, result.typical, scorer=scorer
    )
    p[rest] = p_rest
    words = explain.reasons_from_deltas(X_rest, deltas, top=3, currency=settings.currency)
    reasons[rest] = words[list(C.REASONS)].to_numpy()
    scored[C.P_CHURN] = p
    for j, col in enumerate(C.REASONS):
        scored[col] = reasons[:, j]


def _gap_notes(base: pd.DataFrame, numeric, categorical) -> list[str]:
    """One line per feature with blank cells: how many, and what the model does with them."""
    notes = []
    n = max(len(base), 1)
    for col in [*numeric, *categorical]:
        blank = int(base[col].isna().sum())
        if not blank:
            continue
        how = (
            "the linear model fills them with the median and flags them; trees send them down "
            "a branch learned for gaps"
            if col in numeric
            else "scored as their own level, 'missing'"
        )
        notes.append(f"{col}: {blank:,} blank cells ({100 * blank / n:.1f}% of the base); {how}")
    return notes


def _all_whole(s: pd.Series) -> bool:
    values = s.dropna().to_numpy(dtype="float64")
    return bool(len(values)) and bool(np.all(values == np.round(values)))


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def new_version(data_hash: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{data_hash[:8]}"


def save(trained: TrainedModel, models_dir: Path, *, key: bytes) -> str:
    """Write a new model version atomically, signed with `key`, and make it current."""
    version = new_version(trained.meta["data_hash"])
    artifacts.save_model_version(
        models_dir,
        version,
        objects={"pipeline": trained.pipeline, "segments": trained.segments},
        meta=trained.meta,
        tables={"scored": trained.scored, "importance": trained.importance},
        key=key,
    )
    trained.version = version
    return version


def load(models_dir: Path, version: str | None = None, *, key: bytes) -> TrainedModel:
    """The current (or named) model version, checked by analytics.store.artifacts: signed
    with `key` (artifacts.signing_key), files unchanged, libraries compatible."""
    loaded = artifacts.load_model_version(models_dir, version, key=key)
    objects = loaded.objects
    return TrainedModel(
        pipeline=objects["pipeline"],
        segments=objects["segments"],
        meta=loaded.meta,
        scored=loaded.tables["scored"],
        importance=loaded.tables["importance"],
        version=loaded.version,
    )


def check_compatible(model: TrainedModel, table: Table) -> None:
    """Refuse to score a table that lacks the model's features."""
    missing = [f for f in model.meta["features"] if f not in table.frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise DataError(
            f"the data lacks {len(missing)} column(s) the model was trained on: {shown}; "
            "map them with --map or retrain on this table"
        )


def score(
    model: TrainedModel, table: Table, settings: Settings, *, progress: Progress = _quiet
) -> tuple[pd.DataFrame, str]:
    """Score every customer in `table`; returns (scored frame, how it was scored).

    Customers of the training base keep their out-of-fold probability and reasons (each was
    scored by a model that did not see it); everyone else is new and is scored by the final
    model trained on all rows.
    """
    check_compatible(model, table)
    meta = model.meta
    frame = table.frame.reset_index(drop=True)
    scored = frame.copy()
    scored[C.P_CHURN] = np.nan
    for col in C.REASONS:
        scored[col] = ""
    known = np.zeros(len(frame), dtype=bool)
    if artifacts.frame_hash(table.frame) == meta["data_hash"]:
        oof = model.scored.drop_duplicates(C.CUSTOMER_ID).set_index(C.CUSTOMER_ID)
        ids = scored[C.CUSTOMER_ID]
        known = ids.isin(oof.index).to_numpy()
        rows = oof.loc[ids[known]]
        scored.loc[known, C.P_CHURN] = rows[C.P_CHURN].to_numpy()
        for col in C.REASONS:
            scored.loc[known, col] = rows[col].to_numpy()
    new = ~known
    if new.any():
        X = _align_features(frame.loc[new], meta)
        progress(f"scoring {int(new.sum()):,} customers with the final model")
        p, deltas = explain.probability_and_deltas(
            model.pipeline, X, meta["typical"], scorer=model.scorer
        )
        scored.loc[new, C.P_CHURN] = p
        reasons = explain.reasons_from_deltas(X, deltas, top=3, currency=settings.currency)
        for col in C.REASONS:
            scored.loc[new, col] = reasons[col].to_numpy()
    scored[C.SEGMENT] = model.segments.assign(scored).to_numpy()
    base_rate = meta["churned"] / meta["base_rows"] if meta.get("base_rows") else None
    scored = value.add_value_columns(
        scored,
        threshold=meta["threshold"],
        margin=settings.margin,
        discount=settings.discount,
        window_months=meta.get("window_months", 1),
        base_churn_rate=base_rate,
    )
    if not new.any():
        how = "out-of-fold probabilities (every customer is in the training base)"
    elif known.any():
        how = (
            f"out-of-fold probabilities for the {int(known.sum()):,} customers of the training "
            f"base; the final model for the other {int(new.sum()):,}"
        )
    else:
        how = "the final model trained on all rows (new customers)"
    return scored, how


def _align_features(frame: pd.DataFrame, meta: Mapping) -> pd.DataFrame:
    """Model inputs with the training dtypes: categories as at training, numbers as floats."""
    X = frame[meta["features"]].copy()
    for col in meta["categorical"]:
        levels = meta["feature_levels"].get(col, [])
        values = X[col].astype("string")
        # unique() first: a set of a million arrow strings iterates them one by one (~2 s).
        seen = set(values.dropna().unique())
        X[col] = pd.Categorical(values, categories=sorted(set(levels) | seen))
    for col in meta["numeric"]:
        X[col] = pd.to_numeric(X[col], errors="coerce").astype("float64")
    return X


SCORE_COLUMNS = (
    C.CUSTOMER_ID,
    C.P_CHURN,
    C.RISK_BAND,
    C.SEGMENT,
    C.CLV,
    C.VALUE,
    C.EXPECTED_LOSS,
    *C.REASONS,
)


def score_output(scored: pd.DataFrame) -> pd.DataFrame:
    """The `score` command's columns: one row per input customer."""
    out = pd.DataFrame({col: scored[col] for col in SCORE_COLUMNS if col in scored.columns})
    for col in (C.P_CHURN, C.CLV, C.VALUE, C.EXPECTED_LOSS):
        if col in out:
            out[col] = out[col].round(4 if col == C.P_CHURN else 2)
    return out


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _num(x) -> str:
    """Three decimals; "n/a" for an undefined figure (NaN, or null once saved as JSON)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def report(model: TrainedModel, *, currency: str = DEFAULT_CURRENCY) -> str:
    """The readable evaluation report printed after `train` and by `evaluate`; money in
    `currency` (RETENTION_CURRENCY)."""
    m = model.meta
    met = m["metrics"]
    lines = []
    window = f", window {m['window_start']}..{m['as_of']}" if m.get("as_of") else ""
    lines.append(
        f"Data: {m.get('source') or 'table'} — {m['base_rows']:,} customers in the current base"
        f"{window}; {m['churned']:,} churned ({_pct(m['churned'] / max(m['base_rows'], 1))})"
    )
    if m.get("notes"):
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in m["notes"])
    if m.get("leaks"):
        lines.append("Probable label leaks:")
        lines.extend(f"  - {leak_rule.Leak.of(leak).line()}" for leak in m["leaks"])
    lines.append("")
    searched = len(m.get("search") or [])
    lines.append(
        "Candidates (5-fold stratified CV, ROC-AUC mean ± sd"
        + (f"; the best of {searched} configurations searched" if searched else "")
        + "):"
    )
    for cand in sorted(m["candidates"], key=lambda c: -c["roc_auc_mean"]):
        mark = "  <- chosen" if cand["name"] == m["chosen"] else ""
        lines.append(
            f"  {cand['name']:<18} {cand['roc_auc_mean']:.4f} ± {cand['roc_auc_std']:.4f}"
            f"   PR-AUC {cand['pr_auc_mean']:.3f}   fit {cand['fit_seconds']:.1f} s{mark}"
        )
        if cand.get("config"):
            rounds = f"; {cand['rounds']} rounds" if cand.get("rounds") else ""
            lines.append(f"      {cand['config']}{rounds}")
    lines.append("")
    lines.append(f"Threshold t = {m['threshold']:.3f} ({m['threshold_rule']})")
    lines.append(
        f"At the threshold (chosen on the other folds): precision {_num(met['precision'])}  "
        f"recall {_num(met['recall'])}  F1 {_num(met['f1'])}"
    )
    lines.append(
        f"ROC-AUC {met['roc_auc']:.4f}   PR-AUC {met['pr_auc']:.4f}   "
        f"top-decile lift {met['lift_top_decile']:.2f}x   Brier {met['brier']:.4f}"
    )
    if m.get("holdout"):
        h = m["holdout"]
        lines.append(
            f"Time-ordered holdout (train window ending {h.get('train_window_end')}, "
            f"test {h.get('test_window')}): ROC-AUC {h['roc_auc']:.4f}  PR-AUC {h['pr_auc']:.4f}"
        )
    lines.append("")
    lines.append("Top drivers (permutation importance on held-out folds, drop in ROC-AUC):")
    for i, row in enumerate(model.importance.head(8).itertuples(index=False), start=1):
        lines.append(
            f"  {i}. {row.feature:<24} {row.importance_mean:.4f} ± {row.importance_std:.4f}"
        )
    lines.append("")
    seg = m["segments"]
    lines.append(f"Segments (k-means, k = {seg['k']} by silhouette) and their churn rates:")
    rates = churn_by_segment(model.scored)
    if isinstance(rates, Unavailable):
        lines.append(f"  {rates.reason}")
    else:
        for row in rates.itertuples(index=False):
            lines.append(
                f"  {row.level:<32} {row.customers:>7,} customers   churn {_pct(row.churn_rate)}"
                f" [{_pct(row.ci_low)}–{_pct(row.ci_high)}]"
            )
    hv = value.high_value_at_risk(model.scored)
    if not isinstance(hv, Unavailable):
        lines.append("")
        lines.append(
            f"High-value at-risk customers: {len(hv):,} "
            f"(total expected loss {money(hv[C.EXPECTED_LOSS].sum(), currency)})"
        )
    if model.version:
        lines.append("")
        lines.append(f"Model version {model.version}")
    return "\n".join(lines)


def describe_table(table: Table) -> Sequence[str]:
    """Lines about what loading did, for progress output."""
    lines = [f"mapped: {', '.join(f'{k} <- {v}' for k, v in table.mapping.items())}"]
    leaked = {leak.column for leak in table.leaks}
    for col, why in table.dropped.items():
        if col not in leaked:
            lines.append(f"not used: {col} ({why})")
    lines.extend(f"probable label leak — {leak.line()}" for leak in table.leaks)
    for col, n in table.coercions.items():
        if n:
            lines.append(f"coerced: {n:,} cell(s) in {col} could not be parsed and became missing")
    lines.extend(table.notes)
    return lines


@dataclass
class Workspace:
    """What a serving process holds, read-only: the table, its model and the scored base."""

    table: Table
    model: TrainedModel | None  # None: no model yet (model_free_workspace), one is training
    scored: pd.DataFrame  # the current base, scored out of fold, value columns per settings
    history: pd.DataFrame | None  # the whole dated table (trend, cohorts), None without dates
    settings: Settings
    source: str
    how: str  # "loaded model <version>", "trained model <version> because ...", "no model yet"


NO_MODEL_YET = "no model yet"


def model_free_workspace(table: Table, settings: Settings, source: str) -> Workspace:
    """What a server can serve before its first model: the current base with no score columns
    (no p_churn, reasons, risk band, segment, CLV or expected loss), only the value rules that
    need no model (value at the base's churn rate, high value, value tier: the numbers the
    scored base will have), and the history as load_or_train gives it. Nothing is fitted, so
    it is ready in about a second on 100,000 rows while the model trains as a job."""
    base, _ = prepare_base(table, settings)
    scored = value.add_size_columns(
        base.reset_index(drop=True),
        margin=settings.margin,
        discount=settings.discount,
        window_months=settings.window_months,
    )
    history = table.frame if table.has_dates else None
    return Workspace(table, None, scored, history, settings, source, NO_MODEL_YET)


def load_or_train(
    data: Path,
    settings: Settings,
    *,
    models_dir: Path,
    key: bytes,
    mapping: Mapping[str, str] | None = None,
    drop: Sequence[str] = (),
    retrain: bool = True,
    progress: Progress = _quiet,
    before_retrain: Callable[[str], None] | None = None,
) -> Workspace:
    """Load the table and its current model; train one first when none fits this table.

    A model fits when this installation signed it (`key`, from artifacts.signing_key) and it was
    trained on exactly this table (same data hash). Otherwise, with `retrain`, a new version is
    trained, signed and saved (the documented automatic retrain); without it, the reason is
    raised as an ArtifactError. before_retrain(reason) is called first and may raise to refuse;
    the table is read once either way.
    """
    table = read.load_table(data, mapping, drop=drop, **read.size_limits(settings))
    model: TrainedModel | None = None
    try:
        model = load(models_dir, key=key)
        reason = unfit_reason(model, table)
        if reason is not None:
            raise artifacts.ArtifactError(reason)
        how = f"loaded model {model.version}"
    except artifacts.ArtifactError as exc:
        if not retrain:
            raise
        if before_retrain is not None:
            before_retrain(exc.reason)
        artifacts.check_writable(models_dir)  # before minutes of training, not after
        progress(f"no usable model ({exc.reason}); training one now")
        model = train(table, settings, source=str(data), progress=progress)
        save(model, models_dir, key=key)
        how = f"trained and saved model {model.version}"
    return model_workspace(model, table, settings, str(data), how)


def unfit_reason(model: TrainedModel, table: Table) -> str | None:
    """Why `model` cannot serve `table` (trained on other data, or saved in another format),
    or None when it fits."""
    if model.meta.get("data_hash") != artifacts.frame_hash(table.frame):
        return (
            f"the current model ({model.version}) was trained on other data "
            f"({model.meta.get('source') or 'unknown source'})"
        )
    saved_format = model.meta.get("format_version", 1)
    if saved_format != FORMAT_VERSION:
        return (
            f"the current model ({model.version}) was saved in format {saved_format}; this "
            f"version reads format {FORMAT_VERSION}"
        )
    return None


def model_workspace(
    model: TrainedModel, table: Table, settings: Settings, source: str, how: str
) -> Workspace:
    """What a server serves of `table` with `model` (trained on it): its out-of-fold scores
    with the value columns of these settings, and the dated history."""
    scored = value.add_value_columns(
        model.scored,
        threshold=model.meta["threshold"],
        margin=settings.margin,
        discount=settings.discount,
        window_months=model.meta.get("window_months", 1),
    )
    history = table.frame if table.has_dates else None
    # Compiled here, once: under gunicorn's preload every worker inherits it.
    if model.scorer is None:
        how += "; predictions by the model's own library (fast scoring unavailable for it)"
    return Workspace(table, model, scored, history, settings, source, how)


def apply_updates(
    model: TrainedModel,
    scored: pd.DataFrame,
    updates: Sequence[tuple[str, Mapping]],
    settings: Settings,
) -> pd.DataFrame:
    """`scored` with customers' upserted data (customer id, checked feature values; the last
    update of an id wins) scored by `model`'s final model: a known customer's row is changed in
    place, a new one is appended as an active customer. The model does not change; value
    columns are recomputed over the whole base (the tiers are cut on it)."""
    latest = dict((str(cid), dict(data)) for cid, data in updates)
    if not latest:
        return scored
    meta = model.meta
    frame = pd.DataFrame([{**data, C.CUSTOMER_ID: cid} for cid, data in latest.items()])
    X = _align_features(frame, meta)
    p, deltas = explain.probability_and_deltas(
        model.pipeline, X, meta["typical"], scorer=model.scorer
    )
    reasons = explain.reasons_from_deltas(X, deltas, top=3, currency=settings.currency)
    new = X.reset_index(drop=True)
    new[C.CUSTOMER_ID] = frame[C.CUSTOMER_ID].to_numpy()
    new[C.P_CHURN] = p
    for col in C.REASONS:
        new[col] = reasons[col].to_numpy()
    new[C.SEGMENT] = model.segments.assign(new).to_numpy()
    new = new[[c for c in new.columns if c in scored.columns]]
    out = scored.copy()
    for col in new.columns:  # a level the base never had (a new plan) widens the category
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            known_levels = set(out[col].cat.categories)
            extra = sorted(set(new[col].dropna()) - known_levels, key=str)
            if extra:
                out[col] = out[col].cat.add_categories(extra)
    ids = out[C.CUSTOMER_ID].astype(str)
    first = ~ids.duplicated().to_numpy()
    position = pd.Series(np.flatnonzero(first), index=ids[first].to_numpy())
    known = new[C.CUSTOMER_ID].isin(position.index).to_numpy()
    rows = position.loc[new.loc[known, C.CUSTOMER_ID]].to_numpy()
    for col in new.columns:
        if col == C.CUSTOMER_ID:
            continue
        values = new.loc[known, col]
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            values = pd.Categorical(values, dtype=out[col].dtype)
        column = out[col].copy()
        column.iloc[rows] = np.asarray(values, dtype=object) if column.dtype == object else values
        out[col] = column
    added = new.loc[~known].reindex(columns=out.columns)
    if len(added):
        if C.CHURNED in added:
            added[C.CHURNED] = 0  # a customer the CRM just sent is a current one
        for col in out.columns:
            if isinstance(out[col].dtype, pd.CategoricalDtype):
                added[col] = pd.Categorical(added[col], dtype=out[col].dtype)
        out = pd.concat([out, added], ignore_index=True)
    return value.add_value_columns(
        out,
        threshold=meta["threshold"],
        margin=settings.margin,
        discount=settings.discount,
        window_months=meta.get("window_months", 1),
    )
