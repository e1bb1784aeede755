"""Load, validate and score generated bases of growing size; peak memory of each run.

    .venv/bin/python -m benchmarks.scale --sizes 10000 100000 1000000
    .venv/bin/python -m benchmarks.scale --sizes 1000000 --model trained lightgbm blend
    .venv/bin/python -m benchmarks.scale --sizes 10000000 --max-file-mb 4096

Each size runs in its own process (so its peak memory is its own): generate the base once
(cached under benchmarks/out/), then time reading + validating the file, and scoring every
customer with a model trained on the built-in demo base (same schema): probability, top three
reasons, segment, CLV, value and expected loss. Prints a markdown table.

--model: "trained" is the model training chooses on the demo base (the model search); a family
(logistic, lightgbm, gradient_boosting, random_forest) is that family's configuration for the
smallest tables (train.candidate_pipelines; boosting: 200 rounds of up to 31 leaves, not cut to
the rounds the search would pick), "blend" logistic + LightGBM + HistGradientBoosting so;
fitted on the demo base in the child process, before the clock starts.

Files over the size limit are refused as they would be by the CLI: --max-file-mb, else
RETENTION_MAX_FILE_MB, else the default (a 10,000,000-customer base needs more than it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time

from analytics import columns as C
from analytics import synthetic, workflow
from analytics.config import DEMO_DATA, PROJ_ROOT, Settings, settings_from_env
from analytics.ingest import read
from analytics.model import search
from analytics.model import train as training
from analytics.store import artifacts

OUT = PROJ_ROOT / "benchmarks" / "out"
MODELS = OUT / "models-demo"
FAMILIES = ("logistic", "lightgbm", "gradient_boosting", "random_forest")
MODELS_CHOICES = ("trained", *FAMILIES, "blend")


def run_settings(max_file_mb: float | None = None) -> Settings:
    """Default business settings, so runs compare; the file-size limit read like the CLI's."""
    limit = settings_from_env(max_file_mb=max_file_mb).max_file_mb
    return settings_from_env(env={}, max_file_mb=limit)


def child_command(
    size: int, seed: int, max_file_mb: float | None, model: str = "trained"
) -> list[str]:
    """The command measuring one size in its own process, with the same size limit."""
    command = [sys.executable, "-m", "benchmarks.scale", "--one", str(size), "--seed", str(seed)]
    command += ["--model", model]
    if max_file_mb is not None:
        command += ["--max-file-mb", str(max_file_mb)]
    return command


def with_family(trained: workflow.TrainedModel, name: str, settings: Settings):
    """The demo model with its pipeline replaced by `name` (see the module docstring), fitted on
    the same base and features."""
    meta = trained.meta
    base, _ = workflow.prepare_base(read.load_table(DEMO_DATA), settings)
    X = workflow._align_features(base, meta).reset_index(drop=True)
    y = base[C.CHURNED].to_numpy()
    # Each family's smallest-table configuration, boosting with its most rounds (200).
    candidates = training.candidate_pipelines(meta["numeric"], meta["categorical"])
    if name == "blend":
        members = [(f, candidates[f]) for f in ("logistic", "lightgbm", "gradient_boosting")]
        pipeline = search.Blend(members).fit(X, y)
    else:
        pipeline = candidates[name].fit(X, y)
    return dataclasses.replace(trained, pipeline=pipeline)


def one(size: int, seed: int, settings: Settings, model_name: str = "trained") -> dict:
    """Measure one size in this process."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"scale-{size}.csv.gz"
    if not path.exists():
        t0 = time.perf_counter()
        artifacts.write_table(synthetic.generate(size, seed=seed), path)
        generate_s = time.perf_counter() - t0
    else:
        generate_s = float("nan")
    key = artifacts.installation_key()
    model = workflow.load_or_train(DEMO_DATA, settings, models_dir=MODELS, key=key).model
    if model_name != "trained":
        model = with_family(model, model_name, settings)
    t0 = time.perf_counter()
    table = read.load_table(path, max_bytes=settings.max_file_bytes)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored, how = workflow.score(model, table, settings)  # compiles the fast scorer, as the CLI
    score_s = time.perf_counter() - t0
    family = type(model.pipeline[-1] if hasattr(model.pipeline, "steps") else model.pipeline)
    compiled = model.scorer is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "size": size,
        "rows": len(scored),
        "file_mb": path.stat().st_size / 1e6,
        "generate_s": generate_s,
        "load_validate_s": load_s,
        "score_s": score_s,
        "peak_mb": peak_mb,
        "how": how,
        "model": model_name,
        "estimator": family.__name__,
        "fast": compiled,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--max-file-mb",
        type=float,
        help="refuse input files larger than this (default: RETENTION_MAX_FILE_MB, else 512)",
    )
    parser.add_argument(
        "--model",
        nargs="+",
        choices=MODELS_CHOICES,
        default=["trained"],
        help="score with the trained demo model and/or these families (default: trained)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)
    settings = run_settings(args.max_file_mb)
    if args.one:
        print(json.dumps(one(args.one, args.seed, settings, args.model[0])))
        return 0
    # Train (or load) the demo model first, so no size pays for it.
    workflow.load_or_train(DEMO_DATA, settings, models_dir=MODELS, key=artifacts.installation_key())
    rows = []
    for model_name in args.model:
        for size in args.sizes:
            proc = subprocess.run(
                child_command(size, args.seed, args.max_file_mb, model_name),
                capture_output=True,
                text=True,
                cwd=PROJ_ROOT,
                check=False,
            )
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return proc.returncode
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        "| model | customers | file (MB, gzip) | load + validate (s) | score (s) "
        "| load + score (s) | peak memory (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        model = r.get("model", "trained")
        if r.get("estimator"):
            model += f" ({r['estimator']}{'' if r.get('fast', True) else ', no fast scorer'})"
        print(
            f"| {model} | {r['rows']:,} | {r['file_mb']:.1f} | {r['load_validate_s']:.1f} | "
            f"{r['score_s']:.1f} | {r['load_validate_s'] + r['score_s']:.1f} | "
            f"{r['peak_mb']:,.0f} |"
        )
    print(
        "\nScore = probability, top three reasons (one model call per feature, METRICS.md's "
        "drivers), segment, CLV, value and expected loss for every customer, with the final "
        "model trained on the built-in demo base. Peak memory is the process's maximum "
        "resident set size (it includes Python, pandas and scikit-learn, about 200 MB)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
