"""Security review of the living-data code (issue 12): each test is an attack that worked before
its fix. A worker inheriting the master's database connections across the fork; a CRM's
upserts keeping every process rebuilding; a Parquet of a few kilobytes decoding to a gigabyte;
ids holding a NUL byte or over the column's length answered with a 500 on PostgreSQL; the
extra body time of uploads given to every route; a job id read as an option; a rollback during
a prune making live a version whose files the prune removed."""

from __future__ import annotations

import io
import os
import time
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics import datasets
from analytics.config import DEMO_DATA, ServeSettings, settings_from_env
from analytics.ingest import read
from analytics.ingest.errors import FileTooLargeError
from analytics.store import db, lifecycle
from analytics.store.lifecycle import DatasetInfo, LifecycleError
from tests.support import TEST_SECRET, log_in, make_user, save_demo_model, signed_in

SETTINGS = settings_from_env(env={})
MB = 2**20


def _migrated(engine):
    db.upgrade(engine)
    return engine


def _dataset(engine, name: str = "customers.csv") -> DatasetInfo:
    info = DatasetInfo(
        id=name.encode().hex().ljust(64, "0")[:64], name=name, kind="upload",
        file_sha256="0" * 64, path=f"{name}.csv", mapping={}, rows=1, report={},
    )  # fmt: skip
    lifecycle.add_dataset(engine, info, "ada")
    return info


# -- the fork: every worker its own database connections --------------------------------------


def test_a_forked_worker_opens_its_own_state_database_connections(empty_state):
    """gunicorn forks the workers after start-up used the state database: the pool's open
    connections were shared by the master and both workers, whose queries then read each
    other's answers (PostgreSQL: 'server closed the connection', 'can't change autocommit',
    on every start)."""
    from dashboard import live

    engine = _migrated(empty_state)
    with engine.connect() as connection:  # start-up leaves one open connection in the pool
        connection.connection.info["opened_in"] = os.getpid()
    server = live.LiveServer(
        SimpleNamespace(engine=engine, config=ServeSettings(jobs="external")), None
    )
    child = os.fork()
    if child == 0:  # the worker: what gunicorn's post_fork runs, then a query
        status = 1
        try:
            server.begin()
            with engine.connect() as connection:
                status = 0 if "opened_in" not in connection.connection.info else 3
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the worker used the master's connection"
    with engine.connect() as connection:  # the master's own connection still works
        assert connection.connection.info["opened_in"] == os.getpid()


# -- upserts cannot keep every process rebuilding ---------------------------------------------


def test_upserts_alone_rebuild_the_app_at_most_half_the_time(tmp_path, monkeypatch):
    """Each upsert made every process rebuild its app from all updates since the last training
    (9 s with 50,000 updates): a CRM upserting every second kept every worker rebuilding back to
    back. Now updates alone wait as long as the last build took; a promotion never waits."""
    from dashboard import live

    engine = _migrated(db.make_engine(db.database_url(tmp_path / "state", None)))
    info = _dataset(engine)
    for version in ("v1", "v2"):
        lifecycle.add_version(engine, version, info.id, {}, "ada")
    lifecycle.promote(engine, "v1", "ada")
    builds = []

    def build(_ctx, now):
        time.sleep(0.3)  # what a build costs
        builds.append(now.version)
        last = lifecycle.last_update_id(engine, now.dataset_id)
        return live.Serving(None, now.dataset_id, now.version, now.serial, last)

    def build_updates(_ctx, current):
        time.sleep(0.3)
        builds.append(current.version)
        last = lifecycle.last_update_id(engine, current.dataset_id)
        return live.Serving(None, current.dataset_id, current.version, current.serial, last)

    monkeypatch.setattr(live, "build_live", build)
    monkeypatch.setattr(live, "build_updates", build_updates)
    monkeypatch.setattr(live, "POLL_SECONDS", 0.1)
    monkeypatch.setattr(live, "_collect", lambda: None)
    monkeypatch.setattr(live, "COLLECT_AFTER_SECONDS", 0.0)
    now = lifecycle.live(engine)
    server = live.LiveServer(
        SimpleNamespace(engine=engine, config=SimpleNamespace(debug=False)),
        live.Serving(None, info.id, "v1", now.serial, 0),
    )

    def upsert(n: int) -> None:
        lifecycle.add_customer_updates(engine, info.id, [(f"C{n}", {"tenure_months": n})], "crm")

    upsert(1)
    assert server.poll() is True  # the first update is applied at once
    upsert(2)
    assert server.poll() is False  # the next waits as long as the build took
    lifecycle.promote(engine, "v2", "ada")
    assert server.poll() is True  # a promotion does not wait
    assert server.serving.version == "v2"
    upsert(3)
    assert server.poll() is True  # the hold-off follows update builds only
    upsert(4)
    assert server.poll() is False
    time.sleep(0.35)
    assert server.poll() is True
    assert server.serving.updates == lifecycle.last_update_id(engine, info.id)
    assert builds == ["v1", "v2", "v2", "v2"]


# -- a Parquet bomb ----------------------------------------------------------------------------


def _parquet(path, rows: int, text: str, *, ints: int = 0) -> bytes:
    columns = {
        "customer_id": [f"C{i}" for i in range(rows)],
        "tenure": [1 + i % 40 for i in range(rows)],
        "churn": ["Yes" if i % 3 else "No" for i in range(rows)],
        "plan": pa.array([text] * rows, pa.large_string()),
    }
    columns.update({f"n{k}": [7] * rows for k in range(ints)})
    # No Arrow schema stored: a reader decodes the repeated value once per row.
    pq.write_table(pa.table(columns), path, compression="zstd", store_schema=False)
    return path.read_bytes()


def test_a_parquet_that_decodes_past_the_byte_limit_is_refused_before_decoding(tmp_path):
    """A 1.5 KB Parquet held one 5 MB value on 200 rows (dictionary encoding): reading it took
    1.4 GB in the web worker, whose limit was the file's bytes only (a gzip is refused once it
    decompresses past the limit)."""
    limits = {"max_bytes": MB, "max_rows": 100_000, "max_columns": 50}
    bomb = tmp_path / "bomb.parquet"
    size = len(_parquet(bomb, 200, "a" * 20_000))
    assert size < 10_000  # 4 MB of text in a few kilobytes
    with pytest.raises(FileTooLargeError, match=r"bomb.parquet decodes to 3\.\d MB, over the 1\.0"):
        read.load_table(bomb, **limits)
    one_value = tmp_path / "one_value.parquet"  # one huge value: the pages' size says it
    _parquet(one_value, 2, "b" * (2 * MB))
    with pytest.raises(FileTooLargeError, match=r"one_value\.parquet decompresses to 2\.0 MB"):
        read.load_table(one_value, **limits)
    numbers = tmp_path / "numbers.parquet"  # run-length encoded numbers
    _parquet(numbers, 20_000, "x", ints=8)
    with pytest.raises(FileTooLargeError, match=r"numbers\.parquet decodes to"):
        read.load_table(numbers, **limits)
    fine = tmp_path / "fine.parquet"  # the same table with ordinary values loads as before
    _parquet(fine, 200, "Basic", ints=2)
    assert len(read.load_table(fine, **limits).frame) == 200

    # Uploaded: refused (413 in the API) and nothing kept.
    engine = _migrated(db.make_engine(db.database_url(tmp_path / "state", None)))
    settings = settings_from_env(env={"RETENTION_MAX_FILE_MB": "1"})
    with pytest.raises(FileTooLargeError):
        datasets.add_stream(engine, tmp_path / "files", io.BytesIO(bomb.read_bytes()),
                            "bomb.parquet", settings)  # fmt: skip
    assert list(datasets.folder(tmp_path / "files").iterdir()) == []
    assert lifecycle.datasets(engine) == []


# -- ids a client sends ------------------------------------------------------------------------


def test_ids_holding_a_nul_byte_are_unknown_not_a_server_error(empty_state):
    """PostgreSQL refuses a NUL byte in text with an error: GET /api/v1/datasets/A%00,
    /jobs/A%00, /models/A%00/compare, POST /models/A%00/promote, /jobs/A%00/cancel and
    POST /models {"dataset_id": "A\\u0000"} were 500s there."""
    engine = _migrated(empty_state)
    info = _dataset(engine)
    lifecycle.add_version(engine, "v1", info.id, {}, "ada")
    job = lifecycle.enqueue(engine, info.id, "ada")
    for key in (f"{info.id}\x00", "\x00", "v1\x00"):
        assert lifecycle.dataset(engine, key) is None
        assert lifecycle.version(engine, key) is None
        assert lifecycle.job(engine, key) is None
        for call in (
            lambda k=key: lifecycle.promote(engine, k, "ada"),
            lambda k=key: lifecycle.enqueue(engine, k, "ada"),
            lambda k=key: lifecycle.request_cancel(engine, k, "ada"),
        ):
            with pytest.raises(LifecycleError) as refused:
                call()
            assert refused.value.status == 404
    assert lifecycle.job(engine, job.id).state == lifecycle.QUEUED  # the real ones still work
    assert lifecycle.promote(engine, "v1", "ada").version == "v1"


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_workspace):
    """The living-data server on the demo base with its model, as wsgi.py starts it."""
    from dashboard import live

    root = tmp_path_factory.mktemp("served")
    models = save_demo_model(root / "models", demo_workspace)
    config = ServeSettings(
        data=DEMO_DATA, state_dir=root / "state", models_dir=models, secret_key=TEST_SECRET
    )
    return live.start(config, settings_from_env(env={}))


def test_nul_ids_in_the_lifecycle_api_are_404(served):
    admin = signed_in(served.app, "admin")
    for method, path in (
        ("GET", "/api/v1/datasets/A%00"),
        ("GET", "/api/v1/jobs/A%00"),
        ("GET", "/api/v1/models/A%00/compare"),
        ("POST", "/api/v1/models/A%00/promote"),
        ("POST", "/api/v1/jobs/A%00/cancel"),
    ):
        assert admin.open(path, method=method).status_code == 404, path
    answer = admin.post("/api/v1/models", json={"dataset_id": "A\x00"})
    assert answer.status_code == 404


def test_upserted_customer_ids_fit_the_state_database(served):
    """A customer id of 129 characters or more (10 KB was accepted) or holding a NUL byte went
    past every check and failed on PostgreSQL's customer_updates column with a 500 (SQLite kept
    it). Now one 422 naming the field, and nothing stored."""
    from dashboard.app import served_base

    admin = signed_in(served.app, "admin")
    known = str(served_base(served.app).scored["customer_id"].iloc[0])
    profile = admin.get(f"/api/v1/customers/{known}").get_json()["profile"]
    profile = {k: v for k, v in profile.items() if v is not None and k != "customer_id"}
    engine = served.ctx.engine
    before = lifecycle.last_update_id(engine, served.serving.dataset_id)
    for customer in ("A" * 129, "A" * 10_000, "C\x00", "C\n1", "C\x1b[31m"):
        batch = admin.post(
            "/api/v1/customers:batch", json={"customers": [{**profile, "customer_id": customer}]}
        )
        assert batch.status_code == 422, batch.get_data(as_text=True)
        assert batch.get_json()["errors"] == [
            {
                "field": "customers[0].customer_id",
                "message": "at most 128 characters, no control characters",
            }
        ]
    put = admin.put("/api/v1/customers/" + "A" * 200, json=profile)
    assert put.status_code == 422
    assert put.get_json()["errors"][0]["field"] == "customer_id"
    assert lifecycle.last_update_id(engine, served.serving.dataset_id) == before
    # An id of exactly 128 characters is a customer like any other.
    longest = {**profile, "customer_id": "B" * 128}
    added = admin.post("/api/v1/customers:batch", json={"customers": [longest]})
    assert added.status_code == 200, added.get_data(as_text=True)


def test_a_non_admins_upload_is_refused_before_its_body_is_read(served):
    """The CSRF check reads a form's body: an analyst's browser session could make the server
    spool a whole upload to disk before the 403. The admin-only routes are refused first, so
    the answer is the 403, not CSRF's 400 (this request carries no CSRF token)."""
    analyst = served.app.test_client()  # a browser: a session cookie, no token
    log_in(analyst, make_user(served.app, "analyst"))
    for path in ("/api/v1/datasets", "/admin/data/datasets"):
        body = {"file": (io.BytesIO(b"customer_id,churn\nA,1\n"), "t.csv")}
        answer = analyst.post(path, data=body, content_type="multipart/form-data")
        assert answer.status_code == 403, (path, answer.status_code)
        assert "needs the admin role" in answer.get_json()["error"]


# -- the slow-client deadline ------------------------------------------------------------------


def _deadline(head: bytes) -> float:
    """The deadline RetentionWorker gives a request whose head is `head` (from 100.0)."""
    from dashboard.worker import RetentionWorker, _Request

    worker = RetentionWorker.__new__(RetentionWorker)  # the loop's bookkeeping only
    worker.buffered = 0
    worker._hand_over = lambda _conn, _pending: True
    pending = _Request(head, 100.0)
    worker._arrived(None, pending)
    return pending.deadline


def test_only_the_upload_routes_get_time_for_a_declared_body():
    """The upload change gave every request a second per declared MiB: an anonymous client
    trickling a declared 32 MB body into POST /login (whose CSRF check reads the form) held a
    thread 47 s instead of RETENTION_CLIENT_TIMEOUT's 15 (measured on gunicorn)."""
    declared = 32 * MB
    for path in (b"/login", b"/api/v1/predict", b"/_dash-update-component", b"/api/v1/models"):
        head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % declared
        assert _deadline(head) == 100.0, path
    for path in (b"/api/v1/datasets", b"/admin/data/datasets"):
        head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % declared
        assert _deadline(head) == pytest.approx(132.0), path
    get = b"GET /api/v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % declared
    assert _deadline(get) == 100.0


# -- the job process's command line ------------------------------------------------------------


def test_a_job_id_is_never_read_as_an_option():
    """The runner passes the job id from the database to `python -m analytics jobs run`: an id
    starting with '-' (a row written by anything but enqueue) was parsed as an option."""
    from analytics import cli, jobs

    command = jobs.Runner.command(None, "--help")
    assert command[:3] == [command[0], "-m", "analytics"]
    assert cli.build_parser().parse_args(command[3:]).job_id == "--help"


# -- pruning and a promotion at the same moment -----------------------------------------------


def _versions(engine, models, count: int) -> DatasetInfo:
    info = _dataset(engine)
    for i in range(1, count + 1):
        (models / f"v{i}").mkdir(parents=True)
        (models / f"v{i}" / "model.json").write_text("{}")
        lifecycle.add_version(engine, f"v{i}", info.id, {}, "ada")
        time.sleep(0.01)  # created_at orders them
    return info


def test_prune_never_removes_a_version_promoted_while_it_runs(empty_state, tmp_path, monkeypatch):
    """prune read the live and previous versions, removed the old folders, then marked them:
    an admin rolling back to an old version in between made live a version whose folder was
    then removed (and marked pruned), so no process could serve it."""
    from analytics import versions

    engine = _migrated(empty_state)
    models = tmp_path / "models"
    _versions(engine, models, 5)
    lifecycle.promote(engine, "v4", "ada")
    lifecycle.promote(engine, "v5", "ada")
    listed = lifecycle.versions

    def rollback_meanwhile(*args, **kwargs):  # after prune read the live row
        found = listed(*args, **kwargs)
        if lifecycle.live(engine).version != "v1":
            lifecycle.promote(engine, "v1", "admin")
        return found

    monkeypatch.setattr(lifecycle, "versions", rollback_meanwhile)
    removed = versions.prune(engine, models, keep=2)
    assert sorted(removed) == ["v2", "v3"]
    now = lifecycle.live(engine)
    assert (now.version, now.previous) == ("v1", "v5")
    assert (models / "v1").is_dir()
    assert (models / "v5").is_dir()
    assert not lifecycle.version(engine, "v1").pruned


def test_a_version_pruned_while_being_promoted_is_not_made_live(empty_state, tmp_path):
    """The other order: promote checked the version, a prune marked it (and removed its folder),
    then promote made it live."""
    from sqlalchemy import event, update
    from sqlalchemy.orm import Session

    from analytics.store.tables import ModelVersion

    engine = _migrated(empty_state)
    _versions(engine, tmp_path / "models", 3)
    lifecycle.promote(engine, "v3", "ada")

    def prune_meanwhile(session, _context, _instances):
        with engine.begin() as connection:  # another process's prune, committed
            connection.execute(
                update(ModelVersion)
                .where(ModelVersion.version == "v1")
                .values(pruned_at=lifecycle.now())
            )

    event.listen(Session, "before_flush", prune_meanwhile, once=True)
    try:
        with pytest.raises(LifecycleError, match="'v1' was pruned") as refused:
            lifecycle.promote(engine, "v1", "admin")
    finally:
        if event.contains(Session, "before_flush", prune_meanwhile):
            event.remove(Session, "before_flush", prune_meanwhile)
    assert refused.value.status == 409
    assert lifecycle.live(engine).version == "v3"
