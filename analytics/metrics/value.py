"""The value rules, each defined once: probability per window, CLV, value at the average risk,
expected loss, risk bands, value tiers, and the high-value at-risk list.

Definitions (../shared/METRICS.md, verbatim):
- p_i = the model's probability that customer i churns in the next observation window.
  Where that window is not one month, CLV and value use the monthly equivalent
  1 - (1 - p_i)^(1/months in the window).
- Risk band: High if p_i >= t; Medium if t/2 <= p_i < t; Low otherwise.
- CLV_i (risk-adjusted expected future value, Gupta-Lehmann with r = 1 - p_i):
  CLV_i = m x monthly_revenue_i x (1 - p_i) / (d + p_i), with gross margin m (default 1.0)
  and monthly discount rate d (default 0.01), both configurable.
- Value_i (the customer's size at the average risk) = m x monthly_revenue_i x (1 - p0) / (d + p0),
  p0 = churn rate of the whole base. High value = Value_i at or above the 75th percentile
  of active customers.
- Expected loss_i = p_i x Value_i. The high-value at-risk list = active, high value, risk
  band High, sorted by expected loss, descending.

p_i in the risk band and the expected loss is the window probability p_churn (the scale t was
chosen on); only CLV and value use the monthly equivalent p_monthly, as discount and revenue
are monthly. The planner (analytics.metrics.planner) and every caller use these functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics.kpis import active_mask, missing
from analytics.result import Unavailable

HIGH_VALUE_QUANTILE = 0.75
LOW_VALUE_QUANTILE = 0.25


def monthly_probability(p, window_months: float):
    """Monthly equivalent of a probability over `window_months`: 1 - (1 - p)^(1/window_months)."""
    if not window_months > 0:
        raise ValueError(f"window_months must be > 0, got {window_months}")
    p = np.asarray(p, dtype=float) if not np.isscalar(p) else float(p)
    if window_months == 1:
        return p
    return 1.0 - np.power(1.0 - p, 1.0 / window_months)


def clv(monthly_revenue, p_monthly, margin: float = 1.0, discount: float = 0.01):
    """CLV = m x monthly_revenue x (1 - p) / (d + p) (risk-adjusted expected future value).

    Scalars give a float, arrays an ndarray. With d = 0 and p = 0 the value is infinite.
    """
    rev = np.asarray(monthly_revenue, dtype=float)
    p = np.asarray(p_monthly, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = margin * rev * (1.0 - p) / (discount + p)
    return float(out) if np.ndim(out) == 0 else out


def customer_value(
    monthly_revenue, base_churn_rate: float, window_months: float, margin: float, discount: float
):
    """Value_i = m x monthly_revenue_i x (1 - p0) / (d + p0): the customer's size at the average
    risk, p0 = the base's churn rate over the window converted to monthly."""
    p0 = monthly_probability(float(base_churn_rate), window_months)
    rev = np.asarray(monthly_revenue, dtype=float)
    return clv(rev, np.full(rev.shape, p0), margin, discount)


def expected_loss(p_window, value):
    """Expected loss_i = p_i x Value_i, p_i the window probability p_churn (not the monthly one)."""
    with np.errstate(invalid="ignore"):
        out = np.asarray(p_window, dtype=float) * np.asarray(value, dtype=float)
    return float(out) if np.ndim(out) == 0 else out


def expected_saving(loss, save_rate: float):
    """What contacting a customer is expected to save: s x p_i x Value_i = s x expected loss.
    Contacting pays when this is at least the cost per contact."""
    out = float(save_rate) * np.asarray(loss, dtype=float)
    return float(out) if np.ndim(out) == 0 else out


def risk_band(p, threshold: float) -> pd.Categorical:
    """Risk band: High if p_i >= t; Medium if t/2 <= p_i < t; Low otherwise (NaN p -> NaN)."""
    p = np.asarray(p, dtype=float)
    codes = np.where(p >= threshold, 2, np.where(p >= threshold / 2, 1, 0))
    codes = np.where(np.isnan(p), -1, codes).astype(np.int8)
    return pd.Categorical.from_codes(codes, categories=list(C.RISK_BANDS), ordered=True)


def base_rate(frame: pd.DataFrame, base_churn_rate: float | None) -> float:
    """p0: the given base churn rate, else the frame's churn rate, else its mean p_churn."""
    if base_churn_rate is not None:
        return float(base_churn_rate)
    if C.CHURNED in frame.columns and len(frame):
        return float(frame[C.CHURNED].mean())
    # No label (new customers scored alone): the model's average risk stands in for p0.
    return float(frame[C.P_CHURN].mean()) if len(frame) else float("nan")


def add_value_columns(
    frame: pd.DataFrame,
    *,
    threshold: float,
    margin: float = 1.0,
    discount: float = 0.01,
    window_months: int = 1,
    base_churn_rate: float | None = None,
    value_cuts: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """The frame with p_monthly, risk_band and (with monthly_revenue) the value columns.

    Needs p_churn (ValueError otherwise: scoring comes first). Adds:
    - p_monthly = 1 - (1 - p_churn)^(1/window_months); risk_band from p_churn against t;
    - clv from p_monthly; value from p0 = base_churn_rate if given, else the frame's churn rate
      (mean churned), else its mean p_churn, converted to monthly the same way;
    - expected_loss = p_churn x value (the window probability);
    - high_value = value at or above the 75th percentile of value over active customers
      (churned = 0; every row without a label); value_tier Low / Mid / High = below the 25th
      percentile / between / at or above the 75th, same reference customers.
    Without monthly_revenue the value columns are left out (and dropped if present).
    Existing columns of the same names are replaced, so re-valuing under new assumptions is
    one call. `value_cuts`: the (25th, 75th) percentiles to use instead, when the reference
    customers are more than these rows (tier_cuts() of them).
    """
    if C.P_CHURN not in frame.columns:
        raise ValueError("add_value_columns needs a p_churn column: score the customers first")
    p = frame[C.P_CHURN].to_numpy(dtype=float, na_value=np.nan)
    p_month = monthly_probability(p, window_months)
    out = frame.drop(columns=[c for c in C.VALUE_COLUMNS if c in frame.columns])
    new: dict[str, object] = {
        C.P_MONTHLY: p_month,
        C.RISK_BAND: risk_band(p, threshold),
    }
    if C.MONTHLY_REVENUE in frame.columns:
        rev = frame[C.MONTHLY_REVENUE].to_numpy(dtype=float, na_value=np.nan)
        size = _size(
            frame, base_rate(frame, base_churn_rate), window_months, margin, discount, value_cuts
        )
        new.update(
            {
                C.CLV: clv(rev, p_month, margin, discount),
                C.VALUE: size[C.VALUE],
                C.EXPECTED_LOSS: expected_loss(p, size[C.VALUE]),
                C.HIGH_VALUE: size[C.HIGH_VALUE],
                C.VALUE_TIER: size[C.VALUE_TIER],
            }
        )
    return out.assign(**new)


# What add_size_columns adds: the value rules that need no model (no p_i, no threshold).
SIZE_COLUMNS = (C.VALUE, C.HIGH_VALUE, C.VALUE_TIER)


def add_size_columns(
    frame: pd.DataFrame,
    *,
    margin: float = 1.0,
    discount: float = 0.01,
    window_months: int = 1,
) -> pd.DataFrame:
    """The frame with value, high_value and value_tier, before any model exists: Value_i is the
    customer's size at the base's churn rate p0 (not at their own risk), so it needs only the
    label and monthly_revenue. The same numbers add_value_columns gives the scored base later.
    The frame as it is without monthly_revenue or a churned label (no honest p0)."""
    if C.MONTHLY_REVENUE not in frame.columns or C.CHURNED not in frame.columns:
        return frame
    p0 = float(frame[C.CHURNED].mean()) if len(frame) else float("nan")
    return frame.assign(**_size(frame, p0, window_months, margin, discount))


def _size(frame, p0, window_months, margin, discount, value_cuts=None) -> dict[str, object]:
    """Value at the average risk p0, high value and the value tier (cut among active customers,
    or at `value_cuts`)."""
    rev = frame[C.MONTHLY_REVENUE].to_numpy(dtype=float, na_value=np.nan)
    val = customer_value(rev, p0, window_months, margin, discount)
    low, high = (
        value_cuts
        if value_cuts is not None
        else tier_cuts(val[active_mask(frame) & ~np.isnan(val)])
    )
    with np.errstate(invalid="ignore"):
        tier = np.where(val >= high, 2, np.where(val >= low, 1, 0))
    tier = np.where(np.isnan(val), -1, tier).astype(np.int8)
    return {
        C.VALUE: val,
        C.HIGH_VALUE: val >= high,
        C.VALUE_TIER: pd.Categorical.from_codes(tier, categories=list(C.VALUE_TIERS), ordered=True),
    }


def tier_cuts(ref: np.ndarray) -> tuple[float, float]:
    """The 25th and 75th percentiles of the reference customers' values."""
    if not len(ref):
        return np.inf, np.inf  # nobody to compare with: nobody is high value
    low, high = np.quantile(ref, [LOW_VALUE_QUANTILE, HIGH_VALUE_QUANTILE])
    return low, high


def _value_unavailable(frame: pd.DataFrame, *needed: str) -> Unavailable | None:
    return missing(frame, C.MONTHLY_REVENUE, *needed)


def high_value_at_risk(frame: pd.DataFrame) -> pd.DataFrame | Unavailable:
    """The high-value at-risk list = active, high value, risk band High, sorted by expected
    loss, descending (ties keep the table's order)."""
    rows = at_risk_rows(frame)
    return rows if isinstance(rows, Unavailable) else frame.iloc[rows]


def at_risk_rows(frame: pd.DataFrame) -> np.ndarray | Unavailable:
    """Row positions of high_value_at_risk(frame), in its order.

    Of a subset of the rows (kept in order), the list is these positions restricted to it, so
    a dashboard orders its base once and any selection's list needs no sort.
    """
    gap = _value_unavailable(frame, C.EXPECTED_LOSS, C.HIGH_VALUE, C.RISK_BAND)
    if gap is not None:
        return gap
    keep = np.flatnonzero(
        active_mask(frame)
        & frame[C.HIGH_VALUE].to_numpy(dtype=bool, na_value=False)
        & (frame[C.RISK_BAND] == "High").to_numpy(dtype=bool, na_value=False)
    )
    loss = frame[C.EXPECTED_LOSS].to_numpy(dtype=float, na_value=np.nan)[keep]
    return keep[descending(loss)]


def descending(values: np.ndarray) -> np.ndarray:
    """Positions sorting `values` descending, ties in table order and NaN last: pandas'
    sort_values(ascending=False, kind="stable")."""
    return np.argsort(-values, kind="stable")
