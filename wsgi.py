"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:server`. Configured by RETENTION_*
environment variables (declared in analytics/config.py); `python -m dashboard --check-config`
prints them. An undeclared RETENTION_* variable (a typo) is one WARNING line.

With gunicorn.conf.py's preload_app this module is imported once, in the master: the table and
its model are loaded (or trained, once) before the workers fork and share them copy-on-write.
A bad setting, an unusable table or, with RETENTION_RETRAIN=0, an unusable model is one ERROR
line and exit status 1, not a traceback.
"""

import logging
import sys

from analytics.config import ConfigError, serve_settings_from_env, settings_from_env
from analytics.ingest.errors import DataError
from analytics.store.artifacts import ArtifactError
from dashboard import logs
from dashboard.app import create_app
from dashboard.server import install, load_workspace, settle, warn_unknown_variables

log = logging.getLogger("dashboard")

try:
    config = serve_settings_from_env()
    logs.configure_logging(config.log_level, config.log_format)
    warn_unknown_variables(log)
    settings = settings_from_env()
    workspace = load_workspace(config, settings, log)
except (ConfigError, DataError, ArtifactError, OSError) as exc:
    if not logging.getLogger().handlers:  # the setting that failed came before the log format
        logs.configure_logging()
    log.error("cannot start: %s", exc)
    sys.exit(1)

log.info("%s: %s", workspace.source, workspace.how)

app = create_app(workspace)
if config.debug:
    app.enable_dev_tools(debug=True, dev_tools_hot_reload=False)
    log.warning("RETENTION_DEBUG is on: Dash dev tools show tracebacks to every client")
install(app, batch_limit=config.batch_limit)
server = app.server

# Dash finishes its set-up (registering the component files it may serve) on a process's first
# request, and marks it done before it is: under gthread, a second thread's request for a
# component file can arrive in between and get a 500 ("not a registered library"). One request
# here, in the master, completes the set-up once; every worker forks with it done.
with server.test_client() as _client:
    _client.get("/", headers={logs.REQUEST_ID_HEADER: "preload"})
settle()
