"""The state database on SQLite and on a real PostgreSQL: migrations bring an empty database to
the schema the tables declare, twice is a no-op, and the constraints hold."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analytics.store import db
from analytics.store.tables import ApiToken, AuditEvent, Base, User


@pytest.fixture
def engine(empty_state):
    return empty_state


def test_migrations_build_the_declared_schema_and_rerun_as_a_no_op(engine):
    assert db.current_revision(engine) is None
    assert db.upgrade(engine) == db.head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert db.upgrade(engine) == db.head_revision()
    assert {"users", "api_tokens", "audit_events"} <= set(inspect(engine).get_table_names())


def test_usernames_are_unique_and_tokens_go_with_their_user(engine):
    db.upgrade(engine)
    with Session(engine) as session:
        ada = User(username="ada", role="admin", password_hash="x")
        session.add(ada)
        session.flush()
        session.add(ApiToken(user_id=ada.id, token_hash="h1"))
        session.add(AuditEvent(actor="ada", action="user.add", target="ada", details={"r": 1}))
        session.commit()
        session.add(User(username="ada", role="analyst"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.delete(session.get(User, ada.id))
        session.commit()
        assert session.scalars(select(ApiToken)).all() == []  # deleted with their user
        event = session.scalars(select(AuditEvent)).one()
        assert event.details == {"r": 1}
        assert event.at is not None


def test_the_default_database_is_a_file_in_the_state_dir(tmp_path):
    url = db.database_url(tmp_path / "var", None)
    assert url == f"sqlite:///{(tmp_path / 'var' / db.SQLITE_FILE).resolve()}"
    assert (tmp_path / "var").is_dir()
    given = "postgresql+psycopg://u:secret@db.internal/retention"
    assert db.database_url(tmp_path / "other", given) == given
    assert "secret" not in db.safe_url(given)


def test_a_database_password_is_never_shown(tmp_path):
    import subprocess
    import sys

    from analytics.config import PROJ_ROOT

    def run(*args, url):
        env = {"PATH": "/usr/bin:/bin", "RETENTION_DATABASE_URL": url}
        env["RETENTION_STATE_DIR"] = str(tmp_path)
        done = subprocess.run(
            [sys.executable, "-m", "dashboard", *args],
            cwd=PROJ_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout + done.stderr

    code, out = run("db", "upgrade", url="mysql://u:topsecret@host/db")
    assert code == 1
    assert "unsupported database 'mysql'" in out
    assert "topsecret" not in out
    code, out = run("db", "upgrade", url="postgresql+psycopg://u:topsecret@127.0.0.1:1/x")
    assert code == 1
    assert "cannot be used" in out
    assert "topsecret" not in out
    code, out = run("--check-config", url="postgresql+psycopg://u:topsecret@db/x")
    assert code == 0
    assert "postgresql+psycopg://u:***@db/x" in out
    assert "topsecret" not in out


# -- accounts on both databases ---------------------------------------------------------------


def test_accounts_tokens_audit_and_counts_on_each_database(engine):
    from analytics.access import Scope
    from analytics.store import accounts

    db.upgrade(engine)
    made = accounts.add_user(
        engine, "mia", "manager", "a-long-password-1", scope=Scope.parse("region=North,East")
    )
    assert made.scope == Scope("region", ("North", "East"))
    with pytest.raises(accounts.AccountError, match="already exists"):
        accounts.add_user(engine, "mia", "analyst", "a-long-password-2")
    assert accounts.authenticate(engine, "mia", "a-long-password-1").id == made.id
    assert accounts.authenticate(engine, "mia", "wrong-password-xx") is None
    info, secret = accounts.create_token(engine, "mia", expires_days=7)
    assert accounts.token_user(engine, secret).username == "mia"
    assert info.expires_at > accounts.now()
    accounts.revoke_token(engine, info.id, actor="ops")
    assert accounts.token_user(engine, secret) is None
    accounts.change_user(engine, "mia", role="analyst", actor="ops")
    assert accounts.users(engine)[0].scope is None  # a scope means nothing for an analyst
    for _ in range(3):
        accounts.count_use(engine, "mia", "predict", 2)
    assert [u["count"] for u in accounts.usage(engine)] == [6]
    actions = [e["action"] for e in accounts.events(engine)]
    assert actions == ["user.scope", "user.role", "token.revoke", "token.create", "user.add"]
