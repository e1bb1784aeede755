"""The fitted churn pipeline re-expressed as numpy operations, for scoring a few rows fast.

Why: every scikit-learn call validates its input, and a ColumnTransformer splits a pandas
frame per transformer: 8 to 60 ms of fixed cost per call whatever the row count. One API
prediction with its drivers is a single call on 1 + k rows, so that fixed cost was nearly all
of its time. Here the same arithmetic runs on one float matrix in well under a millisecond.

Input: one float matrix, a column per model feature in meta["features"] order: the number
(NaN = missing) for numeric features; for categorical ones the level's index in
meta["feature_levels"], len(levels) for a level the model never saw, NaN for missing (the
encoders treat unseen and missing differently).

compile_scorer() knows exactly the parts analytics.model.features and analytics.model.train build:
ColumnTransformers of per-column encoders (categorical blocks are tabulated by running the
fitted encoder itself on every level), SimpleImputer, StandardScaler, SplineTransformer,
passthrough, LogisticRegression, HistGradientBoostingClassifier (trees flattened from its
fitted predictors), RandomForestClassifier (its trees' public tree_ arrays), LightGBM (its
dumped trees) and soft VotingClassifier or analytics.model.search.Blend. It returns None when
the pipeline has any other part, or when its probabilities differ from the pipeline's own on
a random sample of rows by more than TOLERANCE: callers then keep using the pipeline, so a
future scikit-learn that changes a detail costs speed, never correctness.

Explaining (p with each feature in turn at its typical value) has a shortcut, checked the same
way: a linear model moves by that feature's share of the logit; a tree can only change its
answer for a row whose path read that feature.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import lightgbm
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OrdinalEncoder,
    SplineTransformer,
    StandardScaler,
)
from threadpoolctl import threadpool_limits

from analytics.model.search import Blend

log = logging.getLogger(__name__)

TOLERANCE = 1e-9  # max |p_fast - p_pipeline| accepted at compile time
CHECK_ROWS = 400  # random rows compared with the pipeline at compile time
UNSEEN = "\x00unseen level"  # stands for any level the model never saw
CHUNK_ROWS = 200_000  # stacked rows per scoring pass when explaining (bounds memory) ...
# ... and stacked cells, rows x feature columns: rows alone do not bound a wide table (200,000
# rows of 3,000 columns are 4.8 GB before encoding, several times that after). Above the rows
# bound only past 20 features, so the product's own tables keep their chunks.
CHUNK_CELLS = 4_000_000
# Below this many rows, scoring all k + 1 versions of each row in full is quicker than the
# per-feature bookkeeping of the shortcut (measured: crossover near 30 rows).
SHORTCUT_MIN_ROWS = 32
TREE_BLOCK_ROWS = 8_192  # rows per tree traversal (its temporaries are rows x trees)
SCORING_THREADS = min(2, os.cpu_count() or 1)  # chunks scored at once when explaining
MASK_BLOCK_CELLS = 1 << 16  # (row, tree) pairs per block of leaf masks: arrays of 256 KB (uint32)
# Random forests grow deep trees: past this many rows scikit-learn's compiled walk is quicker.
FOREST_NUMPY_MAX_ROWS = 256

Matrix = np.ndarray  # (rows, columns) float64
Proba = Callable[[Matrix], np.ndarray]
# (R, t) -> (k + 1, n): p for every row, then for every row with raw feature j set to t[j].
Variants = Callable[[Matrix, np.ndarray], Matrix]
# Per raw feature: the columns of a transformer's output that depend on it (and on nothing else).
Deps = list[np.ndarray]


def stacked_rows(columns: int, chunk_rows: int = CHUNK_ROWS) -> int:
    """Rows of `columns` values one scoring pass may stack: within chunk_rows and CHUNK_CELLS."""
    return max(1, min(chunk_rows, CHUNK_CELLS // max(columns, 1)))


class Unsupported(Exception):
    """The pipeline has a part this module does not reproduce."""


class FastScorer:
    """p(churn) for rows given as the float matrix described in the module docstring."""

    def __init__(
        self,
        features: Sequence[str],
        levels: Mapping[str, Sequence[str]],
        proba: Proba,
        variants: Variants | None = None,
    ):
        self.features = list(features)
        self.levels = {f: list(v) for f, v in levels.items() if f in self.features}
        self._index = {f: {lv: i for i, lv in enumerate(v)} for f, v in self.levels.items()}
        self._proba = proba
        self._variants = variants

    def proba(self, R: Matrix) -> np.ndarray:
        return self._proba(np.asarray(R, dtype="float64"))

    # ------------------------------------------------------------------ encoding

    def encode_records(self, records: Sequence[Mapping]) -> Matrix:
        """Checked records (feature -> number or level) -> matrix."""
        R = np.full((len(records), len(self.features)), np.nan)
        for j, f in enumerate(self.features):
            index = self._index.get(f)
            for i, record in enumerate(records):
                v = record.get(f)
                if v is None:
                    continue
                if index is None:
                    R[i, j] = float(v)
                else:
                    R[i, j] = index.get(str(v), len(index))
        return R

    def encode_frame(self, X: pd.DataFrame) -> Matrix:
        """Model input frame (analytics.model.predict.records_frame dtypes) -> matrix."""
        R = np.empty((len(X), len(self.features)))
        for j, f in enumerate(self.features):
            s = X[f]
            if f not in self.levels:
                R[:, j] = s.to_numpy(dtype="float64", na_value=np.nan)
                continue
            if not isinstance(s.dtype, pd.CategoricalDtype):
                s = s.astype("category")
            codes = s.cat.codes.to_numpy()
            # The frame's own levels -> the model's level index (len(index): unseen).
            index = self._index[f]
            lookup = np.array(
                [index.get(str(c), len(index)) for c in s.cat.categories] + [np.nan],
                dtype="float64",
            )
            R[:, j] = lookup[codes]  # code -1 (missing) picks the trailing NaN
        return R

    def encode_value(self, feature: str, value) -> float:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return np.nan
        if feature in self.levels:
            index = self._index[feature]
            return float(index.get(str(value), len(index)))
        return float(value)

    # ------------------------------------------------------------------ drivers

    def probability_and_deltas(
        self, R: Matrix, typical: Mapping, *, chunk_rows: int = CHUNK_ROWS
    ) -> tuple[np.ndarray, Matrix]:
        """p per row, and per row and feature p - p(feature set to its typical value).

        Same definition as analytics.model.explain.probability_and_deltas; rows already at the
        typical value get exactly 0. At most ~stacked_rows(k, chunk_rows) stacked rows at a time
        bound the memory.
        """
        n, k = R.shape
        t = np.array([self.encode_value(f, typical.get(f)) for f in self.features])
        p, deltas = np.empty(n), np.empty((n, k))
        step = max(1, stacked_rows(k, chunk_rows) // (k + 1))

        def one(start: int) -> None:
            part = slice(start, start + step)
            p[part], deltas[part] = self._deltas(R[part], t)

        starts = range(0, n, step)
        if len(starts) == 1 or SCORING_THREADS == 1:
            for start in starts:
                one(start)
            return p, deltas
        # Chunks two at a time: numpy's arithmetic releases the GIL, so a second thread uses the
        # second core (1,000,000 customers: 1.7x). One BLAS thread each, not two apiece.
        with threadpool_limits(limits=1), ThreadPoolExecutor(SCORING_THREADS) as pool:
            list(pool.map(one, starts))
        return p, deltas

    def variants(self, R: Matrix, t: np.ndarray) -> Matrix:
        """(k + 1, n): p of every row, then of every row with feature j set to t[j]."""
        if self._variants is not None and len(R) >= SHORTCUT_MIN_ROWS:
            return self._variants(np.asarray(R, dtype="float64"), t)
        return self.stacked_variants(R, t)

    def stacked_variants(self, R: Matrix, t: np.ndarray) -> Matrix:
        """variants() the plain way: all k + 1 versions of every row scored in full."""
        n, k = R.shape
        stacked = np.tile(R, (k + 1, 1))
        for j in range(k):
            stacked[(j + 1) * n : (j + 2) * n, j] = t[j]
        return self.proba(stacked).reshape(k + 1, n)

    def _deltas(self, R: Matrix, t: np.ndarray) -> tuple[np.ndarray, Matrix]:
        p = self.variants(R, t)
        base = p[0]
        deltas = base[:, None] - p[1:].T
        same = np.equal(R, t) | (np.isnan(R) & np.isnan(t))
        deltas[same] = 0.0
        return base, deltas


# ---------------------------------------------------------------------- compiling


def compile_scorer(pipeline, meta: Mapping, *, seed: int = 0) -> FastScorer | None:
    """A checked FastScorer for `pipeline`, or None (logged) when it cannot be reproduced."""
    features = list(meta["features"])
    levels = {f: list(meta.get("feature_levels", {}).get(f, [])) for f in meta["categorical"]}
    try:
        proba, variants = _estimator(pipeline, features, levels)
        scorer = FastScorer(features, levels, proba)
        worst = _check(scorer, pipeline, meta, seed)
        if worst <= TOLERANCE:
            scorer = _with_variants(scorer, variants, meta, seed)
    except Unsupported as exc:
        log.info("fast scoring off (the pipeline scores with its own library's predict): %s", exc)
        return None
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        # A scikit-learn whose fitted attributes differ from the ones read here.
        log.warning(
            "fast scoring off: could not compile the pipeline (%s: %s)", type(exc).__name__, exc
        )
        return None
    if not worst <= TOLERANCE:
        log.warning("fast scoring off: it differs from the pipeline by %.3g", worst)
        return None
    return scorer


def sample_frame(meta: Mapping, rows: int, seed: int = 0) -> pd.DataFrame:
    """Random rows in the model's ranges (and a little past them) and levels, ~10 % missing and
    ~5 % unseen levels, with the dtypes records_frame builds."""
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for f in meta["features"]:
        if f in meta["categorical"]:
            levels = list(meta.get("feature_levels", {}).get(f, []))
            codes = rng.integers(0, len(levels), size=rows) if levels else np.full(rows, -1)
            codes[rng.random(rows) < 0.05] = len(levels)
            codes[rng.random(rows) < 0.1] = -1
            data[f] = pd.Categorical.from_codes(codes, categories=[*levels, UNSEEN])
        else:
            low, high = meta.get("feature_ranges", {}).get(f, (0.0, 1.0))
            low, high = float(low), float(high)
            # Slightly past both ends: extrapolation must match too.
            span = (high - low) or 1.0
            x = rng.uniform(low - 0.1 * span, high + 0.1 * span, size=rows)
            whole = rng.random(rows) < 0.5  # counts and flags: exact knot/threshold values
            x[whole] = np.round(x[whole])
            x[rng.random(rows) < 0.1] = np.nan
            data[f] = x
    return pd.DataFrame(data)


def _with_variants(scorer: FastScorer, variants, meta: Mapping, seed: int) -> FastScorer:
    """The scorer with its shortcut for explaining (only what a changed feature touches is
    recomputed) when that agrees with scoring every version of the rows in full."""
    if variants is None:
        return scorer
    X = sample_frame(meta, 64, seed + 1)
    R = scorer.encode_frame(X)
    t = R[np.arange(R.shape[1]) % len(R), np.arange(R.shape[1])]  # a value of each feature
    worst = float(np.max(np.abs(variants(R, t) - scorer.stacked_variants(R, t))))
    if not worst <= TOLERANCE:
        log.warning("fast explanations off: they differ from full scoring by %.3g", worst)
        return scorer
    return FastScorer(scorer.features, scorer.levels, scorer._proba, variants)


def _check(scorer: FastScorer, pipeline, meta: Mapping, seed: int) -> float:
    X = sample_frame(meta, CHECK_ROWS, seed)
    with threadpool_limits(limits=1):  # OpenMP threads spin-wait on small inputs
        expected = pipeline.predict_proba(X)[:, list(pipeline.classes_).index(1)]
    R = scorer.encode_frame(X)
    # In blocks a forest scores with its own numpy walk (larger inputs go to scikit-learn's,
    # which needs no check): that walk is what must agree.
    step = FOREST_NUMPY_MAX_ROWS
    got = np.concatenate([scorer.proba(R[i : i + step]) for i in range(0, len(R), step)] or [[]])
    return float(np.max(np.abs(got - expected))) if len(X) else 0.0


def _estimator(est, features: list[str], levels: Mapping) -> tuple[Proba, Variants | None]:
    """R -> p(class 1) for a fitted estimator or pipeline, and its explaining shortcut."""
    if list(getattr(est, "classes_", [])) != [0, 1]:
        raise Unsupported(f"{type(est).__name__} does not have classes [0, 1]")
    if isinstance(est, Pipeline):
        *pre, (_, last) = est.steps
        if not pre:
            return _estimator(last, features, levels)
        if len(pre) != 1:
            raise Unsupported("a pipeline other than ColumnTransformer -> model")
        transform, names, deps, native = _transformer(pre[0][1], features, levels)
        model, model_variants = _model(last, names, native)

        def variants(R: Matrix, t: np.ndarray) -> Matrix:
            return model_variants(transform(R), transform(t[None, :]), deps)

        usable = deps is not None and model_variants is not None
        return (lambda R: model(transform(R))), (variants if usable else None)
    if isinstance(est, VotingClassifier | Blend):
        if isinstance(est, VotingClassifier) and (est.voting != "soft" or est.weights is not None):
            raise Unsupported("a VotingClassifier other than soft, unweighted")
        parts = [_estimator(e, features, levels) for e in est.estimators_]

        def mean_variants(R: Matrix, t: np.ndarray) -> Matrix:
            return np.mean([v(R, t) for _, v in parts], axis=0)

        usable = all(v is not None for _, v in parts)
        return (lambda R: np.mean([p(R) for p, _ in parts], axis=0)), (
            mean_variants if usable else None
        )
    raise Unsupported(f"{type(est).__name__} without preprocessing")


def _model(model, columns: list[str], native: Mapping):
    """Z (the preprocessor's output) -> p(class 1), and (Z, Z of the typical row, deps) ->
    variants."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None and list(names) != columns:
        raise Unsupported("the model's input columns differ from the preprocessor's output")
    if list(model.classes_) != [0, 1]:
        raise Unsupported("a model whose classes are not [0, 1]")
    if isinstance(model, LogisticRegression):
        coef = model.coef_.reshape(-1).astype("float64")
        intercept = float(np.ravel(model.intercept_)[0])
        if model.coef_.shape[0] != 1:
            raise Unsupported("a logistic regression with more than one row of coefficients")

        def variants(Z: Matrix, Zt: Matrix, deps: Deps) -> Matrix:
            # Linear: swapping a feature's columns moves the logit by their share of it.
            logit = Z @ coef + intercept
            out = [logit]
            for cols in deps:
                if len(cols):
                    out.append(logit + (Zt[0, cols] - Z[:, cols]) @ coef[cols])
                else:
                    out.append(logit)
            return expit(np.vstack(out))

        return (lambda Z: expit(Z @ coef + intercept)), variants
    if isinstance(model, HistGradientBoostingClassifier):
        return _forest(model)
    if isinstance(model, RandomForestClassifier):
        return _random_forest(model, columns)
    if isinstance(model, lightgbm.LGBMClassifier):
        return _lightgbm(model, columns, native)
    raise Unsupported(f"model {type(model).__name__}")


# ---------------------------------------------------------------------- preprocessing


def _transformer(ct, features: list[str], levels: Mapping):
    """A fitted ColumnTransformer -> (R -> Z, output column names, deps per raw feature, the
    output columns that are categories passed through -> their levels)."""
    if not isinstance(ct, ColumnTransformer):
        raise Unsupported(f"preprocessing step {type(ct).__name__}")
    names = [str(n) for n in ct.get_feature_names_out()]
    width = len(names)
    blocks = []
    deps: list[list[int]] = [[] for _ in features]
    native: dict[str, list[str]] = {}  # output column -> levels, for categories passed through
    for name, trans, cols in ct.transformers_:
        out = ct.output_indices_[name]
        if trans == "drop" or out.stop == out.start:
            continue
        cols = list(cols)
        if any(c not in features for c in cols):
            raise Unsupported(f"transformer {name!r} reads columns that are not model features")
        where = [features.index(c) for c in cols]
        passthrough = trans == "passthrough" or (
            isinstance(trans, FunctionTransformer) and trans.func is None
        )
        if passthrough and all(c in levels for c in cols):
            # Categories handed to the model as they are (LightGBM): the level's index.
            fn, block_deps = (lambda X: X), [np.array([i]) for i in range(len(cols))]
            native.update({names[out.start + i]: list(levels[c]) for i, c in enumerate(cols)})
        elif all(c in levels for c in cols):
            fn, block_deps = _tabulated(trans, cols, levels, out.stop - out.start)
        elif not any(c in levels for c in cols):
            fn, block_deps = _numeric(trans, len(cols))
        else:
            raise Unsupported(f"transformer {name!r} mixes numeric and categorical columns")
        blocks.append((out, where, fn))
        for j, columns in zip(where, block_deps, strict=True):
            deps[j] += [out.start + int(c) for c in columns]

    def transform(R: Matrix) -> Matrix:
        Z = np.empty((len(R), width))
        for out, where, fn in blocks:
            Z[:, out] = fn(R[:, where])
        return Z

    return transform, names, [np.asarray(sorted(d), dtype=int) for d in deps], native


def _numeric(trans, width: int) -> tuple[Callable[[Matrix], Matrix], Deps]:
    """Column-wise numeric steps -> (function, output columns per input column)."""
    steps = trans.steps if isinstance(trans, Pipeline) else [(None, trans)]
    fns = []
    deps = [np.array([i]) for i in range(width)]
    for _, step in steps:
        fn, step_deps = _numeric_step(step, width)
        fns.append(fn)
        deps = [
            np.unique(np.concatenate([step_deps[c] for c in d] or [[]])).astype(int) for d in deps
        ]
        width = 1 + max((int(c.max()) for c in step_deps if len(c)), default=-1)

    def run(X: Matrix) -> Matrix:
        for fn in fns:
            X = fn(X)
        return X

    return run, deps


def _numeric_step(step, width: int) -> tuple[Callable[[Matrix], Matrix], Deps]:
    same = [np.array([i]) for i in range(width)]
    if step == "passthrough" or (isinstance(step, FunctionTransformer) and step.func is None):
        return (lambda X: X), same
    if isinstance(step, SimpleImputer):
        missing = step.missing_values
        stats = np.asarray(step.statistics_, dtype="float64")
        if not (isinstance(missing, float) and np.isnan(missing)) or np.isnan(stats).any():
            raise Unsupported("a SimpleImputer other than NaN -> a finite statistic")
        indicator = step.indicator_ if step.add_indicator else None
        flagged = np.asarray(indicator.features_, dtype=int) if indicator is not None else None

        def impute(X: Matrix) -> Matrix:
            gaps = np.isnan(X)
            filled = np.where(gaps, stats, X)
            return filled if flagged is None else np.hstack([filled, gaps[:, flagged]])

        extra = [] if flagged is None else list(flagged)
        deps = [
            np.array([i] + [width + q for q, f in enumerate(extra) if f == i]) for i in range(width)
        ]
        return impute, deps
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standardise(X: Matrix) -> Matrix:
            if mean is not None:
                X = X - mean
            return X / scale if scale is not None else X

        return standardise, same
    if isinstance(step, SplineTransformer):
        return _spline(step)
    raise Unsupported(f"numeric step {type(step).__name__}")


def _spline(step: SplineTransformer) -> tuple[Callable[[Matrix], Matrix], Deps]:
    """SplineTransformer.transform for dense output and constant extrapolation."""
    if step.extrapolation != "constant" or step.sparse_output:
        raise Unsupported("a SplineTransformer other than dense with constant extrapolation")
    degree = step.degree
    splines = step.bsplines_
    n_splines = splines[0].c.shape[1]
    bounds = [(s.t[degree], s.t[-degree - 1]) for s in splines]
    edges = [(s(lo), s(hi)) for s, (lo, hi) in zip(splines, bounds, strict=True)]
    keep = (
        None
        if step.include_bias
        else [j for j in range(n_splines * len(splines)) if (j + 1) % n_splines != 0]
    )

    def transform(X: Matrix) -> Matrix:
        out = np.zeros((len(X), n_splines * len(splines)))
        for i, (spl, (lo, hi), (f_lo, f_hi)) in enumerate(zip(splines, bounds, edges, strict=True)):
            x = X[:, i]
            block = out[:, i * n_splines : (i + 1) * n_splines]
            inside = (lo <= x) & (x <= hi)
            if inside.any():
                block[inside] = spl(x[inside])
            below, above = x < lo, x > hi
            block[below, :degree] = f_lo[:degree]
            block[above, n_splines - degree :] = f_hi[n_splines - degree :]
        return out if keep is None else out[:, keep]

    columns = np.arange(n_splines * len(splines))
    position = columns if keep is None else np.full(len(columns), -1)
    if keep is not None:
        position[keep] = np.arange(len(keep))
    deps = []
    for i in range(len(splines)):
        block = position[i * n_splines : (i + 1) * n_splines]
        deps.append(block[block >= 0])
    return transform, deps


def _groups(sizes: Sequence[int], most: int) -> list[list[int]]:
    """Consecutive indices of `sizes` in groups whose sizes add up to at most `most` (a size
    larger than that alone)."""
    groups: list[list[int]] = [[]]
    total = 0
    for j, size in enumerate(sizes):
        if groups[-1] and total + size > most:
            groups.append([])
            total = 0
        groups[-1].append(j)
        total += size
    return groups


def _tabulated(
    trans, cols: list[str], levels: Mapping, width: int
) -> tuple[Callable[[Matrix], Matrix], Deps]:
    """A per-column categorical encoder as lookup tables, built by running the fitted encoder
    itself on every level (and missing) of every column: exact for whatever it does with rare,
    infrequent or unknown levels.

    Each input column must drive its own output columns (true of one-hot and ordinal encoders);
    the random-row check in compile_scorer catches any encoder where that does not hold.
    """
    sizes = [len(levels[c]) + 1 for c in cols]  # codes: every level, then unseen
    categories = [[*levels[c], UNSEEN] for c in cols]

    def encoded(codes: np.ndarray) -> Matrix:
        frame = pd.DataFrame(
            {
                c: pd.Categorical.from_codes(codes[:, j], categories=categories[j])
                for j, c in enumerate(cols)
            }
        )
        out = trans.transform(frame)
        out = np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out, dtype="float64")
        if out.shape != (len(codes), width):
            raise Unsupported(f"an encoder produced {out.shape[1]} columns, expected {width}")
        return out

    reference = encoded(np.full((1, len(cols)), -1))[0]  # every column missing
    tables, owned = [], np.zeros(width, dtype=bool)
    # Per column, each of its codes with the other columns missing: a row per level of every
    # column, each row as wide as all of them, so many wide categoricals are encoded a group of
    # columns at a time within CHUNK_CELLS (at once, 5,000 of them needed gigabytes).
    for group in _groups(sizes, max(1, CHUNK_CELLS // len(cols))):
        codes = np.full((sum(sizes[j] for j in group), len(cols)), -1, dtype=np.int32)
        starts = np.cumsum([0] + [sizes[j] for j in group])
        for j, start in zip(group, starts, strict=False):
            codes[start : start + sizes[j], j] = np.arange(sizes[j])
        out = encoded(codes)
        for j, start in zip(group, starts, strict=False):
            block = np.vstack([out[start : start + sizes[j]], reference])  # last code: missing
            same = (block == reference) | (np.isnan(block) & np.isnan(reference))
            differs = ~np.all(same, axis=0)
            if (owned & differs).any():
                raise Unsupported("an encoder whose output columns depend on several inputs")
            owned |= differs
            tables.append((np.flatnonzero(differs), block[:, differs]))

    def transform(X: Matrix) -> Matrix:
        Z = np.tile(reference, (len(X), 1))
        for j, (columns, table) in enumerate(tables):
            if len(columns):
                x = X[:, j]
                idx = np.where(np.isnan(x), len(table) - 1, np.nan_to_num(x, nan=0)).astype(int)
                Z[:, columns] = table[idx]
        return Z

    return transform, [columns for columns, _ in tables]


# ---------------------------------------------------------------------- gradient boosting


def _forest(model: HistGradientBoostingClassifier):
    """A binary HistGradientBoostingClassifier: (Z -> p, variants).

    Reads the fitted predictors (private attributes, hence the compile-time check): per node
    the split feature, threshold, missing direction, children, leaf value and, for categorical
    splits, the bitset of levels that go left. A categorical value the trees never saw follows
    the missing direction, as scikit-learn's own predictor does.
    """
    encode, moved = _hgb_encoder(getattr(model, "_preprocessor", None), model.n_features_in_)
    if any(len(trees) != 1 for trees in model._predictors):
        raise Unsupported("a multi-class HistGradientBoostingClassifier")
    predictors = [trees[0] for trees in model._predictors]
    if not predictors:
        raise Unsupported("a gradient boosting model without trees")
    n_features = model.n_features_in_
    is_cat_feature = (
        np.zeros(n_features, dtype=bool)
        if model.is_categorical_ is None
        else np.asarray(model.is_categorical_, dtype=bool)
    )
    nodes = np.concatenate([pred.nodes for pred in predictors])
    sizes = [len(pred.nodes) for pred in predictors]
    bitsets = []
    for pred in predictors:
        bits = np.asarray(pred.raw_left_cat_bitsets)
        bitsets.append(bits.reshape(-1, 8) if bits.size else np.zeros((0, 8)))
    bit_shift = np.repeat(np.cumsum([0] + [len(b) for b in bitsets[:-1]]), sizes)
    shift = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
    is_cat = nodes["is_categorical"].astype(bool)
    is_leaf = nodes["is_leaf"].astype(bool)
    feature = nodes["feature_idx"].astype(np.int64)
    if is_cat.any() and not is_cat_feature[feature[is_cat & ~is_leaf]].all():
        raise Unsupported("a categorical split on a numeric feature")
    trees = _Trees(
        roots=np.cumsum([0, *sizes[:-1]]),
        feature=feature,
        threshold=nodes["num_threshold"].astype("float64"),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=nodes["left"].astype(np.int64) + shift,
        right=nodes["right"].astype(np.int64) + shift,
        is_leaf=is_leaf,
        value=nodes["value"].astype("float64"),
        n_features=n_features,
        categorical=(
            is_cat,
            nodes["bitset_idx"].astype(np.int64) + bit_shift,
            np.concatenate(bitsets).astype(np.uint32),
            np.asarray(model._bin_mapper.make_known_categories_bitsets()[0], dtype=np.uint32),
            np.cumsum(is_cat_feature) - 1,  # feature -> row of the known-levels bitsets
        ),
    )
    baseline = float(np.ravel(model._baseline_prediction)[0])

    def finish(total: np.ndarray) -> np.ndarray:
        return expit(baseline + total)

    def proba(Z: Matrix) -> np.ndarray:
        return trees.proba(encode(Z), finish)

    def variants(Z: Matrix, Zt: Matrix, deps: Deps) -> Matrix:
        return trees.variants(encode(Z), encode(Zt), [moved(c) for c in deps], finish)

    return proba, (variants if n_features <= 64 else None)


def _random_forest(model: RandomForestClassifier, columns: list[str]):
    """A binary RandomForestClassifier, from each fitted tree's public tree_ arrays: the mean
    over trees of the churn share in the leaf a row reaches.

    Small inputs only: on thousands of rows scikit-learn's own compiled, multi-threaded walk
    through deep trees is quicker, so proba() hands those to it.
    """
    if getattr(model, "n_outputs_", 1) != 1 or len(model.classes_) != 2:
        raise Unsupported("a random forest other than single-output binary")
    sizes, parts = [], []
    for est in model.estimators_:
        t = est.tree_
        value = np.asarray(t.value)[:, 0, :]
        share = value[:, 1] / np.where(value.sum(axis=1) > 0, value.sum(axis=1), 1)
        parts.append((t, share))
        sizes.append(t.node_count)
    shift = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
    left = np.concatenate([t.children_left for t, _ in parts]).astype(np.int64)
    right = np.concatenate([t.children_right for t, _ in parts]).astype(np.int64)
    is_leaf = left == -1
    missing = [getattr(t, "missing_go_to_left", None) for t, _ in parts]
    if any(m is None for m in missing):
        raise Unsupported("trees without a missing-value direction")
    trees = _Trees(
        roots=np.cumsum([0, *sizes[:-1]]),
        feature=np.where(is_leaf, 0, np.concatenate([t.feature for t, _ in parts])).astype(
            np.int64
        ),
        threshold=np.concatenate([t.threshold for t, _ in parts]).astype("float64"),
        missing_left=np.concatenate(missing).astype(bool),
        left=np.where(is_leaf, 0, left + shift),
        right=np.where(is_leaf, 0, right + shift),
        is_leaf=is_leaf,
        value=np.concatenate([share for _, share in parts]),
        n_features=model.n_features_in_,
    )
    n_trees = len(parts)

    def finish(total: np.ndarray) -> np.ndarray:
        return total / n_trees

    def as_sklearn(Z: Matrix) -> Matrix:
        # scikit-learn's trees compare their float32 input with float64 thresholds: a value
        # within float32 rounding of a threshold goes the other way in float64.
        return Z.astype(np.float32).astype("float64")

    def proba(Z: Matrix) -> np.ndarray:
        if len(Z) > FOREST_NUMPY_MAX_ROWS:
            with threadpool_limits(limits=1):
                frame = pd.DataFrame(Z, columns=columns)
                return model.predict_proba(frame)[:, list(model.classes_).index(1)]
        return trees.proba(as_sklearn(Z), finish)

    # Per column, the thresholds of every tree: values between the same two decide alike.
    internal = ~trees.is_leaf
    cuts = {
        int(c): np.unique(trees.threshold[internal & (trees.feature == c)])
        for c in np.unique(trees.feature[internal])
    }

    def bins(c: int, x: np.ndarray) -> np.ndarray:
        x = as_sklearn(x)
        return np.where(np.isnan(x), -1, np.searchsorted(cuts[c], x, side="left"))

    def variants(Z: Matrix, Zt: Matrix, deps: Deps) -> Matrix:
        if len(Z) <= FOREST_NUMPY_MAX_ROWS:
            return trees.variants(as_sklearn(Z), as_sklearn(Zt), deps, finish)
        # Deep trees (hundreds of leaves) are walked fastest by scikit-learn itself: every row
        # with a feature's columns at the typical values, except the rows already between the
        # same thresholds as those values (same leaves, same p).
        # One prediction for all of them: each call has a fixed cost (threads, checks).
        changed, where = [Z], [(0, slice(None))]
        for j, cols in enumerate(deps, start=1):
            cols = [int(c) for c in cols if int(c) in cuts]
            differs = np.zeros(len(Z), dtype=bool)
            for c in cols:
                differs |= bins(c, Z[:, c]) != bins(c, Zt[0, [c]])[0]
            rows = np.flatnonzero(differs)
            if rows.size:
                changed.append(Z[rows])
                changed[-1][:, cols] = Zt[0, cols]
                where.append((j, rows))
        p = proba(np.vstack(changed))
        out = np.empty((len(deps) + 1, len(Z)))
        out[:] = p[: len(Z)]
        start = 0
        for (j, rows), part in zip(where, changed, strict=True):
            out[j, rows] = p[start : start + len(part)]
            start += len(part)
        return out

    return proba, (variants if model.n_features_in_ <= 64 else None)


def _lightgbm(model: lightgbm.LGBMClassifier, columns: list[str], native: Mapping):
    """A binary LightGBM classifier from its dumped trees: p = sigmoid(sum of leaf values).

    Its decisions (LightGBM's tree.h): a number goes left when <= threshold; NaN takes the
    node's default side when the node learned one (missing type NaN), else counts as 0. A
    category goes left when its code is in the node's set; NaN (missing, or a level unseen in
    training) goes right. Categories arrive as the index of the level in
    the model's levels (meta), mapped here to LightGBM's own codes (its training categories).
    """
    booster = model.booster_
    dump = booster.dump_model()
    if dump.get("num_class", 1) != 1 or dump.get("objective", "").split()[0] != "binary":
        raise Unsupported("a LightGBM model other than binary")
    if "sigmoid:1" not in dump.get("objective", "") or dump.get("average_output"):
        raise Unsupported("a LightGBM model whose output is not a plain sigmoid of the sum")
    if list(dump["feature_names"]) != columns:
        raise Unsupported("LightGBM's features differ from the preprocessor's output")
    n_features = len(columns)
    # pandas categories at fit time, in the order of the categorical columns.
    pandas_categorical = booster.pandas_categorical or []
    cat_names = [c for c in columns if c in native]
    if len(pandas_categorical) != len(cat_names):
        raise Unsupported("LightGBM's categorical columns differ from the model's categories")
    remap = {}
    for name, known in zip(cat_names, pandas_categorical, strict=True):
        position = {str(v): i for i, v in enumerate(known)}
        table = [position.get(str(v), np.nan) for v in native[name]]
        remap[columns.index(name)] = np.array([*table, np.nan], dtype="float64")  # unseen: NaN

    feature, threshold, missing_left, left, right, is_leaf, value = [], [], [], [], [], [], []
    is_cat, bitset_rows, bitsets, roots = [], [], [], []

    def add(node) -> int:
        i = len(feature)
        for target in (feature, threshold, missing_left, left, right, is_leaf, value):
            target.append(0)
        is_cat.append(False)
        bitset_rows.append(0)
        if "leaf_value" in node:
            is_leaf[i], value[i] = True, float(node["leaf_value"])
            return i
        f = int(node["split_feature"])
        missing = node.get("missing_type", "None")
        if missing not in ("None", "NaN"):
            raise Unsupported(f"a LightGBM split with missing type {missing}")
        feature[i] = f
        if node["decision_type"] == "==":
            codes = [int(c) for c in str(node["threshold"]).split("||")]
            if max(codes) >= 256:
                raise Unsupported("a LightGBM categorical split past 256 levels")
            bits = np.zeros(8, dtype=np.uint32)
            for c in codes:
                bits[c // 32] |= np.uint32(1 << (c % 32))
            is_cat[i], bitset_rows[i] = True, len(bitsets)
            bitsets.append(bits)
            missing_left[i] = False  # NaN (missing or unseen) always goes right
        elif node["decision_type"] == "<=":
            threshold[i] = float(node["threshold"])
            missing_left[i] = bool(node["default_left"]) if missing == "NaN" else threshold[i] >= 0
        else:
            raise Unsupported(f"a LightGBM decision {node['decision_type']}")
        left[i] = add(node["left_child"])
        right[i] = add(node["right_child"])
        return i

    for tree in dump["tree_info"]:
        roots.append(add(tree["tree_structure"]))
    if not roots:
        raise Unsupported("a LightGBM model without trees")
    is_cat_arr = np.asarray(is_cat, dtype=bool)
    trees = _Trees(
        roots=roots,
        feature=np.asarray(feature, dtype=np.int64),
        threshold=np.asarray(threshold, dtype="float64"),
        missing_left=np.asarray(missing_left, dtype=bool),
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        is_leaf=np.asarray(is_leaf, dtype=bool),
        value=np.asarray(value, dtype="float64"),
        n_features=n_features,
        categorical=(
            is_cat_arr,
            np.asarray(bitset_rows, dtype=np.int64),
            np.asarray(bitsets, dtype=np.uint32).reshape(-1, 8),
            np.full((1, 8), np.iinfo(np.uint32).max, dtype=np.uint32),  # every code is known
            np.zeros(n_features, dtype=np.int64),
        ),
    )

    def encode(Z: Matrix) -> Matrix:
        if not remap:
            return Z
        Z = Z.copy()
        for j, table in remap.items():
            x = Z[:, j]
            idx = np.where(
                np.isnan(x), len(table) - 1, np.clip(np.nan_to_num(x), 0, len(table) - 1)
            )
            Z[:, j] = table[idx.astype(int)]
        return Z

    def finish(total: np.ndarray) -> np.ndarray:
        return expit(total)

    def proba(Z: Matrix) -> np.ndarray:
        return trees.proba(encode(Z), finish)

    def variants(Z: Matrix, Zt: Matrix, deps: Deps) -> Matrix:
        return trees.variants(encode(Z), encode(Zt), deps, finish)

    return proba, (variants if n_features <= 64 else None)


class _Trees:
    """Many binary trees in flat node arrays (children as global node ids), walked for all
    (row, tree) pairs at once; a row's total is the sum of its leaf values over the trees."""

    def __init__(
        self,
        *,
        roots,
        feature,
        threshold,
        missing_left,
        left,
        right,
        is_leaf,
        value,
        n_features: int,
        categorical=None,
    ):
        self.roots = np.asarray(roots, dtype=np.int64)
        self.feature, self.threshold, self.missing_left = feature, threshold, missing_left
        self.left, self.right, self.is_leaf, self.value = left, right, is_leaf, value
        self.n_trees = len(self.roots)
        # Which input columns a path read, as bits: only possible with at most 64 columns.
        self.bit = np.left_shift(np.uint64(1), np.arange(min(n_features, 64), dtype=np.uint64))
        self.is_cat = None
        if categorical is not None and categorical[0].any():
            self.is_cat, self.bitset_idx, left_bits, known, self.cat_index = categorical
            # Bitsets of 8 x 32 bits as (rows, 256) booleans: membership is one lookup.
            v = np.arange(256)
            self.left_table = ((left_bits[:, v // 32] >> (v % 32).astype(np.uint32)) & 1) == 1
            self.known_table = ((known[:, v // 32] >> (v % 32).astype(np.uint32)) & 1) == 1
        try:
            self.masks: _LeafMasks | None = _LeafMasks(self)
        except Unsupported:  # deeper trees (random forests): walked instead
            self.masks = None

    @staticmethod
    def _in(table: np.ndarray, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
        c = v.astype(np.int64)
        ok = (c >= 0) & (c < 256)
        return ok & table[rows, np.clip(c, 0, 255)]

    def walk(self, flat: np.ndarray, start: np.ndarray, node: np.ndarray, paths: bool):
        """Leaf per (row, tree) pair, from each pair's first value offset in `flat` and root;
        with paths, also the bits of the input columns each path read."""
        node = node.copy()
        read = np.zeros(len(node), dtype=np.uint64) if paths else None
        todo = np.flatnonzero(~self.is_leaf[node])
        # Each pass moves the pairs not yet at a leaf one level down: the work follows the
        # actual path lengths, not the deepest tree.
        while todo.size:
            nd = node[todo]
            f = self.feature[nd]
            if paths:
                read[todo] |= self.bit[f]
            go_left = self.go_left(nd, flat[start[todo] + f])
            nxt = np.where(go_left, self.left[nd], self.right[nd])
            node[todo] = nxt
            todo = todo[~self.is_leaf[nxt]]
        return node, read

    def go_left(self, nd: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Whether value x[i] at (internal) node nd[i] goes to the left child."""
        go_left = x <= self.threshold[nd]  # False for NaN, handled next
        gap = np.isnan(x)
        if gap.any():
            go_left[gap] = self.missing_left[nd[gap]]
        if self.is_cat is not None:
            cat = self.is_cat[nd]
            if cat.any():
                cat &= ~gap
                nc, xv = nd[cat], x[cat]
                to_left = self._in(self.left_table, self.bitset_idx[nc], xv)
                seen = self._in(self.known_table, self.cat_index[self.feature[nc]], xv)
                go_left[cat] = to_left | (~seen & self.missing_left[nc])
        return go_left

    def leaves(self, Z: Matrix, paths: bool = False):
        n, width = Z.shape
        start = np.repeat(np.arange(n, dtype=np.int64) * width, self.n_trees)
        flat = np.ascontiguousarray(Z).reshape(-1)
        return self.walk(flat, start, np.tile(self.roots, n), paths)

    def total(self, Z: Matrix) -> np.ndarray:
        if self.masks is not None:
            return self.masks.totals(Z)[0]
        leaf, _ = self.leaves(Z)
        return self.value[leaf].reshape(len(Z), self.n_trees).sum(axis=1)

    def block_rows(self) -> int:
        if self.masks is not None:
            return max(1, MASK_BLOCK_CELLS // self.n_trees)
        return TREE_BLOCK_ROWS

    def proba(self, Z: Matrix, finish) -> np.ndarray:
        step = self.block_rows()
        blocks = range(0, max(len(Z), 1), step)
        return np.concatenate([finish(self.total(Z[s : s + step])) for s in blocks])

    def variants(self, Z: Matrix, Zt: Matrix, deps: Deps, finish) -> Matrix:
        """Setting a feature to its typical value can only change a tree's answer for a row
        whose path in that tree read the feature: with leaf masks, the other features' masks
        and the typical value's decide the leaf; else only those (row, tree) pairs walk again."""
        step = self.block_rows()
        blocks = range(0, max(len(Z), 1), step)
        if self.masks is not None and self.masks.disjoint(deps):
            typical = self.masks.at(deps, Zt)
            return np.hstack([finish(self.masks.totals(Z[s : s + step], typical)) for s in blocks])
        return np.hstack([self._variants(Z[s : s + step], Zt, deps, finish) for s in blocks])

    def _variants(self, Z: Matrix, Zt: Matrix, deps: Deps, finish) -> Matrix:
        n, width = Z.shape
        leaf, read = self.leaves(Z, paths=True)
        base = self.value[leaf].reshape(n, self.n_trees).sum(axis=1)
        out = np.empty((len(deps) + 1, n))
        out[0] = base
        for j, cols in enumerate(deps, start=1):
            mask = np.bitwise_or.reduce(self.bit[cols]) if len(cols) else np.uint64(0)
            hit = np.flatnonzero(read & mask)
            if not hit.size:
                out[j] = base
                continue
            rows, trees = np.divmod(hit, self.n_trees)
            # The rows these pairs belong to, with feature j's columns at the typical values.
            unique, inverse = np.unique(rows, return_inverse=True)
            changed = Z[unique].copy()
            changed[:, cols] = Zt[0, cols]
            new, _ = self.walk(changed.reshape(-1), inverse * width, self.roots[trees], False)
            out[j] = base + np.bincount(rows, self.value[new] - self.value[leaf[hit]], minlength=n)
        return finish(out)


class _LeafMasks:
    """Trees of at most 64 leaves evaluated as bit masks (the QuickScorer idea, Lucchese et al.,
    SIGIR 2015), without walking: a tree's leaves are the bits of a uint64 (uint32 when they
    fit), left to right. Each decision rules out the leaves under the child not taken, so the
    leaf a row reaches is the one bit left after AND-ing, over the tree's nodes, the mask of
    the side each node sends the row to; nodes off the path only rule out leaves that are out
    of reach anyway.

    Per input column those decisions depend only on which interval between the column's
    thresholds (or which category) the value falls in: a table (bins x trees) of the AND of
    that column's node masks. So a row's leaf in every tree is one table lookup per column and
    ANDs, and the leaf with feature j at its typical value needs no new walk: the AND of the
    other columns' masks (prefix and suffix products) with the typical value's mask. Every
    decision in the tables is made by _Trees.go_left, the walk's own code.
    """

    def __init__(self, trees: _Trees):
        n_nodes, n_trees = len(trees.feature), trees.n_trees
        under = np.zeros(n_nodes, dtype=np.uint64)  # the leaves below each node, as bits
        tree_of = np.full(n_nodes, -1)
        values = np.zeros((n_trees, 64))
        left, right, is_leaf = trees.left, trees.right, trees.is_leaf
        for t, root in enumerate(trees.roots):
            count, stack = 0, [(int(root), False)]
            while stack:  # depth first, left child first: bits number leaves left to right
                node, children_done = stack.pop()
                if children_done:
                    under[node] = under[left[node]] | under[right[node]]
                    continue
                tree_of[node] = t
                if is_leaf[node]:
                    if count == 64:
                        raise Unsupported("a tree of more than 64 leaves")
                    under[node] = np.uint64(1) << np.uint64(count)
                    values[t, count] = trees.value[node]
                    count += 1
                else:
                    stack += [(node, True), (int(right[node]), False), (int(left[node]), False)]
        if under.max() < 1 << 32:
            under = under.astype(np.uint32)  # 32 leaves or fewer: half the memory traffic
        internal = np.flatnonzero(~is_leaf & (tree_of >= 0))
        self.every_leaf = under[trees.roots]  # (trees,): the bits in use
        is_cat = trees.is_cat if trees.is_cat is not None else np.zeros(n_nodes, dtype=bool)
        # Per column: its sorted thresholds (None: categorical) and its (bins, trees) table.
        self.thresholds: dict[int, np.ndarray | None] = {}
        self.tables: dict[int, np.ndarray] = {}
        for c in np.unique(trees.feature[internal]):
            nodes = internal[trees.feature[internal] == c]
            if is_cat[nodes].all():
                cuts = None  # bins: codes 0..255, missing, anything else
                points = np.r_[np.arange(256.0), np.nan, -1.0]
            elif not is_cat[nodes].any():
                cuts = np.unique(trees.threshold[nodes])
                if np.isnan(cuts).any():
                    raise Unsupported("a numeric split without a threshold")
                # Bin b holds cuts[b - 1] < x <= cuts[b]: cuts[b] stands for it; then missing.
                points = np.r_[cuts, np.inf, np.nan]
            else:
                raise Unsupported("a column split both as a number and as a category")
            go = trees.go_left(np.repeat(nodes, len(points)), np.tile(points, len(nodes)))
            ruled_out = np.where(
                go.reshape(len(nodes), len(points)),
                under[right[nodes]][:, None],
                under[left[nodes]][:, None],
            )
            table = np.tile(self.every_leaf, (len(points), 1))
            at = (
                np.tile(np.arange(len(points)), len(nodes)),
                np.repeat(tree_of[nodes], len(points)),
            )
            np.bitwise_and.at(table, at, ~ruled_out.reshape(-1))
            self.thresholds[int(c)], self.tables[int(c)] = cuts, table
        self.n_trees = n_trees
        self.values = values.reshape(-1)
        self.offsets = np.arange(n_trees, dtype=np.int64) * 64

    def bins(self, c: int, x: np.ndarray) -> np.ndarray:
        cuts = self.thresholds[c]
        if cuts is None:  # as _Trees._in reads a category code
            known = (x > -1) & (x < 256)
            return np.where(known, np.where(known, x, 0).astype(np.int64), 256 + ~np.isnan(x))
        b = np.searchsorted(cuts, x, side="left")
        b[np.isnan(x)] = len(cuts) + 1
        return b

    def leaf_total(self, V: np.ndarray) -> np.ndarray:
        """Sum over trees of the value of each row's one remaining leaf."""
        position = np.bitwise_count(V - V.dtype.type(1))  # the bits below the leaf's own
        return self.values.take(position + self.offsets).sum(axis=1)

    def disjoint(self, deps: Deps) -> bool:
        used = [c for cols in deps for c in cols if int(c) in self.tables]
        return len(used) == len(set(used))

    def at(self, deps: Deps, Zt: Matrix) -> list[tuple[list[int], list[int], np.ndarray]]:
        """Per feature (deps[j], disjoint): its columns that the trees read, their values' bins
        in the one row Zt, and the mask of the leaves those values leave."""
        out = []
        for cols in deps:
            cols = [int(c) for c in cols if int(c) in self.tables]
            bins = [int(self.bins(c, Zt[0, [c]])[0]) for c in cols]
            mask = self.every_leaf
            for c, b in zip(cols, bins, strict=True):
                mask = mask & self.tables[c][b]
            out.append((cols, bins, mask))
        return out

    def totals(self, Z: Matrix, typical: Sequence = ()) -> Matrix:
        """(len(typical) + 1, rows): the trees' total for every row, then with each feature's
        columns at the values typical (from at()) describes."""
        n = len(Z)
        grouped = {c for cols, _, _ in typical for c in cols}
        rest = [c for c in self.tables if c not in grouped]
        owners = [j for j, (cols, _, _) in enumerate(typical) if cols] + ([None] if rest else [])
        bins = {c: self.bins(c, Z[:, c]) for c in self.tables}
        parts = []  # per owner: the AND of its columns' masks
        for j in owners:
            cols = typical[j][0] if j is not None else rest
            part = self.tables[cols[0]].take(bins[cols[0]], axis=0)
            for c in cols[1:]:
                part &= self.tables[c].take(bins[c], axis=0)
            parts.append(part)
        out = np.empty((len(typical) + 1, n))
        if not parts:
            out[:] = self.leaf_total(self.every_leaf[None, :])
            return out
        # Suffix products, then a running prefix: each owner's "all the others" in 3 ANDs.
        suffix = [None] * len(parts)
        running = None
        for i in range(len(parts) - 1, -1, -1):
            suffix[i] = running
            running = parts[i] if running is None else parts[i] & running
        out[:] = self.leaf_total(running)  # all columns: every row's own leaves
        prefix = None
        for i, j in enumerate(owners):
            if j is not None:
                self._vary(out[j + 1], typical[j], bins, prefix, suffix[i])
            prefix = parts[i] if prefix is None else prefix & parts[i]
        return out

    def _vary(self, total, typical, bins, prefix, suffix) -> None:
        """total (every row's own, updated in place) with a feature's columns at their typical
        values: the AND of the other columns' masks (prefix & suffix) and the typical ones'."""
        cols, typical_bins, mask = typical
        differs = bins[cols[0]] != typical_bins[0]
        for c, b in zip(cols[1:], typical_bins[1:], strict=True):
            differs |= bins[c] != b
        # A row in the typical value's bin of every column has the same leaves: its total stays.
        rows = np.flatnonzero(differs)
        if not rows.size:
            return
        if rows.size > 0.8 * len(total):  # most rows: no gathering
            rows = slice(None)
        others = [m[rows] for m in (prefix, suffix) if m is not None]
        V = mask[None, :] if not others else others[0] & mask
        if len(others) == 2:
            V &= others[1]
        total[rows] = self.leaf_total(V)


def _hgb_encoder(pre, n_features: int):
    """HistGradientBoosting's own input step: with categorical_features given, it ordinal-encodes
    those columns (each value -> its index among the sorted values seen in fit; unseen -> NaN)
    and puts them first. Returns (Z -> encoded, Z columns -> the encoded columns they became)."""
    if pre is None:
        return (lambda Z: Z), (lambda cols: np.asarray(cols, dtype=int))
    if not isinstance(pre, ColumnTransformer):
        raise Unsupported(f"a HistGradientBoosting preprocessor {type(pre).__name__}")
    plan = []  # (output slice, input columns, None | per-column sorted known values)
    for name, trans, cols in pre.transformers_:
        out = pre.output_indices_[name]
        if trans == "drop" or out.stop == out.start:
            continue
        cols = np.arange(n_features)[np.asarray(cols)] if np.asarray(cols).dtype == bool else cols
        cols = np.asarray(cols, dtype=int)
        if isinstance(trans, OrdinalEncoder):
            if trans.handle_unknown != "use_encoded_value" or not np.isnan(trans.unknown_value):
                raise Unsupported("a HistGradientBoosting encoder that does not map unknown to NaN")
            if getattr(trans, "infrequent_categories_", None) is not None and any(
                c is not None for c in trans.infrequent_categories_
            ):
                raise Unsupported("a HistGradientBoosting encoder with infrequent categories")
            known = []
            for cats in trans.categories_:
                cats = np.asarray(cats, dtype="float64")
                known.append(cats[~np.isnan(cats)])
            plan.append((out, cols, known))
        elif isinstance(trans, FunctionTransformer) or trans == "passthrough":
            plan.append((out, cols, None))
        else:
            raise Unsupported(f"a HistGradientBoosting input step {type(trans).__name__}")

    def encode(Z: Matrix) -> Matrix:
        out = np.empty((len(Z), n_features))
        for where, cols, known in plan:
            block = Z[:, cols]
            if known is not None:
                block = block.copy()
                for j, cats in enumerate(known):
                    if not len(cats):
                        block[:, j] = np.nan
                        continue
                    x = block[:, j]
                    pos = np.clip(np.searchsorted(cats, x), 0, len(cats) - 1)
                    block[:, j] = np.where(cats[pos] == x, pos, np.nan)
            out[:, where] = block
        return out

    position = np.full(n_features, -1)
    for where, cols, _ in plan:
        position[cols] = np.arange(where.start, where.stop)

    def moved(cols: np.ndarray) -> np.ndarray:
        p = position[np.asarray(cols, dtype=int)]
        return p[p >= 0]

    return encode, moved
