"""CLV, value, risk bands, the at-risk list and the retention planner, by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.metrics import planner, value
from analytics.result import Unavailable


def base() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: list("abcdef"),
            C.CHURNED: np.array([0, 0, 0, 0, 1, 0], dtype=np.int8),
            C.MONTHLY_REVENUE: [10.0, 20.0, 40.0, 80.0, 100.0, 60.0],
            C.P_CHURN: [0.05, 0.5, 0.3, 0.6, 0.9, 0.1],
        }
    )


def test_monthly_probability():
    assert value.monthly_probability(0.3, 1) == 0.3
    assert value.monthly_probability(1 - 0.9**3, 3) == pytest.approx(0.1)
    np.testing.assert_allclose(value.monthly_probability(np.array([0.0, 0.19]), 2), [0.0, 0.1])
    with pytest.raises(ValueError, match="window_months"):
        value.monthly_probability(0.3, 0)


def test_clv_formula():
    # m x rev x (1 - p) / (d + p) = 0.5 x 100 x 0.96 / 0.05
    assert value.clv(100.0, 0.04, margin=0.5, discount=0.01) == pytest.approx(960.0)
    np.testing.assert_allclose(
        value.clv(np.array([10.0, 20.0]), np.array([0.09, 0.19])),
        [10 * 0.91 / 0.10, 20 * 0.81 / 0.20],
    )


def test_risk_band_boundaries():
    bands = value.risk_band([0.4, 0.39999, 0.2, 0.19999, 0.0, 1.0, np.nan], threshold=0.4)
    assert list(bands.categories) == ["Low", "Medium", "High"]
    assert bands.ordered
    assert list(bands.astype(object)[:6]) == ["High", "Medium", "Medium", "Low", "Low", "High"]
    assert pd.isna(bands[6])


def test_add_value_columns_by_hand():
    out = value.add_value_columns(base(), threshold=0.5, margin=1.0, discount=0.01)
    p0 = 1 / 6  # churn rate of the whole base
    expected_value = base()[C.MONTHLY_REVENUE] * (1 - p0) / (0.01 + p0)
    np.testing.assert_allclose(out[C.VALUE], expected_value)
    p = base()[C.P_CHURN]
    np.testing.assert_allclose(out[C.CLV], base()[C.MONTHLY_REVENUE] * (1 - p) / (0.01 + p))
    np.testing.assert_allclose(out[C.EXPECTED_LOSS], p * expected_value)
    np.testing.assert_allclose(out[C.P_MONTHLY], p)
    assert out[C.RISK_BAND].astype(object).tolist() == [
        "Low",
        "High",
        "Medium",
        "High",
        "High",
        "Low",
    ]
    # 75th percentile of active revenue (10, 20, 40, 80, 60) is 60: d (80) and f (60) qualify;
    # e (100) churned but is at or above it too.
    assert out[C.HIGH_VALUE].tolist() == [False, False, False, True, True, True]
    # 25th percentile of active is 20: a is Low.
    assert out[C.VALUE_TIER].astype(object).tolist() == [
        "Low",
        "Mid",
        "Mid",
        "High",
        "High",
        "High",
    ]


def test_add_value_columns_with_a_longer_window_and_given_base_rate():
    out = value.add_value_columns(base(), threshold=0.5, window_months=3, base_churn_rate=0.271)
    p_m = 1 - (1 - base()[C.P_CHURN]) ** (1 / 3)
    np.testing.assert_allclose(out[C.P_MONTHLY], p_m)
    p0 = 1 - (1 - 0.271) ** (1 / 3)  # ~0.1 a month
    v = base()[C.MONTHLY_REVENUE] * (1 - p0) / (0.01 + p0)
    np.testing.assert_allclose(out[C.VALUE], v)
    # Expected loss = p_i x Value_i with p_i the window probability; only CLV and value are
    # monthly.
    np.testing.assert_allclose(out[C.EXPECTED_LOSS], base()[C.P_CHURN] * v)
    np.testing.assert_allclose(out[C.CLV], base()[C.MONTHLY_REVENUE] * (1 - p_m) / (0.01 + p_m))
    # Risk bands compare p_churn itself with the threshold chosen on it.
    assert out[C.RISK_BAND].astype(object).tolist()[1] == "High"


def test_add_value_columns_is_repeatable_and_needs_p_churn():
    once = value.add_value_columns(base(), threshold=0.5)
    twice = value.add_value_columns(once, threshold=0.5, margin=0.5)
    np.testing.assert_allclose(twice[C.VALUE], once[C.VALUE] * 0.5)
    assert list(twice.columns) == list(once.columns)
    with pytest.raises(ValueError, match="p_churn"):
        value.add_value_columns(base().drop(columns=[C.P_CHURN]), threshold=0.5)


def test_without_revenue_only_probabilities_and_bands():
    out = value.add_value_columns(base().drop(columns=[C.MONTHLY_REVENUE]), threshold=0.5)
    assert {C.P_MONTHLY, C.RISK_BAND} <= set(out.columns)
    assert not {C.CLV, C.VALUE, C.EXPECTED_LOSS, C.HIGH_VALUE} & set(out.columns)
    for result in (value.high_value_at_risk(out), planner.plan_retention(out)):
        assert isinstance(result, Unavailable)
        assert "monthly_revenue" in result.reason


def test_without_label_every_customer_is_compared():
    out = value.add_value_columns(base().drop(columns=[C.CHURNED]), threshold=0.5)
    # p0 falls back to the mean p_churn; high value = top quarter of everyone.
    assert out[C.HIGH_VALUE].tolist() == [False, False, False, True, True, False]


def test_high_value_at_risk_list():
    out = value.add_value_columns(base(), threshold=0.5)
    hv = value.high_value_at_risk(out)
    # Active, high value, risk High: d only (e churned, f is Low risk).
    assert hv[C.CUSTOMER_ID].tolist() == ["d"]
    assert isinstance(value.high_value_at_risk(base()), Unavailable)
    assert len(value.high_value_at_risk(out.iloc[:0])) == 0


def planner_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: list("pqrstu"),
            C.CHURNED: np.array([0, 0, 0, 1, 0, 0], dtype=np.int8),
            C.MONTHLY_REVENUE: [1.0] * 6,
            C.EXPECTED_LOSS: [100.0, 30.0, 60.0, 500.0, 45.0, 10.0],
        }
    )


def test_planner_best_n_matches_brute_force():
    s, c = 0.25, 10.0
    plan = planner.plan_retention(planner_frame(), save_rate=s, cost_per_contact=c)
    active = planner_frame().query("churned == 0")
    losses = active[C.EXPECTED_LOSS].to_numpy()
    best = max(
        (s * sum(combo) - len(combo) * c, len(combo))
        for n in range(len(losses) + 1)
        for combo in itertools.combinations(losses, n)
    )
    # Gains per contact 25, 15, 11.25, 7.5, 2.5 against a cost of 10: contact three.
    assert plan.best_n == best[1] == 3
    assert plan.net_benefit == pytest.approx(best[0]) == pytest.approx(25 + 15 + 11.25 - 30)
    assert plan.saved_value == pytest.approx(51.25)
    assert plan.cost == pytest.approx(30.0)
    assert plan.roi == pytest.approx(21.25 / 30)
    assert plan.candidates == 5
    assert plan.contacts[C.CUSTOMER_ID].tolist() == ["p", "r", "t"]  # s churned: not a candidate
    np.testing.assert_allclose(plan.contacts[planner.EXPECTED_SAVING], [25.0, 15.0, 11.25])
    curve = plan.curve
    assert list(curve.columns) == ["n", "net_benefit", "saved_value", "cost"]
    assert curve["n"].tolist() == [0, 1, 2, 3, 4, 5]
    assert curve["net_benefit"].iloc[0] == 0.0


def test_planner_when_nothing_pays_and_when_free():
    nothing = planner.plan_retention(planner_frame(), save_rate=0.01, cost_per_contact=10.0)
    assert nothing.best_n == 0
    assert nothing.contacts.empty
    assert math.isnan(nothing.roi)
    free = planner.plan_retention(planner_frame(), save_rate=0.5, cost_per_contact=0.0)
    assert free.best_n == 5
    assert math.isnan(free.roi)


def test_planner_curve_is_thinned_but_keeps_zero_best_and_last():
    rng = np.random.default_rng(42)
    n = 2_000
    frame = pd.DataFrame(
        {
            C.CHURNED: np.zeros(n, dtype=np.int8),
            C.MONTHLY_REVENUE: np.ones(n),
            C.EXPECTED_LOSS: rng.exponential(40, n),
        }
    )
    plan = planner.plan_retention(frame, max_points=50)
    ns = plan.curve["n"].tolist()
    assert len(ns) <= 50
    assert ns[0] == 0
    assert ns[-1] == n
    assert plan.best_n in ns
    assert ns == sorted(ns)
    full = planner.plan_retention(frame, max_points=n + 1)
    assert full.best_n == plan.best_n
    assert full.curve["net_benefit"].max() == pytest.approx(plan.net_benefit)


def test_planner_validates_assumptions():
    with pytest.raises(ValueError, match="save_rate"):
        planner.plan_retention(planner_frame(), save_rate=1.5)
    with pytest.raises(ValueError, match="save_rate"):
        planner.plan_retention(planner_frame(), save_rate=float("nan"))
    with pytest.raises(ValueError, match="cost_per_contact"):
        planner.plan_retention(planner_frame(), cost_per_contact=-1)


def test_planner_on_an_empty_selection():
    plan = planner.plan_retention(planner_frame().iloc[:0])
    assert plan.best_n == 0
    assert plan.net_benefit == 0.0
    assert plan.curve["n"].tolist() == [0]


def test_at_risk_rows_are_the_list_and_follow_any_selection():
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame(
        {
            C.CHURNED: (rng.random(n) < 0.1).astype(np.int8),
            C.MONTHLY_REVENUE: rng.choice([20.0, 50.0, 80.0], n),  # ties in expected loss
            C.P_CHURN: rng.choice([0.1, 0.4, 0.7], n),
        }
    )
    frame = value.add_value_columns(frame, threshold=0.5)
    frame.loc[rng.choice(n, 30, replace=False), C.EXPECTED_LOSS] = np.nan
    rows = value.at_risk_rows(frame)
    for mask in (np.ones(n, dtype=bool), rng.random(n) < 0.3):
        sub = frame[mask]
        want = sub.loc[
            (sub[C.CHURNED] == 0) & sub[C.HIGH_VALUE] & (sub[C.RISK_BAND] == "High")
        ].sort_values(C.EXPECTED_LOSS, ascending=False, kind="stable")
        pd.testing.assert_frame_equal(value.high_value_at_risk(sub), want)
        pd.testing.assert_frame_equal(frame.iloc[rows[mask[rows]]], want)


def test_planner_on_a_selection_equals_the_plan_of_that_selection():
    rng = np.random.default_rng(2)
    n = 4000
    frame = pd.DataFrame(
        {
            C.CUSTOMER_ID: [f"c{i}" for i in range(n)],
            C.CHURNED: (rng.random(n) < 0.1).astype(np.int8),
            C.MONTHLY_REVENUE: rng.choice([20.0, 35.5, 80.0, np.nan], n, p=[0.4, 0.3, 0.29, 0.01]),
            C.P_CHURN: np.round(rng.random(n), 2),  # ties
        }
    )
    frame = value.add_value_columns(frame, threshold=0.4, base_churn_rate=0.1)
    by_mask = planner.Planner(frame, threshold=0.4, base_churn_rate=0.1)
    assumptions = [(0.25, 10.0, 1.0, 0.01), (0.3, 2.5, 0.7, 0.0), (0.1, 0.0, 0.35, 0.2)]
    for mask in (np.ones(n, dtype=bool), rng.random(n) < 0.25, np.zeros(n, dtype=bool)):
        for s, c, m, d in assumptions:
            want = planner.plan(
                frame[mask], threshold=0.4, save_rate=s, cost_per_contact=c, margin=m,
                discount=d, base_churn_rate=0.1,
            )
            got = by_mask.plan(mask, save_rate=s, cost_per_contact=c, margin=m, discount=d)
            for name in ("best_n", "saved_value", "cost", "net_benefit", "candidates"):
                assert getattr(got, name) == getattr(want, name)
            pd.testing.assert_frame_equal(got.curve, want.curve)
            pd.testing.assert_frame_equal(got.first_contacts(7), want.contacts.head(7))
            some = [C.CUSTOMER_ID, C.VALUE, planner.EXPECTED_SAVING, "nope"]
            pd.testing.assert_frame_equal(
                got.first_contacts(5, some), want.contacts.head(5)[some[:3]]
            )
            tiers = [C.CUSTOMER_ID, C.VALUE_TIER]
            pd.testing.assert_frame_equal(
                got.first_contacts(5, tiers), want.contacts.head(5)[tiers]
            )
            pd.testing.assert_frame_equal(got.contacts, want.contacts)


def test_ranked_order_is_checked_exactly():
    rows = np.array([4, 7, 9])
    assert planner.is_ranked(rows, np.array([3.0, 2.0, 2.0]))
    assert not planner.is_ranked(rows[::-1], np.array([3.0, 2.0, 2.0]))  # tie out of table order
    assert not planner.is_ranked(rows, np.array([2.0, 3.0, 1.0]))
    assert not planner.is_ranked(rows, np.array([3.0, np.nan, 1.0]))


def test_planner_and_recommended_action_use_the_window_probability():
    # One customer, p = 0.5 over a 3-month window, value ~818 at a 0.271 base rate: the expected
    # saving is 0.25 x 0.5 x 818 = 102 a contact (the monthly p, 0.21, would make it 42).
    frame = pd.DataFrame(
        {
            C.CUSTOMER_ID: ["a", "b"],
            C.CHURNED: np.array([0, 0], dtype=np.int8),
            C.MONTHLY_REVENUE: [100.0, 10.0],
            C.P_CHURN: [0.5, 0.01],
        }
    )
    scored = value.add_value_columns(
        frame, threshold=0.4, window_months=3, base_churn_rate=0.271
    )
    a = scored.iloc[0]
    want = 0.25 * 0.5 * a[C.VALUE]
    assert want == pytest.approx(102.3, abs=0.1)
    plan = planner.plan_retention(scored, save_rate=0.25, cost_per_contact=60.0)
    assert plan.best_n == 1
    assert plan.contacts[planner.EXPECTED_SAVING].iloc[0] == pytest.approx(want)
    assert plan.net_benefit == pytest.approx(want - 60.0)
    by_mask = planner.Planner(scored, threshold=0.4, window_months=3, base_churn_rate=0.271)
    same = by_mask.plan(
        np.ones(2, dtype=bool), save_rate=0.25, cost_per_contact=60.0, margin=1.0, discount=0.01
    )
    assert same.net_benefit == plan.net_benefit
    # The recommended action weighs the same saving against the same cost.
    action = planner.recommend_action(a.to_dict(), save_rate=0.25, cost_per_contact=60.0)
    assert not action.startswith("Low expected return")
    action = planner.recommend_action(a.to_dict(), save_rate=0.25, cost_per_contact=110.0)
    assert action.startswith("Low expected return (saving $102 ")
