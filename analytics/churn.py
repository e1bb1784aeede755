"""Churn model: candidates, cross-validation, out-of-fold scores, threshold, drivers.

Definitions (../shared/METRICS.md): every reported figure comes from 5-fold
StratifiedKFold(shuffle=True, random_state=42) on the whole table. The base is scored with
out-of-fold (OOF) probabilities; new customers with the final model refitted on all rows. The
decision threshold t is chosen on OOF predictions (max F1 of the churn class, or a target
recall). Global importance is permutation importance on held-out folds (drop in ROC-AUC);
per-customer drivers are the change in p when one feature is set to the base's typical value.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import calibration_curve
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    auc,
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from analytics import columns as C
from analytics.model.fastscore import CHUNK_ROWS, FastScorer  # one memory bound for both scorers
from analytics.model.features import build_preprocessor, tree_categorical_features

Progress = Callable[[str], None]

N_SPLITS = 5
MIN_PER_CLASS_PER_FOLD = 5  # fewer per fold and fold metrics become noise: use fewer folds
MIN_PER_CLASS = 2 * MIN_PER_CLASS_PER_FOLD  # below this even 2-fold CV is meaningless
SMALL_TABLE = 2_000  # below this, permutation importance repeats 5 times instead of 3
CURVE_POINTS = 200
CALIBRATION_BINS = 10
TOP_SHARE = 0.10  # top-decile lift
# A driver must move p by at least this much to be shown as a reason ("+0.0 pts" says nothing).
MIN_REASON_DELTA = 0.0005
# The random forest candidate is left out of larger bases: its fits and its predictions over
# deep trees grow faster than its gain there, where gradient boosting does at least as well.
FOREST_MAX_ROWS = 100_000


def _quiet(_message: str) -> None:
    pass


def _one_thread():
    """Run native code (OpenMP in HistGradientBoosting, BLAS) on one thread.

    Our calls are many and small (folds, permutations, driver chunks); on a 2-core or shared
    host, OpenMP threads spin-waiting for a busy core made one HistGradientBoosting fit ~100x
    slower (measured: 0.16 s alone vs 37 s under load), while one thread loses little.
    """
    return _controller().limit(limits=1)


@functools.cache
def _controller() -> ThreadpoolController:
    """Found once: scanning the loaded libraries costs ~4 ms, a third of a single-row prediction
    (the native libraries are loaded by the sklearn imports above)."""
    return ThreadpoolController()


@dataclass
class TrainResult:
    pipeline: Pipeline  # the chosen candidate refitted on all rows (scores new customers)
    chosen: str
    candidates: list[dict]  # name, roc_auc_mean, roc_auc_std, pr_auc_mean, fit_seconds
    threshold: float
    metrics: dict  # the chosen model's OOF evaluation (see _evaluate)
    fold_metrics: list[dict]  # per fold: its own threshold (chosen on the other folds) and scores
    curves: dict  # roc {fpr, tpr}, pr {recall, precision}, calibration {prob_pred, prob_true}
    oof: np.ndarray  # out-of-fold probability per row, in X's order
    oof_reasons: pd.DataFrame  # reason_1..3 per row, from the fold model that scored the row
    importance: pd.DataFrame  # feature, importance_mean, importance_std; sorted desc
    typical: dict  # feature -> typical value of the base (median / mode)
    holdout_metrics: dict | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- candidates


def candidate_pipelines(
    numeric: Sequence[str],
    categorical: Sequence[str],
    random_state: int = 42,
    *,
    forest: bool = True,
) -> dict[str, Pipeline]:
    """Unfitted candidates, each one Pipeline from raw feature columns to probability."""
    logistic = Pipeline(
        [
            ("preprocess", build_preprocessor("linear", numeric, categorical)),
            # Mild L2 (C=0.5): splines and one-hot levels add many correlated columns.
            ("model", LogisticRegression(C=0.5, max_iter=2000)),
        ]
    )
    boosting = Pipeline(
        [
            ("preprocess", build_preprocessor("tree", numeric, categorical)),
            # Tuned on Telco: slower learning, small trees, big leaves; early stopping on a 10 %
            # validation split picks the number of trees.
            (
                "model",
                HistGradientBoostingClassifier(
                    learning_rate=0.05,
                    max_leaf_nodes=15,
                    l2_regularization=1.0,
                    min_samples_leaf=40,
                    max_iter=300,
                    early_stopping=True,
                    validation_fraction=0.1,
                    n_iter_no_change=10,
                    categorical_features=tree_categorical_features(categorical),
                    random_state=random_state,
                ),
            ),
        ]
    )
    blend = Pipeline(
        [
            (
                "model",
                VotingClassifier(
                    [("logistic", clone(logistic)), ("gradient_boosting", clone(boosting))],
                    voting="soft",
                ),
            ),
        ]
    )
    candidates = {"logistic": logistic, "gradient_boosting": boosting}
    if forest:
        # Bagged deep trees win where many small threshold effects add up on a few thousand
        # rows (a telecom-style table: 0.839 vs 0.821 for the boosting above). Leaves of at
        # least 5 rows rank probabilities better than fully grown trees (Telco 0.843 vs 0.825).
        candidates["random_forest"] = Pipeline(
            [
                ("preprocess", build_preprocessor("tree", numeric, categorical)),
                (
                    "model",
                    RandomForestClassifier(
                        n_estimators=300,
                        min_samples_leaf=5,
                        max_features="sqrt",
                        n_jobs=-1,
                        random_state=random_state,
                    ),
                ),
            ]
        )
    candidates["blend"] = blend
    return candidates


def predict_proba(pipeline, X: pd.DataFrame) -> np.ndarray:
    """Probability of churn (class 1) per row."""
    with _one_thread():
        proba = pipeline.predict_proba(X)
    classes = list(pipeline.classes_)
    return proba[:, classes.index(1)]


def risk_band(p, threshold: float) -> pd.Categorical:
    """High if p >= t; Medium if t/2 <= p < t; Low otherwise (METRICS.md)."""
    p = np.asarray(p, dtype=float)
    bands = np.select([p >= threshold, p >= threshold / 2], ["High", "Medium"], "Low")
    bands = np.where(np.isnan(p), None, bands)
    return pd.Categorical(bands, categories=list(C.RISK_BANDS), ordered=True)


# ---------------------------------------------------------------- threshold and metrics


def choose_threshold(y: np.ndarray, p: np.ndarray, target_recall: float | None = None) -> float:
    """t maximising F1 of the churn class (predict churn when p >= t).

    With target_recall: the highest t whose recall still reaches the target, i.e. the fewest
    customers flagged for that recall.
    """
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if target_recall is None:
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        return float(thresholds[int(np.argmax(f1))])
    reached = np.flatnonzero(recall >= target_recall)
    return float(thresholds[reached[-1]])


def _at_threshold(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    flagged = p >= t
    tp = int(np.sum(flagged & (y == 1)))
    n_flagged, positives = int(flagged.sum()), int(y.sum())
    precision = tp / n_flagged if n_flagged else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged_share": n_flagged / len(y)}


def top_decile_lift(y: np.ndarray, p: np.ndarray, share: float = TOP_SHARE) -> float:
    """Churn rate among the top `share` of scores / base churn rate."""
    n_top = max(1, math.ceil(share * len(y)))
    top = np.argsort(-p, kind="stable")[:n_top]
    return float(y[top].mean() / y.mean())


def _score(y: np.ndarray, p: np.ndarray) -> dict:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "lift_top_decile": top_decile_lift(y, p),
    }


def _downsample(*arrays: np.ndarray, points: int = CURVE_POINTS) -> list[list[float]]:
    n = len(arrays[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int))
    return [[float(v) for v in a[idx]] for a in arrays]


def curves(y: np.ndarray, p: np.ndarray, ranked: dict | None = None) -> dict:
    """ROC and PR points (at most CURVE_POINTS each) and a 10-quantile-bin calibration curve.

    `ranked`: ranking(...) of the same customers, when the caller has it (saves two sorts).
    """
    if ranked is None:
        fpr, tpr, _ = roc_curve(y, p)
        precision, recall, _ = precision_recall_curve(y, p)
        prob_true, prob_pred = calibration_curve(y, p, n_bins=CALIBRATION_BINS, strategy="quantile")
    else:
        fpr, tpr = ranked["fpr"], ranked["tpr"]
        precision, recall = ranked["precision"], ranked["recall"]
        prob_true, prob_pred = _quantile_calibration(y, p, ranked["ascending"])
    fpr_s, tpr_s = _downsample(fpr, tpr)
    recall_s, precision_s = _downsample(recall, precision)
    return {
        "roc": {"fpr": fpr_s, "tpr": tpr_s},
        "pr": {"recall": recall_s, "precision": precision_s},
        "calibration": {
            "prob_pred": [float(v) for v in prob_pred],
            "prob_true": [float(v) for v in prob_true],
        },
    }


def ranking(y_desc: np.ndarray, p_desc: np.ndarray) -> dict:
    """ROC and precision-recall of labels 0/1 whose scores are sorted in descending order (ties
    in any order), both classes present: exactly what scikit-learn's roc_curve (fpr, tpr),
    precision_recall_curve (precision, recall), roc_auc_score (roc_auc) and
    average_precision_score (pr_auc) give, from one cumulative sum. Each of those sorts and
    checks its input again: a quarter of a second per call on a million scores.
    """
    # confusion_matrix_at_thresholds: counts at each distinct score, highest first.
    last = np.r_[np.flatnonzero(np.diff(p_desc)), len(p_desc) - 1]
    tps = np.cumsum(y_desc.astype(np.float64), dtype=np.float64)[last]
    fps = 1 + last.astype(np.float64) - tps
    # roc_curve(drop_intermediate=True): keep the corners, then start at (0, 0).
    if len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        roc_fps, roc_tps = fps[corner], tps[corner]
    else:
        roc_fps, roc_tps = fps, tps
    roc_fps, roc_tps = np.r_[0.0, roc_fps], np.r_[0.0, roc_tps]
    fpr, tpr = roc_fps / roc_fps[-1], roc_tps / roc_tps[-1]
    # precision_recall_curve: every threshold, reversed so recall decreases, ending at (0, 1).
    ps = tps + fps
    precision = np.where(ps != 0, np.divide(tps, ps), 0.0)
    recall = tps / tps[-1]
    precision, recall = np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]
    return {
        "fpr": fpr,
        "tpr": tpr,
        "precision": precision,
        "recall": recall,
        "ascending": p_desc[::-1],
        "roc_auc": auc(fpr, tpr),
        "pr_auc": float(max(0.0, -np.sum(np.diff(recall) * precision[:-1]))),
    }


def _quantile_calibration(y: np.ndarray, p: np.ndarray, p_ascending: np.ndarray):
    """calibration_curve(y, p, n_bins=CALIBRATION_BINS, strategy="quantile") step for step,
    the bin edges from the same scores already sorted (the same percentiles; partitioning a
    sorted copy is ten times faster) and without its checks."""
    quantiles = np.linspace(0, 1, CALIBRATION_BINS + 1)
    bins = np.percentile(np.ascontiguousarray(p_ascending), quantiles * 100)
    # = np.searchsorted(bins[1:-1], p): how many inner edges lie below each score.
    binids = np.zeros(len(p), dtype=np.intp)
    for edge in bins[1:-1]:
        binids += p > edge
    bin_sums = np.bincount(binids, weights=p, minlength=CALIBRATION_BINS)
    bin_true = np.bincount(binids, weights=y == 1, minlength=CALIBRATION_BINS)
    bin_total = np.bincount(binids, minlength=CALIBRATION_BINS)
    nonzero = bin_total != 0
    return bin_true[nonzero] / bin_total[nonzero], bin_sums[nonzero] / bin_total[nonzero]


def honest_fold_metrics(
    y: np.ndarray,
    oof: np.ndarray,
    folds: Sequence[np.ndarray],
    target_recall: float | None = None,
) -> list[dict]:
    """Per fold k: t chosen on the OOF predictions of the other folds, applied to fold k.

    Choosing t on the same predictions it is judged on would flatter precision/recall/F1.
    """
    out = []
    all_rows = np.arange(len(y))
    for k, test in enumerate(folds, start=1):
        others = np.setdiff1d(all_rows, test, assume_unique=True)
        t = choose_threshold(y[others], oof[others], target_recall)
        yk, pk = y[test], oof[test]
        out.append(
            {
                "fold": k,
                "rows": len(test),
                "churned": int(yk.sum()),
                "threshold": t,
                **_at_threshold(yk, pk, t),
                "roc_auc": float(roc_auc_score(yk, pk)),
                "pr_auc": float(average_precision_score(yk, pk)),
            }
        )
    return out


def _evaluate(
    y: np.ndarray,
    oof: np.ndarray,
    folds: Sequence[np.ndarray],
    threshold: float,
    fold_metrics: list[dict],
) -> dict:
    pooled = _score(y, oof)
    fold_auc = [f["roc_auc"] for f in fold_metrics]
    fold_ap = [f["pr_auc"] for f in fold_metrics]
    optimistic = _at_threshold(y, oof, threshold)
    return {
        # Headline ROC-AUC / PR-AUC: mean over folds (the protocol's figure, as for candidates).
        "roc_auc": float(np.mean(fold_auc)),
        "roc_auc_std": float(np.std(fold_auc)),
        "pr_auc": float(np.mean(fold_ap)),
        "pr_auc_std": float(np.std(fold_ap)),
        "roc_auc_pooled": pooled["roc_auc"],
        "pr_auc_pooled": pooled["pr_auc"],
        # Precision / recall / F1: mean over folds, each fold at a threshold chosen without it.
        **{k: float(np.mean([f[k] for f in fold_metrics])) for k in ("precision", "recall", "f1")},
        **{
            f"{k}_std": float(np.std([f[k] for f in fold_metrics]))
            for k in ("precision", "recall", "f1")
        },
        "threshold": threshold,
        # Share of the base at or above the production threshold (how many get flagged).
        "flagged_share": optimistic["flagged_share"],
        # At t on all OOF rows: optimistic (t was chosen on them); kept for comparison only.
        "f1_at_t_in_sample": optimistic["f1"],
        "lift_top_decile": pooled["lift_top_decile"],
        "brier": pooled["brier"],
        "base_rate": float(y.mean()),
        "rows": len(y),
        "churned": int(y.sum()),
        "n_splits": len(folds),
    }


# ---------------------------------------------------------------- typical values and drivers


def typical_values(X: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> dict:
    """feature -> the base's typical value: median (numeric) or most frequent level.

    NaN when a feature has no observed value. Ties between levels go to the first level in
    sorted order, so the result does not depend on row order.
    """
    typical: dict = {}
    for col in numeric:
        values = X[col].dropna()
        typical[col] = float(values.median()) if len(values) else math.nan
    for col in categorical:
        counts = X[col].astype("string").value_counts(dropna=True)
        if counts.empty:
            typical[col] = math.nan
        else:
            top = counts.max()
            typical[col] = str(min(level for level, n in counts.items() if n == top))
    return typical


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _stack(part: pd.DataFrame, overrides: Sequence[tuple[str, object]]) -> pd.DataFrame:
    """len(overrides) copies of `part`, one after the other; in copy b, column overrides[b][0]
    is replaced by overrides[b][1]: an index array (that column's rows reordered) or a scalar
    (category code, -1 = missing, for categoricals; a number, NaN = missing, otherwise).

    Building columns directly (codes for categoricals) keeps every dtype, so the pipeline sees
    exactly the columns it would see for the rows one by one.
    """
    m, n_copies = len(part), len(overrides)
    columns = {}
    for col in part.columns:
        s = part[col]
        is_cat = isinstance(s.dtype, pd.CategoricalDtype)
        base = s.cat.codes.to_numpy() if is_cat else s.to_numpy()
        copies = [b for b, (c, _) in enumerate(overrides) if c == col]
        values = np.tile(base, n_copies)
        if copies and not is_cat and pd.api.types.is_numeric_dtype(s.dtype):
            values = values.astype("float64")  # a constant may be NaN
        for b in copies:
            change = overrides[b][1]
            values[b * m : (b + 1) * m] = base[change] if isinstance(change, np.ndarray) else change
        columns[col] = pd.Categorical.from_codes(values, dtype=s.dtype) if is_cat else values
    return pd.DataFrame(columns)


def _predict_stacked(
    pipeline, part: pd.DataFrame, overrides: Sequence[tuple[str, object]], chunk_rows: int
) -> np.ndarray:
    """p for every copy of `part` (shape: copies x rows), at most ~chunk_rows rows per call."""
    m = len(part)
    per_call = max(1, chunk_rows // max(m, 1))
    out = []
    for start in range(0, len(overrides), per_call):
        batch = overrides[start : start + per_call]
        out.append(predict_proba(pipeline, _stack(part, batch)).reshape(len(batch), m))
    return np.vstack(out)


def _at_typical(X: pd.DataFrame, col: str, value) -> np.ndarray:
    """Rows whose value already is the typical one (their delta is exactly 0)."""
    s = X[col]
    if _is_missing(value):
        return s.isna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        return (s.astype("string") == str(value)).fillna(False).to_numpy(dtype=bool)
    return (s.astype("float64") == float(value)).to_numpy()


def probability_and_deltas(
    pipeline,
    X: pd.DataFrame,
    typical: Mapping,
    *,
    chunk_rows: int = CHUNK_ROWS,
    scorer: FastScorer | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """p_i for every row, and per row and feature: p_i - p_i(with that feature set to the base's
    typical value).

    Positive = this customer's value of the feature raises their churn probability. The
    variants of a chunk of rows go through one predict_proba call; chunks bound the memory. A
    small frame (an API request) goes through a single call, its own rows included: each
    pipeline call has a fixed cost of several milliseconds.

    With a `scorer` (analytics.model.fastscore, compiled from this pipeline) the same numbers come
    from numpy arithmetic instead, without that fixed cost.
    """
    if scorer is not None and list(X.columns) == scorer.features and len(X):
        return _fast_probability_and_deltas(scorer, X, typical, chunk_rows)
    feats = [c for c in X.columns if c in typical]
    n, k = len(X), len(feats)
    deltas = np.zeros((n, k))
    if not n or not k:
        return predict_proba(pipeline, X) if n else np.zeros(0), pd.DataFrame(
            deltas, index=X.index, columns=feats
        )
    index = X.index
    X = X.reset_index(drop=True)  # a copy: adding a category below must not touch the caller's
    overrides = []
    for col in feats:
        value = typical[col]
        if isinstance(X[col].dtype, pd.CategoricalDtype):
            if _is_missing(value):
                value = -1
            else:
                if value not in X[col].cat.categories:  # typical level unseen in this frame
                    X[col] = X[col].cat.add_categories([value])
                value = X[col].cat.categories.get_loc(value)
        else:
            value = math.nan if _is_missing(value) else float(value)
        overrides.append((col, value))
    if n * (k + 1) <= chunk_rows:
        both = _predict_stacked(pipeline, X, [(None, None), *overrides], chunk_rows)
        base, varied = both[0], both[1:]
        deltas[:] = base[:, None] - varied.T
    else:
        base = predict_proba(pipeline, X)
        rows_per_chunk = max(1, chunk_rows // k)
        for start in range(0, n, rows_per_chunk):
            part = X.iloc[start : start + rows_per_chunk]
            varied = _predict_stacked(pipeline, part, overrides, chunk_rows)
            deltas[start : start + len(part)] = base[start : start + len(part), None] - varied.T
    for j, col in enumerate(feats):
        deltas[_at_typical(X, col, typical[col]), j] = 0.0
    return base, pd.DataFrame(deltas, index=index, columns=feats)


def _fast_probability_and_deltas(
    scorer: FastScorer, X: pd.DataFrame, typical: Mapping, chunk_rows: int
) -> tuple[np.ndarray, pd.DataFrame]:
    R = scorer.encode_frame(X)
    p, deltas = scorer.probability_and_deltas(R, typical, chunk_rows=chunk_rows)
    return p, pd.DataFrame(deltas, index=X.index, columns=scorer.features)


def driver_deltas(
    pipeline, X: pd.DataFrame, typical: Mapping, *, chunk_rows: int = CHUNK_ROWS
) -> pd.DataFrame:
    """Per row and feature: p_i - p_i(with that feature set to the base's typical value)."""
    return probability_and_deltas(pipeline, X, typical, chunk_rows=chunk_rows)[1]


def _format_value(v) -> str:
    if _is_missing(v):
        return "missing"
    if isinstance(v, str):
        return v
    x = float(v)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x.is_integer():
        return str(int(x))
    return f"{x:.4g}"


def reasons_from_deltas(X: pd.DataFrame, deltas: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """reason_1..reason_top: the largest increases, e.g. "contract = Monthly (+18.2 pts)"."""
    names = [f"reason_{i}" for i in range(1, top + 1)]
    n = len(deltas)
    out = np.full((n, top), "", dtype=object)
    if n and deltas.shape[1]:
        values = deltas.to_numpy()
        # Stable order: ties go to the column order, so reasons are reproducible.
        order = np.argsort(-values, axis=1, kind="stable")[:, :top]
        feats = list(deltas.columns)
        raw = {f: X[f].to_numpy(dtype=object) for f in feats}
        for i in range(n):
            for r, j in enumerate(order[i]):
                d = values[i, j]
                if d < MIN_REASON_DELTA:
                    break
                f = feats[j]
                out[i, r] = f"{f} = {_format_value(raw[f][i])} (+{100 * d:.1f} pts)"
    return pd.DataFrame(out, index=deltas.index, columns=names)


def customer_drivers(pipeline, X: pd.DataFrame, typical: Mapping, top: int = 3) -> pd.DataFrame:
    """reason_1..reason_top per customer ("" when fewer positive drivers)."""
    return reasons_from_deltas(X, driver_deltas(pipeline, X, typical), top=top)


# ---------------------------------------------------------------- training


def _check_inputs(X: pd.DataFrame, y, numeric, categorical) -> tuple[np.ndarray, list[str]]:
    features = [*numeric, *categorical]
    missing = [c for c in features if c not in X.columns]
    if missing:
        raise ValueError(f"feature columns not in the table: {missing}")
    if not features:
        raise ValueError("the model needs at least one feature column")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"the label has {len(y)} values for {len(X)} rows")
    if pd.isna(y).any() or not np.isin(y, (0, 1)).all():
        raise ValueError("the churn label must be 0/1 for every row")
    return y.astype(int), features


def _n_splits(y: np.ndarray, notes: list[str]) -> int:
    churned = int(y.sum())
    retained = len(y) - churned
    if churned == 0 or retained == 0:
        raise ValueError(
            "training needs both churned and retained customers; "
            f"this table has {churned:,} churned and {retained:,} retained"
        )
    fewest = min(churned, retained)
    if fewest < MIN_PER_CLASS:
        which = "churned" if churned <= retained else "retained"
        raise ValueError(
            f"too few {which} customers to train and evaluate a model: {fewest} "
            f"(at least {MIN_PER_CLASS} needed)"
        )
    n_splits = min(N_SPLITS, fewest // MIN_PER_CLASS_PER_FOLD)
    if n_splits < N_SPLITS:
        notes.append(
            f"only {fewest} customers in the smaller class: {n_splits}-fold instead of "
            f"{N_SPLITS}-fold cross-validation, so every fold holds at least "
            f"{MIN_PER_CLASS_PER_FOLD} of them"
        )
    return n_splits


def _cross_validate(name, pipeline, X, y, folds, progress) -> tuple[np.ndarray, list, dict]:
    oof = np.zeros(len(y))
    models, seconds, aucs, aps = [], [], [], []
    for k, (train_idx, test_idx) in enumerate(folds, start=1):
        progress(f"cross-validating {name} (fold {k}/{len(folds)})")
        model = clone(pipeline)
        started = time.perf_counter()
        model.fit(X.iloc[train_idx], y[train_idx])
        seconds.append(time.perf_counter() - started)
        p = predict_proba(model, X.iloc[test_idx])
        oof[test_idx] = p
        aucs.append(roc_auc_score(y[test_idx], p))
        aps.append(average_precision_score(y[test_idx], p))
        models.append(model)
    summary = {
        "name": name,
        "roc_auc_mean": float(np.mean(aucs)),
        "roc_auc_std": float(np.std(aucs)),
        "pr_auc_mean": float(np.mean(aps)),
        "fit_seconds": float(np.mean(seconds)),  # mean seconds per fit (one fold)
    }
    return oof, models, summary


def permutation_drop(
    model,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    n_repeats: int,
    random_state: int,
    chunk_rows: int = CHUNK_ROWS,
) -> np.ndarray:
    """Drop in ROC-AUC when each raw column is shuffled: shape (features, n_repeats).

    The same permutations and result as sklearn.inspection.permutation_importance(model, X, y,
    scoring="roc_auc", n_repeats, random_state) (a test pins this), but the shuffled copies go
    through predict_proba together instead of one call each: on Telco-sized folds each call is
    mostly fixed overhead, so this is about twice as fast.
    """
    n = len(X)
    # sklearn's scheme: one seed drawn from random_state; every column restarts from it,
    # shuffles one index array further each repeat and applies it to the already shuffled
    # column, so repeat r's rows are the composition of the r orders drawn so far.
    seed = np.random.RandomState(random_state).randint(np.iinfo(np.int32).max + 1)
    overrides = []
    for col in X.columns:
        rng = np.random.RandomState(seed)
        order, rows = np.arange(n), np.arange(n)
        for _ in range(n_repeats):
            rng.shuffle(order)
            rows = rows[order]
            overrides.append((col, rows))
    X = X.reset_index(drop=True)
    baseline = roc_auc_score(y, predict_proba(model, X))
    shuffled = _predict_stacked(model, X, overrides, chunk_rows)
    scores = np.array([roc_auc_score(y, p) for p in shuffled])
    return baseline - scores.reshape(X.shape[1], n_repeats)


def _importance(models, X, y, folds, random_state, progress) -> pd.DataFrame:
    """Permutation importance of the raw columns on each held-out fold; mean/sd over folds."""
    repeats = 5 if len(X) < SMALL_TABLE else 3
    per_fold = []
    for k, ((_, test_idx), model) in enumerate(zip(folds, models, strict=True), start=1):
        progress(f"permutation importance (fold {k}/{len(folds)})")
        drop = permutation_drop(
            model, X.iloc[test_idx], y[test_idx], n_repeats=repeats, random_state=random_state
        )
        per_fold.append(drop.mean(axis=1))
    per_fold = np.array(per_fold)
    imp = pd.DataFrame(
        {
            "feature": list(X.columns),
            "importance_mean": per_fold.mean(axis=0),
            "importance_std": per_fold.std(axis=0),
        }
    )
    return imp.sort_values(
        ["importance_mean", "feature"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def _oof_reasons(models, X, folds, typical, progress) -> pd.DataFrame:
    progress("explaining out-of-fold scores (top three drivers per customer)")
    parts = []
    for (_, test_idx), model in zip(folds, models, strict=True):
        Xk = X.iloc[test_idx]
        parts.append(reasons_from_deltas(Xk, driver_deltas(model, Xk, typical)))
    return pd.concat(parts).sort_index()


def _holdout(
    pipeline, holdout, numeric, categorical, random_state, target_recall, threshold, progress
) -> dict:
    X_train, y_train, X_test, y_test = holdout
    features = [*numeric, *categorical]
    y_train, _ = _check_inputs(X_train, y_train, numeric, categorical)
    y_test, _ = _check_inputs(X_test, y_test, numeric, categorical)
    X_train = X_train[features].reset_index(drop=True)
    X_test = X_test[features].reset_index(drop=True)
    if len(np.unique(y_test)) < 2:
        raise ValueError("the holdout's test part needs both churned and retained customers")
    notes: list[str] = []
    try:
        n_splits = _n_splits(y_train, notes)
    except ValueError:
        n_splits = 0
    if n_splits:
        # The threshold comes from a CV of the training part: the test period's labels stay
        # unseen until the final score.
        folds = list(
            StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(
                X_train, y_train
            )
        )
        oof, _, _ = _cross_validate(
            "the holdout's training part", pipeline, X_train, y_train, folds, progress
        )
        t = choose_threshold(y_train, oof, target_recall)
        source = f"chosen on {n_splits}-fold CV of the holdout's training part"
    else:
        t, source = threshold, "the production threshold (training part too small for CV)"
    progress(f"time-ordered holdout: fitting on {len(X_train):,} rows, testing on {len(X_test):,}")
    model = clone(pipeline).fit(X_train, y_train)
    p = predict_proba(model, X_test)
    return {
        **_score(y_test, p),
        **_at_threshold(y_test, p, t),
        "threshold": t,
        "threshold_source": source,
        "train_rows": len(X_train),
        "test_rows": len(X_test),
        "test_churn_rate": float(y_test.mean()),
    }


def train(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    random_state: int = 42,
    holdout: tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray] | None = None,
    target_recall: float | None = None,
    progress: Progress = _quiet,
) -> TrainResult:
    """Cross-validate every candidate, keep the best by mean ROC-AUC, evaluate and refit it."""
    with _one_thread():
        return _train(
            X,
            y,
            numeric=numeric,
            categorical=categorical,
            random_state=random_state,
            holdout=holdout,
            target_recall=target_recall,
            progress=progress,
        )


def _train(X, y, *, numeric, categorical, random_state, holdout, target_recall, progress):
    numeric, categorical = list(numeric), list(categorical)
    y, features = _check_inputs(X, y, numeric, categorical)
    if target_recall is not None and not 0 < target_recall <= 1:
        raise ValueError(f"target recall must be in (0, 1], got {target_recall}")
    notes: list[str] = []
    n_splits = _n_splits(y, notes)
    index = X.index
    X = X[features].reset_index(drop=True)
    folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(X, y))

    forest = len(X) <= FOREST_MAX_ROWS
    if not forest:
        notes.append(
            f"random forest not tried: {len(X):,} rows is over {FOREST_MAX_ROWS:,} (slow to fit "
            "and to score there, and gradient boosting does at least as well)"
        )
    pipelines = candidate_pipelines(numeric, categorical, random_state=random_state, forest=forest)
    results = {}
    for name, pipeline in pipelines.items():
        results[name] = _cross_validate(name, pipeline, X, y, folds, progress)
    summaries = [results[name][2] for name in pipelines]
    # Highest mean CV ROC-AUC; ties keep the simpler (earlier) candidate.
    chosen = max(summaries, key=lambda s: s["roc_auc_mean"])["name"]
    oof, fold_models, _ = results[chosen]

    progress(f"choosing the threshold on {chosen}'s out-of-fold scores")
    test_folds = [test for _, test in folds]
    threshold = choose_threshold(y, oof, target_recall)
    fold_metrics = honest_fold_metrics(y, oof, test_folds, target_recall)
    metrics = _evaluate(y, oof, test_folds, threshold, fold_metrics)
    metrics["threshold_rule"] = (
        f"highest t with out-of-fold recall >= {target_recall}"
        if target_recall
        else "maximises F1 of the churn class on out-of-fold predictions"
    )

    importance = _importance(fold_models, X, y, folds, random_state, progress)
    typical = typical_values(X, numeric, categorical)
    oof_reasons = _oof_reasons(fold_models, X, folds, typical, progress)
    oof_reasons.index = index

    progress(f"refitting {chosen} on all {len(X):,} rows")
    final = clone(pipelines[chosen]).fit(X, y)

    holdout_metrics = None
    if holdout is not None:
        holdout_metrics = _holdout(
            pipelines[chosen],
            holdout,
            numeric,
            categorical,
            random_state,
            target_recall,
            threshold,
            progress,
        )
    return TrainResult(
        pipeline=final,
        chosen=chosen,
        candidates=summaries,
        threshold=threshold,
        metrics=metrics,
        fold_metrics=fold_metrics,
        curves=curves(y, oof),
        oof=oof,
        oof_reasons=oof_reasons,
        importance=importance,
        typical=typical,
        holdout_metrics=holdout_metrics,
        notes=notes,
    )
