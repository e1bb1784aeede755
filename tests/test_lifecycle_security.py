"""Security review of the living-data code (issue 12): each test is an attack that worked before
its fix. A worker inheriting the master's database connections across the fork; a CRM's
upserts keeping every process rebuilding; a Parquet of a few kilobytes decoding to a gigabyte;
ids holding a NUL byte or over the column's length answered with a 500 on PostgreSQL; the
extra body time of uploads given to every route; a job id read as an option."""

from __future__ import annotations

import os
from types import SimpleNamespace

from analytics.config import ServeSettings, settings_from_env
from analytics.store import db, lifecycle
from analytics.store.lifecycle import DatasetInfo

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
