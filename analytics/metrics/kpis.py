"""Churn KPIs, churn by factor with Wilson intervals, monthly trend, cohorts and Kaplan-Meier.

Definitions (../shared/METRICS.md), over a set S of customers (what the filters select):
- Customers = |S|. Active customers = customers in S with `churned` = 0.
- Churn rate = churned in S / |S|, over the data's observation window (one month for Telco).
- Retention rate = 1 - churn rate.
- MRR = sum of `monthly_revenue` over active customers.
- Average CLV = mean of CLV_i over active customers.
- MRR at risk = sum over active customers of p_i x `monthly_revenue`_i.
- Monthly churn rate for month t = customers whose `churn_date` falls in t / customers active
  at the start of t (signed up before t, not churned before t). Customers who join and leave
  within the same month count in neither. Monthly retention = 1 - that.
- Cohort retention: cohort = signup month; cell k = share of the cohort still active k months
  after signup; only fully observed cells are shown.
- Converting a churn rate c measured over d days to monthly: 1 - (1 - c)^((365/12)/d).
- Without dates, the trend view is the Kaplan-Meier retention curve over `tenure_months`
  (event = churned, censored otherwise), overall and per segment, with at-risk counts.

Every view returns analytics.result.Unavailable instead of raising when a column it needs is
absent, and an empty result (never an exception) for an empty selection. Everything is
vectorised (bincount / cumsum on integer codes), so a call stays fast on a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import timeline
from analytics.result import Unavailable

SMALL_GROUP = 30  # groups under 30 customers are marked as too small to read
MISSING_LEVEL = "(missing)"
DAYS_PER_MONTH = 365 / 12
SCORED = (C.P_CHURN, C.P_MONTHLY, C.RISK_BAND, C.CLV, C.VALUE, C.EXPECTED_LOSS, C.HIGH_VALUE)
RATE_COLUMNS = ("level", "customers", "churned", "churn_rate", "ci_low", "ci_high", "small")


# --- shared helpers ----------------------------------------------------------------------


def missing_reason(column: str) -> str:
    """One readable sentence saying why a view needing `column` is switched off."""
    if column in SCORED:
        return (
            f"Not available because the customers have not been scored (no {column} column): "
            "train a model with `python -m analytics train`."
        )
    if column == C.SEGMENT:
        return (
            "Not available because the customers have not been segmented (no segment column): "
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


def _churned(frame: pd.DataFrame) -> np.ndarray:
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


# --- KPIs --------------------------------------------------------------------------------

# Every column kpis() reads: a selection of these alone gives the same cards.
KPI_COLUMNS = (C.CHURNED, C.MONTHLY_REVENUE, C.P_MONTHLY, C.P_CHURN, C.CLV)


def kpis(frame: pd.DataFrame) -> dict:
    """The KPI cards over the selection S (one row per customer).

    Keys: customers, active_customers, churned, churn_rate, retention_rate, mrr, avg_clv,
    mrr_at_risk (plain Python numbers), and `reasons`: {kpi name: why it is None} for each
    entry a missing column switches off. Without a churned column every customer counts as
    active (nobody is known to have left). p_i in MRR at risk is p_monthly when present (the
    monthly equivalent, the same unit as monthly_revenue), else p_churn.
    An empty selection gives customers 0, NaN rates, MRR 0 and NaN averages.
    """
    n = len(frame)
    out: dict = {"customers": n}
    reasons: dict[str, str] = {}
    active = active_mask(frame)
    n_active = int(active.sum())
    out["active_customers"] = n_active
    if C.CHURNED in frame.columns:
        churned = int(_churned(frame).sum())
        rate = churned / n if n else float("nan")
        out.update(churned=churned, churn_rate=rate, retention_rate=1.0 - rate)
    else:
        out.update(churned=None, churn_rate=None, retention_rate=None)
        for key in ("churned", "churn_rate", "retention_rate"):
            reasons[key] = missing_reason(C.CHURNED)

    if C.MONTHLY_REVENUE in frame.columns:
        rev = frame[C.MONTHLY_REVENUE].to_numpy(dtype=float, na_value=np.nan)[active]
        out["mrr"] = float(np.nansum(rev))
        p_col = C.P_MONTHLY if C.P_MONTHLY in frame.columns else C.P_CHURN
        if p_col in frame.columns:
            p = frame[p_col].to_numpy(dtype=float, na_value=np.nan)[active]
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


# --- churn by factor ---------------------------------------------------------------------


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
    y = _churned(frame).astype(float)
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


# --- dated history: monthly trend and cohorts ----------------------------------------------


def _month_index(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Months since 1970-01 as int64 and a 'known' mask (NaT -> False)."""
    known = ~np.isnat(dates)
    months = np.where(known, dates.astype("datetime64[M]").astype(np.int64), 0)
    return months, known


def _last_full_month(as_of: pd.Timestamp) -> int:
    """Index of the last calendar month that ends on or before as_of."""
    end = np.datetime64(as_of + pd.Timedelta(days=1), "D")  # first day after as_of
    return int(end.astype("datetime64[M]").astype(np.int64)) - 1


def _month_start(index: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(index, dtype=np.int64).astype("datetime64[M]")).as_unit("ns")


def _dates_gap(frame: pd.DataFrame, *others: str) -> Unavailable | None:
    """Unavailable without both date columns (or without one of `others`), else None.

    (Unavailable is falsy, so gaps are tested with `is not None`, never chained with `or`.)
    """
    if timeline.has_dates(frame):
        return missing(frame, *others)
    return Unavailable(
        "Not available because the data has no signup_date and churn_date columns "
        "(map them with --map signup_date=<column> --map churn_date=<column>)."
    )


def _groups(frame: pd.DataFrame, by: str | None):
    """Integer group codes (-1 = no group) and their labels; one group 'All' without `by`."""
    if by is None:
        return np.zeros(len(frame), dtype=np.int64), ["All"]
    series = frame[by]
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy().astype(np.int64), list(series.cat.categories)
    codes, uniques = pd.factorize(series, sort=True)
    return codes.astype(np.int64), list(uniques)


def _observed_from(history: pd.DataFrame, observed_from) -> int | None:
    """Month index from which departures are recorded: given, else the first churn_date's month.

    An export that starts on some date holds none of the customers who left before it
    (survivorship), so months and cohorts before that would read as zero churn.
    """
    if observed_from is not None:
        return int(
            _month_index(np.array([pd.Timestamp(observed_from)], dtype="datetime64[ns]"))[0][0]
        )
    month, known = _month_index(history[C.CHURN_DATE].to_numpy())
    return int(month[known].min()) if known.any() else None


TREND_COLUMNS = ("month", "active_start", "churned", "churn_rate", "retention_rate")


def _count(index: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
    """bincount of `index`; with weights (customers per row), still exact int64 counts."""
    if weights is None:
        return np.bincount(index, minlength=size)
    return np.bincount(index, weights=weights, minlength=size).astype(np.int64)


def monthly_trend(
    history: pd.DataFrame, as_of=None, by: str | None = None, observed_from=None
) -> pd.DataFrame | Unavailable:
    """Monthly churn and retention per calendar month t, optionally split by a column.

    active_start = signed up before t and not churned before t; churned = those of them whose
    churn_date falls in t (so join-and-leave-same-month customers count in neither);
    churn_rate = churned / active_start (NaN when 0); retention_rate = 1 - churn_rate.
    Months run from the first month anyone is active at its start (and not before
    `observed_from`, default the month of the first recorded churn_date: earlier departures are
    not in the table) to the last month fully
    observed by as_of (the month of as_of when it is a month end, so the one-month window is
    included). Columns: month (first day), [by], active_start, churned, churn_rate,
    retention_rate; sorted by [by,] month.
    """
    gap = _dates_gap(history, *([by] if by else []))
    if gap is not None:
        return gap
    signup, s_known = _month_index(history[C.SIGNUP_DATE].to_numpy())
    churn, c_known = _month_index(history[C.CHURN_DATE].to_numpy())
    group, labels = _groups(history, by)
    return _trend_table(
        _Months(signup, s_known, churn, c_known, group),
        labels,
        by,
        history[by].dtype if by else None,
        timeline.resolve_as_of(history, as_of),
        _observed_from(history, observed_from),
    )


@dataclass(frozen=True)
class _Months:
    """Per customer (or per group of identical customers, `weights` of them): signup and churn
    month indexes with their 'known' masks, group code, and months survived (cohorts)."""

    signup: np.ndarray
    s_known: np.ndarray
    churn: np.ndarray
    c_known: np.ndarray
    group: np.ndarray
    survived: np.ndarray | None = None
    weights: np.ndarray | None = None

    def weight(self, sel: np.ndarray) -> np.ndarray | None:
        return None if self.weights is None else self.weights[sel]


def _trend_table(m: _Months, labels, by, by_dtype, as_of, start_month) -> pd.DataFrame:
    """monthly_trend's counting, on rows or on weighted groups of rows alike."""
    cols = ["month", *([by] if by else []), *TREND_COLUMNS[1:]]
    keep = m.s_known & (m.group >= 0)
    if as_of is None or not keep.any():
        return pd.DataFrame(columns=cols)
    first = int(m.signup[keep].min()) + 1
    if start_month is not None:
        first = max(first, start_month)
    last = _last_full_month(as_of)
    if last < first:
        return pd.DataFrame(columns=cols)
    n_months = last - first + 2  # one spare slot for "after the last month"
    # Active at the start of months signup+1 .. churn month (or the end): one +1/-1 pair each.
    start = m.signup + 1
    stop = np.where(m.c_known, m.churn, last) + 1  # exclusive
    live = keep & (stop > start)
    weights = m.weight(live)
    start = np.clip(start[live] - first, 0, n_months - 1)
    stop = np.clip(stop[live] - first, 0, n_months - 1)
    g = m.group[live]
    size = len(labels) * n_months
    delta = _count(g * n_months + start, weights, size) - _count(g * n_months + stop, weights, size)
    active = np.cumsum(delta.reshape(len(labels), n_months), axis=1)[:, :-1]
    # Churned in month t among those active at its start (live churners have churn > signup).
    left = live & m.c_known & (m.churn <= last)
    churned = _count(
        m.group[left] * n_months + (m.churn[left] - first), m.weight(left), size
    ).reshape(len(labels), n_months)[:, :-1]
    months = np.arange(first, last + 1)
    frame = pd.DataFrame(
        {
            "month": np.tile(_month_start(months), len(labels)),
            "active_start": active.ravel(),
            "churned": churned.ravel(),
        }
    )
    if by:
        frame.insert(1, by, np.repeat(np.asarray(labels, dtype=object), len(months)))
        if isinstance(by_dtype, pd.CategoricalDtype):
            frame[by] = pd.Categorical(frame[by], categories=by_dtype.categories)
        present = frame.groupby(by, observed=True, sort=False)["active_start"].transform("sum")
        frame = frame[present.to_numpy() > 0]
    rate = safe_ratio(frame["churned"].to_numpy(), frame["active_start"].to_numpy())
    frame = frame.assign(churn_rate=rate, retention_rate=1.0 - rate)
    return frame.reset_index(drop=True)[cols]


def _empty_cohorts() -> pd.DataFrame:
    empty = pd.DataFrame(columns=["customers"], index=pd.DatetimeIndex([], name="cohort"))
    return empty.astype({"customers": np.int64})


def cohort_retention(
    history: pd.DataFrame, as_of=None, max_months: int = 24, observed_from=None
) -> pd.DataFrame | Unavailable:
    """Cohort retention: cohort = signup month; cell k = share of the cohort still active k
    months after signup; only fully observed cells are shown (NaN otherwise).

    A customer is still active k months after signup when they have no churn_date on or before
    signup_date + k months (churn dates after as_of are not yet known). Cell k of cohort c is
    fully observed when month c + k has ended by as_of. Returns a DataFrame indexed by cohort
    month (first day, index name "cohort") with column "customers" (cohort size) then integer
    columns 0..K, K = min(max_months, the longest observed k); cohorts after the last fully
    observed month, and cohorts before `observed_from` (default: the month of the first
    recorded churn_date), are left out.
    """
    gap = _dates_gap(history)
    if gap is not None:
        return gap
    as_of = timeline.resolve_as_of(history, as_of)
    if as_of is None:
        return _empty_cohorts()
    signup = history[C.SIGNUP_DATE].to_numpy()
    s_month, s_known = _month_index(signup)
    churn = history[C.CHURN_DATE].to_numpy()
    known = s_known & ~np.isnat(churn) & (churn < np.datetime64(as_of + pd.Timedelta(days=1)))
    survived = np.full(len(history), _NEVER, dtype=np.int64)
    if known.any():
        before = churn[known].astype("datetime64[D]") - np.timedelta64(1, "D")
        survived[known] = timeline.months_between(signup[known], before)
    months = _Months(s_month, s_known, s_month, known, np.zeros(len(history), np.int64), survived)
    return _cohort_table(months, as_of, _observed_from(history, observed_from), max_months)


# Months survived by a customer with no (known) churn date: more than any table shows.
_NEVER = np.iinfo(np.int32).max


def _cohort_table(m: _Months, as_of, start_month, max_months: int) -> pd.DataFrame:
    """cohort_retention's counting, on rows or on weighted groups of rows alike."""
    last = _last_full_month(as_of)
    keep = m.s_known & (m.signup <= last)
    # Cohorts that signed up before departures are recorded are left-truncated (their early
    # leavers are not in the table) and would read as fully retained: leave them out.
    if start_month is not None:
        keep &= m.signup >= start_month
    if not keep.any():
        return _empty_cohorts()
    first = int(m.signup[keep].min())
    n_cohorts = last - first + 1
    k_max = int(min(max_months, last - first))
    # Months survived: the largest k with signup + k months < churn date (inf without churn).
    lived = np.clip(m.survived[keep], -1, k_max + 1)
    cohort = m.signup[keep] - first
    width = k_max + 3  # slots for lived = -1 .. k_max + 1
    hist = _count(cohort * width + lived + 1, m.weight(keep), n_cohorts * width)
    hist = hist.reshape(n_cohorts, width)
    # active[c, k] = customers with lived >= k: a reverse cumulative sum over the slots.
    still = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1 : k_max + 2]
    size = hist.sum(axis=1)
    shares = still / np.where(size > 0, size, 1)[:, None]
    observed = np.arange(n_cohorts)[:, None] + np.arange(k_max + 1)[None, :] <= last - first
    shares = np.where(observed, shares, np.nan)
    table = pd.DataFrame(shares, columns=list(range(k_max + 1)))
    table.insert(0, "customers", size.astype(np.int64))
    table.index = pd.DatetimeIndex(_month_start(np.arange(first, last + 1)), name="cohort")
    return table[table["customers"] > 0]


class DatedHistory:
    """A dated history reduced once to one small integer code per customer, so the monthly
    trend and the cohort table of any selection of it are one bincount, not date arithmetic on
    a filtered copy of millions of rows.

    A customer's code holds what both views read: the `by` group, the signup and churn months
    and how the months survived differ from churn month - signup month (0, 1 or 2 less: the
    day of the month decides). Customers with the same code count identically, so the views
    run on the groups with their sizes as weights and give exactly what monthly_trend(
    history[mask], by=by) and cohort_retention(history[mask]) give (as_of and observed_from
    resolved from the selection, as those functions do by default).
    """

    def __init__(self, history: pd.DataFrame, by: str | None = None) -> None:
        if not timeline.has_dates(history):
            raise ValueError("DatedHistory needs signup_date and churn_date")
        self.by = by
        self.by_dtype = history[by].dtype if by else None
        group, self.labels = _groups(history, by)
        signup = history[C.SIGNUP_DATE].to_numpy()
        churn = history[C.CHURN_DATE].to_numpy()
        s_month, s_known = _month_index(signup)
        c_month, c_known = _month_index(churn)
        known = np.concatenate((s_month[s_known], c_month[c_known]))
        self.first = int(known.min()) if len(known) else 0
        span = (int(known.max()) - self.first + 2) if len(known) else 1  # slot 0 = unknown
        both = s_known & c_known
        extra = np.zeros(len(history), dtype=np.int64)
        if both.any():
            before = churn[both].astype("datetime64[D]") - np.timedelta64(1, "D")
            survived = timeline.months_between(signup[both], before).astype(np.int64)
            extra[both] = survived - (c_month[both] - s_month[both]) + 2
        if len(extra) and (extra.min() < 0 or extra.max() > 2):
            raise AssertionError("months survived must be churn - signup months minus 0..2")
        self.shape = (len(self.labels) + 1, span, span, 3)  # group slot 0 = no group
        code = np.ravel_multi_index(
            (
                group + 1,
                np.where(s_known, s_month - self.first + 1, 0),
                np.where(c_known, c_month - self.first + 1, 0),
                extra,
            ),
            self.shape,
        )
        self._code = code.astype(np.min_scalar_type(int(np.prod(self.shape))))
        # The snapshot date of a selection is its latest date; nearly every selection holds one
        # of the customers on the base's latest day, so those few are checked first.
        latest = np.maximum(_days_or_min(signup), _days_or_min(churn))
        self._latest = latest
        self._latest_day = latest.max() if len(latest) else _MIN_DAY
        self._on_latest_day = np.flatnonzero(latest == self._latest_day)

    def select(self, mask: np.ndarray) -> DatedSelection:
        """The counts of the customers in `mask` (a boolean row mask over the history)."""
        code = self._code if mask.all() else self._code[mask]
        counts = np.bincount(code, minlength=int(np.prod(self.shape)))
        if mask[self._on_latest_day].any():
            day = self._latest_day
        else:
            day = self._latest[mask].max() if mask.any() else _MIN_DAY
        if day == _MIN_DAY:
            return DatedSelection(self, counts, None)
        as_of = pd.Timestamp(np.datetime64(int(day), "D")).as_unit("ns")
        return DatedSelection(self, counts, as_of)


_MIN_DAY = np.iinfo(np.int64).min


def _days_or_min(dates: np.ndarray) -> np.ndarray:
    """Days since 1970 (time of day dropped), the smallest int64 where NaT."""
    days = dates.astype("datetime64[D]").astype(np.int64)
    return np.where(np.isnat(dates), _MIN_DAY, days)


class DatedSelection:
    """One selection of a DatedHistory: customers per code, and its snapshot date."""

    def __init__(self, history: DatedHistory, counts: np.ndarray, as_of) -> None:
        self.history = history
        self.customers = int(counts.sum())
        self.as_of = as_of
        cells = np.flatnonzero(counts)
        g, s, c, extra = np.unravel_index(cells, history.shape)
        first = history.first
        s_known, c_known = s > 0, c > 0
        signup = np.where(s_known, s - 1 + first, 0)
        churn = np.where(c_known, c - 1 + first, 0)
        survived = np.where(s_known & c_known, churn - signup + extra - 2, _NEVER)
        self._months = _Months(signup, s_known, churn, c_known, g - 1, survived, counts[cells])
        self._start = int(churn[c_known].min()) if c_known.any() else None

    def monthly_trend(self, by: str | None = None) -> pd.DataFrame:
        """monthly_trend(history[mask], by=by); `by` is None or the history's own `by`."""
        h = self.history
        if by is not None and by != h.by:
            raise ValueError(f"this history is grouped by {h.by!r}, not {by!r}")
        m = self._months
        if by is None:
            m = replace(m, group=np.zeros_like(m.group))
            labels = ["All"]
        else:
            labels = h.labels
        return _trend_table(m, labels, by, h.by_dtype if by else None, self.as_of, self._start)

    def cohort_retention(self, max_months: int = 24) -> pd.DataFrame:
        """cohort_retention(history[mask], max_months=max_months)."""
        if self.as_of is None:
            return _empty_cohorts()
        m = self._months
        return _cohort_table(m, self.as_of, self._start, max_months)


# --- survival without dates ----------------------------------------------------------------

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
    events = _churned(frame)
    group, labels = _groups(frame, by)
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
