"""`python -m analytics`: generate, train, evaluate, score.

Errors print one line to stderr and exit non-zero; a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from analytics import export, synthetic, workflow
from analytics.config import (
    DEMO_DATA,
    ConfigError,
    ServeSettings,
    setting_from_env,
    settings_from_env,
    unknown_variables,
)
from analytics.ingest import read
from analytics.ingest.errors import DataError
from analytics.ingest.mapping import parse_mapping_pairs, with_keep
from analytics.store import artifacts
from analytics.store.errors import StateError

EXIT_ERROR = 1
EXIT_INTERNAL = 3


class Progress:
    """Step-by-step progress on stderr with elapsed seconds; silent with --quiet."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def _date(text: str) -> str:
    import pandas as pd

    try:
        return str(pd.Timestamp(text).date())
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"expected a date like 2026-10-31, got {text!r}") from None


def _add_data_options(p: argparse.ArgumentParser, *, default_data: bool) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=DEMO_DATA if default_data else None,
        required=not default_data,
        help="customer table: CSV, CSV.GZ or Parquet"
        + (" (default: the built-in demo base)" if default_data else ""),
    )
    p.add_argument(
        "--map",
        dest="pairs",
        action="append",
        default=[],
        metavar="CANONICAL=COLUMN",
        help="map a source column to a canonical one, e.g. --map churned=Exited (repeatable)",
    )
    p.add_argument(
        "--mapping-file",
        type=Path,
        help='JSON object of canonical -> source column, e.g. {"customer_id": "Cust No"}',
    )
    p.add_argument(
        "--drop", action="append", default=[], metavar="COLUMN", help="ignore a column (repeatable)"
    )
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COLUMN",
        help="keep a column found to be a probable label leak as a feature (repeatable; a "
        'mapping file may list them too: "keep": ["Complain"])',
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analytics",
        description="Churn-retention analytics: train, evaluate and score customer tables.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", parents=[common], help="write a synthetic customer base")
    gen.add_argument("--customers", type=_positive_int, default=synthetic.DEFAULT_CUSTOMERS)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--as-of", type=_date, default="2026-10-31", help="snapshot date")
    gen.add_argument("--out", type=Path, required=True, help="output .csv, .csv.gz or .parquet")

    tr = sub.add_parser(
        "train", parents=[common], help="train and save a model, then print the evaluation report"
    )
    _add_data_options(tr, default_data=True)
    tr.add_argument(
        "--models-dir", type=Path, default=None, help="default: RETENTION_MODELS_DIR, else models/"
    )
    tr.add_argument("--as-of", type=_date, help="snapshot date for dated tables (default: latest)")
    tr.add_argument("--window-months", type=_positive_int, help="observation window (default 1)")
    tr.add_argument(
        "--target-recall", type=_fraction, help="choose the threshold for this recall, not max F1"
    )
    tr.add_argument("--quiet", action="store_true", help="no progress lines")

    ev = sub.add_parser(
        "evaluate", parents=[common], help="print the evaluation report of a saved model"
    )
    ev.add_argument(
        "--models-dir", type=Path, default=None, help="default: RETENTION_MODELS_DIR, else models/"
    )
    ev.add_argument("--version", help="a saved version (default: the current one)")

    sc = sub.add_parser("score", parents=[common], help="score customers with the saved model")
    _add_data_options(sc, default_data=False)
    sc.add_argument("--out", type=Path, required=True, help="output .csv or .parquet")
    sc.add_argument(
        "--models-dir", type=Path, default=None, help="default: RETENTION_MODELS_DIR, else models/"
    )
    sc.add_argument("--quiet", action="store_true")

    jb = sub.add_parser("jobs", parents=[common], help="run background jobs (training)")
    jsub = jb.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    run = jsub.add_parser("run", parents=[common], help="run one claimed job (the runner does)")
    run.add_argument("job_id")
    jsub.add_parser(
        "worker",
        parents=[common],
        help="claim and run queued jobs until stopped (on any host sharing the state database)",
    )
    sub.add_parser(
        "refresh",
        parents=[common],
        help="re-read the source, train, and promote unless worse than the live model by more "
        "than RETENTION_PROMOTE_MARGIN",
    )
    return parser


def _mapping(args, keep: Sequence[str] = ()) -> dict | None:
    """The mapping file's entries, then --map pairs, with --keep and `keep` in its keep entry."""
    mapping: dict = {}
    if args.mapping_file is not None:
        mapping.update(read.load_mapping_file(args.mapping_file))
    mapping.update(parse_mapping_pairs(args.pairs))
    return with_keep(mapping, [*args.keep, *keep]) or None


def _load(args, settings, progress, *, require_label: bool, keep: Sequence[str] = ()):
    progress(f"reading {args.data}")
    table = read.load_table(
        args.data,
        _mapping(args, keep),
        require_label=require_label,
        drop=args.drop,
        **read.size_limits(settings),
        as_of=getattr(args, "as_of", None),  # a subscription log is read as of this date
    )
    for line in workflow.describe_table(table):
        progress(line)
    return table


def cmd_generate(args) -> int:
    progress = Progress()
    progress(f"generating {args.customers:,} customers (seed {args.seed})")
    frame = synthetic.generate(args.customers, seed=args.seed, as_of=args.as_of)
    artifacts.write_table(frame, args.out)
    progress(f"wrote {len(frame):,} rows to {args.out}")
    return 0


def cmd_train(args) -> int:
    settings = settings_from_env(window_months=args.window_months)
    progress = Progress(args.quiet)
    artifacts.check_writable(args.models_dir)  # before minutes of training, not after
    key = artifacts.installation_key()  # likewise: a key that cannot be made fails here
    table = _load(args, settings, progress, require_label=True)
    trained = workflow.train(
        table,
        settings,
        source=str(args.data),
        as_of=args.as_of,
        target_recall=args.target_recall,
        progress=progress,
    )
    progress(f"saving to {args.models_dir}")
    workflow.save(trained, args.models_dir, key=key)
    progress("done")
    print(workflow.report(trained, currency=settings.currency))
    return 0


def cmd_evaluate(args) -> int:
    settings = settings_from_env()
    model = workflow.load(args.models_dir, args.version, key=artifacts.installation_key())
    print(workflow.report(model, currency=settings.currency))
    return 0


def cmd_score(args) -> int:
    settings = settings_from_env()
    progress = Progress(args.quiet)
    model = workflow.load(args.models_dir, key=artifacts.installation_key())
    progress(f"model {model.version}")
    # A leak the model was trained with (kept by the user then) must be read again to score.
    kept = [leak["column"] for leak in model.meta.get("leaks", []) if leak.get("kept")]
    table = _load(args, settings, progress, require_label=False, keep=kept)
    scored, how = workflow.score(model, table, settings, progress=progress)
    progress(f"scored with {how}")
    # Ids, categories and reasons come from the user's file: no cell may open as a formula.
    export.write_export(workflow.score_output(scored), args.out)
    progress(f"wrote {len(scored):,} rows to {args.out}")
    return 0


def _state():
    """(serve settings, state database engine) from the RETENTION_* variables."""
    from analytics.config import serve_settings_from_env
    from analytics.store import db

    config = serve_settings_from_env()
    engine, _ = db.open_state(db.database_url(config.state_dir, config.database_url))
    return config, engine


def cmd_jobs(args) -> int:
    from analytics import jobs

    # The job's own lines (its failure, above all) join the server's log on stderr.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    )
    config, engine = _state()
    if args.jobs_command == "run":
        job = jobs.run_job(
            engine,
            args.job_id,
            state_dir=config.state_dir,
            models_dir=config.models_dir,
            settings=settings_from_env(),
            key=artifacts.installation_key(),
            promote_margin=config.promote_margin,
            keep_versions=config.keep_versions,
        )
        return 0 if job.state in ("done", "cancelled") else EXIT_ERROR
    runner = jobs.Runner(engine, state_dir=config.state_dir, models_dir=config.models_dir)
    print(f"job worker {jobs.runner_name()}: waiting for jobs (Ctrl-C stops)", file=sys.stderr)
    runner.loop()
    return 0


def cmd_refresh(args) -> int:
    from analytics import refresh

    config, engine = _state()
    done = refresh.refresh(engine, config, settings_from_env(), key=artifacts.installation_key())
    print(f"dataset {done.dataset.id[:12]} ({done.dataset.name}, {done.dataset.rows:,} rows)")
    print(done.message)
    failed = done.job is not None and done.job.state != "done"
    return EXIT_ERROR if failed else 0


COMMANDS = {
    "jobs": cmd_jobs,
    "refresh": cmd_refresh,
    "generate": cmd_generate,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "score": cmd_score,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A job the server's runner started inherits the server's environment, whose unknown
    # variables the server has warned about already: once in its log is enough.
    spawned = args.command == "jobs" and getattr(args, "jobs_command", None) == "run"
    for line in [] if spawned else unknown_variables():
        print(f"warning: {line}", file=sys.stderr)
    try:
        if getattr(args, "models_dir", "absent") is None:
            args.models_dir = setting_from_env(ServeSettings, "models_dir")
        return COMMANDS[args.command](args)
    except (DataError, artifacts.ArtifactError, ConfigError, StateError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI's last line of defence: one line, not a traceback
        if args.debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
