"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:server`.

Everything comes from the RETENTION_* variables (analytics/config.py validates them; a bad one
is one line on stderr and exit status 1). Command-line flags still win over this file.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analytics.config import ConfigError, serve_settings_from_env  # noqa: E402

try:
    _config = serve_settings_from_env()
except ConfigError as exc:
    print(f"error: {exc}", file=sys.stderr, flush=True)
    sys.exit(1)  # SystemExit passes through gunicorn's config loader: no traceback

wsgi_app = "wsgi:server"
bind = [
    f"[{_config.host}]:{_config.port}" if ":" in _config.host else f"{_config.host}:{_config.port}"
]

# Processes: one per core by default (RETENTION_WORKERS; see config.default_workers): the work
# is CPU-bound pandas/scikit-learn under the GIL, so processes give the parallelism.
workers = _config.workers
# gthread rather than sync: sync workers serve one connection at a time and drop keep-alive, so
# a slow client or one long dashboard callback holds the whole worker while the browser's other
# requests (assets, _dash-update-component, health checks) queue behind it; sync is only safe
# behind a buffering proxy. A few threads per worker interleave those cheap requests with a
# heavy one (numpy/pandas release the GIL in their inner loops) without adding processes and
# their per-process caches. More threads would only contend for the GIL.
worker_class = "gthread"
threads = 4
keepalive = 5

# Load the table and its model ONCE, in the master, before forking: workers share the data
# copy-on-write, and a missing or stale model is retrained once, not once per worker.
preload_app = True

# A worker that has not checked in for this long is killed and replaced (gthread's main thread
# checks in while request threads compute, so this bounds a hung worker, not a slow request).
timeout = 60
# SIGTERM: workers stop accepting, finish in-flight requests for up to this long, then exit.
graceful_timeout = 30

# Logs on stderr in RETENTION_LOG_FORMAT (text or JSON lines) at RETENTION_LOG_LEVEL. The
# access log (request id, method, path, status, duration) is written by the app itself
# (dashboard/logs.py), identically under gunicorn and `python -m dashboard`, so gunicorn's own
# access log stays off rather than printing every request twice.
loglevel = _config.log_level.lower()
errorlog = "-"
accesslog = None
logger_class = "dashboard.logs.GunicornLogger"

# gunicorn 27 opens a control socket ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl) for the
# gunicornc tool. Off: signals (HUP reload, TTIN/TTOU workers, TERM stop) or the service
# manager are enough here, and a server should not write into its user's home. Enable it with
# `--control-socket PATH` when you want gunicornc.
control_socket_disable = True


def when_ready(server):
    server.log.info(
        "ready: %d %s worker(s) x %d threads on %s",
        server.cfg.workers,
        server.cfg.worker_class_str,
        server.cfg.threads,
        ", ".join(server.cfg.bind),
    )
