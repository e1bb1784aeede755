"""The demo business's year of monthly exports: each month's base at risk as the product would
have seen it, every revenue movement, a past campaign and a drift with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics import synthetic, timeline

SMALL = 20_000
FEATURES = (
    "plan",
    "contract",
    "payment_method",
    "streaming_addon",
    "device_protection",
    "region",
    "acquisition_channel",
    "monthly_usage_hours",
    "support_tickets_90d",
    "last_price_change_pct",
    synthetic.DISTRACTOR,
)
EXPORT_COLUMNS = (
    "as_of",
    *(c for c in synthetic.COLUMN_ORDER if c not in (C.SIGNUP_DATE, C.CHURN_DATE)),
)
MOVEMENTS = ("new", "reactivation", "expansion", "contraction", "churned")


@pytest.fixture(scope="module")
def small() -> synthetic.DemoHistory:
    return synthetic.generate_history(SMALL, seed=7)


@pytest.fixture(scope="module")
def default() -> synthetic.DemoHistory:
    return synthetic.generate_history()


def month(history: synthetic.DemoHistory, as_of) -> pd.DataFrame:
    rows = history.months
    return rows[rows["as_of"] == pd.Timestamp(as_of)].reset_index(drop=True)


def month_ends(history: synthetic.DemoHistory) -> list[pd.Timestamp]:
    return [pd.Timestamp(d) for d in sorted(history.months["as_of"].unique())]


def movements(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, pd.Series]:
    """METRICS.md's movements from MRR at two month starts (absent = 0), per customer."""
    mrr = pd.concat(
        {
            "before": before.set_index(C.CUSTOMER_ID)[C.MONTHLY_REVENUE],
            "after": after.set_index(C.CUSTOMER_ID)[C.MONTHLY_REVENUE],
        },
        axis=1,
    )
    seen = mrr["before"].notna()
    a, b = mrr["before"].fillna(0.0), mrr["after"].fillna(0.0)
    return {
        "new": b[~seen & (b > 0)],
        "reactivation": b[seen & (a == 0) & (b > 0)],
        "expansion": (b - a)[(a > 0) & (b > a)],
        "contraction": (a - b)[(b > 0) & (b < a)],
        "churned": a[(a > 0) & (b == 0)],
    }


def psi(expected: pd.Series, actual: pd.Series) -> float:
    """METRICS.md: training deciles for numbers, levels for categories, shares floored."""
    if pd.api.types.is_numeric_dtype(expected):
        edges = np.unique(np.quantile(expected, np.linspace(0.1, 0.9, 9)))
        bins = len(edges) + 1
        e = np.bincount(np.searchsorted(edges, expected, side="left"), minlength=bins)
        a = np.bincount(np.searchsorted(edges, actual, side="left"), minlength=bins)
    else:
        levels = sorted(set(expected) | set(actual))
        e = expected.value_counts().reindex(levels, fill_value=0).to_numpy()
        a = actual.value_counts().reindex(levels, fill_value=0).to_numpy()
    e = np.maximum(e / e.sum(), 0.0001)
    a = np.maximum(a / a.sum(), 0.0001)
    return float(((a - e) * np.log(a / e)).sum())


def true_logit(rows: pd.DataFrame) -> pd.Series:
    """The planted hazard's log-odds from a month's rows (tenure at the month's start)."""
    return synthetic.BASE_LOGIT + synthetic.effect_contributions(rows).sum(axis=1)


# --- the monthly exports ------------------------------------------------------------------------


def test_the_table_is_generate_and_the_exports_are_a_year_of_month_ends(small):
    pd.testing.assert_frame_equal(small.table, synthetic.generate(SMALL, seed=7))
    assert tuple(small.months.columns) == EXPORT_COLUMNS
    assert small.months["as_of"].dtype == "datetime64[ns]"
    expected = pd.date_range("2025-10-31", "2026-10-31", freq="ME")
    assert month_ends(small) == list(expected)
    assert len(expected) == synthetic.HISTORY_SNAPSHOTS
    assert set(small.months[C.CHURNED].unique()) == {0, 1}
    assert small.months[C.CHURNED].dtype == small.months[C.TENURE].dtype == "int64"
    assert small.months.notna().all().all()
    assert not small.months.duplicated(["as_of", C.CUSTOMER_ID]).any()


def test_the_last_month_is_the_tables_window_base(small):
    base = timeline.snapshot(small.table).base
    last = month(small, month_ends(small)[-1])
    assert len(last) == len(base)
    for column in EXPORT_COLUMNS[1:]:  # total_revenue too: both are billed to the window
        np.testing.assert_array_equal(last[column].to_numpy(), base[column].to_numpy(), column)


def test_each_month_is_the_base_at_risk_with_who_left_in_it(small):
    for end in month_ends(small):
        base = timeline.snapshot(small.table, as_of=end).base
        rows = month(small, end)
        assert rows[C.CUSTOMER_ID].tolist() == base[C.CUSTOMER_ID].tolist(), end
        assert (rows[C.CHURNED].to_numpy() == base[C.CHURNED].to_numpy()).all(), end
        assert (rows[C.TENURE].to_numpy() == base[C.TENURE].to_numpy()).all(), end


def test_a_leavers_last_month_shows_the_values_of_its_table_row(small):
    """The table holds each feature at the start of the last month at risk: for a customer who
    left in month m, that month's export row."""
    rows = small.months[small.months[C.CHURNED] == 1]
    table = small.table.set_index(C.CUSTOMER_ID).loc[rows[C.CUSTOMER_ID]]
    assert len(rows) > 3_000
    for column in FEATURES:  # not tenure: the table counts it to the churn date
        np.testing.assert_array_equal(rows[column].to_numpy(), table[column].to_numpy(), column)
    paying = rows[C.MONTHLY_REVENUE].to_numpy() > 0
    np.testing.assert_array_equal(
        rows[C.MONTHLY_REVENUE].to_numpy()[paying], table[C.MONTHLY_REVENUE].to_numpy()[paying]
    )


def test_each_month_is_billed_at_its_own_price_on_its_first_day(small):
    """total_revenue grows by the month's MRR, times the customer's own factor for one-off
    charges and credits (within +-3%, the same every month), and not at all while paused."""
    wide = small.months.pivot(index=C.CUSTOMER_ID, columns="as_of")
    billed = wide[C.TOTAL_REVENUE].diff(axis=1).iloc[:, 1:]
    mrr = wide[C.MONTHLY_REVENUE].iloc[:, 1:]
    paying = billed.notna() & (mrr > 0)
    ratio = (billed / mrr)[paying]
    noise = synthetic.BILLING_NOISE + 0.001
    assert ratio.stack().dropna().between(1 - noise, 1 + noise).all()
    spread = ratio.max(axis=1) - ratio.min(axis=1)
    assert spread.dropna().max() < 0.002  # cents of rounding on 20+ a month
    paused = billed.notna() & (mrr == 0)
    assert paused.to_numpy().sum() > 100
    assert (billed[paused].stack().dropna().abs() <= 0.01).all()


def test_usage_and_the_fixed_features_never_change_between_months(small):
    varying_over_time = ("plan", "support_tickets_90d", "last_price_change_pct")
    fixed = [f for f in FEATURES if f not in varying_over_time]
    varying = small.months.groupby(C.CUSTOMER_ID)[fixed].nunique()
    assert (varying == 1).all().all()


# --- revenue movements --------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["small", "default"])
def test_every_movement_occurs_and_they_add_up_to_the_change_in_mrr(fixture, request):
    history = request.getfixturevalue(fixture)
    ends = month_ends(history)
    for before, after in itertools.pairwise(ends):
        a, b = month(history, before), month(history, after)
        moved = movements(a, b)
        net = sum(moved[k].sum() for k in MOVEMENTS[:3]) - moved["contraction"].sum()
        net -= moved["churned"].sum()
        change = b[C.MONTHLY_REVENUE].sum() - a[C.MONTHLY_REVENUE].sum()
        assert net == pytest.approx(change, abs=1e-6), before
        # reactivation needs a pause, which never starts in the last 3 months
        expected = (
            MOVEMENTS if after < ends[-1] else tuple(m for m in MOVEMENTS if m != "reactivation")
        )
        for kind in expected:
            assert len(moved[kind]) > 0, (kind, before)
    assert (month(history, ends[-1])[C.MONTHLY_REVENUE] > 0).all()
    assert (month(history, ends[-2])[C.MONTHLY_REVENUE] > 0).all()


def test_plan_changes_move_one_plan_at_the_new_plans_price(default):
    """An upgrade or downgrade is one plan, at the documented rates; the new MRR is the new
    plan's price with the same add-ons and discounts, and any price rise landing with it."""
    rows = default.months.sort_values([C.CUSTOMER_ID, "as_of"])
    level = rows["plan"].map({p: i for i, p in enumerate(synthetic.PLANS)})
    earlier = rows.groupby(C.CUSTOMER_ID)[[C.MONTHLY_REVENUE]].shift()
    earlier["level"] = level.groupby(rows[C.CUSTOMER_ID]).shift()
    pairs = earlier["level"].notna()
    step = (level - earlier["level"])[pairs]
    assert set(step.unique()) == {-1.0, 0.0, 1.0}
    up = (step == 1).sum() / (earlier.loc[pairs, "level"] < len(synthetic.PLANS) - 1).sum()
    down = (step == -1).sum() / (earlier.loc[pairs, "level"] > 0).sum()
    assert up == pytest.approx(synthetic.UPGRADE_MONTHLY, rel=0.15)
    assert down == pytest.approx(synthetic.DOWNGRADE_MONTHLY, rel=0.15)

    changed = pairs & (level != earlier["level"])
    changed &= (rows[C.MONTHLY_REVENUE] > 0) & (earlier[C.MONTHLY_REVENUE] > 0)
    assert changed.sum() > 1_000
    addons = 9.99 * (rows["streaming_addon"] == "Yes") + 6.99 * (rows["device_protection"] == "Yes")
    price = np.asarray(synthetic.PLAN_PRICE)
    list_now = price[level[changed].astype(int)] + addons[changed]
    list_then = price[earlier.loc[changed, "level"].astype(int)] + addons[changed]
    moved = rows.loc[changed, C.MONTHLY_REVENUE] / earlier.loc[changed, C.MONTHLY_REVENUE]
    rise = moved / (list_now / list_then)
    allowed = np.array([1.0, *(1 + np.asarray(synthetic.PRICE_RISES_PCT) / 100)])
    gap = np.abs(rise.to_numpy()[:, None] - allowed[None, :]).min(axis=1)
    assert gap.max() < 0.001  # cents of rounding
    assert (rise.round(3) == 1.0).mean() > 0.9  # most with no rise that month


def test_pauses_last_one_or_two_months_and_never_reach_the_window(default):
    mrr = default.months.pivot(index=C.CUSTOMER_ID, columns="as_of")[C.MONTHLY_REVENUE]
    paused = (mrr == 0).to_numpy()
    present = mrr.notna().to_numpy()
    # no run of three paused months; a pause ends with MRR again or with leaving
    assert not (paused[:, :-2] & paused[:, 1:-1] & paused[:, 2:]).any()
    starts = paused[:, 1:] & ~paused[:, :-1] & present[:, :-1]
    rate = starts[:, :-3].sum() / present[:, 1:-3].sum()
    assert rate == pytest.approx(synthetic.PAUSE_MONTHLY, rel=0.2)
    assert not paused[:, -2:].any()


# --- the past campaign --------------------------------------------------------------------------


def test_the_campaign_constants_match_the_default_calendar():
    assert synthetic.CAMPAIGN["save_rate"] == synthetic.CAMPAIGN_SAVE_RATE == 0.30
    assert synthetic.CAMPAIGN["control_share"] == synthetic.CAMPAIGN_CONTROL_SHARE
    assert synthetic.CAMPAIGN["size"] == synthetic.CAMPAIGN_SIZE
    start = pd.Timestamp(synthetic.CAMPAIGN["start"])
    assert start == pd.Timestamp(synthetic.DEFAULT_AS_OF) + pd.Timedelta(days=1) - pd.DateOffset(
        months=synthetic.HISTORY_MONTHS - synthetic.CAMPAIGN_PERIOD
    )
    assert pd.Timestamp(synthetic.CAMPAIGN["as_of"]) == start - pd.Timedelta(days=1)
    with pytest.raises(TypeError):
        synthetic.CAMPAIGN["save_rate"] = 0.5  # read-only


@pytest.mark.parametrize("fixture", ["small", "default"])
def test_the_contact_list_comes_from_the_previous_export_and_is_its_top_by_hazard_x_mrr(
    fixture, request
):
    history = request.getfixturevalue(fixture)
    campaign = history.campaign
    assert tuple(campaign.columns) == (C.CUSTOMER_ID, "group", "as_of")
    assert campaign[C.CUSTOMER_ID].dtype == "str"
    assert campaign[C.CUSTOMER_ID].is_unique
    assert set(campaign["group"]) == {"treated", "control"}
    (drawn,) = campaign["as_of"].unique()
    assert pd.Timestamp(drawn) == pd.Timestamp(synthetic.CAMPAIGN["as_of"])
    n = len(history.table)
    assert len(campaign) == round(synthetic.CAMPAIGN_SIZE * n / synthetic.DEFAULT_CUSTOMERS)

    before = month(history, drawn).set_index(C.CUSTOMER_ID)
    assert (before.loc[campaign[C.CUSTOMER_ID], C.CHURNED] == 0).all()
    during = month(history, pd.Timestamp(drawn) + pd.offsets.MonthEnd(1)).set_index(C.CUSTOMER_ID)
    eligible = during[during.index.isin(before.index) & (during[C.MONTHLY_REVENUE] > 0)]
    score = 1.0 / (1.0 + np.exp(-true_logit(eligible))) * eligible[C.MONTHLY_REVENUE]
    listed = eligible.index.isin(campaign[C.CUSTOMER_ID])
    assert listed.sum() == len(campaign)
    # the export's MRR is rounded to cents, so near the cut two scores may swap
    assert score[listed].min() >= score[~listed].max() * (1 - 1e-3)


def test_the_control_group_is_a_fifth_of_each_hazard_tercile(default):
    campaign = default.campaign.set_index(C.CUSTOMER_ID)
    during = month(default, pd.Timestamp(synthetic.CAMPAIGN["start"]) + pd.offsets.MonthEnd(0))
    rows = during.set_index(C.CUSTOMER_ID).loc[campaign.index]
    tercile = pd.qcut(true_logit(rows).rank(method="first"), 3, labels=False)
    control = (campaign["group"] == "control").groupby(tercile.to_numpy()).mean()
    assert len(control) == 3
    for share in control:
        assert share == pytest.approx(synthetic.CAMPAIGN_CONTROL_SHARE, abs=0.01)


def test_the_planted_save_rate_is_measured_from_the_next_export(default):
    """Default base: control 147 of 1,200 left in June 2026 (12.25%), treated 372 of 4,800
    (7.75%): measured save rate 0.367 against the true 0.30 (data/README.md)."""
    campaign = default.campaign
    during = month(default, pd.Timestamp(synthetic.CAMPAIGN["start"]) + pd.offsets.MonthEnd(0))
    left = campaign[C.CUSTOMER_ID].map(during.set_index(C.CUSTOMER_ID)[C.CHURNED])
    assert left.notna().all()
    rates = left.groupby(campaign["group"].to_numpy()).agg(["size", "sum", "mean"])
    assert rates.loc["control", "size"] == 1_200
    assert rates.loc["treated", "size"] == 4_800
    c_control, c_treated = rates.loc["control", "mean"], rates.loc["treated", "mean"]
    save_rate = (c_control - c_treated) / c_control
    # the sampling error of s on 1,200 controls is about 0.08
    assert 0.15 <= save_rate <= 0.45, save_rate
    low, high = newcombe(rates.loc["control"], rates.loc["treated"])
    assert low / c_control <= synthetic.CAMPAIGN_SAVE_RATE <= high / c_control
    # the campaign's customers were the riskiest: they churn more than the month's base
    assert c_control > 2 * during[C.CHURNED].mean()


def newcombe(control: pd.Series, treated: pd.Series, z: float = 1.959964) -> tuple[float, float]:
    """Newcombe's hybrid score interval for c_C - c_T (METRICS.md, campaigns)."""

    def wilson(k: float, n: float) -> tuple[float, float, float]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return p, centre - half, centre + half

    p1, l1, u1 = wilson(control["sum"], control["size"])
    p2, l2, u2 = wilson(treated["sum"], treated["size"])
    d = p1 - p2
    return d - np.hypot(p1 - l1, u2 - p2), d + np.hypot(u1 - p1, p2 - l2)


# --- the planted drift --------------------------------------------------------------------------


def test_the_drift_constants_match_the_default_calendar(small):
    start = pd.Timestamp(synthetic.DRIFT["from"])
    assert synthetic.DRIFT["feature"] == synthetic.DISTRACTOR
    assert start == pd.Timestamp(synthetic.DEFAULT_AS_OF) + pd.Timedelta(days=1) - pd.DateOffset(
        months=synthetic.DRIFT_SIGNUP_MONTHS
    )
    table = small.table
    recent = table[C.SIGNUP_DATE] >= start
    assert table.loc[recent, synthetic.DISTRACTOR].between(18, 28).all()
    assert table.loc[~recent, synthetic.DISTRACTOR].max() > 70


def test_the_age_drift_is_large_and_nothing_else_drifts(small):
    """Default base: customer_age 0.365; every other column under 0.013 (data/README.md)."""
    ends = month_ends(small)
    first, last = month(small, ends[0]), month(small, ends[-1])
    assert psi(first[synthetic.DISTRACTOR], last[synthetic.DISTRACTOR]) > 0.25
    for column in EXPORT_COLUMNS[2:]:
        if column not in (C.CHURNED, synthetic.DISTRACTOR):
            assert psi(first[column], last[column]) < 0.1, column


def test_the_drift_grows_month_by_month_from_its_start(small):
    ends = month_ends(small)
    first = month(small, ends[0])[synthetic.DISTRACTOR]
    drift = [psi(first, month(small, end)[synthetic.DISTRACTOR]) for end in ends]
    before = [
        d for d, end in zip(drift, ends, strict=True) if end < pd.Timestamp(synthetic.DRIFT["from"])
    ]
    assert max(before) < 0.01
    assert drift[-4:] == sorted(drift[-4:])


# --- other sizes, dates and lengths -------------------------------------------------------------


def test_another_snapshot_date_and_fewer_exports():
    history = synthetic.generate_history(5000, seed=2, as_of="2025-06-15", snapshots=3)
    ends = month_ends(history)
    assert ends == [
        pd.Timestamp("2025-04-15"),
        pd.Timestamp("2025-05-15"),
        pd.Timestamp("2025-06-15"),
    ]
    for end in ends:
        base = timeline.snapshot(history.table, as_of=end).base
        assert month(history, end)[C.CUSTOMER_ID].tolist() == base[C.CUSTOMER_ID].tolist()
    assert (history.campaign["as_of"] == pd.Timestamp("2025-01-15")).all()


@pytest.mark.parametrize("n", [1, 2, 50, 300])
def test_tiny_bases_work(n):
    history = synthetic.generate_history(n, seed=3)
    assert len(history.table) == n
    assert tuple(history.months.columns) == EXPORT_COLUMNS
    assert len(history.campaign) <= synthetic.CAMPAIGN_MIN_SIZE
    assert set(history.campaign["group"]) <= {"treated", "control"}


def test_a_few_hundred_customers_still_get_a_campaign_of_the_minimum_size():
    history = synthetic.generate_history(500, seed=3)  # 40 when scaled
    assert len(history.campaign) == synthetic.CAMPAIGN_MIN_SIZE
    assert (history.campaign["group"] == "control").sum() == 12  # 20% of each tercile of 20


@pytest.mark.parametrize("snapshots", [0, synthetic.HISTORY_MONTHS + 1])
def test_a_number_of_exports_outside_the_history_is_refused(snapshots):
    with pytest.raises(ValueError, match="snapshots must be between 1 and 48"):
        synthetic.generate_history(1000, snapshots=snapshots)
