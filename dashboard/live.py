"""Serving what is live, without a restart: the start-up path of wsgi.py and `python -m
dashboard`, and the WSGI server that swaps in a new app when the live model changes.

Every process serves one app (dashboard.app.create_app over one Workspace). A watcher thread in
each process polls the state database's live row every POLL_SECONDS; when another model version
was promoted (or customers were upserted, dashboard.api.lifecycle), it builds the new app beside
the one serving, finishes its Dash set-up, and swaps the reference. A request in flight keeps
the app it started on, so none fails; the next one gets the new app. Everything a request may
cache hangs off its app (ServedBase's caches), so caches are per version by construction.

Start-up never trains: the configured table (RETENTION_DATA) is recorded as a dataset; when a
model fits it (the live one, or one the CLI saved for exactly this table) it is served, else the
views that need no model are served at once while a job trains one, which is promoted and
swapped in when done.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask
from sqlalchemy import Engine

from analytics import datasets, jobs, refresh, versions, workflow
from analytics.config import DEMO_DATA, ENV_PREFIX, ServeSettings, Settings
from analytics.ingest.validate import Table
from analytics.services.history import History
from analytics.services.lifecycle import Lifecycle
from analytics.store import accounts, artifacts, db, lifecycle
from analytics.workflow import Workspace
from dashboard import admin_data, auth, logs
from dashboard.api import history as history_api
from dashboard.api import lifecycle as lifecycle_api
from dashboard.app import LOOPBACK, create_app, dash_app, served_base
from dashboard.server import column_mapping, settle

log = logging.getLogger("dashboard")

POLL_SECONDS = 2.0
# After a swap, the old app is collected once no request can still hold it.
COLLECT_AFTER_SECONDS = 60.0
# A rebuild for upserted customers alone re-scores every update since the last training and
# takes the GIL from this process's requests (1 s on 2,000 customers, 9 s with 50,000 updates):
# a CRM upserting non-stop kept every process rebuilding back to back. After such a rebuild the
# next one for updates waits as long as it took (and a poll at least), so rebuilding takes at
# most half of the watcher's time. A promotion is never held back.
UPDATE_IDLE_FACTOR = 1.0


@dataclass
class Context:
    """What building an app needs, the same for every version this process will serve."""

    config: ServeSettings
    settings: Settings
    engine: Engine
    auth_config: auth.AuthConfig
    key: bytes
    configured: lifecycle.DatasetInfo  # the RETENTION_DATA table as a dataset
    tables: dict[str, Table] = field(default_factory=dict)  # read once per dataset and process

    @property
    def service(self) -> Lifecycle:
        return Lifecycle(self.engine, self.config, self.settings, self.key)

    @functools.cached_property
    def history(self) -> History:
        """The snapshots as the services read them: one per process, shared by every app it
        builds (what it caches is per snapshot, and snapshots never change)."""
        return History(self.engine, self.config.state_dir, self.settings)

    def table(self, info: lifecycle.DatasetInfo) -> Table:
        if info.id not in self.tables:
            self.tables.clear()  # keep one: a million-row table is hundreds of MB
            self.tables[info.id] = datasets.open_table(info, self.config.state_dir, self.settings)
        return self.tables[info.id]

    def app(self, workspace: Workspace, training=None) -> Flask:
        server = create_app(
            workspace,
            batch_limit=self.config.batch_limit,
            max_body_mb=self.config.max_body_mb,
            request_seconds=self.config.request_seconds,
            state=self.engine,
            auth_config=self.auth_config,
            training=training,
        )
        server.extensions[history_api.EXTENSION] = self.history
        server.extensions[history_api.SERVE_CONFIG] = self.config
        lifecycle_api.register(server, self.service)
        admin_data.register(server, self.service)
        # Dash finishes its set-up (registering the component files it may serve) on a
        # process's first request, and marks it done before it is: under gthread, a second
        # thread's request for a component file can arrive in between and get a 500. Running it
        # here completes the set-up before the app serves anyone.
        with server.test_request_context("/", headers={logs.REQUEST_ID_HEADER: "preload"}):
            dash_app(server)._setup_server()
        return server


@dataclass(frozen=True)
class Serving:
    """An app and what it was built from."""

    app: Flask
    dataset_id: str
    version: str | None  # None: no model yet (the views that need none)
    serial: int | None  # the live row's serial it was built for
    updates: int = 0  # the last customer update applied


def training_status(engine: Engine, dataset_id: str) -> Callable[[], dict | None]:
    """The model-free app's view of the job training its data (None: no job)."""

    def status() -> dict | None:
        job = lifecycle.latest_job(engine, dataset_id)
        if job is None:
            return None
        return {
            "job_id": job.id,
            "state": job.state,
            "progress": job.progress,
            "step": job.step,
            "error": job.error,
        }

    return status


def build_live(ctx: Context, live: lifecycle.LiveInfo) -> Serving:
    """The app of the live version: its signed model and its dataset's table."""
    info = lifecycle.dataset(ctx.engine, live.dataset_id)
    if info is None:
        raise artifacts.ArtifactError(f"the live version {live.version} has no dataset record")
    model = workflow.load(ctx.config.models_dir, live.version, key=ctx.key)
    table = ctx.table(info)
    reason = workflow.unfit_reason(model, table)
    if reason is not None:
        raise artifacts.ArtifactError(f"{reason}; dataset {info.id[:12]} ({info.name})")
    workspace = workflow.model_workspace(
        model, table, ctx.settings, info.name, f"loaded model {live.version}"
    )
    workspace, last = with_updates(ctx, workspace, info.id, 0)
    return Serving(ctx.app(workspace), info.id, live.version, live.serial, last)


def build_updates(ctx: Context, current: Serving) -> Serving:
    """The same model's app with the customers upserted since `current` was built, scored on
    top of what it serves."""
    workspace, last = with_updates(
        ctx, served_base(current.app).ws, current.dataset_id, current.updates
    )
    app = _debug(ctx, Serving(ctx.app(workspace), "", None, None)).app
    return dataclasses.replace(current, app=app, updates=last)


def with_updates(
    ctx: Context, workspace: Workspace, dataset_id: str, after: int
) -> tuple[Workspace, int]:
    """`workspace` with the customers a CRM upserted after update `after`, scored by its model
    (on top of what it serves: each rebuild scores only the new ones); and the last update id.
    Updates that cannot be applied are logged and left out: they never stop a promotion."""
    updates = lifecycle.customer_updates(ctx.engine, dataset_id, after)
    if not updates:
        return workspace, after
    last = updates[-1][0]
    try:
        scored = workflow.apply_updates(
            workspace.model, workspace.scored, [(c, d) for _, c, d in updates], ctx.settings
        )
    except Exception:
        log.exception("customer updates %d..%d could not be applied; left out", after + 1, last)
        return workspace, last
    how = re.sub(r"; customer updates up to #\d+$", "", workspace.how)
    return dataclasses.replace(
        workspace, scored=scored, how=f"{how}; customer updates up to #{last}"
    ), last


def _adopt_saved(ctx: Context, table: Table) -> lifecycle.LiveInfo | str:
    """A model saved (by `python -m analytics train`) for exactly the configured table: recorded
    as a version of its dataset and promoted, so start-up needs no training. Otherwise why not."""
    try:
        model = workflow.load(ctx.config.models_dir, key=ctx.key)
    except artifacts.ArtifactError as exc:
        log.info("no saved model to adopt: %s", exc.reason)
        return exc.reason
    reason = workflow.unfit_reason(model, table)
    if reason is not None:
        log.info("the saved model does not fit %s: %s", ctx.configured.name, reason)
        return reason
    lifecycle.add_version(
        ctx.engine, model.version, ctx.configured.id, versions.version_metrics(model.meta), None
    )
    live = lifecycle.live(ctx.engine)
    if live is None or live.version != model.version:
        live = lifecycle.promote(
            ctx.engine, model.version, None, reason="start-up: the saved model fits the data"
        )
    return live


def start(
    config: ServeSettings,
    settings: Settings,
    *,
    mapping: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    development: bool = False,
) -> LiveServer:
    """Open the state, record the configured table, and build the app of what is live (or of
    the table without a model while a job trains one). Threads (the watcher, the job runner)
    start in `LiveServer.begin`, after gunicorn forks."""
    local = development and config.host in LOOPBACK
    secret = config.secret_key or (secrets.token_urlsafe(48) if local else None)
    auth_config = auth.AuthConfig.from_settings(config, secret)  # no key: cannot start
    url = db.database_url(config.state_dir, config.database_url)
    engine, revision = db.open_state(url)
    log.info("state database %s at revision %s", db.safe_url(url), revision)
    key = artifacts.signing_key(config.state_dir, config.secret_key)
    for name in datasets.remove_stale_temp(config.state_dir):
        log.warning("removed %s, left by an interrupted upload", name)
    mapping = dict(column_mapping(config) if mapping is None else mapping)
    info, table, created = datasets.add_path(
        engine, config.state_dir, config.data, settings, mapping=mapping, drop=drop
    )
    log.info("%s: dataset %s, %s rows", config.data, info.id[:12], f"{info.rows:,}")
    ctx = Context(config, settings, engine, auth_config, key, info, {info.id: table})
    serving = _initial(ctx, table, created)
    _queue_snapshots(ctx)
    workspace = served_base(serving.app).ws
    log.info("%s: %s", workspace.source, workspace.how)
    server = LiveServer(ctx, serving)
    if local and config.auth == "password":
        made = auth.demo_accounts(engine, served_base(serving.app).allowed)
        log.warning(
            "development server: demo accounts with new passwords (shown this once): %s",
            "; ".join(f"{name} ({role}) password {pw}" for name, role, pw in made),
        )
    elif config.auth == "password" and not accounts.user_count(engine):
        log.warning(auth.FIRST_ADMIN_HINT)
    settle()
    return server


def _initial(ctx: Context, table: Table, created: bool) -> Serving:
    config = ctx.config
    live = lifecycle.live(ctx.engine)
    # A new configured table is served (as before issue 12: a new file means new data); a
    # known one leaves what an admin promoted since live.
    if live is not None and (live.dataset_id == ctx.configured.id or not created):
        try:
            return _debug(ctx, build_live(ctx, live))
        except Exception as exc:  # serve the configured table rather than not start
            log.warning(
                "the live model %s cannot be served: %s",
                live.version,
                exc,
                exc_info=not isinstance(exc, artifacts.ArtifactError | ValueError),
            )
    adopted = _adopt_saved(ctx, table)
    if not isinstance(adopted, str):
        return _debug(ctx, build_live(ctx, adopted))
    if not config.retrain:
        raise artifacts.ArtifactError(
            f"model: {adopted}; not retraining because {ENV_PREFIX}RETRAIN=0"
        )
    job = lifecycle.active_job(ctx.engine, ctx.configured.id) or lifecycle.enqueue(
        ctx.engine, ctx.configured.id, None, options={"promote": jobs.PROMOTE_ALWAYS}
    )
    log.warning(
        "no model for %s yet: serving the views that need none while job %s trains one",
        ctx.configured.name,
        job.id,
    )
    workspace = workflow.model_free_workspace(table, ctx.settings, ctx.configured.name)
    app = ctx.app(workspace, training=training_status(ctx.engine, ctx.configured.id))
    return _debug(ctx, Serving(app, ctx.configured.id, None, None))


def _queue_snapshots(ctx: Context) -> None:
    """Jobs for what the over-time views need and nobody recorded yet: the live version's
    snapshot, and at the built-in demo's first start its year of monthly history."""
    from analytics.store import snapshots

    made = snapshots.snapshots(ctx.engine)
    live = lifecycle.live(ctx.engine)
    recorded = live is None or any(s.model_version == live.version for s in made)
    if not recorded and not _snapshot_queued(ctx.engine, live.version):
        lifecycle.enqueue(ctx.engine, live.dataset_id, None, kind=lifecycle.SNAPSHOT,
                          options={"version": live.version})  # fmt: skip
    demo = ctx.config.data.resolve() == DEMO_DATA.resolve()
    if not (demo and ctx.config.demo_history) or any(s.kind == "history" for s in made):
        return
    if lifecycle.latest_job(ctx.engine, ctx.configured.id, kind=lifecycle.HISTORY) is None:
        job = lifecycle.enqueue(ctx.engine, ctx.configured.id, None, kind=lifecycle.HISTORY)
        log.info("job %s records the demo's monthly history (snapshots, a past campaign)", job.id)


def _snapshot_queued(engine, version: str) -> bool:
    """Whether a snapshot job for `version` is queued or running: a server restarted before
    it ran (or crash-looping) would otherwise queue one more scoring of the base per start."""
    found = lifecycle.jobs(engine, limit=100, kind=lifecycle.SNAPSHOT)
    return any(j.state in lifecycle.ACTIVE and j.options.get("version") == version for j in found)


def _debug(ctx: Context, serving: Serving) -> Serving:
    if ctx.config.debug:
        dash_app(serving.app).enable_dev_tools(debug=True, dev_tools_hot_reload=False)
        log.warning("RETENTION_DEBUG is on: Dash dev tools show tracebacks to every client")
    return serving


class LiveServer:
    """The WSGI application: each request goes to the app serving now."""

    def __init__(self, ctx: Context, serving: Serving) -> None:
        self.ctx = ctx
        self.serving = serving
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._failed: int | None = None  # a serial whose build failed: not retried every poll
        self._updates_after = 0.0  # time.monotonic() before which updates alone build nothing
        self.runner: jobs.Runner | None = None

    @property
    def app(self) -> Flask:
        return self.serving.app

    def __call__(self, environ, start_response):
        if self._pid != os.getpid():
            self.begin()
        return self.serving.app(environ, start_response)

    def begin(self) -> None:
        """Start this process's watcher and, with RETENTION_JOBS=embedded, its job runner (one
        per host runs jobs: the others wait on the lock). Called after gunicorn forks."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
        # The pool's connections were opened before the fork (preload) and are shared with the
        # master and the other workers: two processes on one socket mix their queries'
        # answers. This process opens its own; close=False leaves the others' sockets alone.
        self.ctx.engine.dispose(close=False)
        threading.Thread(target=self._watch, name="live-watcher", daemon=True).start()
        config = self.ctx.config
        if config.jobs == "embedded":
            self.runner = jobs.Runner(
                self.ctx.engine,
                state_dir=config.state_dir,
                models_dir=config.models_dir,
                env=_job_env(config),
                tick=Schedule(self.ctx) if config.refresh_cron else None,
            ).start()

    def _watch(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            try:
                self.poll()
            except Exception:  # the database away for a moment: keep serving, try again
                log.exception("live watcher: poll failed")

    def poll(self) -> bool:
        """One look at the live row; builds and swaps in its app when it changed. True when
        the app changed."""
        found = lifecycle.live_serial(self.ctx.engine)
        if found is None or found[0] == self._failed:
            return False
        current = self.serving
        updates_only = found[0] == current.serial
        if updates_only and (
            time.monotonic() < self._updates_after
            or lifecycle.last_update_id(self.ctx.engine, current.dataset_id) <= current.updates
        ):
            return False
        live = lifecycle.live(self.ctx.engine)
        if live is None:
            return False
        started = time.perf_counter()
        try:
            if updates_only:
                serving = build_updates(self.ctx, current)
            else:
                serving = _debug(self.ctx, build_live(self.ctx, live))
        except Exception as exc:  # whatever it is, keep serving what serves; say it once
            self._failed = live.serial
            log.error(
                "model %s is live but cannot be served here: %s",
                live.version,
                exc,
                exc_info=not isinstance(exc, artifacts.ArtifactError | ValueError),
            )
            return False
        old, self.serving = self.serving, serving
        took = time.perf_counter() - started
        if updates_only:
            self._updates_after = time.monotonic() + max(POLL_SECONDS, UPDATE_IDLE_FACTOR * took)
        log.info(
            "now serving model %s (was %s), built in %.1f s",
            live.version,
            old.version or "no model",
            took,
        )
        del old
        threading.Timer(COLLECT_AFTER_SECONDS, _collect).start()
        return True


class Schedule:
    """RETENTION_REFRESH_CRON in the host's job runner: at each due time, read the source and
    queue its training when it changed (analytics.refresh decides and audits)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cron = str(ctx.config.refresh_cron)
        self.due = refresh.next_run(self.cron, datetime.now())
        log.info("scheduled refresh (%s): next at %s", self.cron, self.due)

    def __call__(self) -> None:
        if datetime.now() < self.due:
            return
        self.due = refresh.next_run(self.cron, datetime.now())
        ctx = self.ctx
        try:
            done = refresh.refresh(
                ctx.engine, ctx.config, ctx.settings, key=ctx.key, actor="schedule",
                run_here=False,
            )  # fmt: skip
        except (ValueError, OSError) as exc:  # DataError, LifecycleError: the source is bad
            log.error("scheduled refresh failed: %s", exc)
            accounts.record(ctx.engine, "refresh.failed", "schedule", None, error=str(exc)[:500])
        else:
            log.info("scheduled refresh: %s; next at %s", done.message, self.due)


def _collect() -> None:
    # settle() froze start-up's objects out of the collector's sight: an old app's cycles
    # would never be freed. Unfreeze, collect, and freeze what serves now.
    gc.unfreeze()
    settle()


def _job_env(config: ServeSettings) -> dict[str, str]:
    """The job process's environment: this server's directories and state database, whatever
    flags chose them."""
    env = dict(os.environ)
    env[f"{ENV_PREFIX}STATE_DIR"] = str(config.state_dir)
    env[f"{ENV_PREFIX}MODELS_DIR"] = str(config.models_dir)
    env[f"{ENV_PREFIX}DATA"] = str(config.data)
    if config.database_url:
        env[f"{ENV_PREFIX}DATABASE_URL"] = config.database_url
    return env
