"""The numpy re-expression of the churn pipeline gives the pipeline's own numbers."""

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from analytics import formatting
from analytics.model import explain, fastscore, predict, probability
from analytics.model import train as training
from analytics.model.features import build_preprocessor

TIGHT = 1e-9


def awkward(n: int = 3000, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Splined and flag numbers with gaps, a rare level (one-hot groups it), 80 levels (the
    ordinal encoder groups the rarest), an all-missing column: every branch of the encoders."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n).astype(float)
    tenure[rng.random(n) < 0.05] = np.nan
    spend = rng.gamma(2.0, 30.0, n)
    flag = (rng.random(n) < 0.3).astype(float)
    empty = np.full(n, np.nan)
    plan = rng.choice(["basic", "plus", "pro", "legacy"], n, p=[0.5, 0.3, 0.198, 0.002])
    city = rng.choice([f"city{i:02d}" for i in range(80)], n)
    plan = np.where(rng.random(n) < 0.05, None, plan)
    logit = -1.0 - 0.04 * np.nan_to_num(tenure, nan=30) + 0.01 * spend + 0.8 * (plan == "basic")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame(
        {
            "tenure": tenure,
            "spend": spend,
            "flag": flag,
            "empty": empty,
            "plan": pd.Categorical(plan),
            "city": pd.Categorical(city),
        }
    )
    numeric, categorical = ["tenure", "spend", "flag", "empty"], ["plan", "city"]
    meta = {
        "features": [*numeric, *categorical],
        "numeric": numeric,
        "categorical": categorical,
        "feature_levels": {c: [str(v) for v in X[c].cat.categories] for c in categorical},
        "feature_ranges": {
            c: [float(np.nanmin(X[c])), float(np.nanmax(X[c]))] if X[c].notna().any() else [0, 1]
            for c in numeric
        },
    }
    return X, y, meta


@pytest.fixture(scope="module")
def fitted():
    X, y, meta = awkward()
    candidates = training.candidate_pipelines(meta["numeric"], meta["categorical"])
    # The 80-level city target-encoded, as training does past HIGH_CARDINALITY levels.
    encoded = training.candidate_pipelines(
        meta["numeric"], meta["categorical"], target_encoded=["city"]
    )
    candidates.update({f"{name} (target-encoded)": pipe for name, pipe in encoded.items()})
    with threadpool_limits(limits=1):
        for pipe in candidates.values():
            pipe.fit(X, y)
    return candidates, meta


@pytest.mark.parametrize(
    "name",
    [
        "logistic",
        "gradient_boosting",
        "lightgbm",
        "random_forest",
        "blend",
        "gradient_boosting (target-encoded)",
        "lightgbm (target-encoded)",
        "random_forest (target-encoded)",
        "blend (target-encoded)",
    ],
)
def test_every_candidate_compiles_and_matches_the_pipeline(fitted, name):
    candidates, meta = fitted
    pipe = candidates[name]
    scorer = fastscore.compile_scorer(pipe, meta)
    assert scorer is not None
    # Other rows than the compile-time check: gaps, unseen levels, past both ends of ranges.
    X = fastscore.sample_frame(meta, 3000, seed=7)
    expected = probability.predict_proba(pipe, X)
    R = scorer.encode_frame(X)
    got = scorer.proba(R)
    assert np.max(np.abs(got - expected)) <= TIGHT
    # The explaining shortcut (only what a changed feature touches is recomputed) is on and
    # agrees with scoring every version of every row in full.
    assert scorer._variants is not None
    t = R[np.arange(R.shape[1]) * 7 % len(R), np.arange(R.shape[1])]
    assert np.max(np.abs(scorer.variants(R, t) - scorer.stacked_variants(R, t))) <= TIGHT


@pytest.mark.parametrize(
    "name",
    ["blend", "lightgbm", "gradient_boosting", "random_forest", "lightgbm (target-encoded)"],
)
def test_drivers_match_the_pipeline_path(fitted, name):
    candidates, meta = fitted
    pipe = candidates[name]
    scorer = fastscore.compile_scorer(pipe, meta)
    X = fastscore.sample_frame(meta, 90, seed=3)  # over SHORTCUT_MIN_ROWS: both ways of explaining
    X = X.iloc[:, [meta["features"].index(c) for c in meta["features"]]]
    typical = explain.typical_values(X, meta["numeric"], meta["categorical"])
    p_ref, d_ref = explain.probability_and_deltas(pipe, X, typical)
    p, d = explain.probability_and_deltas(pipe, X, typical, scorer=scorer, chunk_rows=350)
    assert np.max(np.abs(p - p_ref)) <= TIGHT
    assert list(d.columns) == list(d_ref.columns)
    assert np.max(np.abs(d.to_numpy() - d_ref.to_numpy())) <= TIGHT
    # At the typical value the change is exactly zero, as on the pipeline path.
    assert ((d.to_numpy() == 0) == (d_ref.to_numpy() == 0)).all()


def test_forest_drivers_past_its_numpy_rows_match_the_pipeline_path(fitted):
    """Past FOREST_NUMPY_MAX_ROWS a forest's drivers come from scikit-learn's own predictions of
    the rows that change (the rest keep p): still the pipeline path's numbers."""
    candidates, meta = fitted
    pipe = candidates["random_forest"]
    scorer = fastscore.compile_scorer(pipe, meta)
    X = fastscore.sample_frame(meta, fastscore.FOREST_NUMPY_MAX_ROWS + 60, seed=13)
    typical = explain.typical_values(X, meta["numeric"], meta["categorical"])
    typical["flag"] = 0.0  # a value many rows hold: those rows skip the model
    p_ref, d_ref = explain.probability_and_deltas(pipe, X, typical)
    p, d = explain.probability_and_deltas(pipe, X, typical, scorer=scorer)
    assert np.max(np.abs(p - p_ref)) <= TIGHT
    assert np.max(np.abs(d.to_numpy() - d_ref.to_numpy())) <= TIGHT
    # No test of which deltas are exactly 0: the forest sums its trees on threads, in whatever
    # order they finish, so equal leaves can differ by ~1e-17 between two of its predictions.


def test_boosted_trees_are_read_as_leaf_masks(fitted):
    """The boosting families' trees (at most 64 leaves) are scored by leaf masks, not walked;
    the walk (kept for deeper trees) gives the same totals and explanations."""
    candidates, meta = fitted
    X = fastscore.sample_frame(meta, 500, seed=5)
    for name in ("lightgbm", "gradient_boosting", "lightgbm (target-encoded)"):
        scorer = fastscore.compile_scorer(candidates[name], meta)
        trees = _trees_of(scorer)
        assert trees.masks is not None, name
        R = scorer.encode_frame(X)
        t = R[np.arange(R.shape[1]) * 11 % len(R), np.arange(R.shape[1])]
        masked, masked_variants = scorer.proba(R), scorer.variants(R, t)
        trees.masks = None
        assert np.array_equal(scorer.proba(R), masked), name
        assert np.max(np.abs(scorer.variants(R, t) - masked_variants)) <= TIGHT, name
    forest = _trees_of(fastscore.compile_scorer(candidates["random_forest"], meta))
    assert forest.masks is None  # its trees have hundreds of leaves


def _trees_of(scorer):
    """The _Trees a single-model scorer's closures hold."""
    found = []

    def search(fn, depth=0):
        for cell in getattr(fn, "__closure__", None) or ():
            value = cell.cell_contents
            if isinstance(value, fastscore._Trees):
                found.append(value)
            elif callable(value) and depth < 4:
                search(value, depth + 1)

    search(scorer._proba)
    assert len(found) == 1
    return found[0]


def test_reasons_are_reason_text_per_row(fitted):
    """The reasons put each distinct value in words once; the words are formatting.reason_text's,
    row by row: numbers, money, months, levels, missing values, ties and small changes."""
    X = fastscore.sample_frame(fitted[1], 400, seed=9)
    X = X.rename(columns={"tenure": "tenure_months", "spend": "monthly_revenue"})
    rng = np.random.default_rng(4)
    deltas = pd.DataFrame(
        np.round(rng.normal(0, 0.05, size=X.shape), 3), index=X.index + 10, columns=X.columns
    )
    deltas.iloc[:40] = 0.0004  # below MIN_REASON_DELTA: no reason
    deltas.iloc[40:60, :3] = 0.02  # ties: column order
    got = explain.reasons_from_deltas(X.set_index(deltas.index), deltas, currency="EUR")
    values = deltas.to_numpy()
    for i in range(len(X)):
        expected = []
        for j in np.argsort(-values[i], kind="stable")[:3]:
            if values[i, j] < explain.MIN_REASON_DELTA:
                break
            f = X.columns[j]
            raw = X[f].to_numpy(dtype=object)[i]
            expected.append(formatting.reason_text(f, raw, values[i, j], "EUR"))
        expected += [""] * (3 - len(expected))
        assert got.iloc[i].tolist() == expected
    assert list(got.index) == list(deltas.index)
    assert (got.iloc[:40] == "").all().all()
    assert got["reason_1"].str.contains("missing").any()
    assert got["reason_1"].str.contains("EUR").any()


def test_records_and_frames_encode_alike(fitted):
    _, meta = fitted
    scorer = fastscore.compile_scorer(fitted[0]["logistic"], meta)
    records = [
        {"tenure": 3.0, "spend": 40.5, "flag": 1.0, "empty": None, "plan": "pro", "city": "city07"},
        {"tenure": None, "spend": 0.0, "flag": 0.0, "empty": None, "plan": None, "city": "nowhere"},
    ]
    R = scorer.encode_records(records)
    assert R[0].tolist()[:3] == [3.0, 40.5, 1.0]
    assert R[0, 4] == meta["feature_levels"]["plan"].index("pro")
    assert R[1, 5] == len(meta["feature_levels"]["city"])  # unseen, not missing
    assert np.isnan(R[1, 4])  # missing
    assert np.isnan(R[1, 0])
    frame = pd.DataFrame.from_records(records)
    for c in meta["categorical"]:
        frame[c] = frame[c].astype("category")
    assert np.array_equal(scorer.encode_frame(frame), R, equal_nan=True)


def test_an_unknown_part_falls_back_to_the_pipeline(fitted, caplog):
    X, y, meta = awkward(600)
    neighbours = Pipeline(
        [
            ("preprocess", build_preprocessor("linear", meta["numeric"], meta["categorical"])),
            ("model", KNeighborsClassifier()),
        ]
    )
    neighbours.fit(X, y)
    with caplog.at_level(logging.INFO, logger="analytics.model.fastscore"):
        assert fastscore.compile_scorer(neighbours, meta) is None
    assert "KNeighborsClassifier" in caplog.text


def test_a_mismatch_is_refused(fitted, monkeypatch, caplog):
    candidates, meta = fitted
    monkeypatch.setattr(fastscore, "_check", lambda *a: 0.01)
    with caplog.at_level(logging.WARNING, logger="analytics.model.fastscore"):
        assert fastscore.compile_scorer(candidates["logistic"], meta) is None
    assert "differs from the pipeline by 0.01" in caplog.text


def test_api_predictions_are_the_same_with_and_without_the_scorer(demo_workspace):
    model = demo_workspace.model
    assert model.scorer is not None
    schema = predict.input_schema(model.meta)
    frame = demo_workspace.scored.head(25)
    records = []
    for row in frame.to_dict("records"):
        clean, problems = predict.check_record(schema, {f: row[f] for f in schema})
        assert not problems
        records.append(clean)
    fast = predict.predict(model, records, margin=0.3, discount=0.01)
    model.__dict__["scorer"] = None  # the cached_property's slot: the pipeline path
    try:
        slow = predict.predict(model, records, margin=0.3, discount=0.01)
    finally:
        del model.__dict__["scorer"]
    assert len(fast) == len(slow) == 25
    for a, b in zip(fast, slow, strict=True):
        assert a.keys() == b.keys()
        assert a["risk_band"] == b["risk_band"]
        assert abs(a["probability"] - b["probability"]) <= 1e-4
        assert [d["feature"] for d in a["drivers"]] == [d["feature"] for d in b["drivers"]]


def test_telco_model_compiles(telco_workspace):
    model = telco_workspace.model
    assert model.scorer is not None
    X = fastscore.sample_frame(model.meta, 1000, seed=11)
    expected = probability.predict_proba(model.pipeline, X)
    assert np.max(np.abs(model.scorer.proba(model.scorer.encode_frame(X)) - expected)) <= TIGHT


def test_forest_numpy_walk_reads_values_as_scikit_learns_float32():
    """A value a hair above a threshold is at or below it in float32, which is what the trees
    compare: the fast walk (<= FOREST_NUMPY_MAX_ROWS rows) must send it the same way."""
    X, y, meta = awkward(1500)
    pipe = training.candidate_pipelines(meta["numeric"], meta["categorical"])["random_forest"]
    with threadpool_limits(1):
        pipe.fit(X, y)
    scorer = fastscore.compile_scorer(pipe, meta)
    assert scorer is not None
    forest, names = pipe[-1], list(pipe[0].get_feature_names_out())
    j = names.index("spend")
    cuts = np.unique(
        np.concatenate([e.tree_.threshold[e.tree_.feature == j] for e in forest.estimators_])
    )
    above = [x for x, t in zip(np.nextafter(cuts, np.inf), cuts, strict=True) if np.float32(x) <= t]
    assert len(above) >= 10
    rows = X.iloc[: min(len(above), fastscore.FOREST_NUMPY_MAX_ROWS)].copy()
    rows["spend"] = above[: len(rows)]
    typical = explain.typical_values(X, meta["numeric"], meta["categorical"])
    p, deltas = scorer.probability_and_deltas(scorer.encode_frame(rows), typical)
    np.testing.assert_allclose(p, probability.predict_proba(pipe, rows), atol=fastscore.TOLERANCE)
    _, slow = explain.probability_and_deltas(pipe, rows, typical)
    np.testing.assert_allclose(deltas, slow.to_numpy(), atol=1e-9)
