"""Errors of the state store, importable without SQLAlchemy and Alembic (the CLI's `train`
catches them and should not pay ~0.4 s of imports for it)."""


class StateError(Exception):
    """The state database cannot be opened or migrated; the message names it without secrets."""
