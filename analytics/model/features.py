"""The preprocessing ColumnTransformer: raw feature columns in, model-ready columns out.

Two kinds, one per model family:
- "linear": median-imputed, standardised numbers (plus a missing indicator where a column had
  gaps), B-splines on numbers with many distinct values (lets a linear model bend, e.g. the
  steep early-tenure churn), one-hot categories with rare levels grouped.
- "tree": numbers untouched (HistGradientBoosting handles NaN itself), categories as ordinal
  codes for HistGradientBoosting's native categorical splits, rare levels grouped.

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
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    OneHotEncoder,
    OrdinalEncoder,
    SplineTransformer,
    StandardScaler,
)

KINDS = ("linear", "tree")
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


def build_preprocessor(
    kind: str, numeric: Sequence[str], categorical: Sequence[str]
) -> ColumnTransformer:
    """ColumnTransformer for `kind` ("linear" or "tree"); output is a named pandas frame."""
    numeric, categorical = list(numeric), list(categorical)
    if kind not in KINDS:
        raise ValueError(f"unknown preprocessor kind {kind!r}; expected one of {KINDS}")
    if not numeric and not categorical:
        raise ValueError("the model needs at least one feature column")
    overlap = set(numeric) & set(categorical)
    if overlap:
        raise ValueError(f"columns listed as both numeric and categorical: {sorted(overlap)}")
    build = _linear if kind == "linear" else _tree
    pre = ColumnTransformer(
        build(numeric, categorical), remainder="drop", verbose_feature_names_out=kind == "linear"
    )
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


def _tree(numeric: list[str], categorical: list[str]) -> list[tuple]:
    steps: list[tuple] = []
    if categorical:
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


def tree_categorical_features(categorical: Sequence[str]) -> list[str] | None:
    """The names HistGradientBoosting must treat as categorical after the "tree" preprocessor."""
    return list(categorical) or None
