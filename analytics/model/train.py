"""Churn model training: candidates, cross-validation, out-of-fold scores, the final refit.

Definitions (../shared/METRICS.md): every reported figure comes from 5-fold
StratifiedKFold(shuffle=True, random_state=42) on the whole table. The base is scored with
out-of-fold (OOF) probabilities; new customers with the final model refitted on all rows. The
decision threshold t is chosen on OOF predictions (analytics.model.evaluation); importance and
drivers come from analytics.model.explain.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from analytics.formatting import DEFAULT_CURRENCY
from analytics.model import search
from analytics.model.evaluation import (
    choose_threshold,
    curves,
    evaluate,
    honest_fold_metrics,
    mean_readings_auc,
    roc_auc,
    summary_scores,
    threshold_metrics,
)
from analytics.model.explain import fold_importance, out_of_fold_reasons, typical_values
from analytics.model.features import HIGH_CARDINALITY, high_cardinality
from analytics.model.probability import one_thread, predict_proba

Progress = Callable[[str], None]

N_SPLITS = 5
MIN_PER_CLASS_PER_FOLD = 5  # fewer per fold and fold metrics become noise: use fewer folds
MIN_PER_CLASS = 2 * MIN_PER_CLASS_PER_FOLD  # below this even 2-fold CV is meaningless
# The random forest candidate is left out of larger bases: its fits and its predictions over
# deep trees grow faster than its gain there, where gradient boosting does at least as well.
FOREST_MAX_ROWS = 100_000
FOLD_JOBS = 2  # folds fitted at once (the product's machines have 2 cores)


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
    search: list[dict] = field(default_factory=list)  # every configuration tried, as candidates


# ---------------------------------------------------------------- candidates


def candidate_pipelines(
    numeric: Sequence[str],
    categorical: Sequence[str],
    random_state: int = 42,
    *,
    forest: bool = True,
    target_encoded: Sequence[str] = (),
) -> dict[str, Pipeline]:
    """One unfitted pipeline per family (its configuration for small tables) and their blend:
    each a Pipeline (or Blend) from raw feature columns to probability."""
    out: dict = {}
    for config in search.grid(0, forest=forest):  # tier 0: one per family
        out[config.family] = search.pipeline(
            config,
            numeric,
            categorical,
            target_encoded=target_encoded,
            random_state=random_state,
        )
    out["blend"] = search.Blend([(k, v) for k, v in out.items() if k != "random_forest"])
    return out


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


def _cross_validate(
    name, pipeline, X, y, folds, progress, *, staged: bool = False
) -> tuple[np.ndarray, list, dict]:
    """Out-of-fold probabilities, the fold models and their summary. `staged` (boosting): the
    number of rounds with the best mean out-of-fold ROC-AUC is chosen and the fold models are cut
    back to it (analytics.model.search)."""
    oof = np.zeros(len(y))
    aucs, aps = [], []
    progress(f"cross-validating {name} ({len(folds)} folds)")
    rounds = None
    if staged and isinstance(pipeline[-1], HistGradientBoostingClassifier):
        models, rounds, seconds = search.grow(pipeline, X, y, folds, _run)
    else:

        def fit(train_idx, test_idx):
            model = clone(pipeline)
            started = time.perf_counter()
            with one_thread():
                model.fit(X.iloc[train_idx], y[train_idx])
                seconds = time.perf_counter() - started
                reading = search.staged_raw(model, X.iloc[test_idx]) if staged else None
            return model, seconds, reading

        done = _run([functools.partial(fit, tr, te) for tr, te in folds])
        models = [m for m, _, _ in done]
        seconds = [s for _, s, _ in done]
        readings = [r for _, _, r in done]
        if staged:
            mean_auc = mean_readings_auc(y, readings, [test for _, test in folds])
            # The first best: ties keep the fewest rounds.
            rounds = (int(np.argmax(mean_auc)) + 1) * search.ROUND_STEP
            rounds = min(rounds, search.max_rounds(pipeline))
            models = [search.truncate(m, rounds) for m in models]
    for model, (_, test_idx) in zip(models, folds, strict=True):
        p = predict_proba(model, X.iloc[test_idx])
        oof[test_idx] = p
        aucs.append(roc_auc(y[test_idx], p))
        aps.append(average_precision_score(y[test_idx], p))
    summary = {
        "name": name,
        "roc_auc_mean": float(np.mean(aucs)),
        "roc_auc_std": float(np.std(aucs)),
        "pr_auc_mean": float(np.mean(aps)),
        "fit_seconds": float(np.mean(seconds)),  # mean seconds per fit (one fold)
    }
    if rounds is not None:
        summary["rounds"] = rounds
    return oof, models, summary


def _run(tasks):
    """Zero-argument callables run FOLD_JOBS at a time on threads, results in order: the fits
    run in native code that releases the GIL, each on one native thread (one_thread), so both
    cores work without oversubscribing."""

    def call(task):
        with one_thread():
            return task()

    return Parallel(n_jobs=FOLD_JOBS, backend="threading")(delayed(call)(t) for t in tasks)


def _blend(members: list[dict], y, folds) -> dict:
    """The blend of `members` (searched candidates): the mean of their out-of-fold
    probabilities, scored by the same rules; its fold models are the members' fold models."""
    oof = np.mean([m["oof"] for m in members], axis=0)
    aucs = [roc_auc(y[test], oof[test]) for _, test in folds]
    aps = [average_precision_score(y[test], oof[test]) for _, test in folds]
    names = [m["summary"]["name"] for m in members]
    models = [
        search.Blend.of_fitted([(n, m["models"][k]) for n, m in zip(names, members, strict=True)])
        for k in range(len(folds))
    ]
    summary = {
        "name": "blend",
        "config": "mean probability of " + ", ".join(names),
        "roc_auc_mean": float(np.mean(aucs)),
        "roc_auc_std": float(np.std(aucs)),
        "pr_auc_mean": float(np.mean(aps)),
        "fit_seconds": float(sum(m["summary"]["fit_seconds"] for m in members)),
    }
    pipeline = search.Blend([(n, m["pipeline"]) for n, m in zip(names, members, strict=True)])
    return {"oof": oof, "models": models, "summary": summary, "pipeline": pipeline}


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
    seconds_per_10k: float | None = None,
    progress: Progress = _quiet,
) -> TrainResult:
    """Search the candidates (analytics.model.search), keep the best by mean out-of-fold
    ROC-AUC (a blend of the best when it is higher), evaluate and refit it. `seconds_per_10k`:
    the time budget (search.Budget); None tries every configuration of the grid."""
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
            seconds_per_10k=seconds_per_10k,
            progress=progress,
        )


def _train(
    X,
    y,
    *,
    numeric,
    categorical,
    random_state,
    holdout,
    target_recall,
    currency,
    seconds_per_10k,
    progress,
):
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
    encoded = high_cardinality(X, categorical)
    if encoded:
        notes.append(
            f"target-encoded for the tree models (over {HIGH_CARDINALITY} levels; native splits "
            f"on so many levels fit noise): {', '.join(encoded)}"
        )
    configs = search.grid(len(X), forest=forest)
    if seconds_per_10k:
        budget = search.Budget(len(X), len(features), seconds_per_10k)
        configs = budget.plan(configs)
        if note := budget.note():
            notes.append(note)
    progress(f"searching {len(configs)} configurations on {len(folds)} folds")
    best: dict[str, dict] = {}
    tried = []
    for config in configs:
        pipeline = search.pipeline(
            config, numeric, categorical, target_encoded=encoded, random_state=random_state
        )
        oof_c, models_c, summary = _cross_validate(
            f"{config.family} ({config.label})",
            pipeline,
            X,
            y,
            folds,
            progress,
            staged=config.staged,
        )
        if config.staged:
            pipeline = search.with_rounds(pipeline, summary["rounds"])
        summary = {**summary, "name": config.family, "config": config.label}
        tried.append(summary)
        entry = {"oof": oof_c, "models": models_c, "summary": summary, "pipeline": pipeline}
        kept = best.get(config.family)
        if kept is None or summary["roc_auc_mean"] > kept["summary"]["roc_auc_mean"]:
            best[config.family] = entry
    # The best configuration of each family, then blends of the best 2 and 3 families.
    singles = sorted(best.values(), key=lambda e: -e["summary"]["roc_auc_mean"])
    blends = [_blend(singles[:n], y, folds) for n in search.BLEND_SIZES if n <= len(singles)]
    entries = list(best.values())  # in the grid's order of families
    if blends:
        entries.append(max(blends, key=lambda e: e["summary"]["roc_auc_mean"]))
    summaries = [e["summary"] for e in entries]
    # Highest mean CV ROC-AUC; ties keep the earlier (a single model before the blend).
    chosen_entry = max(entries, key=lambda e: e["summary"]["roc_auc_mean"])
    chosen = chosen_entry["summary"]["name"]
    oof, fold_models = chosen_entry["oof"], chosen_entry["models"]
    chosen_pipeline = chosen_entry["pipeline"]

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

    importance = fold_importance(fold_models, X, y, folds, random_state, progress, run=_run)
    typical = typical_values(X, numeric, categorical)
    oof_reasons = out_of_fold_reasons(
        fold_models, X, folds, typical, progress, currency=currency, run=_run
    )
    oof_reasons.index = index

    progress(f"refitting {chosen} on all {len(X):,} rows")
    final = clone(chosen_pipeline).fit(X, y)

    holdout_metrics = None
    if holdout is not None:
        holdout_metrics = _holdout(
            chosen_pipeline,
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
        search=tried,
    )
