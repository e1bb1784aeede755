"""Background jobs: training a dataset, outside any request.

The queue is the state database's `jobs` table (analytics.store.lifecycle): a request only
inserts a row. A runner claims queued rows (atomically, so several runners on several hosts
sharing a PostgreSQL database never take the same job) and runs each in its own process,
`python -m analytics jobs run <id>`, so that:
- the web workers' threads and GIL stay free for requests while a model trains;
- a cancel or a crash is a process ending: the runner kills it and records why;
- a job killed at any instant leaves nothing half-written: the model version is written to a
  temp folder and renamed whole (analytics.store.artifacts), and only then recorded; a runner
  that dies with its job stops its heartbeat, and any runner fails the job after
  STALE_AFTER_SECONDS.

The embedded runner (one per host: a lock file in RETENTION_STATE_DIR picks the process) runs
in the web server when RETENTION_JOBS=embedded; `python -m analytics jobs worker` runs the same
loop on its own, on this or another host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from analytics import datasets, versions, workflow
from analytics.config import PROJ_ROOT, Settings
from analytics.ingest.errors import DataError
from analytics.store import artifacts, lifecycle

try:
    import fcntl
except ImportError:  # Windows: every process may run jobs (claims stay atomic)
    fcntl = None

log = logging.getLogger("analytics.jobs")

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0
POLL_SECONDS = 1.0
LOCK_FILE = "jobs.lock"
# How a new model is promoted when its job ends: always (a server's first model), when not
# worse than the live one by more than the margin (scheduled refresh), or never (an admin's
# training: compare first, then promote by hand).
PROMOTE_ALWAYS, PROMOTE_IF_NOT_WORSE, PROMOTE_NEVER = "always", "if_not_worse", "never"
COMPARED_METRIC = "roc_auc"


class JobCancelled(Exception):
    """Raised from the progress callback when an admin cancelled the job."""


# -- progress -------------------------------------------------------------------------------

# Where each step of workflow.train begins and ends, as a share of the whole job (measured on
# the demo base: cross-validation is most of it).
_STEPS = (
    (re.compile(r"^reading"), 0.0, 0.02),
    (re.compile(r"^validated"), 0.02, 0.03),
    (re.compile(r"^current base"), 0.03, 0.04),
    (re.compile(r"^segmenting"), 0.04, 0.08),
    (re.compile(r"^cross-validating the holdout"), 0.92, 0.96),
    (re.compile(r"^time-ordered holdout"), 0.92, 0.96),
    (re.compile(r"^cross-validating"), 0.08, 0.70),
    (re.compile(r"^choosing the threshold"), 0.70, 0.72),
    (re.compile(r"^refitting"), 0.72, 0.78),
    (re.compile(r"^permutation importance"), 0.78, 0.88),
    (re.compile(r"^explaining"), 0.88, 0.92),
    (re.compile(r"^saving"), 0.96, 0.99),
)
_FOLD = re.compile(r"\(fold (\d+)/(\d+)\)")
_CANDIDATES = re.compile(r"^cross-validating (\d+) candidates")
_CANDIDATE = re.compile(r"^cross-validating (\S+) \(fold")


class ProgressTracker:
    """A training's progress messages -> a fraction that never goes back."""

    def __init__(self) -> None:
        self.value = 0.0
        self.candidates = 0
        self.seen: list[str] = []

    def update(self, message: str) -> float:
        found = _CANDIDATES.match(message)
        if found:
            self.candidates = int(found.group(1))
        for pattern, start, end in _STEPS:
            if not pattern.match(message):
                continue
            share = 0.0
            fold = _FOLD.search(message)
            if fold:
                k, n = int(fold.group(1)), max(int(fold.group(2)), 1)
                share = (k - 1) / n
                name = _CANDIDATE.match(message)
                if name and self.candidates:
                    if name.group(1) not in self.seen:
                        self.seen.append(name.group(1))
                    i = self.seen.index(name.group(1))
                    share = (i + (k - 1) / n) / self.candidates
            self.value = max(self.value, start + (end - start) * min(share, 1.0))
            break
        return self.value


# -- one job --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def promotion_decision(
    engine: Engine, metrics: Mapping, mode: str, margin: float, dataset_id: str
) -> Decision:
    """Whether a new version becomes live, and why (recorded in the audit log either way)."""
    live = lifecycle.live(engine)
    if mode == PROMOTE_ALWAYS:
        return Decision(True, "promoted when trained (the data had no model)")
    if mode == PROMOTE_NEVER:
        return Decision(False, "trained for review: promote it from the admin page or the API")
    if live is None:
        return Decision(True, "no live model: the new one is the first")
    current = lifecycle.version(engine, live.version)
    old = (current.metrics if current else {}).get(COMPARED_METRIC)
    new = metrics.get(COMPARED_METRIC)
    if new is None or old is None:
        return Decision(False, f"{COMPARED_METRIC} missing for one of the two models: kept live")
    if new + margin >= old:
        return Decision(
            True,
            f"{COMPARED_METRIC} {new:.4f} vs live {old:.4f} ({live.version}): within the "
            f"margin {margin:g} (RETENTION_PROMOTE_MARGIN)",
        )
    return Decision(
        False,
        f"{COMPARED_METRIC} {new:.4f} is worse than the live {old:.4f} ({live.version}) by "
        f"more than the margin {margin:g} (RETENTION_PROMOTE_MARGIN): kept the live model",
    )


class _Heartbeat:
    """Beats for a running job from a thread: one training step can take minutes."""

    def __init__(self, engine: Engine, job_id: str) -> None:
        self._engine, self._job_id = engine, job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception):  # a missed beat is retried on the next one
                lifecycle.heartbeat(self._engine, self._job_id)


def run_job(
    engine: Engine,
    job_id: str,
    *,
    state_dir: Path,
    models_dir: Path,
    settings: Settings,
    key: bytes,
    promote_margin: float = 0.0,
    keep_versions: int | None = None,
) -> lifecycle.JobInfo:
    """Run a claimed (running) job to its end and record the end; returns the job."""
    job = lifecycle.job(engine, job_id)
    if job is None or job.state != lifecycle.RUNNING:
        raise DataError(f"job {job_id} is not running (claim it first)")
    tracker = ProgressTracker()
    last = [0.0]

    def progress(message: str) -> None:
        fraction = tracker.update(message)
        now = time.monotonic()
        if now - last[0] < 0.5 and fraction < 0.99:
            return  # at most two writes a second
        last[0] = now
        if lifecycle.report_progress(engine, job_id, fraction, message):
            raise JobCancelled

    try:
        with _Heartbeat(engine, job_id):
            work = _KINDS.get(job.kind)
            if work is None:
                raise DataError(f"job {job_id}: unknown kind {job.kind!r}")
            result = work(engine, job, progress, state_dir, models_dir, settings, key,
                          promote_margin)  # fmt: skip
    except JobCancelled:
        lifecycle.finish(engine, job_id, lifecycle.CANCELLED, error="cancelled by an admin")
    except (DataError, artifacts.ArtifactError, ValueError) as exc:
        lifecycle.finish(engine, job_id, lifecycle.FAILED, error=str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        lifecycle.finish(engine, job_id, lifecycle.FAILED, error=f"{type(exc).__name__}: {exc}")
    else:
        lifecycle.finish(engine, job_id, lifecycle.DONE, result=result)
        if keep_versions:
            with contextlib.suppress(OSError):  # pruning is housekeeping: retried next time
                versions.prune(engine, Path(models_dir), keep_versions)
    return lifecycle.job(engine, job_id)  # type: ignore[return-value]


def _train(engine, job, progress, state_dir, models_dir, settings, key, margin) -> dict:
    info = lifecycle.dataset(engine, job.dataset_id)
    if info is None:
        raise DataError(f"dataset {job.dataset_id} is gone")
    progress(f"reading {info.name} ({info.rows:,} rows)")
    table = datasets.open_table(info, Path(state_dir), settings)
    artifacts.check_writable(models_dir)
    mode = job.options.get("promote", PROMOTE_NEVER)
    if mode == PROMOTE_IF_NOT_WORSE:
        _snapshot_refresh(engine, info, table, state_dir, models_dir, settings, key, progress)
    trained = workflow.train(table, settings, source=info.name, progress=progress)
    progress("saving the model version")
    version = workflow.save(trained, models_dir, key=key)
    metrics = versions.version_metrics(trained.meta)
    lifecycle.add_version(engine, version, info.id, metrics, job.created_by, job.id)
    decision = promotion_decision(engine, metrics, mode, margin, info.id)
    if decision.promote:
        lifecycle.promote(engine, version, job.created_by, reason=decision.reason)
        progress("recording the snapshot of the promoted version")
        _snapshot_live(engine, version, state_dir, models_dir, settings, key, job.created_by)
    elif mode == PROMOTE_IF_NOT_WORSE:  # a refresh that kept the live model says why
        from analytics.store import accounts

        accounts.record(engine, "model.kept", job.created_by, version, reason=decision.reason)
    return {
        "model_version": version,
        "metrics": metrics,
        "promoted": decision.promote,
        "decision": decision.reason,
    }


def _snapshot_live(engine, version, state_dir, models_dir, settings, key, actor) -> None:
    """The promoted version's snapshot and its alerts. A failure is logged, never undoes the
    promotion: the next promotion or `python -m analytics snapshot` records one."""
    from analytics import snapshots

    try:
        snapshots.record_live(engine, Path(state_dir), Path(models_dir), settings, key, version,
                              kind="promote", actor=actor)  # fmt: skip
    except Exception:
        log.exception("the snapshot of version %s could not be recorded", version)


def _snapshot_refresh(engine, info, table, state_dir, models_dir, settings, key, progress):
    """A refresh's new table scored by the live model before any retraining: the snapshot
    that says how the model in use fares on new data (drift, and realised performance once
    the table says who left). Skipped, with the reason logged, when the live model cannot
    score this table."""
    from analytics import snapshots

    live = lifecycle.live(engine)
    if live is None or live.dataset_id == info.id:
        return
    progress(f"scoring the new table with the live model {live.version}")
    try:
        model = workflow.load(Path(models_dir), live.version, key=key)
        snapshots.record_scored(engine, Path(state_dir), settings, model, info, table,
                                kind="refresh", actor="refresh")  # fmt: skip
    except (DataError, artifacts.ArtifactError, ValueError) as exc:
        log.warning("no refresh snapshot by %s for %s: %s", live.version, info.name, exc)


def _snapshot(engine, job, progress, state_dir, models_dir, settings, key, _margin) -> dict:
    """A snapshot job: the live version's own base (after a promotion through the API)."""
    from analytics import snapshots

    version = job.options.get("version")
    progress(f"scoring the snapshot of version {version}")
    snap, created = snapshots.record_live(
        engine, Path(state_dir), Path(models_dir), settings, key, str(version),
        kind=job.options.get("snapshot_kind", "promote"), actor=job.created_by,
    )  # fmt: skip
    return {"snapshot_id": snap.id, "as_of": snap.label, "created": created}


def _history(engine, job, progress, state_dir, models_dir, settings, key, _margin) -> dict:
    """The demo's year of monthly snapshots (analytics.snapshots.demo_history)."""
    from analytics import snapshots

    options = {k: job.options[k] for k in ("n_customers", "seed", "as_of") if k in job.options}
    return snapshots.demo_history(engine, Path(state_dir), Path(models_dir), settings, key,
                                  progress=progress, **options)  # fmt: skip


_KINDS = {lifecycle.TRAIN: _train, lifecycle.SNAPSHOT: _snapshot, lifecycle.HISTORY: _history}


# -- the runner -----------------------------------------------------------------------------


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with status {code}"


class Runner:
    """Claims queued jobs and runs each in its own process (`python -m analytics jobs run
    <id>`, configured by `env`), one at a time."""

    def __init__(
        self,
        engine: Engine,
        *,
        state_dir: Path,
        models_dir: Path,
        env: Mapping[str, str] | None = None,
        poll: float = POLL_SECONDS,
        stale_after: float = STALE_AFTER_SECONDS,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.state_dir, self.models_dir = Path(state_dir), Path(models_dir)
        self.env = dict(os.environ if env is None else env)
        self.poll, self.stale_after = poll, stale_after
        self.tick = tick  # called between jobs by the host's runner (the refresh schedule)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None

    def command(self, job_id: str) -> list[str]:
        # The directories and database travel in env (RETENTION_*): no password on a
        # command line that `ps` shows. No shell; "--" keeps an id from the database that
        # starts with "-" an id, never an option.
        return [sys.executable, "-m", "analytics", "jobs", "run", "--", job_id]

    def start(self) -> Runner:
        self._thread = threading.Thread(target=self.loop, name="job-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def loop(self) -> None:
        """Run jobs until stopped; only the process holding the host's lock runs them."""
        while not self._stop.is_set():
            with _host_lock(self.state_dir) as held:
                if not held:
                    self._stop.wait(5 * self.poll)
                    continue
                while not self._stop.is_set():
                    try:
                        ran = self.step()
                    except Exception:  # the database away for a moment: log, wait, go on
                        log.exception("job runner: step failed")
                        ran = False
                    if not ran:
                        self._stop.wait(self.poll)

    def step(self) -> bool:
        """Fail stale jobs, then run one queued job if there is one; True when one ran."""
        for job_id in lifecycle.fail_stale(self.engine, self.stale_after):
            log.warning("job %s failed: its heartbeat stopped", job_id)
        if self.tick is not None:
            self.tick()
        job = lifecycle.claim(self.engine, runner_name())
        if job is None:
            return False
        self.run(job.id)
        return True

    def run(self, job_id: str) -> None:
        log.info("job %s: started", job_id)
        # From the project root: `-m analytics` is found whatever the server's directory.
        process = subprocess.Popen(
            self.command(job_id), env=self.env, stdin=subprocess.DEVNULL, cwd=PROJ_ROOT
        )
        self._process = process
        try:
            while process.poll() is None:
                time.sleep(0.5)
                found = lifecycle.job(self.engine, job_id)
                if found is not None and found.cancel_requested and process.poll() is None:
                    process.kill()  # a cancel may not wait for the end of a long step
                    process.wait()
                    lifecycle.finish(
                        self.engine, job_id, lifecycle.CANCELLED, error="cancelled by an admin"
                    )
        finally:
            self._process = None
        code = process.returncode
        if lifecycle.finish(
            self.engine,
            job_id,
            lifecycle.FAILED,
            error=f"the job process ended before finishing ({describe_exit(code)}); nothing "
            "it wrote was kept",
        ):
            log.warning("job %s: process %s", job_id, describe_exit(code))
        else:
            found = lifecycle.job(self.engine, job_id)
            log.info("job %s: %s", job_id, found.state if found else "gone")


@contextlib.contextmanager
def _host_lock(state_dir: Path):
    """True while this process is the host's job runner (an flock the OS drops with it)."""
    if fcntl is None:
        yield True
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
