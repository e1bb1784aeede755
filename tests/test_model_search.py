"""The model search (analytics.model.search): rounds chosen out of fold, cut-back fold models
that equal shorter fits, target encoding of many-level categories, the honest blend, and the
stratified training sample of big bases."""

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from analytics.model import evaluation, features, search
from analytics.model import train as training
from analytics.model.probability import predict_proba
from analytics.workflow import training_sample


def states(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A 40-level state that carries no signal, a plan and two numbers that do."""
    rng = np.random.default_rng(seed)
    usage = rng.gamma(2.0, 50.0, n)
    calls = rng.poisson(1.5, n).astype(float)
    plan = rng.choice(["basic", "plus", "pro"], n)
    state = rng.choice([f"S{i:02d}" for i in range(40)], n)
    logit = -3 + 0.015 * usage + 0.6 * (calls >= 4) + 0.8 * (plan == "basic")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame(
        {
            "usage": usage,
            "calls": calls,
            "plan": pd.Categorical(plan),
            "state": pd.Categorical(state),
        }
    )
    return X, y


NUMERIC, CATEGORICAL = ["usage", "calls"], ["plan", "state"]


@pytest.fixture(scope="module")
def trained():
    X, y = states()
    return X, y, training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL)


def folds_of(X, y):
    return list(StratifiedKFold(5, shuffle=True, random_state=42).split(X, y))


def config(family: str) -> search.Config:
    return next(c for c in search.GRID if c.family == family and c.tier == 0)


def test_many_level_categories_are_target_encoded_for_trees(trained):
    X, y, res = trained
    assert features.high_cardinality(X, CATEGORICAL) == ["state"]
    tree = features.build_preprocessor("tree", NUMERIC, CATEGORICAL, target_encoded=["state"])
    out = tree.fit_transform(X, y)
    assert out["state"].nunique() > 2
    assert out["state"].between(0, 1).all()  # churn rates
    assert features.tree_categorical_features(CATEGORICAL, ["state"]) == ["plan"]
    native = features.build_preprocessor("native", NUMERIC, CATEGORICAL, target_encoded=["state"])
    out = native.fit_transform(X, y)
    assert isinstance(out["plan"].dtype, pd.CategoricalDtype)  # LightGBM splits it itself
    assert out["state"].dtype == "float64"
    with pytest.raises(ValueError, match="not categorical: \\['usage'\\]"):
        features.build_preprocessor("tree", NUMERIC, CATEGORICAL, target_encoded=["usage"])
    assert any("target-encoded" in note and "state" in note for note in res.notes)


@pytest.mark.parametrize("family", ["gradient_boosting", "lightgbm"])
def test_a_cut_back_model_is_the_shorter_fit(family):
    X, y = states(600)
    pipe = search.with_rounds(search.pipeline(config(family), NUMERIC, CATEGORICAL), 60)
    with threadpool_limits(1):
        long = clone(pipe).fit(X, y)
        short = search.with_rounds(pipe, 20).fit(X, y)
    cut = search.truncate(long, 20)
    assert search.max_rounds(cut) == 20
    np.testing.assert_allclose(predict_proba(cut, X), predict_proba(short, X), atol=1e-12)


def test_rounds_are_chosen_on_out_of_fold_scores():
    X, y = states()
    folds = folds_of(X, y)
    pipe = search.pipeline(config("gradient_boosting"), NUMERIC, ["plan"])

    def run(tasks):
        return [task() for task in tasks]

    with threadpool_limits(1):
        models, rounds, seconds = search.grow(pipe, X[[*NUMERIC, "plan"]], y, folds, run)
        assert rounds % search.ROUND_STEP == 0
        assert rounds <= search.max_rounds(pipe)
        assert len(models) == 5
        assert all(s > 0 for s in seconds)

        # Each fold model is the fold's fit with that many rounds; the count has the best mean
        # out-of-fold ROC-AUC among the counts read (every ROUND_STEP rounds up to it + patience).
        def mean_auc(n):
            aucs = []
            for train_idx, test_idx in folds:
                fit = search.with_rounds(pipe, n).fit(X.iloc[train_idx], y[train_idx])
                aucs.append(roc_auc_score(y[test_idx], predict_proba(fit, X.iloc[test_idx])))
            return np.mean(aucs)

        train_idx, test_idx = folds[0]
        fresh = search.with_rounds(pipe, rounds).fit(X.iloc[train_idx], y[train_idx])
        np.testing.assert_allclose(
            predict_proba(models[0], X.iloc[test_idx]),
            predict_proba(fresh, X.iloc[test_idx]),
            atol=1e-12,
        )
        best = mean_auc(rounds)
        for other in (rounds - search.ROUND_STEP, rounds + search.ROUND_STEP):
            if other >= search.ROUND_STEP:
                assert mean_auc(other) <= best + 1e-12


def test_the_search_follows_the_table_size():
    small = search.grid(search.TIER_ROWS[1] - 1)
    # GRID's order is the order of value: what the time budget keeps when it is short.
    assert [c.family for c in small] == [
        "logistic",
        "lightgbm",
        "random_forest",
        "gradient_boosting",
    ]
    tiers = [search.grid(rows) for rows in search.TIER_ROWS]
    assert tiers[0] == small
    assert [len(t) for t in tiers] == sorted({len(t) for t in tiers})  # each tier adds some
    assert len(tiers[-1]) == len(search.GRID)
    labels = [{c.label for c in t} for t in tiers]
    assert all(a <= b for a, b in itertools.pairwise(labels))
    assert "random_forest" not in {c.family for c in search.grid(10**6, forest=False)}


def test_the_blend_is_the_mean_of_its_members_out_of_fold(trained):
    X, y, res = trained
    blend = next(c for c in res.candidates if c["name"] == "blend")
    members = blend["config"].removeprefix("mean probability of ").split(", ")
    singles = {c["name"]: c for c in res.candidates if c["name"] != "blend"}
    assert set(members) <= set(singles)
    assert len(members) in search.BLEND_SIZES
    # The members are the best families by out-of-fold ROC-AUC.
    ranked = sorted(singles, key=lambda n: -singles[n]["roc_auc_mean"])
    assert set(members) == set(ranked[: len(members)])
    if res.chosen == "blend":
        assert res.metrics["roc_auc"] == pytest.approx(blend["roc_auc_mean"])
        assert isinstance(res.pipeline, search.Blend)
    # A blend of fitted members predicts their mean.
    fitted = [
        (n, search.pipeline(config(n), NUMERIC, ["plan"]).fit(X[[*NUMERIC, "plan"]], y))
        for n in ("logistic", "lightgbm")
    ]
    mean = np.mean([predict_proba(m, X[[*NUMERIC, "plan"]]) for _, m in fitted], axis=0)
    together = search.Blend.of_fitted(fitted)
    np.testing.assert_allclose(predict_proba(together, X[[*NUMERIC, "plan"]]), mean, atol=1e-15)


def test_training_reports_every_configuration_it_tried(trained):
    X, _, res = trained
    assert [s["config"] for s in res.search] == [c.label for c in search.grid(len(X))]
    for s in res.search:
        family = next(c for c in res.candidates if c["name"] == s["name"])
        assert family["roc_auc_mean"] >= s["roc_auc_mean"]  # each family keeps its best
        if s["name"] in ("gradient_boosting", "lightgbm"):
            assert s["rounds"] % search.ROUND_STEP == 0


def test_a_big_base_trains_on_a_stratified_sample():
    y = np.r_[np.ones(300, dtype=int), np.zeros(2700, dtype=int)]
    assert training_sample(y, 3000, 42) is None
    rows = training_sample(y, 1000, 42)
    assert len(rows) == 1000
    assert len(np.unique(rows)) == 1000
    assert np.all(np.diff(rows) > 0)
    assert y[rows].mean() == pytest.approx(0.1)
    np.testing.assert_array_equal(rows, training_sample(y, 1000, 42))


def test_roc_auc_is_sklearns_including_ties():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.2).astype(int)
    scores = np.round(rng.random((6, 300)), 1)  # many ties
    got = evaluation.roc_auc(y, scores)
    assert got.shape == (6,)
    for row, value in zip(scores, got, strict=True):
        assert value == pytest.approx(roc_auc_score(y, row), abs=1e-12)
    assert evaluation.roc_auc(y, scores[0]) == pytest.approx(roc_auc_score(y, scores[0]))
    with pytest.raises(ValueError, match="both churned and retained"):
        evaluation.roc_auc(np.zeros(5), np.arange(5.0))
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="finite scores"):
            evaluation.roc_auc(y, np.r_[scores[0, :-1], bad])


def test_roc_auc_ranks_in_blocks_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(4)
    y = (rng.random(200) < 0.3).astype(int)
    scores = rng.random((7, 200))
    whole = evaluation.roc_auc(y, scores)
    monkeypatch.setattr(evaluation, "RANK_CELLS", 450)  # two rows a block, the last alone
    np.testing.assert_array_equal(evaluation.roc_auc(y, scores), whole)


def test_lightgbm_staged_readings_equal_its_own_predictions():
    X, y = states(600)
    pipe = search.with_rounds(search.pipeline(config("lightgbm"), NUMERIC, CATEGORICAL), 35)
    with threadpool_limits(1):
        fitted = pipe.fit(X.iloc[:400], y[:400])
    test = X.iloc[400:].copy()
    test.loc[test.index[:5], "plan"] = np.nan  # missing levels take LightGBM's NaN branch
    # Categories listed in another order, one never seen in training, and that one used.
    test["plan"] = test["plan"].cat.set_categories(["pro", "new", "basic", "plus"])
    test.loc[test.index[5:9], "plan"] = "new"
    readings = search.staged_raw(fitted, test)
    assert len(readings) == 3  # 10, 20, 30 rounds
    Z = fitted[:-1].transform(test)
    for k, raw in enumerate(readings, start=1):
        own = fitted[-1].predict(Z, raw_score=True, num_iteration=k * search.ROUND_STEP)
        np.testing.assert_allclose(raw, own, atol=1e-12)


def test_the_time_budget_keeps_the_first_configurations_and_says_what_it_left_out():
    X, y = states(1500)
    res = training.train(X, y, numeric=NUMERIC, categorical=CATEGORICAL, seconds_per_10k=1e-3)
    assert [s["config"] for s in res.search] == [c.label for c in search.GRID[: search.ALWAYS]]
    note = next(n for n in res.notes if n.startswith("time budget:"))
    for config in search.grid(len(X))[search.ALWAYS :]:
        assert f"{config.family} ({config.label})" in note
    assert res.chosen in {"logistic", "lightgbm", "blend"}


def test_the_budget_plans_by_estimated_cost_before_fitting_anything():
    budget = search.Budget(10_000, 20, 60.0)  # 60 s in all: the search gets 45% of 56 s
    assert budget.seconds == pytest.approx(search.SEARCH_SHARE * (60 - search.FIXED_SECONDS))
    assert budget.unit == pytest.approx(search.unit_seconds(10_000, 20))
    first, second = search.GRID[: search.ALWAYS]
    cheap = search.Config("lightgbm", "cheap", cost=0.1)
    dear = search.Config("gradient_boosting", "dear", cost=budget.seconds / budget.unit)
    # The first ALWAYS are kept whatever they cost; a dear one does not stop a cheaper one.
    plan = budget.plan([first, second, dear, cheap])
    assert plan == [first, second, cheap]
    assert budget.left_out == [(dear, pytest.approx(budget.seconds))]
    assert "gradient_boosting (dear)" in budget.note()
    # A bigger budget gets more of the grid.
    assert len(search.Budget(10_000, 20, 600.0).plan(search.GRID)) == len(search.GRID)
    assert search.Budget(500, 20, 60.0).seconds == 0.0  # all of 3 s goes to the fixed costs
    assert search.Budget(500, 20, 60.0).plan(search.GRID) == list(search.GRID[: search.ALWAYS])
