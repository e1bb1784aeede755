"""A watched model (../shared/METRICS.md "Over time"): realised performance of a snapshot once
its window has passed, drift (PSI) of each feature between the training data and the newest
data, and whether the realised ROC-AUC has decayed past a margin.

PSI = sum over bins of (a - e) x ln(a / e), e and a the shares of the training (expected) and
newest (actual) rows per bin; bins = the training data's deciles for numbers (unique edges,
open-ended outer bins, values on an edge in the lower bin), levels for categories (seen on
either side); a blank value is a bin of its own; shares floored at 0.0001. PSI < 0.1 stable,
0.1-0.25 moderate, > 0.25 large.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from analytics import columns as C
from analytics.model.evaluation import ranking, top_decile_lift

SHARE_FLOOR = 0.0001
DECILES = np.linspace(0.1, 0.9, 9)
STABLE_BELOW = 0.1
LARGE_ABOVE = 0.25
DRIFT_COLUMNS = ("feature", "psi", "level")


def realised(frame: pd.DataFrame, *, bins: int = 10) -> dict | None:
    """The snapshot's scores against who actually left in its window, over the rows whose
    outcome (churned) and score are known: n, churners, roc_auc, pr_auc, lift (top decile),
    brier, and calibration = [{decile, mean_p, churn_rate, n}] over `bins` equal-count score
    groups, decile 1 = the highest scores (as the lift table). None when no outcome is known
    or only one class occurred (the figures are undefined)."""
    if C.CHURNED not in frame.columns or C.P_CHURN not in frame.columns:
        return None
    y = frame[C.CHURNED].to_numpy(dtype=float, na_value=np.nan)
    p = frame[C.P_CHURN].to_numpy(dtype=float, na_value=np.nan)
    known = ~np.isnan(y) & ~np.isnan(p)
    y, p = y[known], p[known]
    churners = int(y.sum())
    if churners in (0, len(y)):
        return None
    # One sort serves ROC, PR, lift and the deciles (scikit-learn's scorers sort again each).
    order = np.argsort(-p, kind="stable")
    y_desc, p_desc = y[order], p[order]
    ranked = ranking(y_desc, p_desc)
    return {
        "n": len(y),
        "churners": churners,
        "roc_auc": float(ranked["roc_auc"]),
        "pr_auc": float(ranked["pr_auc"]),
        "lift": top_decile_lift(y_desc, p_desc),
        "brier": float(brier_score_loss(y, p)),
        "calibration": _calibration(y_desc, p_desc, bins),
    }


def _calibration(y_desc: np.ndarray, p_desc: np.ndarray, bins: int) -> list[dict]:
    """Mean p and realised churn rate per equal-count group of the descending scores."""
    n = len(y_desc)
    group = np.arange(n) * bins // n
    size = np.bincount(group, minlength=bins)
    mean_p = np.bincount(group, weights=p_desc, minlength=bins)
    churned = np.bincount(group, weights=y_desc, minlength=bins)
    return [
        {
            "decile": k + 1,
            "mean_p": float(mean_p[k] / size[k]),
            "churn_rate": float(churned[k] / size[k]),
            "n": int(size[k]),
        }
        for k in range(bins)
        if size[k]
    ]


def psi(expected: pd.Series, actual: pd.Series) -> float:
    """Population stability index of `actual` against `expected` (the training data), as the
    module docstring defines it; NaN when either side has no rows."""
    if not len(expected) or not len(actual):
        return float("nan")
    if _is_number(expected) and _is_number(actual):
        e_counts, a_counts = _number_counts(expected, actual)
    else:
        e_counts, a_counts = _level_counts(expected, actual)
    e = np.maximum(e_counts / len(expected), SHARE_FLOOR)
    a = np.maximum(a_counts / len(actual), SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _number_counts(expected: pd.Series, actual: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Rows per training-decile bin, and blank rows last."""
    e = expected.to_numpy(dtype=float, na_value=np.nan)
    a = actual.to_numpy(dtype=float, na_value=np.nan)
    present = e[~np.isnan(e)]
    edges = np.unique(np.quantile(present, DECILES)) if len(present) else np.array([])
    blank = len(edges) + 1

    def counts(x: np.ndarray) -> np.ndarray:
        # = np.searchsorted(edges, x, side="left"): edges below x; a few passes beat a binary
        # search per row for at most nine edges.
        bin_of = np.zeros(len(x), dtype=np.intp)
        for edge in edges:
            bin_of += x > edge
        bin_of[np.isnan(x)] = blank
        return np.bincount(bin_of, minlength=blank + 1)

    return counts(e), counts(a)


def _level_counts(expected: pd.Series, actual: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Rows per level seen on either side, and blank rows last."""
    e_codes, e_levels = pd.factorize(expected)
    a_codes, a_levels = pd.factorize(actual)
    e_levels, a_levels = np.asarray(e_levels, dtype=object), np.asarray(a_levels, dtype=object)
    levels = pd.Index(np.concatenate([e_levels, a_levels]), dtype=object).unique()
    blank = len(levels)

    def counts(codes: np.ndarray, own: np.ndarray) -> np.ndarray:
        where = np.r_[levels.get_indexer(own), blank]  # code -1 (blank) -> the last bin
        return np.bincount(where[codes], minlength=blank + 1)

    return counts(e_codes, e_levels), counts(a_codes, a_levels)


def psi_level(value: float | None) -> str:
    """stable (< 0.1), moderate (0.1-0.25), large (> 0.25); missing without a PSI."""
    if value is None or math.isnan(value):
        return "missing"
    if value < STABLE_BELOW:
        return "stable"
    return "moderate" if value <= LARGE_ABOVE else "large"


def drift(training: pd.DataFrame, newest: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """PSI of each feature from the training data to the newest data: columns feature, psi,
    level, largest drift first. A feature absent from (or without rows on) one side has psi
    None and level "missing", listed last."""
    rows = []
    for feature in features:
        value = None
        if feature in training.columns and feature in newest.columns:
            value = psi(training[feature], newest[feature])
            value = None if math.isnan(value) else value
        rows.append({"feature": feature, "psi": value, "level": psi_level(value)})
    rows.sort(key=lambda r: -r["psi"] if r["psi"] is not None else math.inf)
    # psi stays None (not NaN) where missing: records go to JSON as they are.
    columns = {k: pd.Series([r[k] for r in rows], dtype=object) for k in DRIFT_COLUMNS}
    return pd.DataFrame(columns).astype({"feature": str, "level": str})


def decay(snapshots: list[dict], expected_roc_auc: float | None, margin: float) -> dict:
    """Whether the model has decayed, for a banner: the newest snapshot with a realised ROC-AUC
    (items are realised() results, optionally with "as_of", in time order; None for a
    snapshot whose window has not passed) against expected_roc_auc - margin.

    Returns decayed (bool), as_of, realised_roc_auc, expected_roc_auc, margin, shortfall
    (expected - realised: positive = below expectation) and message (a sentence when decayed,
    else why it cannot tell, else None).
    """
    if not margin >= 0:
        raise ValueError(f"margin must be 0 or more, got {margin}")
    done = [s for s in snapshots if s is not None and s.get("roc_auc") is not None]
    newest = done[-1] if done else {}
    realised_auc = newest.get("roc_auc")
    out = {
        "decayed": False,
        "as_of": newest.get("as_of"),
        "realised_roc_auc": realised_auc,
        "expected_roc_auc": expected_roc_auc,
        "margin": margin,
        "shortfall": None,
        "message": None,
    }
    if realised_auc is None:
        out["message"] = "No snapshot's window has passed yet: realised performance is unknown."
    elif expected_roc_auc is None:
        out["message"] = "The model has no expected ROC-AUC to compare the realised one with."
    else:
        shortfall = expected_roc_auc - realised_auc
        out["shortfall"] = shortfall
        out["decayed"] = realised_auc < expected_roc_auc - margin
        if out["decayed"]:
            when = f" on the snapshot of {out['as_of']}" if out["as_of"] is not None else ""
            out["message"] = (
                f"Realised ROC-AUC {realised_auc:.3f}{when} is {shortfall:.3f} below the "
                f"{expected_roc_auc:.3f} expected (margin {margin:.3f}): consider retraining."
            )
    return out
