"""Segments: k by silhouette, unique readable names, deterministic, profiles with intervals."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics import synthetic, timeline
from analytics.model import segmentation
from analytics.result import Unavailable

# Four groups well separated on every column. A and B share tenure, spend and usage and differ
# only in support calls: B, far out on those, is named by them.
BLOBS = {
    #    size, tenure, revenue, support_calls, usage_hours
    "A": (100, 2.0, 30.0, 1.0, 20.0),
    "B": (100, 2.0, 30.0, 9.0, 20.0),
    "C": (200, 30.0, 70.0, 2.0, 40.0),
    "D": (200, 60.0, 110.0, 2.0, 60.0),
}


def blobs(seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for name, (size, tenure, revenue, calls, usage) in BLOBS.items():
        parts.append(
            pd.DataFrame(
                {
                    "truth": name,
                    C.TENURE: rng.normal(tenure, 1.0, size).clip(0),
                    C.MONTHLY_REVENUE: rng.normal(revenue, 2.0, size),
                    "support_calls": rng.normal(calls, 0.4, size),
                    "usage_hours": rng.normal(usage, 1.0, size),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame[C.CUSTOMER_ID] = [f"c{i}" for i in range(len(frame))]
    frame[C.CHURNED] = (rng.random(len(frame)) < 0.2).astype(np.int8)
    return frame


@pytest.fixture(scope="module")
def fitted():
    frame = blobs()
    return frame, segmentation.fit_segments(frame)


def test_finds_the_four_groups(fitted):
    frame, model = fitted
    assert model.k == 4
    assert max(model.silhouette, key=model.silhouette.get) == 4
    assert set(model.silhouette) == set(range(3, 9))
    seg = model.assign(frame)
    # Each true group lands in exactly one segment.
    crosstab = pd.crosstab(frame["truth"], seg)
    assert ((crosstab > 0).sum(axis=1) == 1).all()
    assert ((crosstab > 0).sum(axis=0) == 1).all()


def test_names_are_unique_readable_and_from_the_profile(fitted):
    frame, model = fitted
    names = set(model.names.values())
    assert len(names) == 4
    assert not any(re.search(r"\d", n) for n in names)
    seg = model.assign(frame)
    by_truth = {t: seg[frame["truth"] == t].iloc[0] for t in BLOBS}
    assert by_truth["D"] == "Loyal high-spend"
    assert by_truth["C"] == "Established mid-spend"
    assert by_truth["A"] == "New low-spend"
    assert by_truth["B"] == "Many support calls"


def test_assign_gives_categories_in_a_stable_order(fitted):
    frame, model = fitted
    seg = model.assign(frame)
    assert isinstance(seg.dtype, pd.CategoricalDtype)
    assert list(seg.cat.categories) == list(model.order) == model.profile["segment"].tolist()
    assert seg.index.equals(frame.index)
    assert seg.name == C.SEGMENT
    # Ordered by median revenue, descending.
    assert model.profile[C.MONTHLY_REVENUE].is_monotonic_decreasing
    empty = model.assign(frame.iloc[:0])
    assert len(empty) == 0
    assert list(empty.cat.categories) == list(model.order)


def test_profile_says_what_defines_each_segment(fitted):
    _, model = fitted
    profile = model.profile
    assert {"segment", "customers", "share", "defined_by", C.TENURE} <= set(profile.columns)
    assert profile["customers"].sum() == 600
    assert profile["share"].sum() == pytest.approx(1.0)
    loyal = profile.set_index("segment").loc["Loyal high-spend", "defined_by"]
    assert loyal.startswith("tenure 60 mo (base ")
    assert "revenue 110 (base " in loyal


def test_deterministic_and_blind_to_the_label(fitted):
    frame, model = fitted
    again = segmentation.fit_segments(frame)
    assert again.names == model.names
    assert again.assign(frame).equals(model.assign(frame))
    flipped = frame.assign(**{C.CHURNED: 1 - frame[C.CHURNED]})
    assert segmentation.fit_segments(flipped).assign(frame).equals(model.assign(frame))


def test_default_columns_rule():
    frame = blobs().assign(
        **{
            C.TOTAL_REVENUE: 1.0,
            C.P_CHURN: np.linspace(0, 1, 600),
            "account_id": np.arange(600),
            "senior": np.tile([0, 1], 300),
            "plan": "basic",
        }
    )
    for i in range(10):
        frame[f"extra_{i}"] = np.arange(600) % (i + 5)
    cols = segmentation.default_columns(frame)
    assert cols[:4] == [C.TENURE, C.MONTHLY_REVENUE, "support_calls", "usage_hours"]
    assert len(cols) == segmentation.MAX_COLUMNS
    for excluded in (C.CHURNED, C.TOTAL_REVENUE, C.P_CHURN, "account_id", "senior", "plan"):
        assert excluded not in cols


def test_given_k_and_columns():
    frame = blobs()
    model = segmentation.fit_segments(frame, columns=[C.TENURE, C.MONTHLY_REVENUE], k=3)
    assert model.k == 3
    assert model.columns == (C.TENURE, C.MONTHLY_REVENUE)
    assert set(model.silhouette) == {3}
    assert len(set(model.names.values())) == 3
    with pytest.raises(ValueError, match="nope"):
        segmentation.fit_segments(frame, columns=["nope"])
    with pytest.raises(ValueError, match="no customers"):
        segmentation.fit_segments(frame.iloc[:0])


def test_clashing_names_are_told_apart_by_how_they_differ():
    z = pd.DataFrame(
        {C.TENURE: [0.0, 0.0, 1.0], C.MONTHLY_REVENUE: [1.0, 1.0, 1.0], "support_calls": [2, 0, 0]}
    )
    names = segmentation._unique_names(["New low-spend"] * 2 + ["Loyal"], z, np.array([5, 9, 3]))
    assert names == [
        "New low-spend, higher support calls",
        "New low-spend, lower support calls",
        "Loyal",
    ]


def test_identical_profiles_are_numbered_only_as_a_last_resort():
    z = pd.DataFrame({C.TENURE: [0.0, 0.0], C.MONTHLY_REVENUE: [1.0, 1.0]})
    names = segmentation._unique_names(["New low-spend"] * 2, z, np.array([5, 9]))
    assert names == ["New low-spend 2", "New low-spend 1"]


def test_segment_profile_with_intervals():
    frame = pd.DataFrame(
        {
            C.SEGMENT: pd.Categorical(["x"] * 40 + ["y"] * 10, categories=["y", "x", "z"]),
            C.CHURNED: np.array([1] * 4 + [0] * 36 + [1] * 5 + [0] * 5, dtype=np.int8),
            C.TENURE: np.arange(50, dtype=float),
        }
    )
    prof = segmentation.segment_profile(frame)
    assert prof["segment"].tolist() == ["y", "x"]  # category order; empty z left out
    assert prof["customers"].tolist() == [10, 40]
    assert prof["churn_rate"].tolist() == pytest.approx([0.5, 0.1])
    assert prof["small"].tolist() == [True, False]
    assert prof[C.TENURE].tolist() == [44.5, 19.5]
    assert prof["ci_low"].iloc[1] < 0.1 < prof["ci_high"].iloc[1]
    assert prof["fits_name"].isna().all()  # no model: no words to check
    assert isinstance(segmentation.segment_profile(frame.drop(columns=[C.SEGMENT])), Unavailable)
    assert len(segmentation.segment_profile(frame.iloc[:0])) == 0


# --- the demo base: names describe most of their members ------------------------------------


@pytest.fixture(scope="module")
def demo():
    """The built-in base as the product segments it: active at the window's start."""
    base = timeline.snapshot(synthetic.generate()).base.reset_index(drop=True)
    model = segmentation.fit_segments(base)
    return base, model, model.assign(base)


# What a user reads into the words: the base's thirds of tenure and monthly revenue.
def _word_checks(base):
    tenure_lo, tenure_hi = base[C.TENURE].quantile([1 / 3, 2 / 3])
    rev_lo, rev_hi = base[C.MONTHLY_REVENUE].quantile([1 / 3, 2 / 3])
    return {
        "Loyal": lambda g: g[C.TENURE] >= tenure_hi,
        "New": lambda g: g[C.TENURE] <= tenure_lo,
        "high-spend": lambda g: g[C.MONTHLY_REVENUE] >= rev_hi,
        "low-spend": lambda g: g[C.MONTHLY_REVENUE] <= rev_lo,
    }


def test_demo_tenure_and_spend_words_fit_most_members(demo):
    # Before: 1,506 of 8,019 "Loyal high-spend" had tenure <= 5 months (only 42% were in the
    # base's longest third) and 3,320 of 11,796 "New low-spend" had >= 36 months.
    base, model, seg = demo
    checks = _word_checks(base)
    for name in model.order:
        members = base[seg == name]
        for word, fits in checks.items():
            if re.search(rf"(^|\s){word}(\s|$|,)", name, flags=re.IGNORECASE):
                share = fits(members).mean()
                assert share >= segmentation.FITS_NAME, (name, word, share)


def test_demo_profile_says_what_share_fits_each_name(demo):
    base, model, seg = demo
    profile = model.profile.set_index("segment")
    assert {"customers", "share", "defined_by", "fits_name"} <= set(profile.columns)
    for name in model.order:
        members = base[seg == name]
        share = model.fits_name(members, seg[seg == name]).mean()
        assert share >= segmentation.FITS_NAME, (name, share)
        assert profile.loc[name, "fits_name"] == pytest.approx(share)
    # The selection's profile table carries the same share, counted on the selection.
    prof = segmentation.segment_profile(base.assign(**{C.SEGMENT: seg}), model=model)
    assert prof.set_index("segment")["fits_name"].to_dict() == pytest.approx(
        profile["fits_name"].to_dict()
    )
    assert {"churn_rate", "ci_low", "ci_high", "small"} <= set(prof.columns)


def test_demo_price_rise_group_is_named_by_its_price_rise(demo):
    # synthetic.py plants a repricing wave: last_price_change_pct > 0 for about one customer in
    # eight. The segment holding most of them is that group; "Loyal mid-spend" hid it.
    base, model, seg = demo
    rose = base["last_price_change_pct"] > 0
    group = seg[rose].value_counts().idxmax()
    assert group == "Recent price rise"
    assert rose[seg == group].mean() >= segmentation.FITS_NAME
    assert sum("price rise" in name for name in model.order) == 1
