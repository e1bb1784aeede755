"""Churn model training: candidates, cross-validation, out-of-fold scores, the final refit.

Definitions (../shared/METRICS.md): every reported figure comes from 5-fold
StratifiedKFold(shuffle=True, random_state=42) on the whole table. The base is scored with
out-of-fold (OOF) probabilities; new customers with the final model refitted on all rows. The
decision threshold t is chosen on OOF predictions (analytics.model.evaluation); importance and
drivers come from analytics.model.explain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from analytics.formatting import DEFAULT_CURRENCY
from analytics.model.evaluation import (
    choose_threshold,
    curves,
    evaluate,
    honest_fold_metrics,
    summary_scores,
    threshold_metrics,
)
from analytics.model.explain import fold_importance, out_of_fold_reasons, typical_values
from analytics.model.features import build_preprocessor, tree_categorical_features
from analytics.model.probability import one_thread, predict_proba

Progress = Callable[[str], None]

N_SPLITS = 5
MIN_PER_CLASS_PER_FOLD = 5  # fewer per fold and fold metrics become noise: use fewer folds
MIN_PER_CLASS = 2 * MIN_PER_CLASS_PER_FOLD  # below this even 2-fold CV is meaningless
# The random forest candidate is left out of larger bases: its fits and its predictions over
# deep trees grow faster than its gain there, where gradient boosting does at least as well.
FOREST_MAX_ROWS = 100_000


def _quiet(_message: str) -> None:
    pass


@dataclass
class TrainResult:
    pipeline: Pipeline  # the chosen candidate refitted on all rows (scores new customers)
    chosen: str
    candidates: list[dict]  # name, roc_auc_mean, roc_auc_std, pr_auc_mean, fit_seconds
    threshold: float
    metrics: dict  # the chosen model's OOF evaluation (see evaluation.evaluate)
    fold_metrics: list[dict]  # per fold: its own threshold (chosen on the other folds) and scores
    curves: dict  # roc {fpr, tpr}, pr {recall, precision}, calibration {prob_pred, prob_true}
    oof: np.ndarray  # out-of-fold probability per row, in X's order
    oof_reasons: pd.DataFrame  # reason_1..3 per row, from the fold model that scored the row
    importance: pd.DataFrame  # feature, importance_mean, importance_std; sorted desc
    typical: dict  # feature -> typical value of the base (median / mode)
    holdout_metrics: dict | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- candidates


def candidate_pipelines(
    numeric: Sequence[str],
    categorical: Sequence[str],
    random_state: int = 42,
    *,
    forest: bool = True,
) -> dict[str, Pipeline]:
    """Unfitted candidates, each one Pipeline from raw feature columns to probability."""
    logistic = Pipeline(
        [
            ("preprocess", build_preprocessor("linear", numeric, categorical)),
            # Mild L2 (C=0.5): splines and one-hot levels add many correlated columns.
            ("model", LogisticRegression(C=0.5, max_iter=2000)),
        ]
    )
    boosting = Pipeline(
        [
            ("preprocess", build_preprocessor("tree", numeric, categorical)),
            # Tuned on Telco: slower learning, small trees, big leaves; early stopping on a 10 %
            # validation split picks the number of trees.
            (
                "model",
                HistGradientBoostingClassifier(
                    learning_rate=0.05,
                    max_leaf_nodes=15,
                    l2_regularization=1.0,
                    min_samples_leaf=40,
                    max_iter=300,
                    early_stopping=True,
                    validation_fraction=0.1,
                    n_iter_no_change=10,
                    categorical_features=tree_categorical_features(categorical),
                    random_state=random_state,
                ),
            ),
        ]
    )
    blend = Pipeline(
        [
            (
                "model",
                VotingClassifier(
                    [("logistic", clone(logistic)), ("gradient_boosting", clone(boosting))],
                    voting="soft",
                ),
            ),
        ]
    )
    candidates = {"logistic": logistic, "gradient_boosting": boosting}
    if forest:
        # Bagged deep trees win where many small threshold effects add up on a few thousand
        # rows (a telecom-style table: 0.839 vs 0.821 for the boosting above). Leaves of at
        # least 5 rows rank probabilities better than fully grown trees (Telco 0.843 vs 0.825).
        candidates["random_forest"] = Pipeline(
            [
                ("preprocess", build_preprocessor("tree", numeric, categorical)),
                (
                    "model",
                    RandomForestClassifier(
                        n_estimators=300,
                        min_samples_leaf=5,
                        max_features="sqrt",
                        n_jobs=-1,
                        random_state=random_state,
                    ),
                ),
            ]
        )
    candidates["blend"] = blend
    return candidates


# ---------------------------------------------------------------- training


def _check_inputs(X: pd.DataFrame, y, numeric, categorical) -> tuple[np.ndarray, list[str]]:
    features = [*numeric, *categorical]
    missing = [c for c in features if c not in X.columns]
    if missing:
        raise ValueError(f"feature columns not in the table: {missing}")
    if not features:
        raise ValueError("the model needs at least one feature column")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"the label has {len(y)} values for {len(X)} rows")
    if pd.isna(y).any() or not np.isin(y, (0, 1)).all():
        raise ValueError("the churn label must be 0/1 for every row")
    return y.astype(int), features


def _n_splits(y: np.ndarray, notes: list[str]) -> int:
    churned = int(y.sum())
    retained = len(y) - churned
    if churned == 0 or retained == 0:
        raise ValueError(
            "training needs both churned and retained customers; "
            f"this table has {churned:,} churned and {retained:,} retained"
        )
    fewest = min(churned, retained)
    if fewest < MIN_PER_CLASS:
        which = "churned" if churned <= retained else "retained"
        raise ValueError(
            f"too few {which} customers to train and evaluate a model: {fewest} "
            f"(at least {MIN_PER_CLASS} needed)"
        )
    n_splits = min(N_SPLITS, fewest // MIN_PER_CLASS_PER_FOLD)
    if n_splits < N_SPLITS:
        notes.append(
            f"only {fewest} customers in the smaller class: {n_splits}-fold instead of "
            f"{N_SPLITS}-fold cross-validation, so every fold holds at least "
            f"{MIN_PER_CLASS_PER_FOLD} of them"
        )
    return n_splits


def _cross_validate(name, pipeline, X, y, folds, progress) -> tuple[np.ndarray, list, dict]:
    oof = np.zeros(len(y))
    models, seconds, aucs, aps = [], [], [], []
    for k, (train_idx, test_idx) in enumerate(folds, start=1):
        progress(f"cross-validating {name} (fold {k}/{len(folds)})")
        model = clone(pipeline)
        started = time.perf_counter()
        model.fit(X.iloc[train_idx], y[train_idx])
        seconds.append(time.perf_counter() - started)
        p = predict_proba(model, X.iloc[test_idx])
        oof[test_idx] = p
        aucs.append(roc_auc_score(y[test_idx], p))
        aps.append(average_precision_score(y[test_idx], p))
        models.append(model)
    summary = {
        "name": name,
        "roc_auc_mean": float(np.mean(aucs)),
        "roc_auc_std": float(np.std(aucs)),
        "pr_auc_mean": float(np.mean(aps)),
        "fit_seconds": float(np.mean(seconds)),  # mean seconds per fit (one fold)
    }
    return oof, models, summary


def _holdout(
    pipeline, holdout, numeric, categorical, random_state, target_recall, threshold, progress
) -> dict:
    X_train, y_train, X_test, y_test = holdout
    features = [*numeric, *categorical]
    y_train, _ = _check_inputs(X_train, y_train, numeric, categorical)
    y_test, _ = _check_inputs(X_test, y_test, numeric, categorical)
    X_train = X_train[features].reset_index(drop=True)
    X_test = X_test[features].reset_index(drop=True)
    if len(np.unique(y_test)) < 2:
        raise ValueError("the holdout's test part needs both churned and retained customers")
    notes: list[str] = []
    try:
        n_splits = _n_splits(y_train, notes)
    except ValueError:
        n_splits = 0
    if n_splits:
        # The threshold comes from a CV of the training part: the test period's labels stay
        # unseen until the final score.
        folds = list(
            StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(
                X_train, y_train
            )
        )
        oof, _, _ = _cross_validate(
            "the holdout's training part", pipeline, X_train, y_train, folds, progress
        )
        t = choose_threshold(y_train, oof, target_recall)
        source = f"chosen on {n_splits}-fold CV of the holdout's training part"
    else:
        t, source = threshold, "the production threshold (training part too small for CV)"
    progress(f"time-ordered holdout: fitting on {len(X_train):,} rows, testing on {len(X_test):,}")
    model = clone(pipeline).fit(X_train, y_train)
    p = predict_proba(model, X_test)
    return {
        **summary_scores(y_test, p),
        **threshold_metrics(y_test, p, t),
        "threshold": t,
        "threshold_source": source,
        "train_rows": len(X_train),
        "test_rows": len(X_test),
        "test_churn_rate": float(y_test.mean()),
    }


def train(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    random_state: int = 42,
    holdout: tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray] | None = None,
    target_recall: float | None = None,
    currency: str = DEFAULT_CURRENCY,
    progress: Progress = _quiet,
) -> TrainResult:
    """Cross-validate every candidate, keep the best by mean ROC-AUC, evaluate and refit it."""
    with one_thread():
        return _train(
            X,
            y,
            numeric=numeric,
            categorical=categorical,
            random_state=random_state,
            holdout=holdout,
            target_recall=target_recall,
            currency=currency,
            progress=progress,
        )


def _train(X, y, *, numeric, categorical, random_state, holdout, target_recall, currency, progress):
    numeric, categorical = list(numeric), list(categorical)
    y, features = _check_inputs(X, y, numeric, categorical)
    if target_recall is not None and not 0 < target_recall <= 1:
        raise ValueError(f"target recall must be in (0, 1], got {target_recall}")
    notes: list[str] = []
    n_splits = _n_splits(y, notes)
    index = X.index
    X = X[features].reset_index(drop=True)
    folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(X, y))

    forest = len(X) <= FOREST_MAX_ROWS
    if not forest:
        notes.append(
            f"random forest not tried: {len(X):,} rows is over {FOREST_MAX_ROWS:,} (slow to fit "
            "and to score there, and gradient boosting does at least as well)"
        )
    pipelines = candidate_pipelines(numeric, categorical, random_state=random_state, forest=forest)
    results = {}
    progress(f"cross-validating {len(pipelines)} candidates: {', '.join(pipelines)}")
    for name, pipeline in pipelines.items():
        results[name] = _cross_validate(name, pipeline, X, y, folds, progress)
    summaries = [results[name][2] for name in pipelines]
    # Highest mean CV ROC-AUC; ties keep the simpler (earlier) candidate.
    chosen = max(summaries, key=lambda s: s["roc_auc_mean"])["name"]
    oof, fold_models, _ = results[chosen]

    progress(f"choosing the threshold on {chosen}'s out-of-fold scores")
    test_folds = [test for _, test in folds]
    threshold = choose_threshold(y, oof, target_recall)
    fold_metrics = honest_fold_metrics(y, oof, test_folds, target_recall)
    metrics = evaluate(y, oof, test_folds, threshold, fold_metrics)
    metrics["threshold_rule"] = (
        f"highest t with out-of-fold recall >= {target_recall}"
        if target_recall
        else "maximises F1 of the churn class on out-of-fold predictions"
    )

    importance = fold_importance(fold_models, X, y, folds, random_state, progress)
    typical = typical_values(X, numeric, categorical)
    oof_reasons = out_of_fold_reasons(fold_models, X, folds, typical, progress, currency=currency)
    oof_reasons.index = index

    progress(f"refitting {chosen} on all {len(X):,} rows")
    final = clone(pipelines[chosen]).fit(X, y)

    holdout_metrics = None
    if holdout is not None:
        holdout_metrics = _holdout(
            pipelines[chosen],
            holdout,
            numeric,
            categorical,
            random_state,
            target_recall,
            threshold,
            progress,
        )
    return TrainResult(
        pipeline=final,
        chosen=chosen,
        candidates=summaries,
        threshold=threshold,
        metrics=metrics,
        fold_metrics=fold_metrics,
        curves=curves(y, oof),
        oof=oof,
        oof_reasons=oof_reasons,
        importance=importance,
        typical=typical,
        holdout_metrics=holdout_metrics,
        notes=notes,
    )
