"""Movers between two snapshots and "vs last month" on the KPIs, on hand-built snapshots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.history import movers as M
from analytics.metrics.kpis import kpis


def snapshot(rows: list[tuple]) -> pd.DataFrame:
    """(id, p_churn, band, high_value, expected_loss, churned, reason_1, reason_2) per customer."""
    ids, p, band, high, loss, churned, r1, r2 = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: list(ids),
            C.P_CHURN: list(p),
            C.RISK_BAND: pd.Categorical(band, categories=list(C.RISK_BANDS), ordered=True),
            C.HIGH_VALUE: list(high),
            C.EXPECTED_LOSS: list(loss),
            C.VALUE: [100.0] * len(ids),
            C.SEGMENT: ["Loyal"] * len(ids),
            C.MONTHLY_REVENUE: [50.0] * len(ids),
            C.CHURNED: list(churned),
            "reason_1": list(r1),
            "reason_2": list(r2),
            "reason_3": [None] * len(ids),
        }
    )


PREVIOUS = snapshot(
    [
        ("a", 0.10, "Low", True, 10.0, 0, "tenure", None),
        ("b", 0.50, "High", True, 50.0, 0, "contract", "price"),
        ("c", 0.30, "Medium", False, 30.0, 0, None, None),
        ("d", 0.20, "Low", True, 20.0, 0, "support", None),
        ("e", 0.40, "Medium", True, 40.0, 0, "price", None),
        ("gone", 0.90, "High", True, 90.0, 1, "price", None),
    ]
)
CURRENT = snapshot(
    [
        ("a", 0.70, "High", True, 70.0, np.nan, "price", ""),  # rose 0.6, newly at risk
        ("b", 0.60, "High", True, 60.0, np.nan, "contract", None),  # rose 0.1, was at risk
        ("c", 0.40, "Medium", False, 40.0, np.nan, "tenure", "support"),  # rose 0.1
        ("d", 0.05, "Low", True, 5.0, np.nan, None, None),  # fell 0.15
        ("e", 0.95, "High", True, 95.0, 1, "price", None),  # left: not a mover
        ("new", 0.99, "High", True, 99.0, np.nan, "tenure", None),  # not in the previous
    ]
)


def test_movers_ranked_by_the_rise_with_reasons_then_and_now():
    out = M.movers(CURRENT, PREVIOUS)
    assert list(out.columns) == list(M.MOVER_COLUMNS)
    # b and c both rose 0.1 (to float rounding: compare the ranking the user sees).
    assert list(out[C.CUSTOMER_ID]) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(out["rise"], [0.6, 0.1, 0.1, -0.15])
    np.testing.assert_allclose(out["p_churn_previous"], [0.1, 0.5, 0.3, 0.2])
    assert list(out[C.RISK_BAND].astype(str)) == ["High", "High", "Medium", "Low"]
    assert list(out["risk_band_previous"].astype(str)) == ["Low", "High", "Medium", "Low"]
    assert out["reasons"].tolist() == [["price"], ["contract"], ["tenure", "support"], []]
    assert out["reasons_previous"].tolist() == [["tenure"], ["contract", "price"], [], ["support"]]
    assert out["newly_at_risk"].tolist() == [True, False, False, False]
    assert out[C.EXPECTED_LOSS].tolist() == [70.0, 60.0, 40.0, 5.0]


def test_equal_rises_are_ordered_by_id_and_limit_keeps_the_top():
    prev = PREVIOUS.assign(**{C.P_CHURN: [0.1, 0.2, 0.2, 0.2, 0.2, 0.2]})
    cur = CURRENT.assign(**{C.P_CHURN: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]})
    # a rose 0.4, then b, c, d rose the same 0.3 (e left).
    assert list(M.movers(cur, prev)[C.CUSTOMER_ID]) == ["a", "b", "c", "d"]
    assert list(M.movers(cur, prev, limit=2)[C.CUSTOMER_ID]) == ["a", "b"]


def test_ids_match_as_text_and_repeated_ids_are_refused():
    prev = PREVIOUS.assign(**{C.CUSTOMER_ID: [1, 2, 3, 4, 5, 6]})
    cur = CURRENT.assign(**{C.CUSTOMER_ID: ["1", "2", "3", "4", "5", "7"]})
    assert list(M.movers(cur, prev)[C.CUSTOMER_ID]) == ["1", "2", "3", "4"]
    twice = CURRENT.assign(**{C.CUSTOMER_ID: ["a", "a", "c", "d", "e", "new"]})
    with pytest.raises(ValueError, match="current snapshot repeats customer_id 'a'"):
        M.movers(twice, PREVIOUS)


def test_movers_without_revenue_columns_or_reasons_keep_the_columns():
    cur = CURRENT.drop(columns=[C.MONTHLY_REVENUE, C.VALUE, C.EXPECTED_LOSS, *C.REASONS])
    out = M.movers(cur, PREVIOUS)
    assert list(out.columns) == list(M.MOVER_COLUMNS)
    assert out[C.VALUE].isna().all()
    assert out["reasons"].tolist() == [[], [], [], []]
    assert not out["newly_at_risk"].any()  # no revenue: no at-risk list


def test_an_unscored_snapshot_is_a_clear_error():
    with pytest.raises(ValueError, match=r"previous snapshot cannot give movers.*p_churn"):
        M.movers(CURRENT, PREVIOUS.drop(columns=[C.P_CHURN]))


def test_kpi_change_points_for_rates_relative_for_amounts():
    now = kpis(CURRENT.fillna({C.CHURNED: 0}))  # 6 customers, 1 churned, 5 active
    before = kpis(PREVIOUS)  # 6 customers, 1 churned, 5 active
    change = M.kpi_change(now, before)
    assert set(change) == {
        "customers",
        "active_customers",
        "churned",
        "churn_rate",
        "retention_rate",
        "mrr",
        "avg_clv",
        "mrr_at_risk",
    }
    assert change["churn_rate"] == {"change": 0.0, "kind": "points"}
    assert change["customers"] == {"change": 0.0, "kind": "relative"}
    # MRR at risk: 50 x (0.7 + 0.6 + 0.4 + 0.05 + 0.99) vs 50 x (0.1 + 0.5 + 0.3 + 0.2 + 0.4)
    assert change["mrr_at_risk"]["change"] == pytest.approx(2.74 / 1.5 - 1)
    assert change["avg_clv"] == {"change": None, "kind": "relative"}  # no clv column


def test_kpi_change_by_hand_and_when_undefined():
    now = {"churn_rate": 0.062, "retention_rate": 0.938, "mrr": 105.0, "customers": 0, "x": "a"}
    before = {"churn_rate": 0.05, "retention_rate": 0.95, "mrr": 100.0, "customers": 0}
    change = M.kpi_change(now, before)
    assert change["churn_rate"]["change"] == pytest.approx(0.012)  # +1.2 points
    assert change["retention_rate"]["change"] == pytest.approx(-0.012)
    assert change["mrr"]["change"] == pytest.approx(0.05)  # +5%
    assert change["customers"]["change"] is None  # previous 0
    assert "x" not in change
    nan = M.kpi_change({"churn_rate": float("nan"), "mrr": 1.0}, {"churn_rate": 0.1})
    assert nan == {
        "churn_rate": {"change": None, "kind": "points"},
        "mrr": {"change": None, "kind": "relative"},
    }


def test_at_risk_list_counts_unknown_outcomes_as_active():
    # Active (e left), high value, band High, by expected loss: new 99, a 70, b 60.
    assert list(M.at_risk_ids(CURRENT)) == ["new", "a", "b"]
    assert list(M.newly_at_risk(CURRENT, PREVIOUS)) == ["new", "a"]  # b was in the list
    assert list(M.newly_at_risk(CURRENT, None)) == ["new", "a", "b"]


def test_a_customer_without_a_score_then_comes_last():
    prev = PREVIOUS.assign(**{C.P_CHURN: [np.nan, 0.5, 0.3, 0.2, 0.4, 0.9]})
    out = M.movers(CURRENT, prev)
    assert list(out[C.CUSTOMER_ID]) == ["b", "c", "d", "a"]
    assert np.isnan(out["rise"].iloc[-1])
    assert list(M.movers(CURRENT, prev, limit=1)[C.CUSTOMER_ID]) == ["b"]
    assert M.movers(CURRENT, prev, limit=0).empty
