"""The preprocessing ColumnTransformer: raw feature columns in, model-ready columns out.

Two kinds, one per model family:
- "linear": median-imputed, standardised numbers (plus a missing indicator where a column had
  gaps), B-splines on numbers with many distinct values (lets a linear model bend, e.g. the
  steep early-tenure churn), one-hot categories with rare levels grouped.
- "tree": numbers untouched (HistGradientBoosting handles NaN itself), categories as ordinal
  codes for HistGradientBoosting's native categorical splits, rare levels grouped.
- "native": as "tree", but categories pass through as pandas categories (LightGBM splits them
  itself, with its own smoothing of rare levels).

Both tree kinds target-encode the categorical columns listed as `target_encoded` (many levels:
see high_cardinality) instead: a native split may send any subset of 51 states left, and
on a few thousand rows it finds subsets that fit noise (a 51-level state took the boosting
candidate from 0.919 to 0.911 ROC-AUC on the 3,333-row telecom table). The encoding is
cross-fitted while training (scikit-learn's TargetEncoder), as CatBoost's ordered statistics.

Input dtypes (analytics.ingest.validate): numeric float64 with NaN; categorical pandas
"category" with str levels, NaN for missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    OneHotEncoder,
    OrdinalEncoder,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)

KINDS = ("linear", "tree", "native")
# Splines only where a column has enough distinct values to place knots meaningfully;
# 0/1 flags and small counts stay linear.
SPLINE_MIN_UNIQUE = 20
SPLINE_KNOTS = 5
# One-hot: levels seen fewer than this many times share one "infrequent" column.
ONEHOT_MIN_FREQUENCY = 10
ONEHOT_MAX_CATEGORIES = 40
# One-hot columns across all categorical features: with many of them each keeps fewer levels (at
# least its most frequent one and "infrequent"), so the encoded width grows with the number of
# input columns, not up to 40 times as fast (5,000 categorical columns reached 4 GB).
ONEHOT_MAX_WIDTH = 2_000
# HistGradientBoosting needs fewer than max_bins (255) codes per categorical feature; rarer
# levels beyond this many are grouped, which also keeps splits from chasing tiny levels.
ORDINAL_MAX_CATEGORIES = 60
# A categorical with more levels than this is target-encoded for the trees (see above); 15 keeps
# native splits for plans, contracts, regions, job roles, and encodes states, cities, products.
HIGH_CARDINALITY = 15
TARGET_ENCODER_FOLDS = 5
MISSING_LEVEL = "missing"


@dataclass(frozen=True)
class ManyValued:
    """Column selector evaluated at fit time: numeric columns with many distinct values.

    A small class rather than a lambda so fitted pipelines pickle with joblib.
    """

    columns: tuple[str, ...]
    min_unique: int = SPLINE_MIN_UNIQUE

    def __call__(self, X: pd.DataFrame) -> list[str]:
        return [c for c in self.columns if X[c].nunique(dropna=True) >= self.min_unique]


@dataclass(frozen=True)
class Observed:
    """Column selector evaluated at fit time: columns with at least one value.

    HistGradientBoosting cannot bin a numeric column that is entirely missing; such a column
    carries no information, so the tree preprocessor leaves it out.
    """

    columns: tuple[str, ...]

    def __call__(self, X: pd.DataFrame) -> list[str]:
        return [c for c in self.columns if X[c].notna().any()]


def high_cardinality(X: pd.DataFrame, categorical: Sequence[str]) -> list[str]:
    """The categorical columns with more than HIGH_CARDINALITY observed levels."""
    return [c for c in categorical if X[c].nunique(dropna=True) > HIGH_CARDINALITY]


def build_preprocessor(
    kind: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    target_encoded: Sequence[str] = (),
    random_state: int = 42,
) -> ColumnTransformer:
    """ColumnTransformer for `kind` ("linear", "tree" or "native"); output is a named pandas
    frame. `target_encoded`: categorical columns the tree kinds target-encode."""
    numeric, categorical = list(numeric), list(categorical)
    encoded = [c for c in categorical if c in set(target_encoded)] if kind != "linear" else []
    if set(target_encoded) - set(categorical):
        raise ValueError(
            f"target-encoded columns that are not categorical: "
            f"{sorted(set(target_encoded) - set(categorical))}"
        )
    if kind not in KINDS:
        raise ValueError(f"unknown preprocessor kind {kind!r}; expected one of {KINDS}")
    if not numeric and not categorical:
        raise ValueError("the model needs at least one feature column")
    overlap = set(numeric) & set(categorical)
    if overlap:
        raise ValueError(f"columns listed as both numeric and categorical: {sorted(overlap)}")
    if kind == "linear":
        steps = _linear(numeric, categorical)
    else:
        kept = [c for c in categorical if c not in encoded]
        steps = _tree(numeric, kept, native=kind == "native")
        if encoded:
            cv = StratifiedKFold(TARGET_ENCODER_FOLDS, shuffle=True, random_state=random_state)
            steps.insert(1, ("target", TargetEncoder(cv=cv), encoded))
    pre = ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=kind == "linear")
    return pre.set_output(transform="pandas")


def _linear(numeric: list[str], categorical: list[str]) -> list[tuple]:
    steps: list[tuple] = []
    if numeric:
        # keep_empty_features: an all-missing column stays (as a constant) so the output
        # columns do not depend on which rows a fold happened to get.
        steps.append(
            (
                "num",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                strategy="median", add_indicator=True, keep_empty_features=True
                            ),
                        ),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
        steps.append(
            (
                "spline",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("spline", SplineTransformer(n_knots=SPLINE_KNOTS, degree=3)),
                    ]
                ),
                ManyValued(tuple(numeric)),
            )
        )
    if categorical:
        steps.append(
            (
                "cat",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                strategy="constant",
                                fill_value=MISSING_LEVEL,
                                keep_empty_features=True,
                            ),
                        ),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="ignore",
                                min_frequency=ONEHOT_MIN_FREQUENCY,
                                max_categories=onehot_max_categories(len(categorical)),
                                sparse_output=False,
                            ),
                        ),
                    ]
                ),
                categorical,
            )
        )
    return steps


def onehot_max_categories(n_categorical: int) -> int:
    """Levels kept per categorical feature (the rest share one column) within ONEHOT_MAX_WIDTH."""
    return max(2, min(ONEHOT_MAX_CATEGORIES, ONEHOT_MAX_WIDTH // max(n_categorical, 1)))


def _tree(numeric: list[str], categorical: list[str], *, native: bool = False) -> list[tuple]:
    steps: list[tuple] = []
    if categorical and native:
        steps.append(("cat", "passthrough", categorical))
    elif categorical:
        # Unknown levels at predict time become NaN, which HistGradientBoosting sends down
        # the missing-value branch instead of failing.
        steps.append(
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    max_categories=ORDINAL_MAX_CATEGORIES,
                ),
                categorical,
            )
        )
    if numeric:
        steps.append(("num", "passthrough", Observed(tuple(numeric))))
    return steps


def tree_categorical_features(
    categorical: Sequence[str], target_encoded: Sequence[str] = ()
) -> list[str] | None:
    """The names HistGradientBoosting must treat as categorical after the "tree" preprocessor
    (target-encoded columns are numbers by then)."""
    return [c for c in categorical if c not in set(target_encoded)] or None
