"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:server`. Configured by RETENTION_*
environment variables (dashboard/server.py); `python -m dashboard --check-config` prints them.

With gunicorn.conf.py's preload_app this module is imported once, in the master: the table and
its model are loaded before the workers fork and share them copy-on-write (a table without a
model is served at once while a job trains one: dashboard/live.py). gunicorn.conf.py's
post_fork starts each worker's watcher of the live model and the job runner.
A bad setting, an unusable table or, with RETENTION_RETRAIN=0, an unusable model is one ERROR
line and exit status 1, not a traceback.
"""

import logging
import sys

from analytics.config import ConfigError, serve_settings_from_env, settings_from_env
from analytics.ingest.errors import DataError
from analytics.store.artifacts import ArtifactError
from analytics.store.db import StateError
from dashboard import logs
from dashboard.auth import AuthSetupError
from dashboard.live import start
from dashboard.server import warn_unknown_variables

log = logging.getLogger("dashboard")

try:
    config = serve_settings_from_env()
    logs.configure_logging(config.log_level, config.log_format)
    warn_unknown_variables(log)
    server = start(config, settings_from_env())
except (ConfigError, DataError, ArtifactError, StateError, AuthSetupError, OSError) as exc:
    if not logging.getLogger().handlers:  # the setting that failed came before the log format
        logs.configure_logging()
    log.error("cannot start: %s", exc)
    sys.exit(1)
