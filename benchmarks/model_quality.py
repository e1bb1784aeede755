"""Model quality: the product's chosen model against reference models, on the same folds.

    .venv/bin/python -m benchmarks.model_quality [--data FILE ...] [--map CANONICAL=COLUMN ...]

Protocol (../shared/METRICS.md, "Model evaluation"): 5-fold StratifiedKFold(shuffle=True,
random_state=42) on the whole table, or on the current base for dated tables. Tables are read
with analytics.ingest.read.load_table, so every model sees exactly the product's features.

- product: exactly what analytics.model.train.train picks (its candidates, its selection by mean
  ROC-AUC), with its out-of-fold predictions;
- references, fitted on the same folds: logistic regression (one-hot + scaled, default C),
  default HistGradientBoosting (native categorical splits), random forest of 500 trees
  (one-hot).

Every model is scored by the same rules: ROC-AUC and PR-AUC (average precision) per fold, mean
(± sd); F1 of the churn class per fold at that fold's honest threshold (max F1 on the other
folds' out-of-fold predictions: analytics.model.evaluation.honest_fold_metrics), mean;
top-decile lift and Brier score on the pooled out-of-fold predictions; training time = total
seconds of the 5 fits. Native code runs on one thread, as in analytics.model.probability
(threadpoolctl); the random forest also uses joblib's n_jobs=-1 (every core), as specified for
the reference.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from analytics import columns as C
from analytics import timeline, workflow
from analytics.config import DEMO_DATA, PROJ_ROOT, Settings, settings_from_env
from analytics.ingest import read
from analytics.ingest.errors import DataError
from analytics.ingest.mapping import parse_mapping_pairs
from analytics.ingest.validate import Table
from analytics.model import evaluation, probability
from analytics.model import train as training
from analytics.model.features import MISSING_LEVEL, build_preprocessor, tree_categorical_features
from benchmarks import other_tables

TELCO = PROJ_ROOT.parent / "shared" / "data" / "telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
RANDOM_STATE = 42
# Our figures must equal the ones training.train reports for its own model (same rules).
AGREEMENT = 1e-9


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


@dataclass
class Dataset:
    name: str
    description: str
    X: pd.DataFrame
    y: np.ndarray
    numeric: list[str]
    categorical: list[str]
    holdout: tuple | None = None  # (X_train, y_train, X_test, y_test), dated tables only
    holdout_info: str = ""


def _holdout(table: Table, settings: Settings) -> tuple[tuple | None, str]:
    """The product's time-ordered holdout: train on the snapshot 3 months earlier, test on the
    current one (the rule of analytics.workflow's private _holdout, repeated here)."""
    if not table.has_dates:
        return None, ""
    try:
        train, test = timeline.holdout_split(table.frame, window_months=settings.window_months)
    except ValueError:
        return None, ""
    if train.base[C.CHURNED].nunique() < 2 or test.base[C.CHURNED].nunique() < 2:
        return None, ""
    feats = workflow.model_features(table)[0]
    data = (
        train.base[feats],
        train.base[C.CHURNED].to_numpy(),
        test.base[feats],
        test.base[C.CHURNED].to_numpy(),
    )
    info = (
        f"train on the base of the window ending {train.as_of.date()} "
        f"({len(train.base):,} customers), test on the current window "
        f"{test.window_start.date()}..{test.as_of.date()} ({len(test.base):,} customers)"
    )
    return data, info


def load_dataset(
    name: str, path: Path, settings: Settings, mapping=None, drop=(), with_holdout: bool = True
) -> Dataset:
    """The table as the product sees it: its current base, its features, its label."""
    table = read.load_table(path, mapping, drop=drop, max_bytes=settings.max_file_bytes)
    if not table.has_label:
        raise DataError(f"{path.name}: no churn label column (map one with --map churned=COL)")
    base, snap = workflow.prepare_base(table, settings)
    base = base.reset_index(drop=True)
    y = base[C.CHURNED].to_numpy().astype(int)
    where = (
        f"current base: {len(base):,} customers active on {snap.window_start.date()} "
        f"(window {snap.window_start.date()}..{snap.as_of.date()}, "
        f"{len(table.frame):,} rows with history)"
        if snap is not None
        else f"{len(base):,} customers"
    )
    description = (
        f"`{path.name}`: {where}; {int(y.sum()):,} churned ({100 * y.mean():.1f} %); "
        f"{len(workflow.model_features(table)[1])} numeric and "
        f"{len(workflow.model_features(table)[2])} categorical features"
    )
    holdout, info = _holdout(table, settings) if with_holdout else (None, "")
    features, numeric, categorical = workflow.model_features(table)  # as the product trains
    return Dataset(name, description, base[features], y, numeric, categorical, holdout, info)


# ---------------------------------------------------------------- models


def _onehot(numeric: Sequence[str], categorical: Sequence[str], *, scale: bool):
    steps = []
    if numeric:
        num = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if scale:
            num.append(("scale", StandardScaler()))
        steps.append(("num", Pipeline(num), list(numeric)))
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
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                list(categorical),
            )
        )
    return ColumnTransformer(steps, remainder="drop")


def reference_pipelines(
    numeric: Sequence[str], categorical: Sequence[str], random_state: int = RANDOM_STATE
) -> dict[str, Pipeline]:
    """Unfitted reference models, each a Pipeline from the raw feature columns."""
    return {
        "logistic regression (one-hot, scaled)": Pipeline(
            [
                ("preprocess", _onehot(numeric, categorical, scale=True)),
                ("model", LogisticRegression(max_iter=2000)),
            ]
        ),
        # The product's "tree" encoding (ordinal codes, rare levels grouped) feeds the native
        # categorical splits; the model itself keeps every default.
        "HistGradientBoosting (default)": Pipeline(
            [
                ("preprocess", build_preprocessor("tree", numeric, categorical)),
                (
                    "model",
                    HistGradientBoostingClassifier(
                        categorical_features=tree_categorical_features(categorical),
                        random_state=random_state,
                    ),
                ),
            ]
        ),
        "random forest (500 trees, one-hot)": Pipeline(
            [
                ("preprocess", _onehot(numeric, categorical, scale=False)),
                (
                    "model",
                    RandomForestClassifier(n_estimators=500, n_jobs=-1, random_state=random_state),
                ),
            ]
        ),
    }


def _cross_validate(pipeline, X: pd.DataFrame, y: np.ndarray, folds) -> tuple[np.ndarray, float]:
    """Out-of-fold probabilities on `folds` and the total seconds of the fits."""
    oof = np.zeros(len(y))
    seconds = 0.0
    with threadpool_limits(limits=1):
        for train_idx, test_idx in folds:
            model = clone(pipeline)
            started = time.perf_counter()
            model.fit(X.iloc[train_idx], y[train_idx])
            seconds += time.perf_counter() - started
            oof[test_idx] = probability.predict_proba(model, X.iloc[test_idx])
    return oof, seconds


def summarise(name: str, y: np.ndarray, oof: np.ndarray, test_folds, fit_seconds: float) -> dict:
    """The protocol's figures for one model's out-of-fold predictions."""
    folds = evaluation.honest_fold_metrics(y, oof, test_folds)
    auc = np.array([f["roc_auc"] for f in folds])
    return {
        "model": name,
        "roc_auc": float(auc.mean()),
        "roc_auc_std": float(auc.std()),
        "fold_roc_auc": auc,
        "pr_auc": float(np.mean([f["pr_auc"] for f in folds])),
        "f1": float(np.mean([f["f1"] for f in folds])),
        "f1_std": float(np.std([f["f1"] for f in folds])),
        "lift": evaluation.top_decile_lift(y, oof),
        "brier": float(brier_score_loss(y, oof)),
        "fit_seconds": fit_seconds,
    }


def _check_agrees(row: dict, metrics: dict) -> None:
    """Our figures for the product's OOF predictions must be the ones train() reports."""
    pairs = {
        "roc_auc": "roc_auc",
        "roc_auc_std": "roc_auc_std",
        "pr_auc": "pr_auc",
        "f1": "f1",
        "lift": "lift_top_decile",
        "brier": "brier",
    }
    off = {
        ours: (row[ours], metrics[theirs])
        for ours, theirs in pairs.items()
        if not math.isclose(row[ours], metrics[theirs], abs_tol=AGREEMENT)
    }
    if off:
        raise RuntimeError(
            f"benchmark and analytics.model.train disagree on the product's figures: {off}"
        )


def evaluate(ds: Dataset) -> dict:
    """Product and references on the same folds; returns rows, notes and the holdout."""
    _progress(f"{ds.name}: analytics.model.train.train on {len(ds.y):,} customers")
    started = time.perf_counter()
    result = training.train(
        ds.X,
        ds.y,
        numeric=ds.numeric,
        categorical=ds.categorical,
        random_state=RANDOM_STATE,
        holdout=ds.holdout,
    )
    train_wall = time.perf_counter() - started
    n_splits = result.metrics["n_splits"]
    # The same call train() makes: StratifiedKFold's split depends on y and the row count only.
    folds = list(
        StratifiedKFold(n_splits, shuffle=True, random_state=RANDOM_STATE).split(ds.X, ds.y)
    )
    test_folds = [test for _, test in folds]
    for fold, test in zip(result.fold_metrics, test_folds, strict=True):
        if fold["rows"] != len(test) or fold["churned"] != int(ds.y[test].sum()):
            raise RuntimeError("the benchmark's folds are not the ones analytics.model.train used")

    chosen = next(c for c in result.candidates if c["name"] == result.chosen)
    product = summarise(
        f"**product: {result.chosen}**",
        ds.y,
        result.oof,
        test_folds,
        chosen["fit_seconds"] * n_splits,
    )
    _check_agrees(product, result.metrics)
    rows = [product]
    references = reference_pipelines(ds.numeric, ds.categorical)
    fitted_holdout = {}
    for name, pipeline in references.items():
        _progress(f"{ds.name}: {name}, {n_splits} folds")
        oof, seconds = _cross_validate(pipeline, ds.X, ds.y, folds)
        rows.append(summarise(name, ds.y, oof, test_folds, seconds))
        if ds.holdout is not None:
            fitted_holdout[name] = _holdout_scores(pipeline, ds.holdout)

    holdout_rows = []
    if result.holdout_metrics is not None:
        h = result.holdout_metrics
        holdout_rows.append(
            {
                "model": product["model"],
                "roc_auc": h["roc_auc"],
                "pr_auc": h["pr_auc"],
                "lift": h["lift_top_decile"],
                "brier": h["brier"],
            }
        )
        holdout_rows += [{"model": name, **scores} for name, scores in fitted_holdout.items()]
    return {
        "dataset": ds,
        "rows": rows,
        "result": result,
        "train_wall": train_wall,
        "selection_seconds": sum(c["fit_seconds"] for c in result.candidates) * n_splits,
        "n_splits": n_splits,
        "holdout_rows": holdout_rows,
    }


def _holdout_scores(pipeline, holdout) -> dict:
    X_train, y_train, X_test, y_test = holdout
    with threadpool_limits(limits=1):
        model = clone(pipeline).fit(X_train.reset_index(drop=True), np.asarray(y_train, int))
        p = probability.predict_proba(model, X_test.reset_index(drop=True))
    y_test = np.asarray(y_test, int)
    return {
        "roc_auc": float(roc_auc_score(y_test, p)),
        "pr_auc": float(average_precision_score(y_test, p)),
        "lift": evaluation.top_decile_lift(y_test, p),
        "brier": float(brier_score_loss(y_test, p)),
    }


# ---------------------------------------------------------------- report


def _verdict(rows: list[dict]) -> str:
    product, refs = rows[0], rows[1:]
    best = max(refs, key=lambda r: r["roc_auc"])
    diff = product["roc_auc"] - best["roc_auc"]
    per_fold = product["fold_roc_auc"] - best["fold_roc_auc"]
    wins = int(np.sum(per_fold > 0))
    where = "at or above" if diff >= 0 else "BELOW"
    return (
        f"The product's model is **{where}** the best reference ({best['model']}) by "
        f"{diff:+.4f} ROC-AUC ({product['roc_auc']:.4f} vs {best['roc_auc']:.4f}); on the same "
        f"folds the paired difference is {per_fold.mean():+.4f} ± {per_fold.std():.4f} (sd), "
        f"ahead in {wins} of {len(per_fold)} folds."
    )


def report(ev: dict) -> None:
    ds, rows, result = ev["dataset"], ev["rows"], ev["result"]
    print(f"## {ds.name}\n")
    print(ds.description + "\n")
    for note in result.notes:
        print(f"- note: {note}")
    print(
        "| model | ROC-AUC (mean ± sd) | PR-AUC | F1 at honest t (mean ± sd) | top-decile lift "
        f"| Brier | train s ({ev['n_splits']} fits) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['roc_auc']:.4f} ± {r['roc_auc_std']:.4f} | {r['pr_auc']:.4f} "
            f"| {r['f1']:.3f} ± {r['f1_std']:.3f} | {r['lift']:.2f}x | {r['brier']:.4f} "
            f"| {r['fit_seconds']:.1f} |"
        )
    print()
    print(_verdict(rows) + "\n")
    cands = ", ".join(
        f"{c['name']} {c['roc_auc_mean']:.4f}" + (" (chosen)" if c["name"] == result.chosen else "")
        for c in result.candidates
    )
    print(
        f"- product candidates (mean ROC-AUC): {cands}; threshold on all out-of-fold "
        f"predictions t = {result.threshold:.3f}"
    )
    print(
        f"- product cost: fitting all candidates on the {ev['n_splits']} folds "
        f"{ev['selection_seconds']:.1f} s; the whole `training.train` call (selection, "
        f"importance, per-customer reasons, refit{', holdout' if ds.holdout else ''}) "
        f"{ev['train_wall']:.1f} s"
    )
    if ev["holdout_rows"]:
        print(f"\nTime-ordered holdout: {ds.holdout_info}.\n")
        print("| model | ROC-AUC | PR-AUC | top-decile lift | Brier |")
        print("|---|---|---|---|---|")
        for r in ev["holdout_rows"]:
            print(
                f"| {r['model']} | {r['roc_auc']:.4f} | {r['pr_auc']:.4f} | {r['lift']:.2f}x "
                f"| {r['brier']:.4f} |"
            )
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an extra customer table (CSV, CSV.GZ, Parquet); repeatable",
    )
    parser.add_argument(
        "--map",
        dest="pairs",
        action="append",
        default=[],
        metavar="CANONICAL=COLUMN",
        help="map a column of the --data files, e.g. --map churned=Exited",
    )
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="COLUMN",
        help="ignore a column of the --data files (repeatable)",
    )
    parser.add_argument(
        "--no-builtin",
        action="store_true",
        help="only the --data files: skip Telco and the built-in demo base",
    )
    parser.add_argument(
        "--no-other-schemas",
        action="store_true",
        help="skip the generated bank-style and telecom-style tables (benchmarks.other_tables)",
    )
    parser.add_argument(
        "--no-holdout", action="store_true", help="skip the time-ordered holdout of dated tables"
    )
    args = parser.parse_args(argv)
    mapping = parse_mapping_pairs(args.pairs) or None
    settings = settings_from_env(env={})

    started = time.perf_counter()
    print("# Model quality\n")
    print(
        f"Protocol: {training.N_SPLITS}-fold StratifiedKFold(shuffle=True, "
        f"random_state={RANDOM_STATE}) on the whole table (the current base for dated "
        "tables); every model on the same folds. ROC-AUC and PR-AUC: mean over folds. F1 of "
        "the churn class: per fold at the threshold maximising F1 on the other folds' "
        "out-of-fold predictions (the product's rule), mean over folds. Lift and Brier: on "
        "the pooled out-of-fold predictions. Train s: total seconds of the fold fits, native "
        "code on one thread (the random forest's trees also run on every core, n_jobs=-1). "
        "The product row is exactly what `analytics.model.train.train` chooses among its "
        "candidates; its selection cost is listed under the table.\n"
    )

    jobs: list[tuple[str, Path, dict | None, Sequence[str]]] = []
    if not args.no_builtin:
        if TELCO.exists():
            jobs.append(("IBM Telco customer churn", TELCO, None, ()))
        else:
            print(f"- IBM Telco skipped: {TELCO} not found (../shared is absent on this machine)\n")
        jobs.append(("Built-in demo base", DEMO_DATA, None, ()))
        if not args.no_other_schemas:
            jobs += [(title, path, None, ()) for title, path in other_tables.write_all().items()]
    jobs += [(f"`{path.name}`", path, mapping, args.drop) for path in args.data]
    if not jobs:
        parser.error("nothing to evaluate: give --data FILE or drop --no-builtin")

    failed = 0
    for name, path, table_mapping, drop in jobs:
        try:
            ds = load_dataset(
                name, path, settings, table_mapping, drop, with_holdout=not args.no_holdout
            )
            report(evaluate(ds))
        except (DataError, ValueError, RuntimeError) as exc:
            failed += 1
            print(f"## {name}\n\n**FAILED**: {type(exc).__name__}: {exc}\n")
    print(f"Model-quality run time: {time.perf_counter() - started:.0f} s.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
