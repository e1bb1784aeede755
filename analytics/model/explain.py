"""Explanations: the base's typical values, per-customer driver deltas and the reasons shown,
and global permutation importance (../shared/METRICS.md).

Global importance is permutation importance on held-out folds (drop in ROC-AUC); per-customer
drivers are the change in p when one feature is set to the base's typical value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analytics.formatting import DEFAULT_CURRENCY, display_name, value_text
from analytics.model.evaluation import roc_auc
from analytics.model.fastscore import (  # one memory bound for both scorers
    CHUNK_ROWS,
    FastScorer,
    stacked_rows,
)
from analytics.model.probability import predict_proba

# Shuffles per feature and fold: the spread between folds (reported) is larger than what more
# repeats would remove, and on small tables importance was a third of the training time.
REPEATS = 3

# A driver must move p by at least this much to be shown as a reason ("+0.0 pts" says nothing).
MIN_REASON_DELTA = 0.0005


def typical_values(X: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> dict:
    """feature -> the base's typical value: median (numeric) or most frequent level.

    NaN when a feature has no observed value. Ties between levels go to the first level in
    sorted order, so the result does not depend on row order.
    """
    typical: dict = {}
    for col in numeric:
        values = X[col].dropna()
        typical[col] = float(values.median()) if len(values) else math.nan
    for col in categorical:
        counts = X[col].astype("string").value_counts(dropna=True)
        if counts.empty:
            typical[col] = math.nan
        else:
            top = counts.max()
            typical[col] = str(min(level for level, n in counts.items() if n == top))
    return typical


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _stack(part: pd.DataFrame, overrides: Sequence[tuple[str, object]]) -> pd.DataFrame:
    """len(overrides) copies of `part`, one after the other; in copy b, column overrides[b][0]
    is replaced by overrides[b][1]: an index array (that column's rows reordered) or a scalar
    (category code, -1 = missing, for categoricals; a number, NaN = missing, otherwise).

    Building columns directly (codes for categoricals) keeps every dtype, so the pipeline sees
    exactly the columns it would see for the rows one by one.
    """
    m, n_copies = len(part), len(overrides)
    columns = {}
    for col in part.columns:
        s = part[col]
        is_cat = isinstance(s.dtype, pd.CategoricalDtype)
        base = s.cat.codes.to_numpy() if is_cat else s.to_numpy()
        copies = [b for b, (c, _) in enumerate(overrides) if c == col]
        values = np.tile(base, n_copies)
        if copies and not is_cat and pd.api.types.is_numeric_dtype(s.dtype):
            values = values.astype("float64")  # a constant may be NaN
        for b in copies:
            change = overrides[b][1]
            values[b * m : (b + 1) * m] = base[change] if isinstance(change, np.ndarray) else change
        columns[col] = pd.Categorical.from_codes(values, dtype=s.dtype) if is_cat else values
    return pd.DataFrame(columns)


def _predict_stacked(
    pipeline, part: pd.DataFrame, overrides: Sequence[tuple[str, object]], chunk_rows: int
) -> np.ndarray:
    """p for every copy of `part` (shape: copies x rows), at most ~stacked_rows(columns,
    chunk_rows) rows per call."""
    m = len(part)
    per_call = max(1, stacked_rows(part.shape[1], chunk_rows) // max(m, 1))
    out = []
    for start in range(0, len(overrides), per_call):
        batch = overrides[start : start + per_call]
        out.append(predict_proba(pipeline, _stack(part, batch)).reshape(len(batch), m))
    return np.vstack(out)


def _at_typical(X: pd.DataFrame, col: str, value) -> np.ndarray:
    """Rows whose value already is the typical one (their delta is exactly 0)."""
    s = X[col]
    if _is_missing(value):
        return s.isna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        return (s.astype("string") == str(value)).fillna(False).to_numpy(dtype=bool)
    return (s.astype("float64") == float(value)).to_numpy()


def probability_and_deltas(
    pipeline,
    X: pd.DataFrame,
    typical: Mapping,
    *,
    chunk_rows: int = CHUNK_ROWS,
    scorer: FastScorer | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """p_i for every row, and per row and feature: p_i - p_i(with that feature set to the base's
    typical value).

    Positive = this customer's value of the feature raises their churn probability. The
    variants of a chunk of rows go through one predict_proba call; chunks bound the memory. A
    small frame (an API request) goes through a single call, its own rows included: each
    pipeline call has a fixed cost of several milliseconds.

    With a `scorer` (analytics.model.fastscore, compiled from this pipeline) the same numbers come
    from numpy arithmetic instead, without that fixed cost.
    """
    if scorer is not None and list(X.columns) == scorer.features and len(X):
        return _fast_probability_and_deltas(scorer, X, typical, chunk_rows)
    feats = [c for c in X.columns if c in typical]
    n, k = len(X), len(feats)
    deltas = np.zeros((n, k))
    if not n or not k:
        return predict_proba(pipeline, X) if n else np.zeros(0), pd.DataFrame(
            deltas, index=X.index, columns=feats
        )
    index = X.index
    X = X.reset_index(drop=True)  # a copy: adding a category below must not touch the caller's
    overrides = []
    for col in feats:
        value = typical[col]
        if isinstance(X[col].dtype, pd.CategoricalDtype):
            if _is_missing(value):
                value = -1
            else:
                if value not in X[col].cat.categories:  # typical level unseen in this frame
                    X[col] = X[col].cat.add_categories([value])
                value = X[col].cat.categories.get_loc(value)
        else:
            value = math.nan if _is_missing(value) else float(value)
        overrides.append((col, value))
    rows_per_pass = stacked_rows(X.shape[1], chunk_rows)
    if n * (k + 1) <= rows_per_pass:
        both = _predict_stacked(pipeline, X, [(None, None), *overrides], chunk_rows)
        base, varied = both[0], both[1:]
        deltas[:] = base[:, None] - varied.T
    else:
        base = predict_proba(pipeline, X)
        rows_per_chunk = max(1, rows_per_pass // k)
        for start in range(0, n, rows_per_chunk):
            part = X.iloc[start : start + rows_per_chunk]
            varied = _predict_stacked(pipeline, part, overrides, chunk_rows)
            deltas[start : start + len(part)] = base[start : start + len(part), None] - varied.T
    for j, col in enumerate(feats):
        deltas[_at_typical(X, col, typical[col]), j] = 0.0
    return base, pd.DataFrame(deltas, index=index, columns=feats)


def _fast_probability_and_deltas(
    scorer: FastScorer, X: pd.DataFrame, typical: Mapping, chunk_rows: int
) -> tuple[np.ndarray, pd.DataFrame]:
    R = scorer.encode_frame(X)
    p, deltas = scorer.probability_and_deltas(R, typical, chunk_rows=chunk_rows)
    return p, pd.DataFrame(deltas, index=X.index, columns=scorer.features)


def driver_deltas(
    pipeline, X: pd.DataFrame, typical: Mapping, *, chunk_rows: int = CHUNK_ROWS
) -> pd.DataFrame:
    """Per row and feature: p_i - p_i(with that feature set to the base's typical value)."""
    return probability_and_deltas(pipeline, X, typical, chunk_rows=chunk_rows)[1]


def reasons_from_deltas(
    X: pd.DataFrame, deltas: pd.DataFrame, top: int = 3, *, currency: str = DEFAULT_CURRENCY
) -> pd.DataFrame:
    """reason_1..reason_top: the largest increases in words, e.g. "Contract: Monthly (+18.2
    pts)", "Tenure: 2 months (+9.1 pts)", "Monthly revenue: $89.50 (+3.0 pts)".

    The words of formatting.reason_text, with each distinct value of a feature put in words
    once (a million customers have a few thousand distinct values, and one reason_text call per
    reason cost ~20 s there).
    """
    names = [f"reason_{i}" for i in range(1, top + 1)]
    n = len(deltas)
    out = np.full((n, top), "", dtype=object)
    if n and deltas.shape[1]:
        values = deltas.to_numpy()
        # Stable order: ties go to the column order, so reasons are reproducible.
        order = np.argsort(-values, axis=1, kind="stable")[:, :top]
        feats = list(deltas.columns)
        words = [_value_words(X[f], f, currency) for f in feats]
        shown = np.ones(n, dtype=bool)
        for r in range(order.shape[1]):  # fewer features than `top`: fewer reasons
            j = order[:, r]
            d = values[np.arange(n), j]
            shown &= ~(d < MIN_REASON_DELTA)  # below it, this and every later reason is ""
            rows = np.flatnonzero(shown)
            if not rows.size:
                break
            label = np.empty(len(rows), dtype=object)
            for f in np.unique(j[rows]):
                mine = j[rows] == f
                codes, texts = words[f]
                label[mine] = texts[codes[rows[mine]]]
            change = d[rows].tolist()
            out[rows, r] = [
                f"{text} (+{100 * c:.1f} pts)"
                for text, c in zip(label.tolist(), change, strict=True)
            ]
    return pd.DataFrame(out, index=deltas.index, columns=names)


def _value_words(s: pd.Series, column: str, currency: str) -> tuple[np.ndarray, np.ndarray]:
    """(per row an index into texts, texts): "Name: value" for each distinct value of s, as
    reason_text writes it for the value s.to_numpy(dtype=object) holds (missing: last)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        distinct = s.cat.categories.to_numpy(dtype=object)
    else:
        codes, distinct = pd.factorize(s, use_na_sentinel=True)
        distinct = np.asarray(distinct, dtype=object)
    gaps = np.flatnonzero(codes < 0)
    # The missing marker the row itself holds (NaN, None or pd.NA are not all "missing").
    gap = s.iloc[gaps[:1]].to_numpy(dtype=object)[0] if gaps.size else math.nan
    name = display_name(column)
    texts = [f"{name}: {value_text(column, v, currency)}" for v in [*distinct.tolist(), gap]]
    return np.where(codes < 0, len(distinct), codes), np.array(texts, dtype=object)


def customer_drivers(
    pipeline, X: pd.DataFrame, typical: Mapping, top: int = 3, *, currency: str = DEFAULT_CURRENCY
) -> pd.DataFrame:
    """reason_1..reason_top per customer ("" when fewer positive drivers)."""
    return reasons_from_deltas(X, driver_deltas(pipeline, X, typical), top=top, currency=currency)


def permutation_drop(
    model,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    n_repeats: int,
    random_state: int,
    chunk_rows: int = CHUNK_ROWS,
) -> np.ndarray:
    """Drop in ROC-AUC when each raw column is shuffled: shape (features, n_repeats).

    The same permutations and result as sklearn.inspection.permutation_importance(model, X, y,
    scoring="roc_auc", n_repeats, random_state) (a test pins this), but the shuffled copies go
    through predict_proba together instead of one call each: on Telco-sized folds each call is
    mostly fixed overhead, so this is about twice as fast.
    """
    n = len(X)
    # sklearn's scheme: one seed drawn from random_state; every column restarts from it,
    # shuffles one index array further each repeat and applies it to the already shuffled
    # column, so repeat r's rows are the composition of the r orders drawn so far.
    seed = np.random.RandomState(random_state).randint(np.iinfo(np.int32).max + 1)
    overrides = []
    for col in X.columns:
        rng = np.random.RandomState(seed)
        order, rows = np.arange(n), np.arange(n)
        for _ in range(n_repeats):
            rng.shuffle(order)
            rows = rows[order]
            overrides.append((col, rows))
    X = X.reset_index(drop=True)
    baseline = roc_auc(y, predict_proba(model, X))
    scores = roc_auc(y, _predict_stacked(model, X, overrides, chunk_rows))
    return baseline - scores.reshape(X.shape[1], n_repeats)


def _in_turn(tasks) -> list:
    return [task() for task in tasks]


def fold_importance(models, X, y, folds, random_state, progress, run=_in_turn) -> pd.DataFrame:
    """Permutation importance of the raw columns on each held-out fold; mean/sd over folds.
    `run` calls the per-fold tasks and returns their results in order (training passes one that
    runs two folds at once)."""

    def one(k, test_idx, model):
        progress(f"permutation importance (fold {k}/{len(folds)})")
        drop = permutation_drop(
            model, X.iloc[test_idx], y[test_idx], n_repeats=REPEATS, random_state=random_state
        )
        return drop.mean(axis=1)

    tasks = [
        functools.partial(one, k, test_idx, model)
        for k, ((_, test_idx), model) in enumerate(zip(folds, models, strict=True), start=1)
    ]
    per_fold = np.array(run(tasks))
    imp = pd.DataFrame(
        {
            "feature": list(X.columns),
            "importance_mean": per_fold.mean(axis=0),
            "importance_std": per_fold.std(axis=0),
        }
    )
    return imp.sort_values(
        ["importance_mean", "feature"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def out_of_fold_reasons(
    models, X, folds, typical, progress, *, currency: str = DEFAULT_CURRENCY, run=_in_turn
) -> pd.DataFrame:
    progress("explaining out-of-fold scores (top three drivers per customer)")

    def one(test_idx, model):
        Xk = X.iloc[test_idx]
        return reasons_from_deltas(Xk, driver_deltas(model, Xk, typical), currency=currency)

    tasks = [
        functools.partial(one, test_idx, model)
        for (_, test_idx), model in zip(folds, models, strict=True)
    ]
    return pd.concat(run(tasks)).sort_index()
