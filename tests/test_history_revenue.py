"""Revenue movements (ChartMogul) between month starts and per month from snapshots, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.history import revenue as R


def mrr(**by_id: float) -> pd.Series:
    return pd.Series(by_id, dtype=float)


def test_every_movement_by_hand():
    start = mrr(up=100.0, down=80.0, gone=50.0, same=30.0, paused=0.0)
    end = mrr(up=120.0, down=60.0, same=30.0, paused=25.0, back=40.0, fresh=10.0)
    out = R.movements(start, end, seen_before=pd.Index(["paused", "back"]))
    assert out == {
        "new": 10.0,  # fresh: never had MRR
        "reactivation": 65.0,  # paused (0 row) 25 + back (absent) 40, both seen before
        "expansion": 20.0,  # up
        "contraction": 20.0,  # down
        "churned": 50.0,  # gone
        "net": 25.0,
        "mrr_start": 260.0,
        "mrr_end": 285.0,
        "grr": pytest.approx((260 - 20 - 50) / 260),
        "nrr": pytest.approx((260 + 20 - 20 - 50) / 260),
        "revenue_churn_rate": pytest.approx(50 / 260),
    }


def test_cents_keep_the_identity_exact():
    rng = np.random.default_rng(7)
    ids = [f"c{i}" for i in range(2000)]
    start = pd.Series(rng.choice([0.0, 19.99, 29.95, 70.7], len(ids)), index=ids)
    end = pd.Series(rng.choice([0.0, 19.99, 24.35, 0.1 + 0.2], len(ids)), index=ids)
    out = R.movements(start, end, seen_before=pd.Index(ids[:500]))
    assert round(out["mrr_end"] - out["mrr_start"], 2) == round(out["net"], 2)
    assert 0 <= out["grr"] <= out["nrr"]
    assert out["grr"] <= 1


def test_no_revenue_at_start_has_no_ratios():
    out = R.movements(mrr(), mrr(a=10.0), seen_before=pd.Index([]))
    assert out["new"] == 10.0
    assert out["grr"] is None
    assert out["nrr"] is None
    assert out["revenue_churn_rate"] is None


def test_repeated_ids_and_negative_mrr_are_refused():
    twice = pd.Series([10.0, 20.0], index=["a", "a"])
    with pytest.raises(ValueError, match="start MRR repeats customer_id 'a'"):
        R.movements(twice, mrr(a=10.0), pd.Index([]))
    with pytest.raises(ValueError, match="end MRR has a negative amount"):
        R.movements(mrr(a=10.0), mrr(a=-1.0), pd.Index([]))


def snap(**by_id: float) -> pd.DataFrame:
    return pd.DataFrame({C.CUSTOMER_ID: list(by_id), C.MONTHLY_REVENUE: list(by_id.values())})


def test_revenue_months_from_snapshots_with_a_pause_and_a_return():
    snapshots = [
        # given out of order: sorted by as_of
        ("2026-02-28", snap(a=12.0, b=0.0, d=30.0)),  # b paused (present, MRR 0)
        ("2026-01-31", snap(a=10.0, b=20.0, c=5.0)),
        ("2026-03-31", snap(a=12.0, b=20.0, d=20.0, e=7.5)),  # b comes back
    ]
    out = R.revenue_months(snapshots)
    assert list(out.columns) == list(R.MONTH_COLUMNS)
    assert list(out["month"]) == ["2026-01", "2026-02"]
    jan, feb = out.to_dict("records")
    # January: a 10 -> 12, b 20 -> 0, c 5 -> gone, d new.
    assert (jan["mrr_start"], jan["mrr_end"]) == (35.0, 42.0)
    assert (jan["new"], jan["reactivation"], jan["expansion"]) == (30.0, 0.0, 2.0)
    assert (jan["contraction"], jan["churned"], jan["net"]) == (0.0, 25.0, 7.0)
    assert jan["grr"] == pytest.approx(10 / 35)
    assert jan["nrr"] == pytest.approx(12 / 35)
    # February: b back (seen in January), d 30 -> 20, e new.
    assert (feb["new"], feb["reactivation"], feb["contraction"]) == (7.5, 20.0, 10.0)
    assert (feb["expansion"], feb["churned"], feb["net"]) == (0.0, 0.0, 17.5)
    assert feb["revenue_churn_rate"] == 0.0
    for row in (jan, feb):
        assert round(row["mrr_end"] - row["mrr_start"], 2) == round(row["net"], 2)
        assert 0 <= row["grr"] <= row["nrr"]


def test_revenue_months_edge_cases():
    assert R.revenue_months([("2026-01-31", snap(a=1.0))]).empty
    empty_start = R.revenue_months([("2026-01-31", snap()), ("2026-02-28", snap(a=1.0))])
    assert np.isnan(empty_start["grr"].iloc[0])
    twice = pd.concat([snap(a=1.0), snap(a=2.0)])
    with pytest.raises(ValueError, match="snapshot of 2026-01-31 repeats customer_id 'a'"):
        R.revenue_months([("2026-01-31", twice), ("2026-02-28", snap(a=1.0))])
    with pytest.raises(ValueError, match="two snapshots share an as_of date"):
        R.revenue_months([("2026-01-31", snap(a=1.0)), ("2026-01-31", snap(a=2.0))])
    no_revenue = snap(a=1.0).drop(columns=[C.MONTHLY_REVENUE])
    with pytest.raises(ValueError, match="2026-02-28 has no monthly_revenue column"):
        R.revenue_months([("2026-01-31", snap(a=1.0)), ("2026-02-28", no_revenue)])
