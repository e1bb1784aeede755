"""Churn KPIs of a selection, and the helpers every view shares (intervals, safe ratios, the
active customers, why a view is unavailable).

Definitions (../shared/METRICS.md), over a set S of customers (what the filters select):
- Customers = |S|. Active customers = customers in S with `churned` = 0.
- Churn rate = churned in S / |S|, over the data's observation window (one month for Telco).
- Retention rate = 1 - churn rate.
- MRR = sum of `monthly_revenue` over active customers.
- Average CLV = mean of CLV_i over active customers.
- MRR at risk = sum over active customers of p_i x `monthly_revenue`_i.
- Converting a churn rate c measured over d days to monthly: 1 - (1 - c)^((365/12)/d).

Every view returns analytics.result.Unavailable instead of raising when a column it needs is
absent, and an empty result (never an exception) for an empty selection. Everything is
vectorised, so a call stays fast on a million rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.result import Unavailable

SMALL_GROUP = 30  # groups under 30 customers are marked as too small to read
DAYS_PER_MONTH = 365 / 12


# --- shared helpers ----------------------------------------------------------------------


def missing_reason(column: str) -> str:
    """One readable sentence saying why a view needing `column` is switched off."""
    if column == C.SEGMENT:
        return (
            "Not available because the customers have not been segmented (no segment column): "
            "train a model with `python -m analytics train`."
        )
    if column in C.SCORED_COLUMNS:
        return (
            f"Not available because the customers have not been scored (no {column} column): "
            "train a model with `python -m analytics train`."
        )
    return (
        f"Not available because the data has no {column} column "
        f"(map one with --map {column}=<column>)."
    )


def missing(frame: pd.DataFrame, *columns: str) -> Unavailable | None:
    """Unavailable for the first of `columns` the frame lacks, else None."""
    for column in columns:
        if column not in frame.columns:
            return Unavailable(missing_reason(column))
    return None


def active_mask(frame: pd.DataFrame) -> np.ndarray:
    """Active customers (churned = 0); without a churned column every customer counts."""
    if C.CHURNED not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return frame[C.CHURNED].to_numpy(dtype=float, na_value=np.nan) == 0


def churned_mask(frame: pd.DataFrame) -> np.ndarray:
    return frame[C.CHURNED].to_numpy(dtype=float, na_value=np.nan) == 1


def safe_ratio(num, den):
    """num / den with NaN (not a warning) where den is 0."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def wilson_interval(k, n, z: float = 1.96):
    """Wilson score interval for k successes in n trials: (low, high).

    Scalars give floats, arrays give arrays; n = 0 gives NaN. k=10, n=100 -> (0.0552, 0.1744).
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    p = safe_ratio(k, n)
    safe_n = np.where(n > 0, n, 1.0)
    z2 = z * z
    denom = 1.0 + z2 / safe_n
    centre = (p + z2 / (2 * safe_n)) / denom
    half = z / denom * np.sqrt(np.maximum(p * (1 - p) / safe_n + z2 / (4 * safe_n**2), 0.0))
    low, high = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def rate_to_monthly(c, days):
    """A churn rate c measured over d days, as monthly: 1 - (1 - c)^((365/12)/d)."""
    out = 1.0 - np.power(1.0 - np.asarray(c, dtype=float), DAYS_PER_MONTH / np.asarray(days))
    return float(out) if np.ndim(out) == 0 else out


def group_codes(frame: pd.DataFrame, by: str | None):
    """Integer group codes (-1 = no group) and their labels; one group 'All' without `by`."""
    if by is None:
        return np.zeros(len(frame), dtype=np.int64), ["All"]
    series = frame[by]
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy().astype(np.int64), list(series.cat.categories)
    codes, uniques = pd.factorize(series, sort=True)
    return codes.astype(np.int64), list(uniques)


# --- KPIs --------------------------------------------------------------------------------

# Every column kpis() reads: a selection of these alone gives the same cards.
KPI_COLUMNS = (C.CHURNED, C.MONTHLY_REVENUE, C.P_CHURN, C.CLV)


def kpis(frame: pd.DataFrame) -> dict:
    """The KPI cards over the selection S (one row per customer).

    Keys: customers, active_customers, churned, churn_rate, retention_rate, mrr, avg_clv,
    mrr_at_risk (plain Python numbers), and `reasons`: {kpi name: why it is None} for each
    entry a missing column switches off. Without a churned column every customer counts as
    active (nobody is known to have left). p_i in MRR at risk is the window probability p_churn.
    An empty selection gives customers 0, NaN rates, MRR 0 and NaN averages.
    """
    n = len(frame)
    out: dict = {"customers": n}
    reasons: dict[str, str] = {}
    active = active_mask(frame)
    n_active = int(active.sum())
    out["active_customers"] = n_active
    if C.CHURNED in frame.columns:
        churned = int(churned_mask(frame).sum())
        rate = churned / n if n else float("nan")
        out.update(churned=churned, churn_rate=rate, retention_rate=1.0 - rate)
    else:
        out.update(churned=None, churn_rate=None, retention_rate=None)
        for key in ("churned", "churn_rate", "retention_rate"):
            reasons[key] = missing_reason(C.CHURNED)

    if C.MONTHLY_REVENUE in frame.columns:
        rev = frame[C.MONTHLY_REVENUE].to_numpy(dtype=float, na_value=np.nan)[active]
        out["mrr"] = float(np.nansum(rev))
        if C.P_CHURN in frame.columns:
            p = frame[C.P_CHURN].to_numpy(dtype=float, na_value=np.nan)[active]
            out["mrr_at_risk"] = float(np.nansum(p * rev))
        else:
            out["mrr_at_risk"] = None
            reasons["mrr_at_risk"] = missing_reason(C.P_CHURN)
        if C.CLV in frame.columns:
            clv = frame[C.CLV].to_numpy(dtype=float, na_value=np.nan)[active]
            ok = ~np.isnan(clv)
            out["avg_clv"] = float(clv[ok].mean()) if ok.any() else float("nan")
        else:
            out["avg_clv"] = None
            reasons["avg_clv"] = missing_reason(C.CLV)
    else:
        for key in ("mrr", "avg_clv", "mrr_at_risk"):
            out[key] = None
            reasons[key] = missing_reason(C.MONTHLY_REVENUE)
    out["reasons"] = reasons
    return out
