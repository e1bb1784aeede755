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
# requests (assets, _dash-update-component, health checks) queue behind it. Not gevent/asgi
# either: they run every request on one event loop, and with CPU-bound pandas under the GIL a
# heavy callback would stop the loop, health checks included.
#
# dashboard.worker.RetentionWorker is gthread with three changes:
# - its event loop reads each request's head and body (up to 1 MiB) before a thread sees it, so
#   idle and slow-header connections hold no thread. gthread's own threads wait 5 s for a first
#   byte and then read the head with no deadline, and gunicorn has no header timeout setting. A
#   client has RETENTION_CLIENT_TIMEOUT seconds for a whole request, then it is disconnected.
# - GET /api/v1/health has two threads of its own, so it never queues behind data requests.
# - gunicorn's own 400/414/431 responses carry the app's security headers.
# Health probes answered within 2 s over 20 s on loopback, 2 workers, plain gthread -> this
# worker (`python -m tests.test_slow_clients PORT TOKEN`): 50 idle connections 0/10 -> 80/80;
# 8 slow-header connections 1/11 -> 80/80; 16 slow 2 MB bodies 1/11 -> 80/80; 8 x 600 KB
# callbacks (all 8 request threads busy for ~25 s) 7/16 -> 79/79.
worker_class = "dashboard.worker.RetentionWorker"
# Threads per worker for everything but health. A few threads interleave cheap requests with a
# heavy one (numpy/pandas release the GIL in their inner loops) without adding processes and
# their per-process caches; they no longer wait on slow clients, so more would only contend for
# the GIL.
threads = 4
# An idle kept-alive connection costs no thread (it waits in the worker's poller) and is closed
# after this many seconds.
keepalive = 5
# Connections per worker (open, arriving, kept alive). Above it the worker stops accepting until
# some close: with RETENTION_CLIENT_TIMEOUT that bounds what a flood of idle connections can
# hold. Keep it under the open-files limit (ulimit -n). Past that, per client, is the proxy's job
# (docs/deploy/nginx.conf: limit_conn).
worker_connections = 1000
# gunicorn's own request limits (its defaults, stated): a request line over 4094 bytes is a 414,
# more than 100 header fields or one over 8190 bytes a 431; both with the security headers.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Load the table and its model ONCE, in the master, before forking: workers share the data
# copy-on-write. A table without a model is served at once; a job trains its model.
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


def post_fork(server, worker):
    # Threads do not survive a fork: each worker starts its own watcher of the live model
    # (and the job runner, which one process per host runs). The WSGI app is a LiveServer.
    import wsgi

    wsgi.server.begin()
