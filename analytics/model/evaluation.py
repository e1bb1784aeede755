"""Model evaluation on out-of-fold predictions (../shared/METRICS.md): the decision threshold,
precision / recall / F1 at it, honest per-fold metrics, ROC and precision-recall curves,
calibration, lift.

Every reported figure follows the protocol: 5-fold StratifiedKFold(shuffle=True,
random_state=42) on the whole table; the threshold t is chosen on out-of-fold predictions (max F1
of the churn class, or a target recall).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    auc,
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

CURVE_POINTS = 200
CALIBRATION_BINS = 10
TOP_SHARE = 0.10  # top-decile lift
RANK_CELLS = 2_000_000  # scores ranked at once by roc_auc (bounds its memory to ~100 MB)


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


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Confusion matrix, precision, recall and F1 of the churn class at `threshold` (predict
    churn when p >= t), and how many are flagged.

    A figure whose denominator is 0 is undefined and NaN, never 0: precision when nobody is
    flagged, recall when nobody churned, F1 when neither happens. With churners but nobody
    flagged, F1 = 2tp / (2tp + fp + fn) is 0.
    """
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(p) >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    n = len(y)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        "flagged": tp + fp,
        "flagged_share": (tp + fp) / n if n else float("nan"),
    }


# What the per-fold and holdout reports keep of at_threshold.
THRESHOLD_METRICS = ("precision", "recall", "f1", "flagged_share")


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """THRESHOLD_METRICS of at_threshold(y, p, threshold)."""
    m = at_threshold(y, p, threshold)
    return {k: m[k] for k in THRESHOLD_METRICS}


def _mean_defined(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sd over the folds where a figure is defined (NaN when it is nowhere)."""
    defined = [v for v in values if not math.isnan(v)]
    if not defined:
        return float("nan"), float("nan")
    return float(np.mean(defined)), float(np.std(defined))


def top_decile_lift(y: np.ndarray, p: np.ndarray, share: float = TOP_SHARE) -> float:
    """Churn rate among the top `share` of scores / base churn rate."""
    n_top = max(1, math.ceil(share * len(y)))
    top = np.argsort(-p, kind="stable")[:n_top]
    return float(y[top].mean() / y.mean())


def roc_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray | float:
    """ROC-AUC of each row of `scores` (or of one score vector) against the 0/1 labels y.

    The rank form (Mann-Whitney U: mean rank of the churned, ties at their average rank) equals
    sklearn's roc_auc_score (a test pins this) without its input checks, which cost ~2 ms a call:
    the search reads the AUC of every fold every ROUND_STEP rounds, permutation importance one
    per feature and repeat, so most of a small table's training went into those checks.
    """
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype="float64")
    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        raise ValueError("ROC-AUC needs both churned and retained customers")
    if not np.isfinite(scores).all():
        raise ValueError("ROC-AUC needs finite scores; these hold NaN or infinity")
    rows = np.atleast_2d(scores)
    out = np.empty(len(rows))
    # Ranked a block of rows at a time: rankdata's work arrays are ~6x its input, and
    # permutation importance passes every shuffled copy of a fold at once.
    step = max(1, RANK_CELLS // max(len(y), 1))
    for start in range(0, len(rows), step):
        ranks = rankdata(rows[start : start + step], axis=-1)
        out[start : start + step] = (ranks[:, y].sum(axis=-1) - positives * (positives + 1) / 2) / (
            positives * negatives
        )
    return float(out[0]) if scores.ndim == 1 else out


def mean_readings_auc(y: np.ndarray, readings: list[list[np.ndarray]], tests) -> np.ndarray:
    """Mean over folds of the ROC-AUC of each staged reading (a fold's scores after 1, 2, ...
    steps of rounds), over the readings every fold has: the search picks the first maximum."""
    count = min(len(r) for r in readings)
    return np.mean(
        [roc_auc(y[t], np.array(r[:count])) for r, t in zip(readings, tests, strict=True)],
        axis=0,
    )


def summary_scores(y: np.ndarray, p: np.ndarray) -> dict:
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
                **threshold_metrics(yk, pk, t),
                "roc_auc": float(roc_auc_score(yk, pk)),
                "pr_auc": float(average_precision_score(yk, pk)),
            }
        )
    return out


def evaluate(
    y: np.ndarray,
    oof: np.ndarray,
    folds: Sequence[np.ndarray],
    threshold: float,
    fold_metrics: list[dict],
) -> dict:
    pooled = summary_scores(y, oof)
    fold_auc = [f["roc_auc"] for f in fold_metrics]
    fold_ap = [f["pr_auc"] for f in fold_metrics]
    optimistic = at_threshold(y, oof, threshold)
    per_fold = {
        k: _mean_defined([f[k] for f in fold_metrics]) for k in ("precision", "recall", "f1")
    }
    return {
        # Headline ROC-AUC / PR-AUC: mean over folds (the protocol's figure, as for candidates).
        "roc_auc": float(np.mean(fold_auc)),
        "roc_auc_std": float(np.std(fold_auc)),
        "pr_auc": float(np.mean(fold_ap)),
        "pr_auc_std": float(np.std(fold_ap)),
        "roc_auc_pooled": pooled["roc_auc"],
        "pr_auc_pooled": pooled["pr_auc"],
        # Precision / recall / F1: mean over folds, each fold at a threshold chosen without it
        # (over the folds where the figure is defined: a fold flagging nobody has no precision).
        **{k: mean for k, (mean, _) in per_fold.items()},
        **{f"{k}_std": sd for k, (_, sd) in per_fold.items()},
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


def lift_by_decile(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Churn rate per score decile (1 = highest scores) and its lift over the base rate."""
    order = np.argsort(-np.asarray(p), kind="stable")
    return lift_of_ranked(np.asarray(y)[order])


def lift_of_ranked(y_desc: np.ndarray) -> pd.DataFrame:
    """lift_by_decile of labels already ordered by score, descending (ties in table order)."""
    y = np.asarray(y_desc, dtype=float)
    deciles = np.minimum(np.arange(len(y)) * 10 // max(len(y), 1), 9) + 1
    frame = pd.DataFrame({"decile": deciles, "y": y})
    out = frame.groupby("decile", as_index=False).agg(
        customers=("y", "size"), churn_rate=("y", "mean")
    )
    base = y.mean() if len(y) else float("nan")
    out["lift"] = out["churn_rate"] / base if base else float("nan")
    return out
