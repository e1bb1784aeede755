"""Movers between two snapshots (METRICS.md "Over time")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics import value
from analytics.metrics.kpis import churned_mask, missing
from analytics.result import Unavailable


def at_risk_ids(frame: pd.DataFrame) -> pd.Index:
    """Customer ids (as text) of the snapshot's high-value at-risk list, in its order; empty
    when the snapshot cannot have one (no revenue or no scores). A customer whose outcome is
    not known yet (churned blank: the window has not passed) is active, as in movers()."""
    if C.CHURNED in frame.columns and frame[C.CHURNED].isna().any():
        frame = frame.assign(**{C.CHURNED: frame[C.CHURNED].fillna(0)})
    rows = value.at_risk_rows(frame)
    if isinstance(rows, Unavailable):
        return pd.Index([], dtype=object)
    return pd.Index(_ids(frame)[rows], dtype=object)


def newly_at_risk(current: pd.DataFrame, previous: pd.DataFrame | None) -> pd.Index:
    """Ids in the current at-risk list and not in the previous one ("newly high-value
    high-risk"), in the current list's order; all of them without a previous snapshot."""
    now = at_risk_ids(current)
    if previous is None:
        return now
    return now[~now.isin(at_risk_ids(previous))]


# What movers() returns, in this order.
MOVER_COLUMNS = (
    C.CUSTOMER_ID,
    C.P_CHURN,
    "p_churn_previous",
    "rise",
    C.RISK_BAND,
    "risk_band_previous",
    C.EXPECTED_LOSS,
    C.VALUE,
    C.SEGMENT,
    C.MONTHLY_REVENUE,
    "reasons",
    "reasons_previous",
    "newly_at_risk",
)
# Columns movers() carries from the current snapshot, NaN where the snapshot lacks them (a base
# without revenue has no value columns).
_CURRENT_ONLY = (C.EXPECTED_LOSS, C.VALUE, C.SEGMENT, C.MONTHLY_REVENUE)


def movers(
    current: pd.DataFrame, previous: pd.DataFrame, *, limit: int | None = None
) -> pd.DataFrame:
    """Customers in both snapshots and active in the current one (churned != 1; unknown counts
    as active), ranked by the rise in p_churn (current - previous) descending, ties by
    customer_id, NaN rises last; the first `limit` of them. Columns MOVER_COLUMNS: the current
    figures, p_churn / risk_band / reasons then ("_previous"), reasons as lists of the reason
    texts present, and newly_at_risk = in the at-risk list now and not in the previous one.
    A column the current snapshot lacks (no revenue: no value) is NaN."""
    now = _keyed(current, "current")
    before = _keyed(previous, "previous")
    if C.CHURNED in now.columns:
        now = now[~churned_mask(now)]
    pos = before.index.get_indexer(now.index)
    now, then = now[pos >= 0], before.iloc[pos[pos >= 0]]
    rise = now[C.P_CHURN].to_numpy(float) - then[C.P_CHURN].to_numpy(float)
    order = _ranked(rise, now.index.to_numpy(), limit)
    now, then = now.iloc[order], then.iloc[order]
    out = {
        C.CUSTOMER_ID: now.index.to_numpy(),
        C.P_CHURN: now[C.P_CHURN].to_numpy(float),
        "p_churn_previous": then[C.P_CHURN].to_numpy(float),
        "rise": rise[order],
        C.RISK_BAND: now[C.RISK_BAND].array,
        "risk_band_previous": then[C.RISK_BAND].array,
        **{c: now[c].to_numpy() if c in now.columns else np.nan for c in _CURRENT_ONLY},
        "reasons": _reasons(now),
        "reasons_previous": _reasons(then),
        "newly_at_risk": now.index.isin(newly_at_risk(current, previous)),
    }
    return pd.DataFrame(out, columns=list(MOVER_COLUMNS))


def _ranked(rise: np.ndarray, ids: np.ndarray, limit: int | None) -> np.ndarray:
    """Positions by rise descending, ties by id, NaN last; only the first `limit`. Rises equal
    but for float noise (0.4 - 0.3 vs 0.6 - 0.5) are ties."""
    key = np.where(np.isnan(rise), np.inf, -np.round(rise, 12))
    candidates = np.arange(len(key))
    if limit is not None and limit < len(key):
        if limit <= 0:
            return candidates[:0]
        # Only the rows at or above the limit-th key can make the list (ties included).
        candidates = np.flatnonzero(key <= np.partition(key, limit - 1)[limit - 1])
    rows = pd.DataFrame({"key": key[candidates], "id": ids[candidates]})
    order = rows.sort_values(["key", "id"], kind="stable").index.to_numpy()
    return candidates[order][:limit]


def _ids(frame: pd.DataFrame) -> np.ndarray:
    """customer_id as text (object array: hashing it is ten times faster than Arrow strings)."""
    return frame[C.CUSTOMER_ID].astype(str).to_numpy(dtype=object)


def _keyed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The columns movers() reads, indexed by customer_id as text; a repeated id is an error
    (one row per customer), and so is a snapshot without scores."""
    gap = missing(frame, C.CUSTOMER_ID, C.P_CHURN, C.RISK_BAND)
    if gap is not None:
        raise ValueError(f"the {name} snapshot cannot give movers: {gap.reason}")
    index = pd.Index(_ids(frame), dtype=object, name=C.CUSTOMER_ID)
    if not index.is_unique:
        raise ValueError(
            f"the {name} snapshot repeats customer_id {index[index.duplicated()][0]!r}: "
            "a snapshot has one row per customer"
        )
    wanted = (C.P_CHURN, C.RISK_BAND, C.CHURNED, *_CURRENT_ONLY, *C.REASONS)
    return frame[[c for c in wanted if c in frame.columns]].set_axis(index, axis=0)


def _reasons(frame: pd.DataFrame) -> list[list[str]]:
    """Per row, the reason_1..3 texts present (blank and missing ones left out)."""
    columns = [c for c in C.REASONS if c in frame.columns]
    if not columns:
        return [[] for _ in range(len(frame))]
    rows = zip(*(frame[c].tolist() for c in columns), strict=True)
    return [[r for r in row if isinstance(r, str) and r.strip()] for row in rows]


def kpi_change(current_kpis: dict, previous_kpis: dict) -> dict:
    """ "vs last month" on each numeric KPI of kpis(): {key: {"change", "kind"}}.

    kind "points" for rates (churn_rate, retention_rate, any *_rate): change = current -
    previous as a fraction, so 0.012 means +1.2 points. kind "relative" for amounts and counts
    (customers, active_customers, churned, mrr, mrr_at_risk, avg_clv): change = current /
    previous - 1, so 0.05 means +5%. change is None where either side is missing or NaN, or
    (relative) the previous value is 0.
    """
    keys = [k for k in {**current_kpis, **previous_kpis} if _is_kpi(k, current_kpis, previous_kpis)]
    out = {}
    for key in keys:
        now, before = _number(current_kpis.get(key)), _number(previous_kpis.get(key))
        if key.endswith("_rate"):
            change = None if now is None or before is None else now - before
            out[key] = {"change": change, "kind": "points"}
        else:
            change = None if now is None or not before else now / before - 1.0
            out[key] = {"change": change, "kind": "relative"}
    return out


def _is_kpi(key: str, *sides: dict) -> bool:
    """A numeric KPI on at least one side (or None on both: a KPI a missing column switched
    off); `reasons` and other non-numbers are not KPIs."""
    values = [side[key] for side in sides if key in side]
    numeric = [
        v for v in values if isinstance(v, int | float | np.number) and not isinstance(v, bool)
    ]
    return bool(numeric) or all(v is None for v in values)


def _number(v) -> float | None:
    """v as a float, None when it is absent or NaN."""
    if v is None or isinstance(v, bool):
        return None
    v = float(v)
    return None if math.isnan(v) else v
