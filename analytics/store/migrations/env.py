"""Alembic's environment: runs the migrations on the engine analytics.store.db passes in."""

from __future__ import annotations

from alembic import context

from analytics.store.tables import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
