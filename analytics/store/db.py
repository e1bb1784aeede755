"""The state database: where it is, its engine, and its schema brought up to date by Alembic.

An embedded SQLite file under RETENTION_STATE_DIR by default; PostgreSQL when
RETENTION_DATABASE_URL says so. Every process runs `upgrade` at start (and ops may run
`python -m dashboard db upgrade`): Alembic takes the schema from any earlier revision to head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

# Raised here and read as db.StateError; defined apart so the CLI catches it without SQLAlchemy.
from analytics.store.errors import StateError

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_FILE = "state.db"


def database_url(state_dir: Path, configured: str | None) -> str:
    """The configured URL, else the SQLite file in `state_dir` (created when missing)."""
    if configured:
        return configured
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(state_dir / SQLITE_FILE).resolve()}"


def open_state(url: str) -> tuple[Engine, str]:
    """The engine of an up-to-date state database and its revision, or a StateError."""
    engine = make_engine(url)
    try:
        return engine, upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StateError(f"the state database {safe_url(url)} cannot be used: {reason}") from None


def memory_state() -> Engine:
    """A private, migrated in-memory SQLite database: for an app built without one (tests, a
    one-off embedding); its users and audit log end with the process."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    upgrade(engine)
    return engine


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_rules(connection, _record):
            # SQLite checks foreign keys only when asked, per connection; WAL lets readers go on
            # while one process writes.
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision (idempotent); returns that revision."""
    command.upgrade(_alembic_config(engine), "head")
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def safe_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)
