"""Campaign control groups, Newcombe's interval and the measured save rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.history import campaigns as K
from analytics.metrics.value import risk_band


def contact_list() -> pd.DataFrame:
    """25 Low, 15 Medium, 7 High and 3 unscored customers."""
    bands = ["Low"] * 25 + ["Medium"] * 15 + ["High"] * 7 + [None] * 3
    p = [0.1] * 25 + [0.3] * 15 + [0.7] * 7 + [np.nan] * 3
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: [f"c{i:02d}" for i in range(50)],
            C.RISK_BAND: pd.Categorical(bands, categories=list(C.RISK_BANDS), ordered=True),
            C.P_CHURN: p,
        }
    )


def test_control_group_is_exact_in_each_risk_band():
    groups = K.assign_groups(contact_list(), control_share=0.1, seed=7)
    assert list(groups.columns) == list(K.GROUP_COLUMNS)
    assert list(groups[C.CUSTOMER_ID]) == list(contact_list()[C.CUSTOMER_ID])
    held = groups[groups["group"] == "control"]
    by_band = held[C.RISK_BAND].astype(object).fillna("blank").value_counts().to_dict()
    # round(0.1 x n) half up: 2.5 -> 3, 1.5 -> 2, 0.7 -> 1, 0.3 -> 0.
    assert by_band == {"Low": 3, "Medium": 2, "High": 1}
    assert set(groups["group"]) == {"treated", "control"}
    assert (groups["group"] == "treated").sum() == 44


def test_groups_are_reproducible_with_the_seed_whatever_the_row_order():
    first = K.assign_groups(contact_list(), 0.2, seed=1)
    shuffled = contact_list().sample(frac=1, random_state=5)
    again = K.assign_groups(shuffled, 0.2, seed=1).set_index(C.CUSTOMER_ID)
    assert again.loc[first[C.CUSTOMER_ID], "group"].tolist() == first["group"].tolist()
    other = K.assign_groups(contact_list(), 0.2, seed=2)
    assert other["group"].tolist() != first["group"].tolist()


@pytest.mark.parametrize("share", [0, -0.1, 0.51, 1.0])
def test_control_share_outside_the_range_is_refused(share):
    with pytest.raises(ValueError, match=r"control_share must be in \(0, 0.5\]"):
        K.assign_groups(contact_list(), share, seed=1)


def test_empty_or_repeated_contact_lists_are_refused():
    with pytest.raises(ValueError, match="contact list is empty"):
        K.assign_groups(contact_list().iloc[:0], 0.1, seed=1)
    twice = pd.concat([contact_list(), contact_list().iloc[:1]])
    with pytest.raises(ValueError, match="repeats customer_id 'c00'"):
        K.assign_groups(twice, 0.1, seed=1)
    with pytest.raises(ValueError, match="no risk_band column"):
        K.assign_groups(contact_list().drop(columns=[C.RISK_BAND]), 0.1, seed=1)


@pytest.mark.parametrize(
    ("counts", "published"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10.
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((10, 10, 0, 20), (0.6791, 1.0000)),
    ],
)
def test_newcombe_interval_matches_the_published_examples(counts, published):
    low, high = K.newcombe_interval(*counts)
    assert (round(low, 4), round(high, 4)) == published


def test_newcombe_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="got 5/0"):
        K.newcombe_interval(5, 0, 1, 10)
    with pytest.raises(ValueError, match="got 11/10"):
        K.newcombe_interval(1, 10, 11, 10)


def groups_of(treated: int, control: int) -> pd.DataFrame:
    ids = [f"t{i}" for i in range(treated)] + [f"c{i}" for i in range(control)]
    return pd.DataFrame(
        {C.CUSTOMER_ID: ids, "group": ["treated"] * treated + ["control"] * control}
    )


def test_measure_by_hand():
    groups = groups_of(80, 70)
    # Control: 56 of 70 churned; treated: 48 of 80; two treated customers unknown.
    churned = [1] * 48 + [0] * 30 + [1] * 56 + [0] * 14
    known = [i for i in groups[C.CUSTOMER_ID] if i not in ("t78", "t79")]
    outcome = pd.Series(churned, index=known)
    out = K.measure(groups, outcome)
    assert out["control"] == {"n": 70, "churned": 56, "churn_rate": 0.8, "unknown": 0}
    assert out["treated"] == {"n": 78, "churned": 48, "churn_rate": 48 / 78, "unknown": 2}
    assert out["unknown"] == 2
    low, high = K.newcombe_interval(56, 70, 48, 78)
    assert out["uplift"] == pytest.approx(0.8 - 48 / 78)
    assert (out["uplift_ci_low"], out["uplift_ci_high"]) == (low, high)
    assert out["save_rate"] == pytest.approx((0.8 - 48 / 78) / 0.8)
    assert out["ci_low"] == pytest.approx(low / 0.8)
    assert out["ci_high"] == pytest.approx(high / 0.8)
    assert out["note"] is None


def test_measure_says_why_it_cannot_measure():
    known = [f"c{i}" for i in range(20)] + [f"t{i}" for i in range(50)]
    small = K.measure(groups_of(100, 20), pd.Series(1, index=known))
    assert small["save_rate"] is None
    assert small["note"] == (
        "Groups too small to measure a save rate: 20 control and 50 treated customers with a "
        "known outcome (at least 30 each)."
    )
    assert small["treated"]["unknown"] == 50
    assert small["uplift"] == 0.0  # shown with its (wide) interval
    groups = groups_of(100, 40)
    calm = K.measure(groups, pd.Series(0, index=groups[C.CUSTOMER_ID]))
    assert calm["save_rate"] is None
    assert calm["uplift"] == 0.0
    assert "No control customer churned" in calm["note"]
    nothing = K.measure(groups, pd.Series([], dtype=float))
    assert nothing["unknown"] == 140
    assert nothing["treated"]["churn_rate"] is None
    assert "No outcome is known yet" in nothing["note"]


def test_measure_refuses_bad_outcomes():
    groups = groups_of(3, 3)
    with pytest.raises(ValueError, match="churned 0 or 1"):
        K.measure(groups, pd.Series([2], index=["t0"]))
    with pytest.raises(ValueError, match="outcome repeats customer_id 't0'"):
        K.measure(groups, pd.Series([1, 0], index=["t0", "t0"]))


def simulated_campaign(seed: int, save_rate: float, n: int = 4000) -> dict:
    """A campaign on n scored customers: control churns with p, treated with (1 - s) x p."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 4, n)
    base = pd.DataFrame(
        {C.CUSTOMER_ID: [f"x{i}" for i in range(n)], C.P_CHURN: p, C.RISK_BAND: risk_band(p, 0.4)}
    )
    groups = K.assign_groups(base, control_share=0.1, seed=seed)
    treated = (groups["group"] == "treated").to_numpy()
    churned = rng.random(n) < np.where(treated, (1 - save_rate) * p, p)
    return K.measure(groups, pd.Series(churned.astype(int), index=groups[C.CUSTOMER_ID]))


def test_a_planted_save_rate_is_recovered_within_its_interval():
    results = [simulated_campaign(seed, save_rate=0.4) for seed in range(100)]
    inside = sum(r["ci_low"] <= 0.4 <= r["ci_high"] for r in results)
    assert inside >= 90, f"0.4 inside the interval in only {inside} of 100 campaigns"
    assert np.mean([r["save_rate"] for r in results]) == pytest.approx(0.4, abs=0.03)
    # And the interval is narrow enough to see the effect: it excludes 0 almost always.
    assert sum(r["ci_low"] > 0 for r in results) >= 90


def test_no_effect_is_not_mistaken_for_one():
    results = [simulated_campaign(seed, save_rate=0.0) for seed in range(100)]
    assert sum(r["ci_low"] <= 0.0 <= r["ci_high"] for r in results) >= 90
