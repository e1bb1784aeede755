"""Movers between two snapshots (METRICS.md "Over time")."""

from __future__ import annotations

import pandas as pd

from analytics import columns as C
from analytics.metrics import value
from analytics.result import Unavailable


def at_risk_ids(frame: pd.DataFrame) -> pd.Index:
    """Customer ids (as text) of the snapshot's high-value at-risk list, in its order; empty
    when the snapshot cannot have one (no revenue or no scores)."""
    rows = value.at_risk_rows(frame)
    if isinstance(rows, Unavailable):
        return pd.Index([], dtype=object)
    return pd.Index(frame[C.CUSTOMER_ID].astype(str).to_numpy()[rows])


def newly_at_risk(current: pd.DataFrame, previous: pd.DataFrame | None) -> pd.Index:
    """Ids in the current at-risk list and not in the previous one ("newly high-value
    high-risk"), in the current list's order; all of them without a previous snapshot."""
    now = at_risk_ids(current)
    if previous is None:
        return now
    return now[~now.isin(at_risk_ids(previous))]
