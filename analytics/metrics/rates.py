"""What drives churn: churn rate by each value of a factor (numeric factors in quantile bins) and
by segment, with counts and Wilson 95% intervals (../shared/METRICS.md).

Groups under 30 customers are marked as too small to read. Counting is a bincount over integer
codes, so a call stays fast on a million rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics.kpis import SMALL_GROUP, churned_mask, missing, safe_ratio, wilson_interval
from analytics.result import Unavailable

MISSING_LEVEL = "(missing)"
RATE_COLUMNS = ("level", "customers", "churned", "churn_rate", "ci_low", "ci_high", "small")


def _decimals(values: np.ndarray, bins: int, whole: bool) -> int:
    """Decimals for bin labels: none for whole numbers, else enough for a bin's width."""
    if whole:
        return 0
    width = (values.max() - values.min()) / max(bins, 1)
    return 0 if width >= 10 else 1 if width >= 1 else 2 if width >= 0.01 else 4


def _rates_table(labels, customers, churned) -> pd.DataFrame:
    customers = np.asarray(customers, dtype=np.int64)
    churned = np.asarray(churned, dtype=np.int64)
    low, high = wilson_interval(churned, customers)
    return pd.DataFrame(
        {
            "level": pd.array(list(labels), dtype="str"),
            "customers": customers,
            "churned": churned,
            "churn_rate": safe_ratio(churned, customers),
            "ci_low": low,
            "ci_high": high,
            "small": customers < SMALL_GROUP,
        },
        columns=list(RATE_COLUMNS),
    )


def _count_by_code(codes: np.ndarray, y: np.ndarray, n_levels: int):
    """Customers and churned per code 0..n_levels-1, plus the missing (-1) group last."""
    shifted = codes.astype(np.int64) + 1
    customers = np.bincount(shifted, minlength=n_levels + 1)
    churned = np.bincount(shifted, weights=y, minlength=n_levels + 1).round().astype(np.int64)
    return customers[1:], churned[1:], int(customers[0]), int(churned[0])


def _edges_from_histogram(hist: np.ndarray, lo: float, q: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantiles of whole numbers lo, lo+1, ... counted in `hist`."""
    cum = np.cumsum(hist)
    pos = q * (cum[-1] - 1)
    below = np.floor(pos).astype(np.int64)
    at = np.searchsorted(cum, below, side="right") + lo
    nxt = np.searchsorted(cum, np.minimum(below + 1, cum[-1] - 1), side="right") + lo
    return np.unique(at + (pos - below) * (nxt - at))


def _bin_label(lo: float, hi: float, decimals: int) -> str:
    lo_s, hi_s = f"{lo:,.{decimals}f}", f"{hi:,.{decimals}f}"
    return lo_s if lo_s == hi_s else f"{lo_s}–{hi_s}"


def _numeric_bins(x: np.ndarray, bins: int):
    """Codes (-1 = missing) and readable labels for quantile bins of a numeric column.

    Bins lie between distinct linear-interpolated quantile edges, right-closed, the first also
    holding the minimum (pd.qcut(duplicates="drop") semantics); each is labelled by the
    smallest and largest value it holds ("0–5", "6–17"). At most `bins` distinct values -> one
    level per value. Empty bins are not shown.
    """
    finite = ~np.isnan(x)
    values = x[finite]
    codes = np.full(len(x), -1, dtype=np.int64)
    if not len(values):
        return codes, []
    q = np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(values.min()), float(values.max())
    whole = bool(np.all(values == np.round(values)))
    decimals = _decimals(values, bins, whole)
    if whole and hi - lo <= 100_000:
        # Whole numbers in a modest range (tenure, counts): work on the value histogram,
        # no sort, partition or search over the rows.
        offset = (values - lo).astype(np.int64)
        hist = np.bincount(offset)
        grid = np.arange(len(hist)) + lo
        seen = hist > 0
        if seen.sum() <= bins:
            level = np.cumsum(seen) - 1
            codes[finite] = level[offset]
            return codes, [_bin_label(v, v, 0) for v in grid[seen]]
        edges = _edges_from_histogram(hist, lo, q)
        grid_bin = np.clip(np.searchsorted(edges, grid, side="left") - 1, 0, len(edges) - 2)
        present = np.unique(grid_bin[seen])
        lookup = np.full(len(edges) - 1, -1, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        codes[finite] = lookup[grid_bin][offset]
        labels = [
            _bin_label(grid[seen & (grid_bin == i)].min(), grid[seen & (grid_bin == i)].max(), 0)
            for i in present
        ]
        return codes, labels
    edges = np.unique(np.quantile(values, q))
    if len(edges) < bins + 1:  # edges collapsed: maybe only a few distinct values
        distinct = np.unique(values)
        if len(distinct) <= bins:
            codes[finite] = np.searchsorted(distinct, values)
            return codes, [_bin_label(v, v, decimals) for v in distinct]
    inner = np.clip(np.searchsorted(edges, values, side="left") - 1, 0, len(edges) - 2)
    lows, highs, present = [], [], []
    for i in range(len(edges) - 1):
        members = values[inner == i]
        if len(members):
            lows.append(members.min())
            highs.append(members.max())
            present.append(i)
    labels = [_bin_label(lo, h, decimals) for lo, h in zip(lows, highs, strict=True)]
    lookup = np.full(len(edges) - 1, -1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    codes[finite] = lookup[inner]
    return codes, labels


def churn_by_factor(frame: pd.DataFrame, column: str, bins: int = 5) -> pd.DataFrame | Unavailable:
    """Churn rate by each value of `column`, with counts and Wilson 95% intervals.

    Numeric columns: quantile bins (pd.qcut, duplicates dropped; one level per value when there
    are at most `bins` distinct values), in order. Categorical columns: one row per level
    present, by churn rate descending (ties: more customers first). Missing values form a
    "(missing)" level, last. Columns: level, customers, churned, churn_rate, ci_low, ci_high,
    small (customers < 30: too small to read).
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    gap = missing(frame, C.CHURNED, column)
    if gap is not None:
        return gap
    if not len(frame):
        return _rates_table([], [], [])
    y = churned_mask(frame).astype(float)
    series = frame[column]
    dtype = series.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if numeric:
        codes, labels = _numeric_bins(series.to_numpy(dtype=float, na_value=np.nan), bins)
    elif isinstance(dtype, pd.CategoricalDtype):
        codes, labels = series.cat.codes.to_numpy(), [str(c) for c in dtype.categories]
    else:
        codes, uniques = pd.factorize(series, sort=True)
        labels = [str(u) for u in uniques]
    customers, churned, n_miss, k_miss = _count_by_code(codes, y, len(labels))
    table = _rates_table(labels, customers, churned)
    table = table[table["customers"] > 0]
    if not numeric:
        table = table.sort_values(
            ["churn_rate", "customers"], ascending=[False, False], kind="stable"
        )
    if n_miss:
        table = pd.concat([table, _rates_table([MISSING_LEVEL], [n_miss], [k_miss])])
    return table.reset_index(drop=True)


def churn_by_segment(frame: pd.DataFrame) -> pd.DataFrame | Unavailable:
    """Churn rate per segment with counts and Wilson 95% intervals (as churn_by_factor),
    by churn rate descending."""
    return churn_by_factor(frame, C.SEGMENT)
