"""`python -m dashboard [--data FILE] [mapping options]`: the dashboard on one table.

Without --data it serves the built-in demo base. When models/ has no model trained on this
table, one is trained first (progress is logged). This is the development server: on
127.0.0.1 it makes demo accounts with new passwords, printed once in the log (gunicorn never
does). Ops commands: `python -m dashboard db|users|tokens ...`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from analytics.config import (
    ConfigError,
    serve_settings_from_env,
    settings_from_env,
    unknown_variables,
)
from analytics.ingest import read
from analytics.ingest.errors import DataError
from analytics.ingest.mapping import parse_mapping_pairs
from analytics.store import artifacts, db
from dashboard.auth import AuthSetupError
from dashboard.logs import configure_logging
from dashboard.server import column_mapping, describe, warn_unknown_variables


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, help="customer table (default: the built-in demo base)")
    p.add_argument(
        "--map",
        dest="pairs",
        action="append",
        default=[],
        metavar="CANONICAL=COLUMN",
        help="e.g. --map churned=Exited (repeatable)",
    )
    p.add_argument("--mapping-file", type=Path, help="JSON object of canonical -> source column")
    p.add_argument(
        "--drop", action="append", default=[], metavar="COLUMN", help="ignore a column (repeatable)"
    )
    p.add_argument("--models-dir", type=Path, help="where models are kept (default: models/)")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8050)")
    p.add_argument("--debug", action="store_true", help="Dash debug mode (never in production)")
    p.add_argument(
        "--check-config",
        action="store_true",
        help="print the effective configuration and exit (status 1 on an invalid setting)",
    )
    return p


def db_command(argv: list[str]) -> int:
    """`python -m dashboard db upgrade|current`: the state database's schema, for ops."""
    p = argparse.ArgumentParser(
        prog="python -m dashboard db", description="The state database (RETENTION_DATABASE_URL)."
    )
    p.add_argument("action", choices=("upgrade", "current"), help="migrate to head, or show")
    args = p.parse_args(argv)
    try:
        config = serve_settings_from_env()
        url = db.database_url(config.state_dir, config.database_url)
        if args.action == "upgrade":
            _, revision = db.open_state(url)
        else:
            revision = db.current_revision(db.make_engine(url))
    except (ConfigError, db.StateError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    shown = revision or "none (run: python -m dashboard db upgrade)"
    print(f"{db.safe_url(url)}: revision {shown}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["db"]:
        return db_command(argv[1:])
    if argv[:1] in (["users"], ["tokens"]):
        from dashboard import accounts_cli

        return accounts_cli.main(argv)
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_env()
        config = serve_settings_from_env(
            data=args.data,
            models_dir=args.models_dir,
            host=args.host,
            port=args.port,
            debug=args.debug or None,
        )
        mapping = column_mapping(config)
        if args.check_config:
            for line in unknown_variables():
                print(f"warning: {line}", file=sys.stderr)
            print("\n".join(describe(config, settings)))
            return 0
        configure_logging(config.log_level, config.log_format)
        log = logging.getLogger("dashboard")
        warn_unknown_variables(log)
        if args.mapping_file:
            mapping.update(read.load_mapping_file(args.mapping_file))
        mapping.update(parse_mapping_pairs(args.pairs))
        from dashboard.live import start

        server = start(config, settings, mapping=mapping, drop=tuple(args.drop), development=True)
    except (
        DataError,
        artifacts.ArtifactError,
        ConfigError,
        db.StateError,
        AuthSetupError,
        OSError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logging.getLogger("dashboard").info("serving on http://%s:%d", config.host, config.port)
    from werkzeug.serving import run_simple

    server.begin()  # the live-model watcher and the embedded job runner
    run_simple(config.host, config.port, server, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
