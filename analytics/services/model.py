"""The model view of a selection: the candidates, ROC / PR / calibration / lift of the
out-of-fold scores, the threshold explorer, and predictions for new customers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from analytics import columns as C
from analytics.model import evaluation, predict
from analytics.plain import plain, records
from analytics.services.base import ServedBase
from analytics.services.errors import InvalidInput
from analytics.services.overview import NO_MATCH

# Below these a selection's curves are noise: the view says so and shows the AUC's interval.
SMALL_SAMPLE = 200
SMALL_CLASS = 30


def summary(base: ServedBase) -> dict:
    """What the model is: version, candidates with their CV scores, the chosen one, honest
    metrics, threshold, holdout, features and global importance."""
    base.require_model("the model view")
    meta = base.meta
    importance = base.ws.model.importance
    return plain(
        {
            "version": base.ws.model.version,
            "data_hash": meta.get("data_hash"),
            "chosen": meta.get("chosen"),
            "candidates": meta.get("candidates", []),
            "metrics": meta.get("metrics", {}),
            "holdout": meta.get("holdout"),
            "threshold": meta.get("threshold"),
            "threshold_rule": meta.get("threshold_rule"),
            "protocol": meta.get("protocol"),
            "window_months": meta.get("window_months", 1),
            "base_rows": meta.get("base_rows"),
            "importance": records(importance) if importance is not None else [],
            "segments": meta.get("segments"),
        }
    )


def _scores(base: ServedBase, query: str):
    """Labels and out-of-fold scores of the selection, in table order."""

    def make():
        frame = base.view(query, (C.CHURNED, C.P_CHURN))
        return frame[C.CHURNED].to_numpy(), frame[C.P_CHURN].to_numpy()

    return base.cached("scores", query, make, large=True)


def _ranked(base: ServedBase, query: str):
    """Labels and scores by score, descending: the base sorted once, restricted to the
    selection, so no sort per selection."""

    def make():
        rows = base.ranked(query, C.P_CHURN)
        return base.scored[C.CHURNED].to_numpy()[rows], base.scored[C.P_CHURN].to_numpy()[rows]

    return base.cached("ranked_scores", query, make, large=True)


def auc_interval(auc: float, positives: int, negatives: int, z: float = 1.96) -> list[float]:
    """Hanley & McNeil (1982) 95% interval of a ROC-AUC from its class sizes, clipped to
    [0, 1]: wide on small selections, which is the point of showing it."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    half = z * math.sqrt(max(var, 0.0))
    return [max(0.0, auc - half), min(1.0, auc + half)]


def _sample_warning(customers: int, churned: int) -> str:
    stayed = customers - churned
    if customers >= SMALL_SAMPLE and min(churned, stayed) >= SMALL_CLASS:
        return ""
    return (
        f"Small sample: {customers:,} customers ({churned:,} churned, {stayed:,} stayed). "
        "Curves and the ROC-AUC of so few customers move a lot by chance; read the interval."
    )


def curves(base: ServedBase, query: str) -> dict:
    """ROC, precision-recall, calibration and lift by decile of the selection's out-of-fold
    scores, with ROC-AUC (and its interval), PR-AUC and a small-sample warning."""
    base.require_model("the model's curves")
    y, p = _scores(base, query)
    n, churned = len(y), int(np.sum(y))
    out = {"customers": n, "churned": churned, "note": "", "warning": ""}
    if len(np.unique(y)) < 2:
        why = NO_MATCH if not n else "The selection holds only one class: no curve."
        return {**out, "note": why}

    def make():
        y_desc, p_desc = _ranked(base, query)
        ranked = evaluation.ranking(y_desc, p_desc)
        found = evaluation.curves(y, p, ranked)
        lift = evaluation.lift_of_ranked(y_desc)
        return found, ranked["roc_auc"], ranked["pr_auc"], records(lift)

    found, auc, ap, lift = base.cached("curves", query, make)
    return plain(
        {
            **out,
            "roc_auc": auc,
            "roc_auc_ci": auc_interval(auc, churned, n - churned),
            "pr_auc": ap,
            "base_rate": churned / n,
            **found,
            "lift": lift,
            "warning": _sample_warning(n, churned),
        }
    )


def threshold_view(base: ServedBase, query: str, threshold: float) -> dict:
    """Confusion matrix, precision, recall and F1 of the selection at threshold t (0..1)."""
    base.require_model("the threshold view")
    if threshold is None or not 0.0 <= float(threshold) <= 1.0:
        raise InvalidInput("threshold", f"must be between 0 and 1, got {threshold}")
    y, p = _scores(base, query)
    out = {"customers": len(y), "threshold": float(threshold), "saved_threshold": base.threshold}
    if not len(y):
        return {**out, "note": NO_MATCH}
    return plain({**out, **evaluation.at_threshold(y, p, float(threshold)), "note": ""})


def predict_records(base: ServedBase, records_in: Sequence[Mapping], *, top: int = 3) -> list[dict]:
    """Scores of checked records (predict.check_record) by the live model."""
    base.require_model("predictions")
    settings = base.ws.settings
    return predict.predict(
        base.ws.model, list(records_in), margin=settings.margin, discount=settings.discount, top=top
    )
