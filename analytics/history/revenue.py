"""Revenue retention from MRR movements (../shared/METRICS.md "Revenue retention", ChartMogul's
movements): per month, from each customer's MRR at the month's start and end,

- new (0 -> >0, first time), reactivation (0 -> >0, came back), expansion (increase),
  contraction (decrease, still >0), churned (>0 -> 0);
- net = new + reactivation + expansion - contraction - churned;
- GRR = (MRR at start - contraction - churned) / MRR at start, NRR = (MRR at start + expansion
  - contraction - churned) / MRR at start, both over customers present at the start;
- revenue churn rate = churned MRR / MRR at start.

Money is counted in whole cents, so MRR at end - MRR at start == net exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analytics import columns as C

MOVEMENTS = ("new", "reactivation", "expansion", "contraction", "churned")
# revenue_months() columns, in order.
MONTH_COLUMNS = (
    "month",
    "mrr_start",
    "mrr_end",
    *MOVEMENTS,
    "net",
    "grr",
    "nrr",
    "revenue_churn_rate",
)


def movements(start: pd.Series, end: pd.Series, seen_before: pd.Index) -> dict:
    """MRR movements from `start` to `end` (MRR by customer_id; absent or blank = 0).

    `seen_before`: ids that had MRR > 0 at an earlier month start; one of them going from 0 to
    >0 is a reactivation, anyone else new. Returns the five movements, net, mrr_start, mrr_end
    (in money, to the cent) and grr, nrr, revenue_churn_rate (None when MRR at start is 0).
    """
    s_ids, e_ids = _text(start.index), _text(end.index)
    # One id space for both sides: a customer absent from a side has MRR 0 there.
    codes, ids = pd.factorize(np.concatenate([s_ids, e_ids]))
    s = _aligned(codes[: len(s_ids)], _cents(start, "the start MRR"), ids, "the start MRR")
    e = _aligned(codes[len(s_ids) :], _cents(end, "the end MRR"), ids, "the end MRR")
    seen = pd.Index(ids, dtype=object).isin(_text(pd.Index(seen_before)))
    return _movements(s, e, seen)


def _movements(s: np.ndarray, e: np.ndarray, seen: np.ndarray) -> dict:
    """The rule, on MRR in whole cents per customer at the start (s) and end (e) of a month and
    whether each customer had MRR at an earlier month start (seen)."""
    came = (s == 0) & (e > 0)
    had = s > 0
    cents = {
        "new": e[came & ~seen].sum(),
        "reactivation": e[came & seen].sum(),
        "expansion": (e - s)[had & (e > s)].sum(),
        "contraction": (s - e)[had & (e > 0) & (e < s)].sum(),
        "churned": s[had & (e == 0)].sum(),
    }
    start, end = int(s.sum()), int(e.sum())
    cents = {k: int(v) for k, v in cents.items()}
    net = sum(cents[k] for k in ("new", "reactivation", "expansion"))
    net -= cents["contraction"] + cents["churned"]
    kept = start - cents["contraction"] - cents["churned"]
    out: dict = {k: v / 100 for k, v in cents.items()}
    out.update(net=net / 100, mrr_start=start / 100, mrr_end=end / 100)
    out.update(
        grr=kept / start if start else None,
        nrr=(kept + cents["expansion"]) / start if start else None,
        revenue_churn_rate=cents["churned"] / start if start else None,
    )
    return out


def _text(index: pd.Index) -> np.ndarray:
    """Ids as text in an object array (hashing it is ten times faster than Arrow strings)."""
    return index.astype(str).to_numpy(dtype=object)


def _cents(mrr: pd.Series, name: str) -> np.ndarray:
    """MRR in whole cents; blank = 0. A negative MRR is an error."""
    values = pd.to_numeric(mrr).to_numpy(dtype=float, na_value=np.nan)
    if (values < 0).any():
        raise ValueError(f"{name} has a negative amount: MRR is 0 or more per customer")
    return np.rint(np.nan_to_num(values, nan=0.0) * 100).astype(np.int64)


def _aligned(codes: np.ndarray, cents: np.ndarray, ids: np.ndarray, name: str) -> np.ndarray:
    """Cents placed at each customer's position among `ids` (0 where absent); one per customer."""
    counts = np.bincount(codes, minlength=len(ids))
    if len(counts) and counts.max() > 1:
        raise ValueError(
            f"{name} repeats customer_id {ids[int(np.argmax(counts))]!r}: give one row per customer"
        )
    out = np.zeros(len(ids), dtype=np.int64)
    out[codes] = cents
    return out


def revenue_months(snapshots: Sequence[tuple[object, pd.DataFrame]]) -> pd.DataFrame:
    """Revenue movements per month from consecutive snapshots (as_of, frame), sorted by as_of.

    Month t runs from snapshot t's MRR (monthly_revenue of every row: the base active at its
    window's start) to snapshot t+1's (a customer absent there has MRR 0). Its `month` is
    snapshot t's as_of as year-month (its window's month). A customer is seen before month t
    when they had MRR > 0 in an earlier snapshot given here. One row per month (MONTH_COLUMNS);
    grr, nrr and revenue_churn_rate are NaN when MRR at start is 0; no rows with fewer than two
    snapshots.
    """
    ordered = sorted(((pd.Timestamp(d), f) for d, f in snapshots), key=lambda s: s[0])
    dates = [d for d, _ in ordered]
    if len(set(dates)) < len(dates):
        raise ValueError("two snapshots share an as_of date: give one snapshot per date")
    names = [f"the snapshot of {d:%Y-%m-%d}" for d in dates]
    mrr = [_snapshot_mrr(frame, name) for (_, frame), name in zip(ordered, names, strict=True)]
    if len(mrr) < 2:
        return pd.DataFrame(columns=list(MONTH_COLUMNS))
    # One id space for every snapshot, hashed once.
    codes, ids = pd.factorize(np.concatenate([m.index.to_numpy() for m in mrr]))
    bounds = np.cumsum([0, *(len(m) for m in mrr)])
    cents = [
        _aligned(codes[a:b], _cents(m, name), ids, name)
        for a, b, m, name in zip(bounds[:-1], bounds[1:], mrr, names, strict=True)
    ]
    rows, seen = [], np.zeros(len(ids), dtype=bool)
    for t in range(len(cents) - 1):
        rows.append({"month": f"{dates[t]:%Y-%m}", **_movements(cents[t], cents[t + 1], seen)})
        seen |= cents[t] > 0
    return pd.DataFrame(rows, columns=list(MONTH_COLUMNS)).astype(
        {"grr": float, "nrr": float, "revenue_churn_rate": float}
    )


def _snapshot_mrr(frame: pd.DataFrame, name: str) -> pd.Series:
    """monthly_revenue indexed by customer_id as text; a clear error for a snapshot lacking it."""
    for column in (C.CUSTOMER_ID, C.MONTHLY_REVENUE):
        if column not in frame.columns:
            raise ValueError(
                f"{name} has no {column} column: "
                "revenue retention needs customer_id and monthly_revenue"
            )
    ids = pd.Index(frame[C.CUSTOMER_ID].astype(str).to_numpy(dtype=object), dtype=object)
    return pd.Series(frame[C.MONTHLY_REVENUE].to_numpy(dtype=float, na_value=np.nan), index=ids)
