"""Reading customer tables from a database: a table (or view) or one SQL query -> a raw frame.

PostgreSQL (psycopg 3) or an SQLite file. Nothing is ever written: a table is reflected, so
SQLAlchemy quotes its name (never formatted into SQL); a query must be one SELECT (or WITH ...
SELECT) statement, and runs on PostgreSQL in a READ ONLY transaction with a statement timeout,
on SQLite over a connection opened read-only (`mode=ro`, `PRAGMA query_only`) with the same
timeout. Rows are streamed in chunks and counted against RETENTION_MAX_ROWS, columns against
RETENTION_MAX_COLUMNS (the limits of ingest.read), so a table too large is refused before it
is all in memory.

Values come back typed, as from Parquet: numbers as numbers (NUMERIC/DECIMAL as float), text as
`str`, dates and timestamps as naive datetime64[ns] (UTC), booleans as booleans; UUIDs,
intervals and other scalars as their text. JSON/array columns (many values per cell) and
binary ones are left out, listed in attrs[ATTR_DROPPED] as a Parquet file's nested columns are.
Every failure (bad URL, unknown driver, unreachable host, wrong password, unknown table, a
write statement, a timeout) is a one-line DataError naming the URL without its password.
"""

from __future__ import annotations

import re
import sqlite3
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    create_engine,
    inspect,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SAWarning, SQLAlchemyError
from sqlalchemy.pool import NullPool

from analytics.config import check_source_url
from analytics.ingest import read
from analytics.ingest.errors import DataError, EmptyTableError, NotATableError
from analytics.ingest.messages import listing, suggest
from analytics.ingest.validate import ATTR_DROPPED, validate
from analytics.ingest.validate import Table as Validated
from analytics.store.db import safe_url

CHUNK_ROWS = 10_000  # rows fetched (and counted) at a time
STATEMENT_TIMEOUT_S = 300.0  # longest a statement (one chunk) may run: a runaway query stops
CONNECT_TIMEOUT_S = 10  # an unreachable PostgreSQL host fails in this long, not minutes
_SQLITE_CHECK_EVERY = 10_000  # SQLite virtual-machine steps between two timeout checks


class SourceError(DataError):
    """The database cannot be reached or read, or the table or query cannot be used."""


# -- what is read ---------------------------------------------------------------------------

# One token SQL treats as a unit: a comment, a string, a quoted identifier, a PostgreSQL
# dollar-quoted body, or a semicolon. Whatever is inside the first four is not SQL to check.
_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<text>(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*(?:'|\Z)|'(?:[^']|'')*(?:'|\Z))
    |(?P<name>"(?:[^"]|"")*(?:"|\Z))
    |(?P<dollar>\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))
    |(?P<end>;)
    """,
    re.VERBOSE | re.DOTALL,
)
_READING = ("select", "with")


def checked_query(query: str) -> str:
    """The query without its trailing `;`, if it is one SELECT or WITH ... SELECT statement;
    else a SourceError. The database's read-only transaction or connection stops anything
    this check lets through that would write (`WITH d AS (DELETE ...) SELECT`)."""
    end, skeleton, last = None, [], 0
    for token in _TOKEN.finditer(query):
        skeleton.append(query[last : token.start()])
        if token.group("end"):
            skeleton.append(";")
            end = token.start() if end is None else end
        else:  # a comment separates words; a string or quoted name is one word
            skeleton.append(" " if token.group("comment") else " '' ")
        last = token.end()
    skeleton.append(query[last:])
    statements = [s for s in "".join(skeleton).split(";") if s.strip()]
    if not statements:
        raise SourceError("query is empty: give one SELECT statement")
    if len(statements) > 1:
        raise SourceError(
            f"query holds {len(statements)} statements: give one SELECT statement (nothing was run)"
        )
    first = re.match(r"[\s(]*([A-Za-z]*)", statements[0]).group(1).lower()
    if first not in _READING:
        shown = first.upper() or statements[0].strip()[:20]
        raise SourceError(
            f"query starts with {shown}: only a SELECT (or WITH ... SELECT) query is read "
            "(nothing was run)"
        )
    return (query[:end] if end is not None else query).strip()


_NAME_PART = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')


def table_name(name: str) -> tuple[str | None, str]:
    """(schema or None, table) from `table`, `schema.table` or their double-quoted forms
    (`"My Table"`, `sales."Customers"`): quotes keep a dot or a capital inside a name."""
    parts, position = [], 0
    stripped = name.strip()
    while True:
        match = _NAME_PART.match(stripped, position)
        if not match:
            break
        quoted, plain = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else plain.strip())
        position = match.end()
        if position == len(stripped) or stripped[position] != ".":
            break
        position += 1
    if position != len(stripped) or not 1 <= len(parts) <= 2 or not all(parts):
        raise SourceError(f"table {name!r} is not a table name: give TABLE or SCHEMA.TABLE")
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


# -- connecting -----------------------------------------------------------------------------


def _shown_url(url: str) -> str:
    try:
        return safe_url(url)
    except ArgumentError:
        return "<not a database URL>"


class _SqliteClock:
    """SQLite has no statement timeout: a progress handler stops a statement that runs longer
    than `timeout` seconds since the last chunk of rows (`restart`)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.expired = False

    def restart(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def check(self) -> int:
        self.expired = time.monotonic() > self.deadline
        return int(self.expired)  # non-zero interrupts the statement


def _engine(url: str, shown: str, timeout: float) -> tuple[Engine, _SqliteClock | None]:
    try:
        check_source_url(url)
    except ValueError as exc:
        raise SourceError(f"cannot read from {shown}: {exc}") from None
    parsed: URL = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            parsed, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
        return engine, None
    path = Path(parsed.database).expanduser()
    if not path.is_file():
        # sqlite3 would create an empty database rather than say the file is missing
        raise SourceError(f"cannot connect to {shown}: no such file {path}")
    clock = _SqliteClock(timeout)

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        connection.execute("PRAGMA query_only = ON")
        connection.set_progress_handler(clock.check, _SQLITE_CHECK_EVERY)
        return connection

    return create_engine(parsed, poolclass=NullPool, creator=connect), clock


def _read_only(connection: Connection, timeout: float) -> None:
    """PostgreSQL: the transaction cannot write and each statement stops after `timeout`.
    (SQLite's connection is read-only from the start.)"""
    if connection.dialect.name != "postgresql":
        return
    connection.exec_driver_sql("SET TRANSACTION READ ONLY")  # first statement of the transaction
    connection.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"),
        {"ms": str(max(1, round(timeout * 1000)))},
    )


def _reason(exc: BaseException, url: str, clock: _SqliteClock | None, timeout: float) -> str:
    """The driver's own first line, without the password should it quote the URL."""
    if clock is not None and clock.expired:
        return f"stopped after {timeout:g} s (statement timeout): make the query cheaper"
    original = getattr(exc, "orig", None) or exc
    lines = [line for line in str(original).splitlines() if line.strip()]
    reason = " ".join(lines[0].split()) if lines else type(original).__name__
    if "statement timeout" in reason:
        reason += f" ({timeout:g} s): make the query cheaper"
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    return reason.replace(str(password), "***") if password else reason


@contextmanager
def _reported(what: str, url: str, clock: _SqliteClock | None, timeout: float) -> Iterator[None]:
    try:
        yield
    except DataError:
        raise
    except (SQLAlchemyError, sqlite3.Error, ImportError, OSError) as exc:
        raise SourceError(f"{what}: {_reason(exc, url, clock, timeout)}") from None


# -- reading --------------------------------------------------------------------------------


def _reflect(connection: Connection, name: str, shown: str) -> Table:
    schema, bare = table_name(name)
    inspector = inspect(connection)
    if schema is not None and schema not in (schemas := inspector.get_schema_names()):
        raise SourceError(
            f"table {name}: {shown} has no schema '{schema}'{suggest(schema, schemas)} "
            f"(schemas: {listing(sorted(schemas))})"
        )
    try:
        with warnings.catch_warnings():  # a column type SQLAlchemy does not know is still read
            warnings.simplefilter("ignore", SAWarning)
            return Table(bare, MetaData(), schema=schema, autoload_with=connection)
    except NoSuchTableError:
        names = sorted(inspector.get_table_names(schema) + inspector.get_view_names(schema))
        where = f"schema {schema}" if schema else "it"
        there = f"; {where} has: {listing(names)}" if names else f"; {where} has no tables"
        raise SourceError(
            f"table {name}: no such table or view in {shown}{suggest(bare, names)}{there}"
        ) from None


def _select_all(source: Table):
    """Every column, in primary-key order when there is one: a table has no order of its own
    (PostgreSQL returns rows as they lie on disk), and the same rows must give the same dataset
    hash on every read. `*`, not the reflected columns: values come as the driver gives them,
    never through a type SQLAlchemy guessed (SQLite's declared DATE may hold any text)."""
    return select(literal_column("*")).select_from(source).order_by(*source.primary_key.columns)


def _column(values: np.ndarray) -> tuple[pd.Series | None, str | None]:
    """One column's driver values as validate expects them typed, as pd.read_parquet gives
    them; or (None, why it is left out)."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return pd.to_numeric(pd.Series(values, dtype=object)), None
    if kind == "boolean":
        series = pd.Series(values, dtype=object)
        return (series if series.isna().any() else series.astype(bool)), None
    if kind == "string":
        return pd.Series(values, dtype="str"), None
    if kind in ("date", "datetime", "datetime64"):
        return _dates(values), None
    if kind == "empty":
        return pd.Series(values, dtype=object), None
    if kind == "bytes":
        return None, "binary values, not one value per customer"
    if kind == "mixed":
        if any(isinstance(v, dict | list | tuple) for v in values):
            return None, "nested values (JSON or arrays), not one value per customer"
        if any(isinstance(v, bytes | bytearray | memoryview) for v in values):
            return None, "binary values, not one value per customer"
    # UUIDs, intervals, times, ranges, a column whose cells differ in type (SQLite): their text
    shown = [v if v is None or isinstance(v, str) else str(v) for v in values]
    return pd.Series(shown, dtype="str"), None


def _dates(values: np.ndarray) -> pd.Series:
    """Naive UTC datetime64[ns]; dates outside its range (year 1, 9999) as ISO text for
    validate to judge, as it does a CSV's."""
    try:
        stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        return stamps.dt.tz_localize(None).astype("datetime64[ns]")
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError, TypeError):
        shown = [None if v is None else v.isoformat() for v in values]
        return pd.Series(shown, dtype="str")


def _frame(
    result: CursorResult, name: str, limits: read.Limits, clock: _SqliteClock | None
) -> pd.DataFrame:
    keys = result.keys()  # iterating the result itself would consume rows
    names = [str(n) for n in keys]
    if not names:
        raise EmptyTableError(f"{name} has no columns")
    read._check_columns(name, len(names), limits.columns)
    chunks: list[list[np.ndarray]] = [[] for _ in names]
    rows = 0
    # The size is given: without one, SQLAlchemy's psycopg result fetches everything at once.
    for part in result.partitions(CHUNK_ROWS):
        rows += len(part)
        if rows > limits.rows:
            raise read._too_many_rows(name, f"more than {limits.rows:,} rows", limits.rows)
        # np.fromiter keeps lists (arrays, JSON) as single cells where np.array would nest
        for kept, values in zip(chunks, zip(*part, strict=True), strict=True):
            kept.append(np.fromiter(values, dtype=object, count=len(part)))
        if clock is not None:
            clock.restart()
    if rows == 0:
        raise EmptyTableError(f"{name} has columns ({listing(names)}) but no rows")
    kept_names, kept, dropped = [], [], {}
    for column, pieces in zip(names, chunks, strict=True):
        series, why = _column(np.concatenate(pieces))
        pieces.clear()
        if series is None:
            dropped[column] = why
        else:
            kept_names.append(column)
            kept.append(series)
    if not kept:
        raise NotATableError(
            f"{name} has no usable column: {listing(list(dropped))} hold nested or binary values"
        )
    raw = pd.DataFrame(dict(enumerate(kept)))
    raw.columns = kept_names  # set after: duplicate names stay for validate to report
    if dropped:
        raw.attrs[ATTR_DROPPED] = dropped
    return raw


def _what(table: str | None, query: str | None) -> tuple[str, str | None]:
    """(the name messages use, the checked query)."""
    if (table is None) == (query is None):
        raise SourceError("give a table name or a query to read, not both and not neither")
    if table is not None:
        if not table.strip():
            raise SourceError("the table name is empty: give TABLE or SCHEMA.TABLE")
        return f"table {table.strip()}", None
    return "query", checked_query(query)


def read_source(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    max_rows: int | None = None,
    max_columns: int | None = None,
    timeout: float = STATEMENT_TIMEOUT_S,
) -> pd.DataFrame:
    """The raw table read from a database table or view (`schema.table` allowed) or from one
    SELECT query: exactly one of `table` and `query`. A table comes in primary-key order (one
    without a key in the database's order, which PostgreSQL does not keep), a query in its own.

    The limits default to RETENTION_MAX_ROWS and _MAX_COLUMNS; `timeout` bounds each statement
    (each chunk of rows). Raises a DataError subclass naming the table or query and the URL
    (without its password).
    """
    name, statement = _what(table, query)
    limits = read._limits(None, max_rows, max_columns)
    shown = _shown_url(url)
    with _reported(f"cannot connect to {shown}", url, None, timeout):  # a driver not installed
        engine, clock = _engine(url, shown, timeout)
    try:
        with _reported(f"cannot connect to {shown}", url, clock, timeout):
            connection = engine.connect()
        with connection, _reported(f"{name} cannot be read from {shown}", url, clock, timeout):
            _read_only(connection, timeout)
            streaming = connection.execution_options(yield_per=CHUNK_ROWS)
            if clock is not None:
                clock.restart()  # the timeout counts from the query, not from connecting
            if statement is None:
                source = _reflect(connection, table, shown)
                read._check_columns(name, len(source.columns), limits.columns)
                result = streaming.execute(_select_all(source))
            else:
                if connection.dialect.driver == "psycopg":
                    statement = statement.replace("%", "%%")  # psycopg reads % as a placeholder
                result = streaming.exec_driver_sql(statement)
            with result:
                return _frame(result, name, limits, clock)
    finally:
        engine.dispose()


def load_source(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    mapping: Mapping[str, str] | None = None,
    require_label: bool = True,
    drop: Sequence[str] = (),
    max_rows: int | None = None,
    max_columns: int | None = None,
    timeout: float = STATEMENT_TIMEOUT_S,
) -> Validated:
    """read_source + validate; validation errors are prefixed with `table NAME` or `query`."""
    raw = read_source(
        url, table=table, query=query, max_rows=max_rows, max_columns=max_columns, timeout=timeout
    )
    name = _what(table, query)[0]
    try:
        return validate(raw, mapping, require_label=require_label, drop=drop)
    except DataError as exc:
        raise type(exc)(f"{name}: {exc}") from None
