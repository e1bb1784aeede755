"""Customers of a selection: the value x risk sample, the high-value at-risk list (sorted,
filtered, paged), its export and one customer's detail. Plain data out, for the dashboard and the
API alike."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import export, filters, paging
from analytics.metrics import value
from analytics.metrics.planner import recommend_action
from analytics.plain import plain, records
from analytics.result import Unavailable
from analytics.services.base import ServedBase
from analytics.services.errors import InvalidInput
from analytics.services.overview import NO_MATCH

SCATTER_SAMPLE = 5000
SCATTER_COLUMNS = (C.CUSTOMER_ID, C.P_CHURN, C.VALUE, C.EXPECTED_LOSS, C.RISK_BAND)
MAX_PAGE = 1000


def scatter(base: ServedBase, query: str) -> dict:
    """A fixed random sample (at most SCATTER_SAMPLE) of the selection's active customers with
    probability, value and expected loss; the threshold t and the high-value line for the
    quadrants; `total` is how many active customers the sample stands for."""
    base.require_model("the value x risk view")
    active = base.mask(query) & base.active
    total = int(np.count_nonzero(active))
    out = {"total": total, "threshold": base.threshold, "value_cut": base.value_cut, "points": []}
    if not total:
        return {**out, "note": NO_MATCH}
    # The selection's first customers in a fixed random order: a random sample that is the
    # same every time, drawn without copying the selection.
    rows = np.sort(filters.first_in(base.random_order, active, SCATTER_SAMPLE))
    sample = base.scored[[c for c in SCATTER_COLUMNS if c in base.scored]].iloc[rows]
    return {**out, "points": records(sample), "note": ""}


def _at_risk(base: ServedBase, query: str) -> pd.DataFrame | Unavailable:
    base.require_model("the at-risk list")
    return base.cached("at_risk", query, lambda: base.at_risk(query), large=True)


def _selected(base: ServedBase, query: str, sort, conditions) -> pd.DataFrame:
    hv = _at_risk(base, query)
    if isinstance(hv, Unavailable):
        raise InvalidInput("list", hv.reason)
    key = (repr(sort), repr(conditions))
    try:
        return base.cached(
            "at_risk_sel",
            query,
            lambda: paging.select(hv, conditions=conditions, sort=sort),
            key,
            large=True,
        )
    except paging.PagingError as exc:
        raise InvalidInput("filter", str(exc)) from None


def at_risk(
    base: ServedBase,
    query: str,
    *,
    sort=(),
    conditions=(),
    offset: int = 0,
    limit: int = 50,
) -> dict:
    """One page of the high-value at-risk list (METRICS.md: active, high value, band High, by
    expected loss descending unless `sort` says otherwise), with the whole list's size and
    expected loss and, under column `conditions`, how many of them match."""
    if not 0 < limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be 1 to {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise InvalidInput("offset", f"must be 0 or more, got {offset}")
    whole = summary(base, query)
    selected = _selected(base, query, list(sort), list(conditions))
    start = min(offset, len(selected))
    rows, total = paging.page(selected, start, start + limit)
    return {
        **whole,
        "total": total,
        "total_expected_loss": plain(float(selected[C.EXPECTED_LOSS].sum())),
        "offset": offset,
        "limit": limit,
        "items": records(rows, base.grid_fields),
    }


def summary(base: ServedBase, query: str) -> dict:
    """How many customers the selection's at-risk list holds and their expected loss."""
    base.require_model("the at-risk list")
    rows = base.cached("at_risk_rows", query, lambda: base.at_risk_rows(query))
    if isinstance(rows, Unavailable):
        raise InvalidInput("list", rows.reason)
    loss = float(base.scored[C.EXPECTED_LOSS].iloc[rows].sum()) if len(rows) else 0.0
    return {"list_customers": len(rows), "list_expected_loss": loss}


def at_risk_csv(base: ServedBase, query: str, *, sort=(), conditions=()) -> tuple[str, int]:
    """The whole list under these sort and column conditions, as spreadsheet-safe CSV with the
    grid's headers and units (export.list_csv), and its number of rows (for the audit log)."""
    selected = _selected(base, query, list(sort), list(conditions))
    columns = [c for c in base.grid_fields if c in selected.columns]
    return export.list_csv(selected[columns], base.ws.settings.currency), len(selected)


def value_tier_cuts(base: ServedBase) -> tuple[float, float] | None:
    """The Value amounts the value tiers are cut at (METRICS.md: 25th and 75th percentile of
    active customers' Value, the size at the average risk, not CLV): Low below the first, High
    at or above the second. None without revenue."""
    if C.VALUE not in base.scored.columns:
        return None
    values = base.scored.loc[base.active, C.VALUE].to_numpy(dtype="float64")
    low, high = value.tier_cuts(values[~np.isnan(values)])
    return float(low), float(high)


def _position(base: ServedBase, customer_id: str) -> int | None:
    positions = base.id_positions
    pos = positions.get(str(customer_id))
    # Outside the user's scope is the same answer as unknown: ids do not leak.
    return None if pos is None or not base.in_scope(int(pos)) else int(pos)


def customer(base: ServedBase, customer_id: str) -> dict | None:
    """One customer's profile, probability, band, value, reasons and recommended action; None
    when the id is not in the current base. Needs the model (ModelPending before it): the
    detail is the customer's risk."""
    base.require_model("a customer's detail")
    pos = _position(base, customer_id)
    if pos is None:
        return None
    row = base.scored.iloc[pos]
    settings = base.ws.settings
    features = [f for f in base.ws.table.features if f in row.index]

    def get(col):
        return plain(row[col]) if col in row.index else None

    return plain(
        {
            "customer_id": str(row[C.CUSTOMER_ID]),
            "profile": {f: row[f] for f in features},
            "churned": get(C.CHURNED),
            "probability": get(C.P_CHURN),
            "risk_band": get(C.RISK_BAND),
            "threshold": base.threshold,
            "segment": get(C.SEGMENT),
            "monthly_revenue": get(C.MONTHLY_REVENUE),
            "clv": get(C.CLV),
            "value": get(C.VALUE),
            "expected_loss": get(C.EXPECTED_LOSS),
            "value_tier": get(C.VALUE_TIER),
            "drivers": [str(row[r]) for r in C.REASONS if isinstance(get(r), str) and row[r]],
            "recommended_action": recommend_action(
                row,
                save_rate=settings.save_rate,
                cost_per_contact=settings.cost_per_contact,
                currency=settings.currency,
            ),
        }
    )
