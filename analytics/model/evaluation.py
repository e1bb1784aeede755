"""Threshold and lift views of out-of-fold predictions (the dashboard's model view)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Confusion matrix, precision, recall and F1 of the churn class at `threshold`."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(p) >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "flagged": tp + fp,
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
