"""Snapshots of a dated history: window, base, label and tenure, on hand-built customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics import timeline
from analytics.metrics.trend import monthly_trend

T = pd.Timestamp


def history() -> pd.DataFrame:
    """Five customers; as_of defaults to the latest date, 2026-04-10."""
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: ["A", "B", "C", "D", "E"],
            C.SIGNUP_DATE: pd.to_datetime(
                ["2026-01-10", "2026-01-20", "2026-02-03", "2026-02-15", "2026-03-01"]
            ),
            C.CHURN_DATE: pd.to_datetime([None, "2026-03-05", "2026-02-25", "2026-04-10", None]),
            C.CHURNED: np.array([0, 1, 1, 1, 0], dtype=np.int8),
            C.TENURE: [3.0, 1.0, 0.0, 1.0, 1.0],
            C.MONTHLY_REVENUE: [10.0, 20.0, 30.0, 40.0, 50.0],
        }
    )


@pytest.mark.parametrize(
    ("a", "b", "months"),
    [
        ("2026-01-15", "2026-02-14", 0),
        ("2026-01-15", "2026-02-15", 1),
        ("2026-01-31", "2026-02-28", 1),  # month end clips: Jan 31 + 1 month = Feb 28
        ("2026-01-30", "2026-02-27", 0),
        ("2025-03-01", "2026-04-01", 13),
        ("2026-03-15", "2026-03-14", -1),
    ],
)
def test_months_between_counts_whole_calendar_months(a, b, months):
    assert timeline.months_between(T(a), T(b)) == months


def test_months_between_is_vectorised_and_nan_for_missing_dates():
    a = pd.Series(pd.to_datetime(["2026-01-31", None, "2025-03-15"]))
    out = timeline.months_between(a, T("2026-03-14"))
    np.testing.assert_array_equal(out, [1.0, np.nan, 11.0])


def test_as_of_is_the_latest_date_unless_given():
    assert timeline.resolve_as_of(history()) == T("2026-04-10")
    assert timeline.resolve_as_of(history(), "2026-03-31 17:00") == T("2026-03-31")
    assert timeline.resolve_as_of(history().drop(columns=list(C.DATE_COLUMNS))) is None


@pytest.mark.parametrize(
    ("as_of", "months", "start"),
    [
        ("2026-10-31", 1, "2026-10-01"),  # month end: exactly that calendar month
        ("2026-11-30", 1, "2026-11-01"),
        ("2026-02-28", 1, "2026-02-01"),
        ("2026-10-15", 1, "2026-09-16"),  # mid-month: the month-long stretch before it
        ("2026-10-31", 3, "2026-08-01"),
    ],
)
def test_window_start(as_of, months, start):
    assert timeline.window_start(T(as_of), months) == T(start)


def test_snapshot_base_label_and_tenure_at_the_window_start():
    snap = timeline.snapshot(history(), as_of="2026-03-31")
    assert snap.window_start == T("2026-03-01")
    assert snap.as_of == T("2026-03-31")
    base = snap.base.set_index(C.CUSTOMER_ID)
    # Active at 2026-03-01: A, B, D (C left in February; E signed up on the window's first day).
    assert list(base.index) == ["A", "B", "D"]
    assert base[C.CHURNED].to_dict() == {"A": 0, "B": 1, "D": 0}  # D leaves in April: later
    assert base[C.TENURE].to_dict() == {"A": 1.0, "B": 1.0, "D": 0.0}
    # What happens after as_of is not known on as_of.
    assert pd.isna(base.loc["D", C.CHURN_DATE])
    assert len(snap.history) == 5


def test_snapshot_window_of_three_months():
    snap = timeline.snapshot(history(), as_of="2026-04-30", window_months=3)
    assert snap.window_start == T("2026-02-01")
    base = snap.base.set_index(C.CUSTOMER_ID)
    assert list(base.index) == ["A", "B"]
    assert base[C.CHURNED].to_dict() == {"A": 0, "B": 1}


def test_snapshot_churn_rate_equals_the_trend_for_the_window_month():
    snap = timeline.snapshot(history(), as_of="2026-04-30")
    trend = monthly_trend(history(), as_of="2026-04-30")
    april = trend[trend["month"] == T("2026-04-01")].iloc[0]
    assert len(snap.base) == april["active_start"] == 3
    assert snap.base[C.CHURNED].sum() == april["churned"] == 1


def test_snapshot_without_dates_is_the_frame_itself():
    frame = history().drop(columns=list(C.DATE_COLUMNS))
    snap = timeline.snapshot(frame, window_months=3)
    assert snap.base is frame
    assert snap.as_of is None
    assert snap.window_start is None
    assert snap.window_months == 1


def test_snapshot_of_an_empty_history_is_empty():
    snap = timeline.snapshot(history().iloc[:0])
    assert len(snap.base) == 0


def test_holdout_split_trains_on_an_earlier_window():
    train, test = timeline.holdout_split(history(), as_of="2026-04-30", months_back=2)
    assert test.window_start == T("2026-04-01")
    assert train.as_of == T("2026-02-28")
    assert train.window_start == T("2026-02-01")
    assert list(train.base[C.CUSTOMER_ID]) == ["A", "B"]
    assert train.base[C.CHURNED].tolist() == [0, 0]  # B leaves in March: after the train window


def test_holdout_split_refuses_overlapping_windows_and_missing_dates():
    with pytest.raises(ValueError, match="overlaps"):
        timeline.holdout_split(history(), window_months=3, months_back=2)
    with pytest.raises(ValueError, match="signup_date"):
        timeline.holdout_split(history().drop(columns=[C.CHURN_DATE]))
    with pytest.raises(ValueError, match="no customers"):
        timeline.holdout_split(history(), as_of="2026-02-28", months_back=1)
