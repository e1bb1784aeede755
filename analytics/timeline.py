"""Snapshots of a dated customer history: the snapshot date, the observation window, the base.

With `signup_date` and `churn_date` a table may hold the whole history. The current base is the
customers active at the window's start; for them `churned` means "left within the window" and
`tenure_months` is counted up to the window's start, so the model only sees what was known then.

Window convention (../shared/METRICS.md: "the last month before as_of unless set"): the window
is the `window_months` calendar months ending on `as_of`, both ends included:

    window_start = (as_of + 1 day) - window_months months      (calendar months)
    window       = [window_start, as_of]

so for a month-end `as_of` the one-month window is exactly that calendar month (as_of 2026-10-31
-> 2026-10-01..2026-10-31), and for a mid-month `as_of` it is the month-long stretch before it
(as_of 2026-10-15 -> 2026-09-16..2026-10-15). "Active at the window's start" uses the same rule
as the monthly churn rate: signed up before window_start and not churned before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics import columns as C

ONE_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The current base as of a date, and the whole history it was cut from.

    Without dates, `base` and `history` are the frame itself, `as_of` and `window_start` are
    None and `window_months` is 1 (the data's own window, whatever it was).
    """

    base: pd.DataFrame
    history: pd.DataFrame
    as_of: pd.Timestamp | None
    window_start: pd.Timestamp | None
    window_months: int


def has_dates(frame: pd.DataFrame) -> bool:
    """True when the frame has both signup_date and churn_date (the dated-history views)."""
    return C.SIGNUP_DATE in frame.columns and C.CHURN_DATE in frame.columns


def _days(values) -> np.ndarray:
    """Any datetime-like input as a datetime64[D] array (time of day dropped, NaT kept)."""
    arr = np.atleast_1d(np.asarray(pd.to_datetime(values)))
    if not np.issubdtype(arr.dtype, np.datetime64):
        arr = arr.astype("datetime64[ns]")
    return arr.astype("datetime64[D]")


def months_between(a, b):
    """Whole calendar months from `a` to `b`: the largest k with a + k months <= b.

    Adding months clips to the month's end (Jan 31 + 1 month = Feb 28), so Jan 31 -> Feb 28 is
    1 month and Jan 15 -> Feb 14 is 0. Negative when b is before a; NaN where either is NaT.
    Works on scalars (returns a float) and on arrays/Series (returns a float ndarray); both
    broadcast.
    """
    scalar = np.ndim(a) == 0 and np.ndim(b) == 0
    da, db = _days(a), _days(b)
    missing = np.isnat(da) | np.isnat(db)
    ma, mb = da.astype("datetime64[M]"), db.astype("datetime64[M]")
    day_a = (da - ma.astype("datetime64[D]")).astype(np.int64) + 1
    day_b = (db - mb.astype("datetime64[D]")).astype(np.int64) + 1
    month_len_b = ((mb + 1).astype("datetime64[D]") - mb.astype("datetime64[D]")).astype(np.int64)
    whole = (mb - ma).astype(np.int64) - (day_b < np.minimum(day_a, month_len_b))
    out = np.where(missing, np.nan, whole.astype(float))
    return float(out[0]) if scalar else out


def resolve_as_of(frame: pd.DataFrame, as_of=None) -> pd.Timestamp | None:
    """The snapshot date: `as_of` if given, else the latest signup_date or churn_date.

    Returns a day (time of day dropped), or None when nothing is given and the frame has no
    dates (or only blank ones).
    """
    if as_of is not None:
        return pd.Timestamp(as_of).normalize()
    latest = [frame[col].max() for col in C.DATE_COLUMNS if col in frame.columns and len(frame)]
    latest = [d for d in latest if pd.notna(d)]
    return pd.Timestamp(max(latest)).normalize() if latest else None


def window_start(as_of: pd.Timestamp, window_months: int = 1) -> pd.Timestamp:
    """First day of the window of `window_months` calendar months that ends on `as_of`."""
    return pd.Timestamp(as_of).normalize() + ONE_DAY - pd.DateOffset(months=window_months)


def _check_window(window_months: int) -> None:
    if int(window_months) != window_months or window_months < 1:
        raise ValueError(f"window_months must be a whole number >= 1, got {window_months}")


def snapshot(frame: pd.DataFrame, as_of=None, window_months: int = 1) -> Snapshot:
    """The base active at the window's start, labelled by who left within the window.

    base = customers with signup_date < window_start and (churn_date blank or
    churn_date >= window_start); in it `churned` = 1 when window_start <= churn_date <= as_of,
    else 0; `tenure_months` = whole months from signup_date to window_start; a churn_date after
    as_of is blanked (not yet known on as_of). Customers with a blank signup_date cannot be
    placed in time and are left out of the base (they stay in `history`).
    Without both date columns the frame itself is the base (see Snapshot).
    """
    _check_window(window_months)
    as_of = resolve_as_of(frame, as_of) if has_dates(frame) else None
    if as_of is None:
        return Snapshot(frame, frame, None, None, 1)
    start = window_start(as_of, window_months)
    end = as_of + ONE_DAY  # exclusive, so any time of day on as_of is inside the window
    signup = frame[C.SIGNUP_DATE].to_numpy()
    churn = frame[C.CHURN_DATE].to_numpy()
    start64, end64 = np.datetime64(start), np.datetime64(end)
    with np.errstate(invalid="ignore"):
        active = (signup < start64) & (np.isnat(churn) | (churn >= start64))
    base = frame.loc[active]
    churn_b = churn[active]
    left = ~np.isnat(churn_b) & (churn_b < end64)
    known_churn = np.where(left, churn_b, np.datetime64("NaT"))
    base = base.assign(
        **{
            C.CHURNED: left.astype(np.int8),
            C.TENURE: months_between(signup[active], start),
            C.CHURN_DATE: known_churn.astype(frame[C.CHURN_DATE].dtype),
        }
    ).reset_index(drop=True)
    return Snapshot(base, frame, as_of, start, int(window_months))


def months_before(as_of: pd.Timestamp, months: int) -> pd.Timestamp:
    """The date `months` calendar months before as_of, month ends kept (Oct 31 -> Jul 31)."""
    return pd.Timestamp(as_of).normalize() + ONE_DAY - pd.DateOffset(months=months) - ONE_DAY


def holdout_split(
    frame: pd.DataFrame,
    window_months: int = 1,
    months_back: int | None = None,
    as_of=None,
) -> tuple[Snapshot, Snapshot]:
    """Two snapshots for the time-ordered holdout: (train, test).

    test = the current snapshot (window ending on as_of); train = the snapshot whose window ends
    `months_back` months earlier (default: max(3, window_months)). months_back must be at least
    window_months so the train labels are all known before the test window starts.
    Raises ValueError without dates or when the train snapshot has no customers.
    """
    _check_window(window_months)
    months_back = max(3, int(window_months)) if months_back is None else int(months_back)
    if months_back < window_months:
        raise ValueError(
            f"months_back ({months_back}) must be >= window_months ({window_months}): "
            "otherwise the train window overlaps the test window"
        )
    current = resolve_as_of(frame, as_of) if has_dates(frame) else None
    if current is None:
        raise ValueError("a time-ordered holdout needs signup_date and churn_date")
    test = snapshot(frame, current, window_months)
    train = snapshot(frame, months_before(current, months_back), window_months)
    if not len(train.base):
        raise ValueError(f"no customers were active {months_back} months before {current.date()}")
    return train, test
