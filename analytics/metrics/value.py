"""Customer value: CLV, value at the average risk, expected loss, and the retention planner.

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
- Contacting the top N active customers by expected loss, with save rate s (share of
  would-be churners an offer keeps; default 0.25) and cost per contact c (default 10):
  net benefit(N) = sum over those N of (s x p_i x Value_i) - N x c.

Choice made here: p_i in expected loss (and so in the planner) is the monthly probability
p_monthly, the same scale CLV and value use; with a one-month window it is p_churn itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics.kpis import active_mask, missing
from analytics.result import Unavailable

HIGH_VALUE_QUANTILE = 0.75
LOW_VALUE_QUANTILE = 0.25
VALUE_COLUMNS = (C.CLV, C.VALUE, C.EXPECTED_LOSS, C.HIGH_VALUE, C.VALUE_TIER)


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
    - expected_loss = p_monthly x value;
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
    out = frame.drop(columns=[c for c in VALUE_COLUMNS if c in frame.columns])
    new: dict[str, object] = {
        C.P_MONTHLY: p_month,
        C.RISK_BAND: risk_band(p, threshold),
    }
    if C.MONTHLY_REVENUE in frame.columns:
        rev = frame[C.MONTHLY_REVENUE].to_numpy(dtype=float, na_value=np.nan)
        p0 = monthly_probability(base_rate(frame, base_churn_rate), window_months)
        val = clv(rev, np.full(len(rev), p0), margin, discount)
        low, high = (
            value_cuts
            if value_cuts is not None
            else tier_cuts(val[active_mask(frame) & ~np.isnan(val)])
        )
        with np.errstate(invalid="ignore"):
            tier = np.where(val >= high, 2, np.where(val >= low, 1, 0))
        tier = np.where(np.isnan(val), -1, tier).astype(np.int8)
        new.update(
            {
                C.CLV: clv(rev, p_month, margin, discount),
                C.VALUE: val,
                C.EXPECTED_LOSS: p_month * val,
                C.HIGH_VALUE: val >= high,
                C.VALUE_TIER: pd.Categorical.from_codes(
                    tier, categories=list(C.VALUE_TIERS), ordered=True
                ),
            }
        )
    return out.assign(**new)


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


@dataclass(frozen=True, eq=False)
class RetentionPlan:
    """The planner's answer for one set of assumptions.

    curve: DataFrame n, net_benefit, saved_value, cost (N = 0 .. all candidates, thinned to at
    most max_points rows, always with N = 0, the best N and the last N); best_n: the N with the
    largest net benefit (the smallest such N on ties; 0 when no contact pays for itself);
    saved_value / cost / net_benefit at best_n; roi = net_benefit / cost (NaN when cost is 0);
    contacts: the best_n customers by expected loss, descending, with expected_saving =
    s x p_i x Value_i (built when first read: on a million customers it can hold hundreds of
    thousands of rows; first_contacts(n) builds only the first n); candidates: active
    customers with a known expected loss.
    """

    curve: pd.DataFrame
    best_n: int
    saved_value: float
    cost: float
    net_benefit: float
    roi: float
    save_rate: float
    cost_per_contact: float
    candidates: int
    # (rows, their savings) -> their contact table; rows are the plan's first n contacts
    _contact_rows: np.ndarray = field(repr=False)
    _contact_savings: np.ndarray = field(repr=False)
    _contacts_of: ContactTable = field(repr=False)

    @functools.cached_property
    def contacts(self) -> pd.DataFrame:
        return self._contacts_of(self._contact_rows, self._contact_savings, None)

    def first_contacts(self, n: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """contacts.head(n) (only `columns` of it, those present, if given), without building
        the rest."""
        if "contacts" in self.__dict__:
            head = self.contacts.head(n)
            return head if columns is None else head[[c for c in columns if c in head]]
        return self._contacts_of(self._contact_rows[:n], self._contact_savings[:n], columns)


# (rows, their savings, columns or None for all) -> those rows of the contact table.
ContactTable = Callable[[np.ndarray, np.ndarray, Sequence[str] | None], pd.DataFrame]


EXPECTED_SAVING = "expected_saving"


def check_plan_inputs(save_rate: float, cost_per_contact: float, max_points: int) -> None:
    if not 0.0 <= save_rate <= 1.0:  # also rejects NaN
        raise ValueError(f"save_rate must be between 0 and 1, got {save_rate}")
    if not 0.0 <= cost_per_contact < np.inf:
        raise ValueError(f"cost_per_contact must be a number >= 0, got {cost_per_contact}")
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")


def _curve_points(n: int, best_n: int, max_points: int) -> np.ndarray:
    """Evenly spread N values in 0..n, plus the best N; at most max_points of them."""
    if n + 1 <= max_points:
        return np.arange(n + 1)
    grid = np.unique(np.round(np.linspace(0, n, max_points - 1)).astype(np.int64))
    return np.unique(np.append(grid, best_n))


def plan_retention(
    frame: pd.DataFrame,
    *,
    save_rate: float = 0.25,
    cost_per_contact: float = 10.0,
    max_points: int = 500,
) -> RetentionPlan | Unavailable:
    """Contact the top N active customers by expected loss: net benefit(N) = sum over those N of
    (s x p_i x Value_i) - N x c. Returns the curve over N, the best N and its figures.

    ValueError when save_rate is outside [0, 1], cost_per_contact is negative or max_points < 3.
    """
    check_plan_inputs(save_rate, cost_per_contact, max_points)
    gap = _value_unavailable(frame, C.EXPECTED_LOSS)
    if gap is not None:
        return gap
    loss = frame[C.EXPECTED_LOSS].to_numpy(dtype=float, na_value=np.nan)
    eligible = np.flatnonzero(active_mask(frame) & ~np.isnan(loss))
    ranked, saving = rank_savings(eligible, save_rate * loss[eligible])
    return ranked_plan(
        ranked,
        saving,
        lambda rows, sv, columns: _columns(
            frame.iloc[rows].assign(**{EXPECTED_SAVING: sv}), columns
        ),
        save_rate=save_rate,
        cost_per_contact=cost_per_contact,
        max_points=max_points,
    )


def _columns(frame: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    return frame if columns is None else frame[[c for c in columns if c in frame.columns]]


def rank_savings(rows: np.ndarray, saving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`rows` and their savings by saving, descending (ties in table order): the contact order."""
    order = np.argsort(-saving, kind="stable")
    return rows[order], saving[order]


def is_ranked(rows: np.ndarray, saving: np.ndarray) -> bool:
    """Whether rows and savings are exactly as rank_savings would order them."""
    if np.isnan(saving).any():
        return False
    step = np.diff(saving)
    if (step > 0).any():
        return False
    ties = step == 0
    return not ties.any() or bool((np.diff(rows)[ties] > 0).all())


def ranked_plan(
    ranked: np.ndarray,
    saving: np.ndarray,
    contacts: ContactTable,
    *,
    save_rate: float,
    cost_per_contact: float,
    max_points: int = 500,
) -> RetentionPlan:
    """The plan over candidates already in contact order (rank_savings); `contacts(rows,
    savings, columns)` gives the table of those of them."""
    saved = np.concatenate(([0.0], np.cumsum(saving)))
    ns = np.arange(len(saved))
    cost = ns * float(cost_per_contact)
    net = saved - cost
    best = int(np.argmax(net))
    pts = _curve_points(len(ranked), best, max_points)
    curve = pd.DataFrame(
        {"n": pts, "net_benefit": net[pts], "saved_value": saved[pts], "cost": cost[pts]}
    )
    total_cost = float(cost[best])
    return RetentionPlan(
        curve=curve,
        best_n=best,
        saved_value=float(saved[best]),
        cost=total_cost,
        net_benefit=float(net[best]),
        roi=float(net[best] / total_cost) if total_cost > 0 else float("nan"),
        save_rate=float(save_rate),
        cost_per_contact=float(cost_per_contact),
        candidates=len(ranked),
        _contact_rows=ranked[:best],
        _contact_savings=saving[:best],
        _contacts_of=contacts,
    )
