"""Model quality: the product's chosen model against reference models, on the same folds.

    .venv/bin/python -m benchmarks.model_quality [--data FILE ...] [--map CANONICAL=COLUMN ...]
        [--no-builtin] [--references NAME ...]

Protocol (../shared/METRICS.md, "Model evaluation"): 5-fold StratifiedKFold(shuffle=True,
random_state=42) on the whole table, or on the current base for dated tables. Any CSV, CSV.GZ
or Parquet file is read as `python -m analytics train` reads it (analytics.ingest.read.load_table
with the product's size limits, then analytics.workflow.train), so every model sees exactly the
product's features (a column the product leaves out as a leak is left out of the references too).

- product: exactly what analytics.workflow.train (the CLI's training) picks, with its
  out-of-fold predictions;
- references, fitted on the same folds: logistic regression (one-hot + scaled, default C),
  default HistGradientBoosting (native categorical splits), HistGradientBoosting tuned
  (learning_rate 0.05, 15 leaves, l2 1.0, early stopping), random forest of 500 trees
  (one-hot), LightGBM and CatBoost with their defaults (native categoricals). LightGBM and
  CatBoost are imported only when used; when absent the output says "not installed". They stay
  references at their defaults even where the product has a candidate of the same library.

Every model is scored by the same rules: ROC-AUC and PR-AUC (average precision) per fold, mean
(± sd); F1 of the churn class per fold at that fold's honest threshold (max F1 on the other
folds' out-of-fold predictions: analytics.model.evaluation.honest_fold_metrics), mean;
top-decile lift and Brier score on the pooled out-of-fold predictions; training time = total
seconds of the 5 fits. Native code runs on one thread, as in analytics.model.probability
(threadpoolctl; LightGBM n_jobs=1, CatBoost thread_count=1); the random forest also uses
joblib's n_jobs=-1 (every core), as specified for the reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from analytics import columns as C
from analytics import timeline, workflow
from analytics.config import DEMO_DATA, PROJ_ROOT, Settings, settings_from_env
from analytics.ingest import read
from analytics.ingest.errors import DataError
from analytics.ingest.mapping import parse_mapping_pairs
from analytics.ingest.validate import Table
from analytics.model import evaluation, probability
from analytics.model.features import MISSING_LEVEL, build_preprocessor, tree_categorical_features
from benchmarks import other_tables

TELCO = PROJ_ROOT.parent / "shared" / "data" / "telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
RANDOM_STATE = 42
N_SPLITS = 5
# Our figures must equal the ones the product's training reports for its own model (same rules).
AGREEMENT = 1e-9

# Short name (for --references) -> (shown name, the library it needs or None).
REFERENCES = {
    "logistic": ("logistic regression (one-hot, scaled)", None),
    "hgb": ("HistGradientBoosting (default)", None),
    "hgb_tuned": ("HistGradientBoosting tuned (lr 0.05, 15 leaves, l2 1.0, early stop)", None),
    "forest": ("random forest (500 trees, one-hot)", None),
    "lightgbm": ("LightGBM (default)", "lightgbm"),
    "catboost": ("CatBoost (default)", "catboost"),
}


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


@dataclass
class Dataset:
    name: str
    path: Path
    table: Table
    description: str


def load_dataset(name: str, path: Path, settings: Settings, mapping=None, drop=()) -> Dataset:
    """The table as `python -m analytics train` reads it (same function, same size limits)."""
    table = read.load_table(path, mapping, drop=drop, **read.size_limits(settings))
    if not table.has_label:
        raise DataError(f"{path.name}: no churn label column (map one with --map churned=COL)")
    base, snap = workflow.prepare_base(table, settings)
    y = base[C.CHURNED].to_numpy().astype(int)
    where = (
        f"current base: {len(base):,} customers active on {snap.window_start.date()} "
        f"(window {snap.window_start.date()}..{snap.as_of.date()}, "
        f"{len(table.frame):,} rows with history)"
        if snap is not None
        else f"{len(base):,} customers"
    )
    description = f"`{path.name}`: {where}; {int(y.sum()):,} churned ({100 * y.mean():.1f} %)"
    return Dataset(name, path, table, description)


def _holdout(table: Table, settings: Settings, features: Sequence[str]) -> tuple[tuple | None, str]:
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
    feats = list(features)
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


def as_categories(X: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]):
    """Numbers as float, categories as pandas categoricals (LightGBM's native categoricals)."""
    out = X[[*numeric, *categorical]].copy()
    for c in numeric:
        out[c] = out[c].astype(float)
    for c in categorical:
        if not isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("category")
    return out


def as_text(X: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]):
    """Numbers as float, categories as text with a 'missing' level (CatBoost refuses NaN)."""
    out = X[[*numeric, *categorical]].copy()
    for c in numeric:
        out[c] = out[c].astype(float)
    for c in categorical:
        out[c] = out[c].astype(object).where(out[c].notna(), MISSING_LEVEL).astype(str)
    return out


def _frame_step(function, numeric, categorical) -> FunctionTransformer:
    return FunctionTransformer(
        function, kw_args={"numeric": list(numeric), "categorical": list(categorical)}
    )


class CatBoostDefault(ClassifierMixin, BaseEstimator):
    """CatBoostClassifier with its defaults, on one thread, as a scikit-learn estimator:
    CatBoost's own class cannot be cloned by scikit-learn 1.9 (it rewrites cat_features)."""

    def __init__(self, cat_features: tuple[str, ...] = (), random_state: int = RANDOM_STATE):
        self.cat_features = cat_features
        self.random_state = random_state

    def fit(self, X, y):
        from catboost import CatBoostClassifier

        self.model_ = CatBoostClassifier(
            cat_features=list(self.cat_features),
            random_seed=self.random_state,
            thread_count=1,
            verbose=0,
            allow_writing_files=False,  # no catboost_info/ folder in the working directory
        ).fit(X, y)
        self.classes_ = np.asarray(self.model_.classes_)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def _build_reference(key: str, numeric, categorical, random_state: int) -> Pipeline:
    if key == "logistic":
        return Pipeline(
            [
                ("preprocess", _onehot(numeric, categorical, scale=True)),
                ("model", LogisticRegression(max_iter=2000)),
            ]
        )
    if key in ("hgb", "hgb_tuned"):
        # The product's "tree" encoding (ordinal codes, rare levels grouped) feeds the native
        # categorical splits; the default model keeps every default.
        params = (
            {
                "learning_rate": 0.05,
                "max_leaf_nodes": 15,
                "l2_regularization": 1.0,
                "max_iter": 500,
                "early_stopping": True,
                "validation_fraction": 0.1,
                "n_iter_no_change": 10,
            }
            if key == "hgb_tuned"
            else {}
        )
        model = HistGradientBoostingClassifier(
            categorical_features=tree_categorical_features(categorical),
            random_state=random_state,
            **params,
        )
        return Pipeline(
            [("preprocess", build_preprocessor("tree", numeric, categorical)), ("model", model)]
        )
    if key == "forest":
        return Pipeline(
            [
                ("preprocess", _onehot(numeric, categorical, scale=False)),
                (
                    "model",
                    RandomForestClassifier(n_estimators=500, n_jobs=-1, random_state=random_state),
                ),
            ]
        )
    if key == "lightgbm":
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(random_state=random_state, n_jobs=1, verbose=-1)
        return Pipeline(
            [("frame", _frame_step(as_categories, numeric, categorical)), ("model", model)]
        )
    if key == "catboost":
        model = CatBoostDefault(cat_features=tuple(categorical), random_state=random_state)
        return Pipeline([("frame", _frame_step(as_text, numeric, categorical)), ("model", model)])
    raise ValueError(f"unknown reference {key!r}; expected one of {', '.join(REFERENCES)}")


def missing_references(keys: Sequence[str] = tuple(REFERENCES)) -> dict[str, str]:
    """Shown name -> why it is not run, for references whose library is not installed."""
    return {
        REFERENCES[k][0]: f"not installed (pip install {lib})"
        for k in keys
        if (lib := REFERENCES[k][1]) is not None and importlib.util.find_spec(lib) is None
    }


def reference_pipelines(
    numeric: Sequence[str],
    categorical: Sequence[str],
    random_state: int = RANDOM_STATE,
    keys: Sequence[str] = tuple(REFERENCES),
) -> dict[str, Pipeline]:
    """Unfitted reference models whose library is installed, each a Pipeline from the raw
    feature columns; the others are named by missing_references()."""
    skipped = missing_references(keys)
    return {
        REFERENCES[k][0]: _build_reference(k, numeric, categorical, random_state)
        for k in keys
        if REFERENCES[k][0] not in skipped
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


def _product_folds(meta: dict, X: pd.DataFrame, y: np.ndarray) -> list:
    """The product's folds: StratifiedKFold's split depends on y and the row count only."""
    n_splits = meta["metrics"]["n_splits"]
    folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=RANDOM_STATE).split(X, y))
    for fold, (_, test) in zip(meta["fold_metrics"], folds, strict=True):
        if fold["rows"] != len(test) or fold["churned"] != int(y[test].sum()):
            raise RuntimeError("the benchmark's folds are not the ones the product's training used")
    return folds


def evaluate(ds: Dataset, settings: Settings, keys: Sequence[str] = tuple(REFERENCES)) -> dict:
    """Product and references on the same folds; returns rows, notes and the holdout."""
    _progress(f"{ds.name}: analytics.workflow.train (as `python -m analytics train`)")
    started = time.perf_counter()
    model = workflow.train(ds.table, settings, source=str(ds.path), progress=_progress)
    train_wall = time.perf_counter() - started
    meta = model.meta
    numeric, categorical = list(meta["numeric"]), list(meta["categorical"])
    base = model.scored.reset_index(drop=True)
    X, y = base[meta["features"]], base[C.CHURNED].to_numpy().astype(int)
    if len(base) != meta.get("base_rows", len(base)):
        raise RuntimeError(
            f"the product scored {len(base):,} of {meta['base_rows']:,} customers out of fold "
            "(a sampled base): this benchmark compares whole bases only"
        )
    folds = _product_folds(meta, X, y)
    n_splits = len(folds)
    test_folds = [test for _, test in folds]

    candidates = meta["candidates"]
    chosen = next(c for c in candidates if c["name"] == meta["chosen"])
    product = summarise(
        f"**product: {meta['chosen']}**",
        y,
        base[C.P_CHURN].to_numpy(),
        test_folds,
        chosen.get("fit_seconds", math.nan) * n_splits,
    )
    _check_agrees(product, meta["metrics"])
    rows = [product]
    holdout, holdout_info = _holdout(ds.table, settings, meta["features"])
    holdout_rows = []
    if meta.get("holdout"):
        h = meta["holdout"]
        holdout_rows.append(
            {
                "model": product["model"],
                "roc_auc": h["roc_auc"],
                "pr_auc": h["pr_auc"],
                "lift": h["lift_top_decile"],
                "brier": h["brier"],
            }
        )
    for name, pipeline in reference_pipelines(numeric, categorical, keys=keys).items():
        _progress(f"{ds.name}: {name}, {n_splits} folds")
        oof, seconds = _cross_validate(pipeline, X, y, folds)
        rows.append(summarise(name, y, oof, test_folds, seconds))
        if holdout is not None and holdout_rows:
            holdout_rows.append({"model": name, **_holdout_scores(pipeline, holdout)})
    return {
        "dataset": ds,
        "rows": rows,
        "meta": meta,
        "missing": missing_references(keys),
        "customers": len(y),
        "features": (numeric, categorical),
        "train_wall": train_wall,
        "selection_seconds": sum(c.get("fit_seconds", 0.0) for c in candidates) * n_splits,
        "n_splits": n_splits,
        "holdout_rows": holdout_rows,
        "holdout_info": holdout_info,
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


def _dropped_lines(meta: dict) -> list[str]:
    """Columns the product left out of its features, with its reason (leaks among them)."""
    dropped = meta.get("dropped") or {}
    if isinstance(dropped, dict):
        return [f"{col}: {why}" for col, why in dropped.items()]
    return [str(d) for d in dropped]


def report(ev: dict) -> None:
    ds, rows, meta = ev["dataset"], ev["rows"], ev["meta"]
    numeric, categorical = ev["features"]
    print(f"## {ds.name}\n")
    print(
        f"{ds.description}; the product's features: {len(numeric)} numeric and "
        f"{len(categorical)} categorical\n"
    )
    notes = [f"- left out by the product: {line}" for line in _dropped_lines(meta)]
    notes += [f"- note: {note}" for note in meta.get("notes", [])]
    if notes:
        print("\n".join(notes) + "\n")
    print(
        "| model | ROC-AUC (mean ± sd) | product − model | PR-AUC | F1 at honest t (mean ± sd) "
        f"| top-decile lift | Brier | fit s ({ev['n_splits']} fits) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        gap = "" if r is rows[0] else f"{rows[0]['roc_auc'] - r['roc_auc']:+.4f}"
        print(
            f"| {r['model']} | {r['roc_auc']:.4f} ± {r['roc_auc_std']:.4f} | {gap} "
            f"| {r['pr_auc']:.4f} | {r['f1']:.3f} ± {r['f1_std']:.3f} | {r['lift']:.2f}x "
            f"| {r['brier']:.4f} | {r['fit_seconds']:.1f} |"
        )
    for name, why in ev["missing"].items():
        print(f"| {name} | {why} | | | | | | |")
    print()
    if len(rows) > 1:
        print(_verdict(rows) + "\n")
    cands = ", ".join(
        f"{c['name']} {c['roc_auc_mean']:.4f}"
        + (" (chosen)" if c["name"] == meta["chosen"] else "")
        for c in meta["candidates"]
    )
    print(
        f"- product candidates (mean ROC-AUC): {cands}; threshold on all out-of-fold "
        f"predictions t = {meta['threshold']:.3f}"
    )
    per_10k = ev["train_wall"] / max(ev["customers"], 1) * 10_000
    print(
        f"- product cost: its listed candidates' {ev['n_splits']} fold fits add up to "
        f"{ev['selection_seconds']:.1f} s (fits may run side by side; a search tries more); "
        f"the whole training (`analytics.workflow.train`: "
        f"segments, search, threshold, importance, per-customer reasons, refit"
        f"{', holdout' if ev['holdout_rows'] else ''}) {ev['train_wall']:.1f} s for "
        f"{ev['customers']:,} customers ({per_10k:.1f} s per 10,000)"
    )
    if ev["holdout_rows"]:
        print(f"\nTime-ordered holdout: {ev['holdout_info']}.\n")
        print("| model | ROC-AUC | PR-AUC | top-decile lift | Brier |")
        print("|---|---|---|---|---|")
        for r in ev["holdout_rows"]:
            print(
                f"| {r['model']} | {r['roc_auc']:.4f} | {r['pr_auc']:.4f} | {r['lift']:.2f}x "
                f"| {r['brier']:.4f} |"
            )
    print()


def summary(evaluations: list[dict]) -> None:
    """One line per table: the product against its best reference, and the time budget."""
    print("## Summary\n")
    print(
        "| table | customers | product (chosen) | best reference | product − best "
        "| training s (per 10,000) |"
    )
    print("|---|---|---|---|---|---|")
    for ev in evaluations:
        product, refs = ev["rows"][0], ev["rows"][1:]
        best = max(refs, key=lambda r: r["roc_auc"]) if refs else None
        per_10k = ev["train_wall"] / max(ev["customers"], 1) * 10_000
        gap = product["roc_auc"] - best["roc_auc"] if best else math.nan
        print(
            f"| {ev['dataset'].name} | {ev['customers']:,} | {product['roc_auc']:.4f} "
            f"({ev['meta']['chosen']}) | "
            + (f"{best['roc_auc']:.4f} ({best['model']})" if best else "none")
            + f" | {'**' if gap < 0 else ''}{gap:+.4f}{'**' if gap < 0 else ''} "
            f"| {ev['train_wall']:.1f} ({per_10k:.1f}) |"
        )
    print()


def _parser() -> argparse.ArgumentParser:
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
        help="only the --data files: skip Telco, the demo base and the generated tables",
    )
    parser.add_argument(
        "--no-other-schemas",
        action="store_true",
        help="skip the generated tables of other public schemas (benchmarks.other_tables)",
    )
    parser.add_argument(
        "--references",
        nargs="+",
        choices=list(REFERENCES),
        default=list(REFERENCES),
        metavar="NAME",
        help=f"references to fit (default: all of {', '.join(REFERENCES)})",
    )
    return parser


PROTOCOL = (
    f"Protocol: {N_SPLITS}-fold StratifiedKFold(shuffle=True, random_state={RANDOM_STATE}) on "
    "the whole table (the current base for dated tables); every model on the same folds and on "
    "the product's features. ROC-AUC and PR-AUC: mean over folds. F1 of the churn class: per "
    "fold at the threshold maximising F1 on the other folds' out-of-fold predictions (the "
    "product's rule), mean over folds. Lift and Brier: on the pooled out-of-fold predictions. "
    "Fit s: total seconds of the fold fits, native code on one thread (the random forest's "
    "trees also run on every core, n_jobs=-1); for the product, its chosen candidate's fits. "
    "The product row is exactly what `analytics.workflow.train` (the training of `python -m "
    "analytics train`) chooses; the cost of its whole training is listed under each table.\n"
)


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    mapping = parse_mapping_pairs(args.pairs) or None
    settings = settings_from_env(env={})

    started = time.perf_counter()
    print("# Model quality\n")
    print(PROTOCOL)

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

    failed, evaluations = 0, []
    for name, path, table_mapping, drop in jobs:
        try:
            ds = load_dataset(name, path, settings, table_mapping, drop)
            evaluations.append(evaluate(ds, settings, args.references))
            report(evaluations[-1])
        except (DataError, ValueError, RuntimeError) as exc:
            failed += 1
            print(f"## {name}\n\n**FAILED**: {type(exc).__name__}: {exc}\n")
    if evaluations:
        summary(evaluations)
    print(f"Model-quality run time: {time.perf_counter() - started:.0f} s.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
