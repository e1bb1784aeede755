"""Realised performance, PSI drift and decay of a watched model, on hand-built frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.history import monitoring as M


def scored() -> pd.DataFrame:
    # Ten customers by descending score; churners at ranks 1, 2 and 4.
    return pd.DataFrame(
        {
            C.P_CHURN: [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
            C.CHURNED: [1, 1, 0, 1, 0, 0, 0, 0, 0, 0],
        }
    )


def test_realised_by_hand():
    out = M.realised(scored(), bins=5)
    assert (out["n"], out["churners"]) == (10, 3)
    # ROC-AUC: of the 3 x 7 churner / stayer pairs, only rank 4 vs rank 3 is out of order.
    assert out["roc_auc"] == pytest.approx(20 / 21)
    # PR-AUC (average precision): precision at each churner's rank, averaged.
    assert out["pr_auc"] == pytest.approx((1 / 1 + 2 / 2 + 3 / 4) / 3)
    assert out["lift"] == pytest.approx(1.0 / 0.3)  # the top 10% (one customer) all churned
    p, y = scored()[C.P_CHURN], scored()[C.CHURNED]
    assert out["brier"] == pytest.approx(((p - y) ** 2).mean())
    assert out["calibration"][:2] == [
        {"decile": 1, "mean_p": pytest.approx(0.85), "churn_rate": 1.0, "n": 2},
        {"decile": 2, "mean_p": pytest.approx(0.65), "churn_rate": 0.5, "n": 2},
    ]
    assert [c["churn_rate"] for c in out["calibration"]] == [1.0, 0.5, 0.0, 0.0, 0.0]


def test_realised_leaves_out_unknown_outcomes_and_needs_both_classes():
    frame = pd.concat([scored(), pd.DataFrame({C.P_CHURN: [0.99, np.nan], C.CHURNED: [np.nan, 1]})])
    assert M.realised(frame, bins=5)["n"] == 10
    assert M.realised(frame.assign(**{C.CHURNED: np.nan})) is None  # window not passed
    assert M.realised(scored().assign(**{C.CHURNED: 0})) is None  # nobody left: undefined
    assert M.realised(scored().drop(columns=[C.CHURNED])) is None


def test_realised_deciles_of_a_large_base_are_equal_sized():
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    frame = pd.DataFrame({C.P_CHURN: p, C.CHURNED: (rng.random(1000) < p).astype(int)})
    calibration = M.realised(frame)["calibration"]
    assert [c["n"] for c in calibration] == [100] * 10
    means = [c["mean_p"] for c in calibration]
    assert means == sorted(means, reverse=True)  # decile 1 = the highest scores
    # A calibrated score: realised churn within 0.1 of the mean p in every decile.
    assert all(abs(c["churn_rate"] - c["mean_p"]) < 0.1 for c in calibration)


def test_psi_numbers_by_hand():
    # Training 0 x5, 10 x5: deciles 0, 0, 0, 0, 5, 10, 10, 10, 10 -> edges 0, 5, 10 and bins
    # (-inf, 0], (0, 5], (5, 10], (10, inf), blank.
    expected = pd.Series([0.0] * 5 + [10.0] * 5)
    actual = pd.Series([0.0, 3.0, 10.0, 11.0, np.nan])  # one per bin
    e = [0.5, 0.0001, 0.5, 0.0001, 0.0001]
    want = sum((0.2 - ei) * math.log(0.2 / ei) for ei in e)
    assert M.psi(expected, actual) == pytest.approx(want)
    assert M.psi(expected, expected) == 0.0


def test_psi_deciles_floor_and_integers():
    expected = pd.Series(np.arange(100))  # ten customers in each training decile
    actual = pd.Series([0] * 50 + [99] * 50)  # half in the lowest, half in the highest
    want = 2 * (0.5 - 0.1) * math.log(5) + 8 * (0.0001 - 0.1) * math.log(0.0001 / 0.1)
    assert M.psi(expected, actual) == pytest.approx(want)
    assert M.psi(expected, pd.Series(np.arange(100) + 0.5)) < 0.1


def test_psi_levels_with_a_new_level_and_blanks():
    expected = pd.Series(["a"] * 50 + ["b"] * 50)
    actual = pd.Series(["a"] * 25 + ["b"] * 25 + ["c"] * 40 + [None] * 10)
    want = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5)
    want += (0.4 - 0.0001) * math.log(0.4 / 0.0001) + (0.1 - 0.0001) * math.log(0.1 / 0.0001)
    assert M.psi(expected, actual) == pytest.approx(want)
    # Levels are compared by value, whatever the dtype.
    as_category = expected.astype("category")
    assert M.psi(as_category, expected.sample(frac=1, random_state=1)) == 0.0
    assert M.psi(pd.Series([True, False] * 5), pd.Series([True] * 10)) > 0.25


def test_psi_levels():
    assert [M.psi_level(v) for v in (0.0, 0.0999, 0.1, 0.25, 0.2501, None)] == [
        "stable",
        "stable",
        "moderate",
        "moderate",
        "large",
        "missing",
    ]


def test_drift_flags_a_planted_shift_and_reports_missing_features():
    rng = np.random.default_rng(3)
    n = 20_000
    training = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n),
            "charges": rng.normal(70, 20, n),
            "contract": rng.choice(["month", "year", "two years"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    newest = training.sample(frac=1, random_state=4).reset_index(drop=True)
    newest["charges"] = newest["charges"] + 15  # a price rise: three quarters of an sd
    newest = newest.drop(columns=["contract"])
    out = M.drift(training, newest, ["tenure", "contract", "charges"])
    assert list(out.columns) == ["feature", "psi", "level"]
    assert list(out["feature"]) == ["charges", "tenure", "contract"]
    assert list(out["level"]) == ["large", "stable", "missing"]
    assert out["psi"].iloc[1] == pytest.approx(0.0, abs=1e-12)  # same rows, shuffled
    assert out["psi"].iloc[2] is None
    assert out.to_dict("records")[2] == {"feature": "contract", "psi": None, "level": "missing"}


def test_decay_says_when_and_by_how_much():
    history = [
        {"as_of": "2026-07-31", "roc_auc": 0.84},
        {"as_of": "2026-08-31", "roc_auc": 0.76},
        None,  # the newest window has not passed
    ]
    out = M.decay(history, expected_roc_auc=0.83, margin=0.05)
    assert out["decayed"] is True
    assert out["as_of"] == "2026-08-31"
    assert out["shortfall"] == pytest.approx(0.07)
    assert "0.070 below the 0.830 expected" in out["message"]
    kept = M.decay(history[:1], expected_roc_auc=0.83, margin=0.05)
    assert kept["decayed"] is False
    assert kept["shortfall"] == pytest.approx(-0.01)
    assert kept["message"] is None
    within = M.decay([{"roc_auc": 0.79}], expected_roc_auc=0.83, margin=0.05)
    assert within["decayed"] is False  # 0.04 below: inside the margin


def test_decay_cannot_tell_without_figures():
    assert M.decay([None], 0.8, 0.05)["message"].startswith("No snapshot's window has passed")
    no_expected = M.decay([{"roc_auc": 0.7}], None, 0.05)
    assert no_expected["decayed"] is False
    assert "no expected ROC-AUC" in no_expected["message"]
    with pytest.raises(ValueError, match="margin must be 0 or more"):
        M.decay([], 0.8, -0.1)
