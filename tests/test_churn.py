"""Churn model: candidates, out-of-fold scores, honest threshold metrics, importance, drivers."""

import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.inspection import permutation_importance
from sklearn.metrics import f1_score, recall_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from analytics.model import evaluation, explain, features, probability
from analytics.model import train as training

REASON = re.compile(r"^[A-Z][\w ()]*: .+ \(\+\d+\.\d pts\)$")


def planted(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A strong numeric driver, a weaker categorical one, and two pure-noise columns."""
    rng = np.random.default_rng(seed)
    driver = rng.normal(size=n)
    noise = rng.normal(size=n)
    noise[rng.random(n) < 0.1] = np.nan
    plan = rng.choice(["basic", "plus", "pro"], n)
    region = rng.choice(["north", "south", "east", "west"], n)
    logit = -1.0 + 2.5 * driver + 1.0 * (plan == "basic")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({
        "driver": driver,
        "noise": noise,
        "plan": pd.Categorical(plan),
        "region": pd.Categorical(region),
    })
    return X, y


NUMERIC, CATEGORICAL = ["driver", "noise"], ["plan", "region"]


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def result(data):
    X, y = data
    return training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL)


def test_planted_driver_ranks_first_and_noise_last(result):
    ranking = list(result.importance["feature"])
    assert ranking[0] == "driver"
    assert ranking[1] == "plan"
    assert set(ranking[-2:]) == {"noise", "region"}
    assert result.importance["importance_mean"].is_monotonic_decreasing


def test_candidates_are_compared_and_the_best_chosen(result):
    names = [c["name"] for c in result.candidates]
    # One per family, in the order the search meets them (GRID's order of value), then the blend.
    assert names == ["logistic", "lightgbm", "random_forest", "gradient_boosting", "blend"]
    best = max(result.candidates, key=lambda c: c["roc_auc_mean"])
    assert result.chosen == best["name"]
    assert result.metrics["roc_auc"] == pytest.approx(best["roc_auc_mean"])
    assert all(c["fit_seconds"] > 0 for c in result.candidates)


def test_the_forest_is_left_out_of_large_bases(monkeypatch):
    X, y = planted(n=400)
    monkeypatch.setattr(training, "FOREST_MAX_ROWS", 300)
    res = training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL)
    assert [c["name"] for c in res.candidates] == [
        "logistic", "lightgbm", "gradient_boosting", "blend"
    ]
    assert any("random forest not tried: 400 rows is over 300" in n for n in res.notes)


def test_probabilities_are_out_of_fold(data, result):
    X, _ = data
    assert result.oof.shape == (len(X),)
    assert ((result.oof > 0) & (result.oof < 1)).all()
    in_sample = probability.predict_proba(result.pipeline, X)
    assert (result.oof != in_sample).all()  # every customer was scored by a model without them


def test_reported_threshold_metrics_are_chosen_on_the_other_folds(data, result):
    X, y = data
    folds = [test for _, test in StratifiedKFold(5, shuffle=True, random_state=42).split(X, y)]
    assert len(result.fold_metrics) == 5
    for fold, test in zip(result.fold_metrics, folds, strict=True):
        others = np.setdiff1d(np.arange(len(y)), test)
        assert fold["threshold"] == evaluation.choose_threshold(y[others], result.oof[others])
        flagged = result.oof[test] >= fold["threshold"]
        assert fold["f1"] == pytest.approx(f1_score(y[test], flagged))
    assert len({f["threshold"] for f in result.fold_metrics}) > 1
    for key in ("precision", "recall", "f1"):
        assert result.metrics[key] == pytest.approx(np.mean([f[key] for f in result.fold_metrics]))


def test_threshold_maximises_f1_on_out_of_fold_scores(data, result):
    _, y = data
    best = f1_score(y, result.oof >= result.threshold)
    for t in np.unique(result.oof):
        assert f1_score(y, result.oof >= t) <= best + 1e-12


def test_target_recall_picks_the_highest_threshold_reaching_it(data, result):
    _, y = data
    t = evaluation.choose_threshold(y, result.oof, target_recall=0.9)
    assert recall_score(y, result.oof >= t) >= 0.9
    higher = np.unique(result.oof[result.oof > t])
    assert recall_score(y, result.oof >= higher[0]) < 0.9


def test_evaluation_figures(data, result):
    _, y = data
    m = result.metrics
    top = np.argsort(-result.oof, kind="stable")[: math.ceil(0.1 * len(y))]
    assert m["lift_top_decile"] == pytest.approx(y[top].mean() / y.mean())
    assert m["brier"] == pytest.approx(np.mean((result.oof - y) ** 2))
    assert m["n_splits"] == 5
    assert 0 < m["precision"] <= 1
    assert 0 < m["recall"] <= 1
    for name, (a, b) in {"roc": ("fpr", "tpr"), "pr": ("recall", "precision"),
                         "calibration": ("prob_pred", "prob_true")}.items():
        curve = result.curves[name]
        assert 2 <= len(curve[a]) == len(curve[b]) <= 200
    assert len(result.curves["calibration"]["prob_pred"]) == 10


def test_typical_values_are_median_and_mode():
    X = pd.DataFrame({
        "a": [1.0, 2.0, 10.0, np.nan],
        "empty": [np.nan] * 4,
        "c": pd.Categorical(["y", "x", "y", "x"]),  # tie: the first level in sorted order
        "d": pd.Categorical(["q", None, "r", "r"]),
    })
    typical = explain.typical_values(X, ["a", "empty"], ["c", "d"])
    assert typical["a"] == 2.0
    assert math.isnan(typical["empty"])
    assert typical["c"] == "x"
    assert typical["d"] == "r"


def test_drivers_are_the_change_from_the_typical_value(data, result):
    X, _ = data
    rows = X.iloc[:40].copy()
    deltas = explain.driver_deltas(result.pipeline, rows, result.typical)
    assert list(deltas.columns) == list(X.columns)
    # One row moved to the typical driver value: that feature explains nothing for it.
    rows.loc[rows.index[0], "driver"] = result.typical["driver"]
    assert explain.driver_deltas(result.pipeline, rows, result.typical).iloc[0]["driver"] == 0.0
    # Each delta is p - p(with that one feature at the typical value).
    row = X.iloc[[5]].copy()
    p = probability.predict_proba(result.pipeline, row)[0]
    row["plan"] = pd.Categorical([result.typical["plan"]], categories=X["plan"].cat.categories)
    expected = p - probability.predict_proba(result.pipeline, row)[0]
    assert deltas.iloc[5]["plan"] == pytest.approx(expected, abs=1e-12)
    # Chunking (memory bound) does not change the answer.
    small = explain.driver_deltas(result.pipeline, X.iloc[:40], result.typical, chunk_rows=7)
    np.testing.assert_allclose(small.to_numpy(), deltas.to_numpy(), atol=1e-12)


def test_reasons_name_the_largest_increases(data, result):
    X, _ = data
    reasons = explain.customer_drivers(result.pipeline, X.iloc[:50], result.typical)
    assert list(reasons.columns) == ["reason_1", "reason_2", "reason_3"]
    filled = [r for r in reasons.to_numpy().ravel() if r]
    assert filled
    assert all(REASON.match(r) for r in filled)
    # The customer with the highest driver value has it as the first reason.
    top = int(np.argmax(X["driver"].iloc[:50]))
    assert reasons.iloc[top]["reason_1"].startswith("Driver: ")
    # The OOF reasons exist for every row and come in order: "" only after the last reason.
    assert result.oof_reasons.shape == (len(X), 3)
    for r1, r2, r3 in result.oof_reasons.itertuples(index=False):
        assert r1 or not r2
        assert r2 or not r3


def test_reason_text_format():
    X = pd.DataFrame({"tenure_months": [2.0], "contract": pd.Categorical(["Monthly"]),
                      "total_revenue": [12345.6], "monthly": [29.85]})
    deltas = pd.DataFrame({"tenure_months": [0.091], "contract": [0.182],
                           "total_revenue": [0.0001], "monthly": [0.02]})
    reasons = explain.reasons_from_deltas(X, deltas)
    assert list(reasons.iloc[0]) == [
        "Contract: Monthly (+18.2 pts)",
        "Tenure: 2 months (+9.1 pts)",
        "Monthly: 29.85 (+2.0 pts)",
    ]


def test_permutation_importance_matches_sklearn(data):
    X, y = data
    pipe = training.candidate_pipelines(NUMERIC, CATEGORICAL)["gradient_boosting"]
    with threadpool_limits(1):  # OpenMP threads on a busy 2-core host crawl
        model = clone(pipe).fit(X.iloc[:400], y[:400])
        theirs = permutation_importance(model, X.iloc[400:], y[400:], scoring="roc_auc",
                                        n_repeats=3, random_state=42)
    ours = explain.permutation_drop(model, X.iloc[400:], y[400:], n_repeats=3, random_state=42)
    np.testing.assert_allclose(ours, theirs.importances, atol=1e-12)


def test_training_is_reproducible():
    X, y = planted(n=300, seed=3)
    a = training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL)
    b = training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL)
    np.testing.assert_array_equal(a.oof, b.oof)
    pd.testing.assert_frame_equal(a.importance, b.importance)
    pd.testing.assert_frame_equal(a.oof_reasons, b.oof_reasons)
    assert a.threshold == b.threshold
    assert a.chosen == b.chosen


def test_single_class_is_a_clear_error():
    X, _ = planted(n=100)
    with pytest.raises(ValueError, match="needs both churned and retained customers"):
        training.train(X, np.zeros(100, dtype=int), numeric=NUMERIC, categorical=CATEGORICAL)


def test_few_churners_reduce_the_folds_or_stop():
    X, y = planted(n=300, seed=4)
    y = np.zeros(300, dtype=int)
    y[:15] = 1
    res = training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL)
    assert res.metrics["n_splits"] == 3
    assert len(res.fold_metrics) == 3
    assert any("3-fold" in note for note in res.notes)
    y[9:] = 0
    with pytest.raises(ValueError, match="too few churned customers"):
        training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL)


def test_empty_columns_unknown_levels_and_one_kind_of_feature():
    X, y = planted(n=300, seed=5)
    X["blank"] = np.nan
    X["blank_cat"] = pd.Categorical([None] * len(X), categories=pd.Index([], dtype="str"))
    res = training.train(X, y, numeric=[*NUMERIC, "blank"], categorical=[*CATEGORICAL, "blank_cat"])
    assert math.isnan(res.typical["blank"])
    assert math.isnan(res.typical["blank_cat"])
    new = X.iloc[:3].copy()
    new["plan"] = pd.Categorical(["platinum", "basic", None])  # a level never seen in training
    p = probability.predict_proba(res.pipeline, new)
    assert np.isfinite(p).all()
    assert explain.customer_drivers(res.pipeline, new, res.typical).shape == (3, 3)
    for numeric, categorical in ((NUMERIC, []), ([], CATEGORICAL)):
        for name, pipe in training.candidate_pipelines(numeric, categorical).items():
            with threadpool_limits(1):  # OpenMP threads on a busy 2-core host crawl
                fitted = clone(pipe).fit(X, y)
            assert probability.predict_proba(fitted, X).shape == (len(X),), name


def test_preprocessors_name_their_outputs():
    X, _ = planted(n=200)
    linear = features.build_preprocessor("linear", NUMERIC, CATEGORICAL).fit(X)
    out = linear.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert out.notna().all().all()
    assert any(c.startswith("spline__driver") for c in out.columns)
    tree = features.build_preprocessor("tree", NUMERIC, CATEGORICAL).fit(X)
    assert list(tree.transform(X).columns) == [*CATEGORICAL, *NUMERIC]
    with pytest.raises(ValueError, match="unknown preprocessor kind"):
        features.build_preprocessor("forest", NUMERIC, CATEGORICAL)


def test_time_ordered_holdout(data):
    X, y = data
    res = training.train(X.iloc[:450], y[:450], numeric=NUMERIC, categorical=CATEGORICAL,
                      holdout=(X.iloc[:450], y[:450], X.iloc[450:], y[450:]))
    h = res.holdout_metrics
    assert h["test_rows"] == 150
    assert h["roc_auc"] > 0.75
    assert "CV of the holdout's training part" in h["threshold_source"]


def load_telco(path) -> tuple[pd.DataFrame, np.ndarray, list[str], list[str]]:
    raw = pd.read_csv(path)
    raw["TotalCharges"] = pd.to_numeric(raw["TotalCharges"], errors="coerce").fillna(
        raw["tenure"] * raw["MonthlyCharges"]
    )
    y = (raw.pop("Churn") == "Yes").astype(int).to_numpy()
    X = raw.drop(columns="customerID")
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    X[numeric] = X[numeric].astype("float64")
    for c in categorical:
        X[c] = X[c].astype("category")
    return X, y, numeric, categorical


@pytest.mark.slow
def test_telco_reference_figures(telco_path):
    X, y, numeric, categorical = load_telco(telco_path)
    steps = []
    res = training.train(X, y, numeric=numeric, categorical=categorical, progress=steps.append)
    assert res.metrics["roc_auc"] >= 0.845
    assert {"Contract", "tenure"} <= set(res.importance["feature"].head(3))
    assert steps[-1] == f"refitting {res.chosen} on all 7,043 rows"
    assert (res.oof_reasons["reason_1"] != "").mean() > 0.9


@pytest.mark.parametrize(("n", "levels"), [(2, 0), (3, 0), (1000, 7), (20_000, 0), (50_000, 40)])
def test_ranking_equals_scikit_learn(n, levels):
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    rng = np.random.default_rng(n)
    p = rng.integers(0, levels, n) / levels if levels else rng.random(n)  # ties, or none
    y = (rng.random(n) < 0.3).astype(np.int8)
    y[0], y[-1] = 0, 1
    order = np.argsort(-p, kind="stable")
    got = evaluation.ranking(y[order], p[order])
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    for name, want in (("fpr", fpr), ("tpr", tpr), ("precision", precision), ("recall", recall)):
        np.testing.assert_array_equal(got[name], want)
    assert got["roc_auc"] == roc_auc_score(y, p)
    assert got["pr_auc"] == average_precision_score(y, p)
    assert evaluation.curves(y, p, got) == evaluation.curves(y, p)
