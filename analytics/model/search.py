"""The model search: a small grid per model family, the number of boosting rounds chosen out of
fold, and a blend of the best candidates (../shared/METRICS.md: choice on out-of-fold data).

Every configuration is cross-validated on the same folds as the rest of training. A boosting
configuration is fitted once per fold with its largest number of rounds; its out-of-fold ROC-AUC
is read every ROUND_STEP rounds from the staged scores, and the fold models are cut back to the
best count (the first n trees of a longer fit are exactly the trees an n-round fit grows: no
subsampling changes with the count). The blend averages the out-of-fold probabilities its
members already have, so its figure is theirs averaged, not a new fit.

Effort follows the table and a time budget. GRID is in order of value (what most often wins or
joins the winning blend, per second spent); TIER_ROWS keeps the slow-learning configurations off
small tables; and a Budget gives the search SEARCH_SHARE of the whole training's budget (60 s
per 10,000 rows by default, RETENTION_TRAIN_SECONDS_PER_10K_ROWS): a configuration whose
estimated cost would overrun it is not tried, and the report says which were left out. The
estimates are fixed per configuration and table size, so a table always trains the same way.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import lightgbm
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from analytics.model.evaluation import mean_readings_auc
from analytics.model.features import build_preprocessor, tree_categorical_features

ROUND_STEP = 10  # boosting rounds between two out-of-fold readings
# HistGradientBoosting grows every fold GROW rounds at a time (warm start) and stops once the
# best count is PATIENCE rounds behind: on most tables the best count is far below the maximum.
GROW = 40
PATIENCE = 80
# Rows from which each tier of GRID is tried: tier 0 always (one configuration per family),
# tier 1 from 1,000 rows (LightGBM's slower-learning settings), tier 2 from 2,500
# (HistGradientBoosting's: on one thread it costs ~4x LightGBM per round, which the smallest
# tables' budgets cannot pay).
TIER_ROWS = (0, 1_000, 2_500)
BLEND_SIZES = (2, 3)  # blends of the best 2 and 3 families are tried
# The search's share of the whole training budget: the rest pays for permutation importance,
# per-customer reasons, the refit, segments, loading and saving.
SEARCH_SHARE = 0.45
# What a whole `train` run spends whatever the model: starting Python and importing (~2.5 s),
# reading, segmenting and saving. Measured ~3.5 s on a 1,470-row table on 2 cores; it is
# taken off the budget before the search's share, or the smallest tables would overrun.
FIXED_SECONDS = 4.0
ALWAYS = 2  # the first configurations of GRID are tried whatever the budget: a model is needed


@dataclass(frozen=True)
class Config:
    """One configuration of one family; `params` go to the model (max rounds for boosting)."""

    family: str  # logistic | gradient_boosting | lightgbm | random_forest
    label: str
    params: dict = field(default_factory=dict)
    tier: int = 0  # tried on tables of at least TIER_ROWS[tier] rows
    # Its 5-fold cross-validation's seconds in units of unit_seconds(rows, columns), from the
    # tables of benchmarks/RESULTS.md (1,470 to 23,143 rows) on 2 cores.
    cost: float = 1.0

    @property
    def staged(self) -> bool:
        return self.family in ("gradient_boosting", "lightgbm")


# In order of value per second. Logistic regression wins on small and nearly linear tables and
# joins most winning blends; LightGBM costs about a quarter of HistGradientBoosting per fold on
# one thread, so its three settings (fast and deep, small smooth trees, subsampled) come before
# HistGradientBoosting's slow-learning ones (best alone on some bank tables: more often a blend
# member). The forest (leaves of at least 5 rows rank better than fully grown trees: Telco 0.843
# vs 0.825) and default HistGradientBoosting rarely win: tried when the budget allows.
GRID: tuple[Config, ...] = (
    Config("logistic", "C=0.5, splines, one-hot", {"C": 0.5}, cost=0.9),
    Config(
        "lightgbm",
        "learning rate 0.1, 31 leaves (LightGBM defaults)",
        {"learning_rate": 0.1, "num_leaves": 31, "n_estimators": 200},
        cost=1.1,
    ),
    Config(
        "lightgbm",
        "learning rate 0.05, 7 leaves, min leaf 40, l2 1",
        {
            "learning_rate": 0.05,
            "num_leaves": 7,
            "min_child_samples": 40,
            "reg_lambda": 1.0,
            "n_estimators": 600,
        },
        tier=1,
        cost=1.5,
    ),
    Config(
        "lightgbm",
        "learning rate 0.05, 15 leaves, 70% features, 80% rows, l2 1",
        {
            "learning_rate": 0.05,
            "num_leaves": 15,
            "colsample_bytree": 0.7,
            "subsample": 0.8,
            "subsample_freq": 1,
            "reg_lambda": 1.0,
            "n_estimators": 300,
        },
        tier=1,
        cost=1.3,
    ),
    Config(
        "gradient_boosting",
        "learning rate 0.05, 7 leaves, min leaf 40, l2 1",
        {
            "learning_rate": 0.05,
            "max_leaf_nodes": 7,
            "min_samples_leaf": 40,
            "l2_regularization": 1.0,
            "max_iter": 400,
        },
        tier=2,
        cost=3.2,
    ),
    Config(
        "gradient_boosting",
        "learning rate 0.05, 15 leaves, min leaf 20, l2 1",
        {
            "learning_rate": 0.05,
            "max_leaf_nodes": 15,
            "min_samples_leaf": 20,
            "l2_regularization": 1.0,
            "max_iter": 400,
        },
        tier=2,
        cost=4.0,
    ),
    Config(
        "random_forest",
        "150 trees, min leaf 5, sqrt features",
        {"n_estimators": 150, "min_samples_leaf": 5, "max_features": "sqrt"},
        cost=5.0,
    ),
    Config(
        "gradient_boosting",
        "learning rate 0.1, 31 leaves, min leaf 20",
        {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20, "max_iter": 200},
        cost=4.0,
    ),
)


def unit_seconds(n_rows: int, n_columns: int) -> float:
    """Seconds of one cost unit on a table: a fixed part (folds, pandas conversions, 200 rounds
    on few rows) and a part per cell. Fitted on the LightGBM default configuration's 5-fold
    seconds on the tables of benchmarks/RESULTS.md, on 2 cores with the other one busy: within
    ±35% on each, and conservative on an idle machine."""
    return 0.8 + 4.0 * n_rows * n_columns / 1e6


class Budget:
    """The search's time budget: SEARCH_SHARE of (`seconds_per_10k` seconds per 10,000 rows less
    FIXED_SECONDS). The plan is made before anything is fitted, from estimated costs (Config.cost
    x unit_seconds), not from a clock: the same table always trains the same model, whatever
    else the machine is doing."""

    def __init__(self, n_rows: int, n_columns: int, seconds_per_10k: float):
        self.training_seconds = seconds_per_10k * n_rows / 10_000
        self.seconds = SEARCH_SHARE * max(self.training_seconds - FIXED_SECONDS, 0.0)
        self.unit = unit_seconds(n_rows, n_columns)
        self.left_out: list[tuple[Config, float]] = []  # (configuration, estimated seconds)

    def plan(self, configs: Sequence[Config]) -> list[Config]:
        """The configurations to try, in order: the first ALWAYS, then each whose estimate still
        fits in what is left (a dear one left out does not stop a cheaper one after it)."""
        kept, spent = [], 0.0
        for position, config in enumerate(configs):
            estimate = config.cost * self.unit
            if position < ALWAYS or spent + estimate <= self.seconds:
                kept.append(config)
                spent += estimate
            else:
                self.left_out.append((config, estimate))
        return kept

    def note(self) -> str | None:
        """The report's line on what the budget left out (None when nothing)."""
        if not self.left_out:
            return None
        skipped = "; ".join(f"{c.family} ({c.label}), ~{est:.1f} s" for c, est in self.left_out)
        return (
            f"time budget: the search gets {self.seconds:.1f} s ({SEARCH_SHARE:.0%} of what is "
            f"left of the {self.training_seconds:.1f} s these rows get, "
            f"RETENTION_TRAIN_SECONDS_PER_10K_ROWS, after {FIXED_SECONDS:.0f} s of loading and "
            f"saving); not tried, by their estimated cost on 2 cores: {skipped}"
        )


def grid(n_rows: int, *, forest: bool = True) -> list[Config]:
    """The configurations tried on a table of n_rows."""
    configs = [c for c in GRID if forest or c.family != "random_forest"]
    return [c for c in configs if n_rows >= TIER_ROWS[c.tier]]


def pipeline(
    config: Config,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    target_encoded: Sequence[str] = (),
    random_state: int = 42,
) -> Pipeline:
    """The unfitted pipeline of `config`, from the raw feature columns to probability."""
    params = dict(config.params)
    if config.family == "logistic":
        pre = build_preprocessor("linear", numeric, categorical)
        # Mild L2 (C=0.5): splines and one-hot levels add many correlated columns.
        model = LogisticRegression(max_iter=2000, **params)
    elif config.family == "gradient_boosting":
        pre = build_preprocessor(
            "tree", numeric, categorical, target_encoded=target_encoded, random_state=random_state
        )
        model = HistGradientBoostingClassifier(
            early_stopping=False,  # the rounds are chosen out of fold instead
            categorical_features=tree_categorical_features(categorical, target_encoded),
            random_state=random_state,
            **params,
        )
    elif config.family == "lightgbm":
        pre = build_preprocessor(
            "native", numeric, categorical, target_encoded=target_encoded, random_state=random_state
        )
        model = lightgbm.LGBMClassifier(n_jobs=1, verbose=-1, random_state=random_state, **params)
    elif config.family == "random_forest":
        pre = build_preprocessor(
            "tree", numeric, categorical, target_encoded=target_encoded, random_state=random_state
        )
        model = RandomForestClassifier(n_jobs=-1, random_state=random_state, **params)
    else:
        raise ValueError(f"unknown model family {config.family!r}")
    return Pipeline([("preprocess", pre), ("model", model)])


# ---------------------------------------------------------------- boosting rounds


def max_rounds(pipe: Pipeline) -> int:
    model = pipe[-1]
    if isinstance(model, HistGradientBoostingClassifier):
        return model.max_iter
    return model.n_estimators


def with_rounds(pipe: Pipeline, rounds: int) -> Pipeline:
    """An unfitted copy of a boosting pipeline that grows `rounds` rounds."""
    out = clone(pipe)
    key = "max_iter" if isinstance(out[-1], HistGradientBoostingClassifier) else "n_estimators"
    out[-1].set_params(**{key: rounds})
    return out


def staged_raw(fitted: Pipeline, X: pd.DataFrame, step: int = ROUND_STEP) -> list[np.ndarray]:
    """Raw scores (log-odds) of a fitted boosting pipeline after step, 2 step, ... rounds."""
    Z = fitted[:-1].transform(X)
    model = fitted[-1]
    out = []
    if isinstance(model, HistGradientBoostingClassifier):
        for i, raw in enumerate(model.staged_decision_function(Z), start=1):
            if i % step == 0:
                out.append(np.asarray(raw, dtype="float64").reshape(-1))
        return out or [np.asarray(model.decision_function(Z), dtype="float64").reshape(-1)]
    booster = model.booster_
    A = lightgbm_matrix(booster, Z)
    total = booster.current_iteration()
    running = np.zeros(len(Z))
    for start in range(0, total - total % step, step):
        running = running + booster.predict(
            A, raw_score=True, start_iteration=start, num_iteration=step, num_threads=1
        )
        out.append(running.copy())
    if not out:  # fewer rounds than one step
        out.append(booster.predict(A, raw_score=True, num_threads=1))
    return out


def lightgbm_matrix(booster: lightgbm.Booster, Z: pd.DataFrame) -> np.ndarray:
    """Z as the float matrix LightGBM builds from a pandas frame itself: each category column
    as the code of its level among the categories seen in training (NaN when missing or unseen).
    Built once for the many staged calls of a fold; LightGBM would rebuild it every call."""
    known = iter(booster.pandas_categorical or [])
    columns = []
    for name in Z.columns:
        s = Z[name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            # As LightGBM does: levels not among the training categories become missing.
            codes = s.cat.set_categories(next(known)).cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(s.to_numpy(dtype="float64", na_value=np.nan))
    return np.column_stack(columns) if columns else np.zeros((len(Z), 0))


def truncate(fitted: Pipeline, rounds: int) -> Pipeline:
    """The fitted boosting pipeline cut back to its first `rounds` rounds (in place)."""
    model = fitted[-1]
    if isinstance(model, HistGradientBoostingClassifier):
        model._predictors = model._predictors[:rounds]  # n_iter_ is their count
        model.train_score_ = model.train_score_[: rounds + 1]
        model.set_params(max_iter=rounds)
    else:
        text = model.booster_.model_to_string(num_iteration=rounds)
        model._Booster = lightgbm.Booster(model_str=text)
        model.set_params(n_estimators=rounds)
    return fitted


def grow(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, folds, run) -> tuple[list, int, list]:
    """HistGradientBoosting's fold models grown GROW rounds at a time until the best mean
    out-of-fold ROC-AUC (read every ROUND_STEP rounds) is PATIENCE rounds behind or the maximum
    is reached. Returns the fold pipelines cut back to the best count, the count, and seconds
    of fitting per fold. `run(tasks)` runs zero-argument callables (in parallel) in order."""
    top = max_rounds(pipeline)
    tests = [test for _, test in folds]

    def start(train_idx, test_idx):
        begun = time.perf_counter()
        pre = clone(pipeline[:-1])
        Z = pre.fit_transform(X.iloc[train_idx], y[train_idx])
        model = clone(pipeline[-1]).set_params(warm_start=True)
        return {
            "pre": pre,
            "model": model,
            "Z": Z,
            "Zt": pre.transform(X.iloc[test_idx]),
            "y": y[train_idx],
            "seconds": time.perf_counter() - begun,
            "raw": [],
        }

    states = run([functools.partial(start, tr, te) for tr, te in folds])
    done, scores = 0, []
    while done < top:
        target = min(done + GROW, top)

        def more(state, target=target, done=done):
            begun = time.perf_counter()
            state["model"].set_params(max_iter=target).fit(state["Z"], state["y"])
            staged = state["model"].staged_decision_function(state["Zt"])
            for i, raw in enumerate(staged, start=1):
                if i > done and (i % ROUND_STEP == 0 or i == target):
                    state["raw"].append(np.asarray(raw, dtype="float64").reshape(-1))
            state["seconds"] += time.perf_counter() - begun

        run([functools.partial(more, state) for state in states])
        done = target
        scores = mean_readings_auc(y, [state["raw"] for state in states], tests)
        if (len(scores) - 1 - int(np.argmax(scores))) * ROUND_STEP >= PATIENCE:
            break
    rounds = min((int(np.argmax(scores)) + 1) * ROUND_STEP, done)  # ties: the fewest rounds
    models = []
    for state in states:
        state["model"].set_params(warm_start=False)
        fitted = Pipeline([*state["pre"].steps, ("model", state["model"])])
        models.append(truncate(fitted, rounds))
    return models, rounds, [state["seconds"] for state in states]


# ---------------------------------------------------------------- the blend


class Blend(ClassifierMixin, BaseEstimator):
    """Soft average of the members' churn probabilities (unweighted)."""

    def __init__(self, estimators: Sequence[tuple[str, object]] = ()):
        self.estimators = estimators

    def fit(self, X, y):
        self.estimators_ = [clone(est).fit(X, y) for _, est in self.estimators]
        self.classes_ = np.array([0, 1])
        return self

    @classmethod
    def of_fitted(cls, named: Sequence[tuple[str, object]]) -> Blend:
        """A fitted blend of already fitted members (the fold models of a blend)."""
        blend = cls(list(named))
        blend.estimators_ = [est for _, est in named]
        blend.classes_ = np.array([0, 1])
        return blend

    def predict_proba(self, X) -> np.ndarray:
        p = np.mean(
            [est.predict_proba(X)[:, list(est.classes_).index(1)] for est in self.estimators_],
            axis=0,
        )
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
