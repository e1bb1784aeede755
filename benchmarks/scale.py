"""Load, validate and score generated bases of growing size; peak memory of each run.

    .venv/bin/python -m benchmarks.scale --sizes 10000 100000 1000000

Each size runs in its own process (so its peak memory is its own): generate the base once
(cached under benchmarks/out/), then time reading + validating the file, and scoring every
customer with a model trained on the built-in demo base (same schema): probability, top three
reasons, segment, CLV, value and expected loss. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from analytics import synthetic, workflow
from analytics.config import DEMO_DATA, PROJ_ROOT, settings_from_env
from analytics.ingest import read
from analytics.store import artifacts

OUT = PROJ_ROOT / "benchmarks" / "out"
MODELS = OUT / "models-demo"


def one(size: int, seed: int) -> dict:
    """Measure one size in this process."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"scale-{size}.csv.gz"
    if not path.exists():
        t0 = time.perf_counter()
        artifacts.write_table(synthetic.generate(size, seed=seed), path)
        generate_s = time.perf_counter() - t0
    else:
        generate_s = float("nan")
    settings = settings_from_env(env={})
    model = workflow.load_or_train(DEMO_DATA, settings, models_dir=MODELS).model
    t0 = time.perf_counter()
    table = read.load_table(path, max_bytes=settings.max_file_bytes)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored, how = workflow.score(model, table, settings)
    score_s = time.perf_counter() - t0
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
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.seed)))
        return 0
    # Train (or load) the demo model first, so no size pays for it.
    workflow.load_or_train(DEMO_DATA, settings_from_env(env={}), models_dir=MODELS)
    rows = []
    for size in args.sizes:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.scale", "--one", str(size), "--seed",
             str(args.seed)],
            capture_output=True, text=True, cwd=PROJ_ROOT, check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print("| customers | file (MB, gzip) | load + validate (s) | score (s) | load + score (s) "
          "| peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rows']:,} | {r['file_mb']:.1f} | {r['load_validate_s']:.1f} | "
              f"{r['score_s']:.1f} | {r['load_validate_s'] + r['score_s']:.1f} | "
              f"{r['peak_mb']:,.0f} |")
    print("\nScore = probability, top three reasons (one model call per feature, METRICS.md's "
          "drivers), segment, CLV, value and expected loss for every customer, with the final "
          "model trained on the built-in demo base. Peak memory is the process's maximum "
          "resident set size (it includes Python, pandas and scikit-learn, about 200 MB).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
