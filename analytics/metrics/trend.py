"""The dated history: monthly churn trend and cohort retention (../shared/METRICS.md).

- Monthly churn rate for month t = customers whose `churn_date` falls in t / customers active
  at the start of t (signed up before t, not churned before t). Customers who join and leave
  within the same month count in neither. Monthly retention = 1 - that.
- Cohort retention: cohort = signup month; cell k = share of the cohort still active k months
  after signup; only fully observed cells are shown.

A tenure filter applies as of each month, the way the current base's tenure_months is measured
(timeline.snapshot: whole months from signup_date to the window's start): a customer counts in
month t when the whole months from signup_date to the first day of t are in the range, and in
cohort cell k when k is. So the last month of the trend is the current base's month for the
same filters.

Without both date columns each view returns analytics.result.Unavailable. Everything is
vectorised (bincount / cumsum on integer month codes); DatedHistory reduces a history once so
any selection's views are one bincount.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import timeline
from analytics.metrics.kpis import group_codes, missing, safe_ratio
from analytics.result import Unavailable


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
    history: pd.DataFrame, as_of=None, by: str | None = None, observed_from=None, tenure=None
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
    retention_rate; sorted by [by,] month. `tenure` = (min, max) months, either None: a customer
    counts in month t only while their tenure as of t is in the range (see the module's doc).
    """
    gap = _dates_gap(history, *([by] if by else []))
    if gap is not None:
        return gap
    signup_dates = history[C.SIGNUP_DATE].to_numpy()
    signup, s_known = _month_index(signup_dates)
    churn, c_known = _month_index(history[C.CHURN_DATE].to_numpy())
    group, labels = group_codes(history, by)
    return _trend_table(
        _Months(signup, s_known, churn, c_known, group, late=_late(signup_dates)),
        labels,
        by,
        history[by].dtype if by else None,
        timeline.resolve_as_of(history, as_of),
        _observed_from(history, observed_from),
        tenure,
    )


def _late(signup: np.ndarray) -> np.ndarray:
    """1 where signup_date falls after the first day of its month (see _Months.late)."""
    days = signup.astype("datetime64[D]")
    late = days != days.astype("datetime64[M]").astype("datetime64[D]")
    return (late & ~np.isnat(signup)).astype(np.int64)


def _tenure_bounds(tenure) -> tuple[float, float]:
    """(min, max) whole months a tenure filter keeps; -inf / inf where a side is open."""
    low, high = tenure if tenure is not None else (None, None)
    # Past any history's length a bound means "open": kept finite so month arithmetic fits.
    return (
        -np.inf if low is None or low < -_TENURE_CAP else float(np.ceil(min(low, _TENURE_CAP))),
        np.inf if high is None or high > _TENURE_CAP else float(np.floor(max(high, -_TENURE_CAP))),
    )


_TENURE_CAP = 10**6  # months


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
    # 1 when signup_date is after the month's first day: whole months from signup to the first
    # day of month t are then t - signup - 1, else t - signup (the tenure as of t).
    late: np.ndarray | None = None

    def weight(self, sel: np.ndarray) -> np.ndarray | None:
        return None if self.weights is None else self.weights[sel]


def _trend_table(m: _Months, labels, by, by_dtype, as_of, start_month, tenure=None):
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
    low, high = _tenure_bounds(tenure)
    if tenure is not None:
        # Only the months whose tenure as of their first day is in the range; a churner counts
        # as churned only when their churn month is one of them.
        zero = m.signup + m.late  # the month at whose start tenure is 0
        if low > -np.inf:
            start = np.maximum(start, zero + int(low))
        if high < np.inf:
            stop = np.minimum(stop, zero + int(high) + 1)
    live = keep & (stop > start)
    # Churned in month t among those active at its start (live churners have churn > signup),
    # when t is one of the months they count in.
    left = live & m.c_known & (m.churn <= last) & (m.churn < stop)
    weights = m.weight(live)
    start = np.clip(start[live] - first, 0, n_months - 1)
    stop = np.clip(stop[live] - first, 0, n_months - 1)
    g = m.group[live]
    size = len(labels) * n_months
    delta = _count(g * n_months + start, weights, size) - _count(g * n_months + stop, weights, size)
    active = np.cumsum(delta.reshape(len(labels), n_months), axis=1)[:, :-1]
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
    history: pd.DataFrame, as_of=None, max_months: int = 24, observed_from=None, tenure=None
) -> pd.DataFrame | Unavailable:
    """Cohort retention: cohort = signup month; cell k = share of the cohort still active k
    months after signup; only fully observed cells are shown (NaN otherwise).

    A customer is still active k months after signup when they have no churn_date on or before
    signup_date + k months (churn dates after as_of are not yet known). Cell k of cohort c is
    fully observed when month c + k has ended by as_of. Returns a DataFrame indexed by cohort
    month (first day, index name "cohort") with column "customers" (cohort size) then integer
    columns 0..K, K = min(max_months, the longest observed k); cohorts after the last fully
    observed month, and cohorts before `observed_from` (default: the month of the first
    recorded churn_date), are left out. `tenure` = (min, max) months: only the cells k in the
    range (tenure k months after signup) are kept.
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
    table = _cohort_table(months, as_of, _observed_from(history, observed_from), max_months)
    return _cells_in_tenure(table, tenure)


def _cells_in_tenure(table: pd.DataFrame, tenure) -> pd.DataFrame:
    """The cohort table's cells k within a tenure filter's range (all of them without one)."""
    if tenure is None:
        return table
    low, high = _tenure_bounds(tenure)
    drop = [k for k in table.columns if k != "customers" and not low <= k <= high]
    return table.drop(columns=drop)


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

    A customer's code holds what both views read: the `by` group, the signup and churn months,
    how the months survived differ from churn month - signup month (0, 1 or 2 less: the
    day of the month decides) and whether signup was after the month's first day (tenure).
    Customers with the same code count identically, so the views run on the groups with their
    sizes as weights and give exactly what monthly_trend(history[mask], by=by) and
    cohort_retention(history[mask]) give (as_of and observed_from resolved from the selection,
    as those functions do by default).
    """

    def __init__(self, history: pd.DataFrame, by: str | None = None) -> None:
        if not timeline.has_dates(history):
            raise ValueError("DatedHistory needs signup_date and churn_date")
        self.by = by
        self.by_dtype = history[by].dtype if by else None
        group, self.labels = group_codes(history, by)
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
        self.shape = (len(self.labels) + 1, span, span, 3, 2)  # group slot 0 = no group
        code = np.ravel_multi_index(
            (
                group + 1,
                np.where(s_known, s_month - self.first + 1, 0),
                np.where(c_known, c_month - self.first + 1, 0),
                extra,
                _late(signup),
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

    def select(self, mask: np.ndarray, *, base_as_of: bool = False) -> DatedSelection:
        """The counts of the customers in `mask` (a boolean row mask over the history). Its
        as_of is the selection's latest date, or with `base_as_of` the whole history's (a
        filtered view of one base: METRICS.md's as_of is the data's latest date, and a
        selection none of whose customers has an event on that day must not lose its last
        month)."""
        code = self._code if mask.all() else self._code[mask]
        counts = np.bincount(code, minlength=int(np.prod(self.shape)))
        if (base_as_of and mask.any()) or mask[self._on_latest_day].any():
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
        g, s, c, extra, late = np.unravel_index(cells, history.shape)
        first = history.first
        s_known, c_known = s > 0, c > 0
        signup = np.where(s_known, s - 1 + first, 0)
        churn = np.where(c_known, c - 1 + first, 0)
        survived = np.where(s_known & c_known, churn - signup + extra - 2, _NEVER)
        self._months = _Months(
            signup, s_known, churn, c_known, g - 1, survived, counts[cells], late.astype(np.int64)
        )
        self._start = int(churn[c_known].min()) if c_known.any() else None

    def monthly_trend(self, by: str | None = None, tenure=None) -> pd.DataFrame:
        """monthly_trend(history[mask], by=by, tenure=tenure); `by` is None or the history's
        own `by`."""
        h = self.history
        if by is not None and by != h.by:
            raise ValueError(f"this history is grouped by {h.by!r}, not {by!r}")
        m = self._months
        if by is None:
            m = replace(m, group=np.zeros_like(m.group))
            labels = ["All"]
        else:
            labels = h.labels
        by_dtype = h.by_dtype if by else None
        return _trend_table(m, labels, by, by_dtype, self.as_of, self._start, tenure)

    def cohort_retention(self, max_months: int = 24, tenure=None) -> pd.DataFrame:
        """cohort_retention(history[mask], max_months=max_months, tenure=tenure)."""
        if self.as_of is None:
            return _empty_cohorts()
        m = self._months
        return _cells_in_tenure(_cohort_table(m, self.as_of, self._start, max_months), tenure)
