"""Survival without dates: the Kaplan-Meier retention curve over `tenure_months` (event =
churned, censored otherwise), overall and per segment, with at-risk counts
(../shared/METRICS.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics.kpis import churned_mask, group_codes, missing
from analytics.result import Unavailable

KM_COLUMNS = ("time", "at_risk", "events", "censored", "survival", "ci_low", "ci_high")


def _km_one(times: np.ndarray, events: np.ndarray, z: float) -> dict[str, np.ndarray]:
    """Kaplan-Meier table for one group (times without NaN)."""
    if len(times) and np.all(times == np.round(times)) and times.min() >= 0 and times.max() < 1e5:
        t_int = times.astype(np.int64)
        total = np.bincount(t_int)
        died = np.bincount(t_int, weights=events.astype(float)).round().astype(np.int64)
        uniq = np.flatnonzero(total).astype(float)
        total, died = total[total > 0], died[total > 0]
    else:
        uniq, inverse = np.unique(times, return_inverse=True)
        total = np.bincount(inverse, minlength=len(uniq))
        died = np.bincount(inverse, weights=events.astype(float), minlength=len(uniq))
        died = died.round().astype(np.int64)
    at_risk = len(times) - np.concatenate(([0], np.cumsum(total)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.cumprod(1.0 - died / at_risk)
        greenwood = np.cumsum(died / (at_risk * (at_risk - died)))
        # Log-log interval: S^exp(+-z se), se = sqrt(Greenwood) / |log S|.
        se = np.sqrt(greenwood) / np.abs(np.log(survival))
        low = np.power(survival, np.exp(z * se))
        high = np.power(survival, np.exp(-z * se))
    flat = survival >= 1.0  # no event yet: the curve is exactly 1
    low, high = np.where(flat, 1.0, low), np.where(flat, 1.0, high)
    gone = survival <= 0.0
    low, high = np.where(gone, 0.0, low), np.where(gone, 0.0, high)
    table = {
        "time": uniq,
        "at_risk": at_risk.astype(np.int64),
        "events": died,
        "censored": (total - died).astype(np.int64),
        "survival": survival,
        "ci_low": low,
        "ci_high": high,
    }
    if not len(uniq) or uniq[0] > 0:  # the curve starts at time 0 with survival 1
        origin = {"time": 0.0, "at_risk": len(times), "events": 0, "censored": 0}
        origin.update(survival=1.0, ci_low=1.0, ci_high=1.0)
        table = {k: np.concatenate(([origin[k]], v)) for k, v in table.items()}
    return table


def kaplan_meier(
    frame: pd.DataFrame, by: str | None = None, z: float = 1.96
) -> pd.DataFrame | Unavailable:
    """Kaplan-Meier retention curve over tenure_months (event = churned, censored otherwise).

    One row per distinct tenure (per group with `by`), starting at time 0 with survival 1 (a
    row at time 0 is added when no customer has tenure 0; with churners at tenure 0 the time-0
    row holds them and survival there is below 1). survival = S(t), the share still active
    after t months; at_risk = customers with tenure >= t; 95% Greenwood log-log interval.
    Columns: [by], time, at_risk, events, censored, survival, ci_low, ci_high. Rows with no
    tenure (or no group) are left out; an empty selection gives an empty table.
    """
    gap = missing(frame, C.TENURE, C.CHURNED, *([by] if by else []))
    if gap is not None:
        return gap
    cols = ([by] if by else []) + list(KM_COLUMNS)
    times = frame[C.TENURE].to_numpy(dtype=float, na_value=np.nan)
    events = churned_mask(frame)
    group, labels = group_codes(frame, by)
    keep = ~np.isnan(times) & (group >= 0)
    parts = []
    for code, label in enumerate(labels):
        sel = keep & (group == code)
        if not sel.any():
            continue
        part = pd.DataFrame(_km_one(times[sel], events[sel], z))
        if by:
            part.insert(0, by, label)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    if by and isinstance(frame[by].dtype, pd.CategoricalDtype):
        out[by] = pd.Categorical(out[by], categories=frame[by].cat.categories)
    return out[cols]
