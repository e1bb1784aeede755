"""KPIs, churn by factor, trend, cohorts and Kaplan-Meier against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.metrics import kpis, rates, survival
from analytics.metrics.trend import DatedHistory, cohort_retention, monthly_trend
from analytics.result import Unavailable

T = pd.Timestamp


def scored() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: list("abcde"),
            C.CHURNED: np.array([1, 0, 0, 1, 0], dtype=np.int8),
            C.TENURE: [1.0, 5.0, 7.0, 2.0, 9.0],
            C.MONTHLY_REVENUE: [10.0, 20.0, 30.0, 40.0, 50.0],
            C.P_CHURN: [0.5, 0.1, 0.2, 0.9, 0.4],
            C.CLV: [1.0, 100.0, 200.0, 2.0, 600.0],
        }
    )


# --- KPIs --------------------------------------------------------------------------------


def test_kpis_by_hand():
    k = kpis.kpis(scored())
    assert k["customers"] == 5
    assert k["active_customers"] == 3
    assert k["churned"] == 2
    assert k["churn_rate"] == pytest.approx(0.4)
    assert k["retention_rate"] == pytest.approx(0.6)
    assert k["mrr"] == pytest.approx(20 + 30 + 50)
    assert k["mrr_at_risk"] == pytest.approx(0.1 * 20 + 0.2 * 30 + 0.4 * 50)
    assert k["avg_clv"] == pytest.approx(300.0)
    assert k["reasons"] == {}


def test_mrr_at_risk_uses_the_window_probability_even_beside_the_monthly_one():
    frame = scored().assign(**{C.P_MONTHLY: [0.0, 0.5, 0.5, 0.0, 0.5]})
    assert kpis.kpis(frame)["mrr_at_risk"] == pytest.approx(0.1 * 20 + 0.2 * 30 + 0.4 * 50)


def test_a_missing_value_tier_says_the_customers_are_not_scored():
    assert "have not been scored" in kpis.missing_reason(C.VALUE_TIER)
    assert "not been segmented" in kpis.missing_reason(C.SEGMENT)


def test_kpis_without_revenue_say_why():
    k = kpis.kpis(scored().drop(columns=[C.MONTHLY_REVENUE]))
    assert k["churn_rate"] == pytest.approx(0.4)
    for key in ("mrr", "avg_clv", "mrr_at_risk"):
        assert k[key] is None
        assert "no monthly_revenue column" in k["reasons"][key]
        assert "--map monthly_revenue=" in k["reasons"][key]


def test_kpis_without_label_count_everyone_as_active():
    k = kpis.kpis(scored().drop(columns=[C.CHURNED]))
    assert k["active_customers"] == 5
    assert k["churn_rate"] is None
    assert "churned" in k["reasons"]["churn_rate"]
    assert k["mrr"] == pytest.approx(150.0)


def test_kpis_unscored_say_so():
    k = kpis.kpis(scored().drop(columns=[C.P_CHURN, C.CLV]))
    assert k["mrr"] == pytest.approx(100.0)
    assert k["mrr_at_risk"] is None
    assert "scored" in k["reasons"]["mrr_at_risk"]
    assert k["avg_clv"] is None


def test_kpis_of_an_empty_selection():
    k = kpis.kpis(scored().iloc[:0])
    assert k["customers"] == 0
    assert k["active_customers"] == 0
    assert k["churned"] == 0
    assert math.isnan(k["churn_rate"])
    assert math.isnan(k["retention_rate"])
    assert k["mrr"] == 0.0
    assert k["mrr_at_risk"] == 0.0
    assert math.isnan(k["avg_clv"])


# --- intervals and conversions ------------------------------------------------------------


def test_wilson_interval_known_value():
    low, high = kpis.wilson_interval(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-4)
    assert high == pytest.approx(0.1744, abs=1e-4)


def test_wilson_interval_vectorised_edges():
    low, high = kpis.wilson_interval(np.array([0, 5, 3]), np.array([10, 5, 0]))
    assert low[0] == 0.0
    assert 0 < high[0] < 0.35
    assert high[1] == pytest.approx(1.0)
    assert 0.5 < low[1] < 1
    assert np.isnan(low[2])
    assert np.isnan(high[2])


def test_rate_to_monthly():
    assert kpis.rate_to_monthly(0.1, 365 / 12) == pytest.approx(0.1)
    quarter = 1 - 0.9**3  # 10% a month, measured over three months
    assert kpis.rate_to_monthly(quarter, 3 * 365 / 12) == pytest.approx(0.1)
    np.testing.assert_allclose(kpis.rate_to_monthly(np.array([0.0, quarter]), 91.25), [0, 0.1])


# --- churn by factor -----------------------------------------------------------------------


def test_numeric_factor_in_quantile_bins_in_order():
    frame = pd.DataFrame(
        {
            C.TENURE: np.arange(10, dtype=float),
            C.CHURNED: np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], dtype=np.int8),
        }
    )
    table = rates.churn_by_factor(frame, C.TENURE, bins=5)
    assert list(table.columns) == [
        "level",
        "customers",
        "churned",
        "churn_rate",
        "ci_low",
        "ci_high",
        "small",
    ]
    assert table["level"].tolist() == ["0–1", "2–3", "4–5", "6–7", "8–9"]
    assert table["customers"].tolist() == [2] * 5
    assert table["churned"].tolist() == [2, 1, 1, 0, 0]
    assert table["churn_rate"].tolist() == [1.0, 0.5, 0.5, 0.0, 0.0]
    assert table["small"].all()
    low, high = kpis.wilson_interval(1, 2)
    assert table.loc[1, "ci_low"] == pytest.approx(low)
    assert table.loc[1, "ci_high"] == pytest.approx(high)


def test_numeric_factor_with_few_values_has_one_level_per_value():
    frame = pd.DataFrame(
        {"senior": [0.0, 0.0, 0.0, 1.0, np.nan], C.CHURNED: np.array([0, 0, 1, 1, 1], np.int8)}
    )
    table = rates.churn_by_factor(frame, "senior")
    assert table["level"].tolist() == ["0", "1", "(missing)"]
    assert table["customers"].tolist() == [3, 1, 1]


def test_categorical_factor_by_churn_rate_descending():
    contract = pd.Categorical(
        ["Monthly"] * 4 + ["Annual"] * 3 + [None],
        categories=["Annual", "Monthly", "Two year"],
    )
    frame = pd.DataFrame(
        {"contract": contract, C.CHURNED: np.array([1, 1, 0, 1, 0, 0, 1, 0], np.int8)}
    )
    table = rates.churn_by_factor(frame, "contract")
    assert table["level"].tolist() == ["Monthly", "Annual", "(missing)"]  # no empty "Two year"
    assert table["churn_rate"].tolist() == pytest.approx([0.75, 1 / 3, 0.0])


def test_text_factor_and_segment():
    frame = scored().assign(**{C.SEGMENT: ["x", "y", "y", "x", "y"]})
    table = rates.churn_by_segment(frame)
    assert table["level"].tolist() == ["x", "y"]
    assert table["customers"].tolist() == [2, 3]


def test_churn_by_factor_unavailable_and_empty():
    assert isinstance(rates.churn_by_factor(scored(), "nope"), Unavailable)
    gone = rates.churn_by_factor(scored().drop(columns=[C.CHURNED]), C.TENURE)
    assert isinstance(gone, Unavailable)
    assert "churned" in gone.reason
    assert "segment" in rates.churn_by_segment(scored()).reason
    empty = rates.churn_by_factor(scored().iloc[:0], C.TENURE)
    assert len(empty) == 0
    assert "churn_rate" in empty.columns


# --- monthly trend and cohorts ---------------------------------------------------------------


def history() -> pd.DataFrame:
    """A: stays; B: leaves in March; C: joins and leaves in February; D: leaves in April;
    E: joins on March 1."""
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: list("ABCDE"),
            C.SIGNUP_DATE: pd.to_datetime(
                ["2026-01-10", "2026-01-20", "2026-02-03", "2026-02-15", "2026-03-01"]
            ),
            C.CHURN_DATE: pd.to_datetime([None, "2026-03-05", "2026-02-25", "2026-04-10", None]),
            "team": ["x", "x", "x", "y", "y"],
        }
    )


def test_monthly_trend_by_hand():
    trend = monthly_trend(history(), as_of="2026-04-30")
    assert list(trend.columns) == [
        "month",
        "active_start",
        "churned",
        "churn_rate",
        "retention_rate",
    ]
    assert trend["month"].tolist() == [T("2026-02-01"), T("2026-03-01"), T("2026-04-01")]
    # February: A, B active at its start; C joined and left within it: counted in neither.
    assert trend["active_start"].tolist() == [2, 3, 3]
    assert trend["churned"].tolist() == [0, 1, 1]
    assert trend["churn_rate"].tolist() == pytest.approx([0, 1 / 3, 1 / 3])
    assert trend["retention_rate"].tolist() == pytest.approx([1, 2 / 3, 2 / 3])


def test_monthly_trend_only_fully_observed_months():
    trend = monthly_trend(history(), as_of="2026-04-15")
    assert trend["month"].max() == T("2026-03-01")
    # Default as_of is the latest date (2026-04-10): April is not over, so not shown.
    assert monthly_trend(history())["month"].max() == T("2026-03-01")


def test_monthly_trend_split_by_a_column():
    trend = monthly_trend(history(), as_of="2026-04-30", by="team")
    assert list(trend.columns[:2]) == ["month", "team"]
    x = trend[trend["team"] == "x"]
    y = trend[trend["team"] == "y"]
    assert x["active_start"].tolist() == [2, 2, 1]
    assert x["churned"].tolist() == [0, 1, 0]
    assert y["active_start"].tolist() == [0, 1, 2]
    assert y["churned"].tolist() == [0, 0, 1]
    assert np.isnan(y["churn_rate"].iloc[0])


def test_trend_and_cohorts_need_dates():
    frame = history().drop(columns=[C.CHURN_DATE])
    for result in (monthly_trend(frame), cohort_retention(frame)):
        assert isinstance(result, Unavailable)
        assert "signup_date and churn_date" in result.reason
    assert isinstance(monthly_trend(history(), by="nope"), Unavailable)


def test_trend_and_cohorts_of_an_empty_history():
    assert len(monthly_trend(history().iloc[:0])) == 0
    assert len(cohort_retention(history().iloc[:0])) == 0


def test_cohort_retention_by_hand():
    table = cohort_retention(history(), as_of="2026-04-30", observed_from="2026-01-01")
    assert table.index.tolist() == [T("2026-01-01"), T("2026-02-01"), T("2026-03-01")]
    assert table["customers"].tolist() == [2, 2, 1]
    cells = table[[0, 1, 2, 3]].to_numpy()
    nan = np.nan
    # Jan: B (Jan 20 -> Mar 5) is still active 1 month after signup, not 2.
    # Feb: C leaves within its first month; D (Feb 15 -> Apr 10) survives 1 month.
    expected = [[1, 1, 0.5, 0.5], [1, 0.5, 0, nan], [1, 1, nan, nan]]
    np.testing.assert_allclose(cells, expected)


def test_cohort_cells_only_when_fully_observed_and_capped():
    table = cohort_retention(history(), as_of="2026-04-20", max_months=1)
    assert list(table.columns) == ["customers", 0, 1]
    assert table.index.max() == T("2026-03-01")
    assert np.isnan(table.loc[T("2026-03-01"), 1])  # March + 1 = April: not over on 04-20


# --- Kaplan-Meier ---------------------------------------------------------------------------


def km_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.TENURE: [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0],
            C.CHURNED: np.array([1, 1, 0, 1, 0, 1, 0], dtype=np.int8),
            C.SEGMENT: pd.Categorical(list("aaabbbb")),
        }
    )


def test_kaplan_meier_by_hand():
    km = survival.kaplan_meier(km_frame())
    assert list(km.columns) == list(survival.KM_COLUMNS)
    assert km["time"].tolist() == [0, 1, 2, 3, 4, 5]
    assert km["at_risk"].tolist() == [7, 7, 6, 4, 3, 1]
    assert km["events"].tolist() == [0, 1, 1, 1, 1, 0]
    assert km["censored"].tolist() == [0, 0, 1, 0, 1, 1]
    s = [1, 6 / 7, 5 / 7, 15 / 28, 5 / 14, 5 / 14]
    np.testing.assert_allclose(km["survival"], s)
    # Greenwood log-log interval at t = 1: var(log S) = 1 / (7 x 6).
    se = math.sqrt(1 / 42) / abs(math.log(6 / 7))
    assert km.loc[1, "ci_low"] == pytest.approx((6 / 7) ** math.exp(1.96 * se))
    assert km.loc[1, "ci_high"] == pytest.approx((6 / 7) ** math.exp(-1.96 * se))
    assert km.loc[0, "ci_low"] == km.loc[0, "ci_high"] == 1.0
    assert (km["ci_low"] <= km["survival"]).all()
    assert (km["survival"] <= km["ci_high"]).all()


def test_kaplan_meier_by_group():
    km = survival.kaplan_meier(km_frame(), by=C.SEGMENT)
    a = km[km[C.SEGMENT] == "a"]
    b = km[km[C.SEGMENT] == "b"]
    assert a["time"].tolist() == [0, 1, 2]
    assert a["survival"].tolist()[-1] == pytest.approx(1 / 3)
    assert b["time"].tolist() == [0, 3, 4, 5]
    np.testing.assert_allclose(b["survival"], [1, 0.75, 0.5, 0.5])


def test_kaplan_meier_unavailable_and_empty():
    gone = survival.kaplan_meier(km_frame().drop(columns=[C.TENURE]))
    assert isinstance(gone, Unavailable)
    assert "tenure_months" in gone.reason
    assert isinstance(survival.kaplan_meier(km_frame().drop(columns=[C.CHURNED])), Unavailable)
    assert len(survival.kaplan_meier(km_frame().iloc[:0])) == 0


def test_months_and_cohorts_before_the_first_recorded_churn_are_left_out():
    """An export holds no customers who left before it started: those months are not zero churn."""
    old = pd.DataFrame(
        {
            C.CUSTOMER_ID: ["o1", "o2", "n1", "n2"],
            C.SIGNUP_DATE: pd.to_datetime(["2020-03-10", "2020-05-01", "2026-02-03", "2026-02-20"]),
            C.CHURN_DATE: pd.to_datetime([None, "2026-03-15", "2026-03-02", None]),
        }
    )
    trend = monthly_trend(old, as_of="2026-04-30")
    assert trend["month"].min() == T("2026-03-01")
    cohorts = cohort_retention(old, as_of="2026-04-30")
    assert cohorts.index.tolist() == []  # the Feb 2026 cohort signed up before March
    cohorts = cohort_retention(old, as_of="2026-04-30", observed_from="2026-02-01")
    assert cohorts.index.tolist() == [T("2026-02-01")]


# --- precomputed history (the dashboard's trend and cohorts) -------------------------------


@pytest.fixture(scope="module")
def dated():
    from analytics import synthetic

    frame = synthetic.generate(6000, seed=5)
    frame["contract"] = frame["contract"].astype("category")  # a categorical and a text split
    rng = np.random.default_rng(0)
    # Blank dates and times of day: the rules that depend on them must survive the codes.
    frame.loc[rng.choice(len(frame), 40, replace=False), C.SIGNUP_DATE] = pd.NaT
    some = rng.choice(len(frame), 200, replace=False)
    frame.loc[some, C.CHURN_DATE] += pd.to_timedelta(rng.integers(0, 86400, 200), unit="s")
    return frame


def _masks(frame, seed=0):
    rng = np.random.default_rng(seed)
    n = len(frame)
    latest = np.maximum(frame[C.SIGNUP_DATE].fillna(T(0)), frame[C.CHURN_DATE].fillna(T(0)))
    yield np.ones(n, dtype=bool)
    yield (frame["plan"] == "Basic").to_numpy()
    yield ((frame["region"] == "East") & (frame["contract"] != "Annual")).to_numpy()
    yield rng.random(n) < 0.3
    yield (latest < latest.max() - pd.Timedelta(days=40)).to_numpy()  # an earlier as_of
    for k in (0, 1, 2, 7):
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, k, replace=False)] = True
        yield mask


@pytest.mark.parametrize("by", [None, "region", "contract"])
def test_precomputed_trend_equals_the_trend_of_the_filtered_history(dated, by):
    history = DatedHistory(dated, by=by)
    for mask in _masks(dated):
        want = monthly_trend(dated[mask], by=by)
        got = history.select(mask).monthly_trend(by=by)
        pd.testing.assert_frame_equal(got, want, check_dtype=len(want) > 0)
    with pytest.raises(ValueError, match="grouped by"):
        history.select(np.ones(len(dated), dtype=bool)).monthly_trend(by="plan")


def test_precomputed_cohorts_equal_the_cohorts_of_the_filtered_history(dated):
    history = DatedHistory(dated, by="region")
    for mask in _masks(dated, seed=1):
        selection = history.select(mask)
        assert selection.customers == mask.sum()
        for months in (24, 6):
            want = cohort_retention(dated[mask], max_months=months)
            pd.testing.assert_frame_equal(selection.cohort_retention(months), want)


def test_trend_and_cohorts_by_hand_from_the_precomputed_history():
    frame = history()
    selection = DatedHistory(frame, by="team").select(np.ones(len(frame), dtype=bool))
    # The default as_of (2026-04-10) leaves April out, as monthly_trend does.
    assert selection.monthly_trend()["active_start"].tolist() == [2, 3]
    assert selection.monthly_trend(by="team")["churned"].tolist() == [0, 1, 0, 0]
    # Departures are recorded from February (the first churn_date): January's cohort is out.
    assert selection.cohort_retention()["customers"].tolist() == [2, 1]


# --- tenure as of each month --------------------------------------------------------------


def test_monthly_trend_applies_tenure_as_of_each_month():
    """Tenure as of month t = whole months from signup_date to t's first day (as the current
    base's tenure_months is measured). A (Jan 10) is 0 on Feb 1, 1 on Mar 1, 2 on Apr 1;
    B (Jan 20, leaves in March) is 1 on Mar 1; D (Feb 15, leaves in April) is 1 on Apr 1;
    E (Mar 1) is 1 on Apr 1."""
    frame = history()
    at_least_one = monthly_trend(frame, as_of="2026-04-30", tenure=(1, None))
    assert at_least_one["active_start"].tolist() == [0, 2, 3]  # Mar: A, B; Apr: A, D, E
    assert at_least_one["churned"].tolist() == [0, 1, 1]  # B in March, D in April
    first_month = monthly_trend(frame, as_of="2026-04-30", tenure=(0, 0.5))
    assert first_month["active_start"].tolist() == [2, 1, 0]  # Feb: A, B; Mar: D
    assert first_month["churned"].tolist() == [0, 0, 0]  # D leaves in April, at tenure 1
    # No range, or the whole range, changes nothing.
    whole = monthly_trend(frame, as_of="2026-04-30")
    pd.testing.assert_frame_equal(monthly_trend(frame, as_of="2026-04-30", tenure=(0, 99)), whole)


def test_cohorts_keep_the_cells_in_the_tenure_range():
    frame = history()
    whole = cohort_retention(frame, as_of="2026-04-30")
    ranged = cohort_retention(frame, as_of="2026-04-30", tenure=(0.5, 1))
    assert list(ranged.columns) == ["customers", 1]
    pd.testing.assert_series_equal(ranged[1], whole[1])


def test_precomputed_views_with_a_tenure_range_equal_the_filtered_history(dated):
    history = DatedHistory(dated, by="region")
    for tenure in ((3, None), (None, 6), (2.5, 11.5), (500, None)):
        for mask in _masks(dated, seed=2):
            selection = history.select(mask)
            for by in (None, "region"):
                want = monthly_trend(dated[mask], by=by, tenure=tenure)
                got = selection.monthly_trend(by=by, tenure=tenure)
                pd.testing.assert_frame_equal(got, want, check_dtype=len(want) > 0)
            want = cohort_retention(dated[mask], tenure=tenure)
            pd.testing.assert_frame_equal(selection.cohort_retention(tenure=tenure), want)


def test_a_huge_tenure_bound_is_an_open_one():
    frame = history()
    whole = monthly_trend(frame, as_of="2026-04-30")
    huge = monthly_trend(frame, as_of="2026-04-30", tenure=(0, 9.2e18))
    pd.testing.assert_frame_equal(huge, whole)
    nobody = monthly_trend(frame, as_of="2026-04-30", tenure=(9.2e18, None))
    assert nobody["active_start"].sum() == 0
    assert cohort_retention(frame, as_of="2026-04-30", tenure=(9.2e18, None)).columns.tolist() == [
        "customers"
    ]
