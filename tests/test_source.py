"""Customer tables read from a database (analytics.ingest.source) on SQLite and on a real
PostgreSQL: the same validated table as from the CSV, queries read-only and single, limits
counted while streaming, and every failure one line without the password."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, inspect

from analytics.config import ConfigError, serve_settings_from_env
from analytics.ingest import read
from analytics.ingest.errors import DataError, TableTooLargeError
from analytics.ingest.source import (
    SourceError,
    _engine,
    checked_query,
    load_source,
    read_source,
    table_name,
)
from analytics.ingest.validate import ATTR_DROPPED
from analytics.store.artifacts import frame_hash

# .ci/run starts PostgreSQL and sets this; elsewhere the PostgreSQL half skips and says why.
POSTGRES = os.environ.get("CI_POSTGRES_URL")


@dataclass(frozen=True)
class Database:
    url: str
    engine: Engine
    schema: str | None  # where this test's tables live: a fresh schema on PostgreSQL

    def name(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table

    def rows(self, table: str) -> int:
        with self.engine.connect() as connection:
            return connection.exec_driver_sql(f"SELECT count(*) FROM {self.name(table)}").scalar()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
        engine = create_engine(url)
        engine.connect().close()  # creates the file
        yield Database(url, engine, None)
        engine.dispose()
        return
    if not POSTGRES:
        if os.environ.get("CI") == "true":  # CI must test the real thing, never skip it
            pytest.fail("CI_POSTGRES_URL is not set: .ci/run starts PostgreSQL and sets it")
        pytest.skip("CI_POSTGRES_URL is not set (.ci/run starts PostgreSQL)")
    # A schema of its own: other tests (test_db.py) recreate `public` and may run meanwhile.
    schema = f"source_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield Database(POSTGRES, engine, schema)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def _write(database: Database, frame: pd.DataFrame, table: str, key: str | None = None) -> None:
    """`frame` as a table (pandas' types: BIGINT, DOUBLE/FLOAT, TEXT), `key` its primary key."""
    ddl = pd.io.sql.get_schema(frame, table, keys=key, con=database.engine, schema=database.schema)
    with database.engine.begin() as connection:
        connection.exec_driver_sql(ddl)
    frame.to_sql(table, database.engine, schema=database.schema, index=False, if_exists="append")


@pytest.fixture
def telco_table(database, telco_path):
    """The IBM Telco file as a table with pandas' types (numbers as numbers, TotalCharges as
    text for its blank cells), keyed by customerID."""
    _write(database, pd.read_csv(telco_path), "telco", key="customerID")
    return database.name("telco")


@pytest.fixture(scope="module")
def telco_csv(telco_path):
    """The Telco file as the CSV loader validates it, in customer-id order (the table's key)."""
    table = read.load_table(telco_path)
    by_id = table.frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    return table, by_id


# -- the same data as from the file ----------------------------------------------------------


def test_a_table_gives_the_validated_table_of_the_csv(database, telco_table, telco_csv):
    csv, by_id = telco_csv
    table = load_source(database.url, table=telco_table)
    assert frame_hash(table.frame) == frame_hash(by_id)
    assert table.mapping == csv.mapping
    assert (table.features, table.categorical, table.dropped) == (
        csv.features,
        csv.categorical,
        csv.dropped,
    )
    assert table.notes == csv.notes  # the 11 blank TotalCharges repaired the same way
    ordered = load_source(database.url, query=f'SELECT * FROM {telco_table} ORDER BY "customerID"')
    assert frame_hash(ordered.frame) == frame_hash(by_id)


def test_a_query_gives_its_subset(database, telco_table, telco_path):
    # '%' and ':name' inside strings are SQL, not driver placeholders
    query = (
        f'SELECT "customerID", "Churn", tenure, "MonthlyCharges", "PaymentMethod" '
        f"FROM {telco_table} WHERE \"Contract\" = 'Two year' "
        "AND \"PaymentMethod\" LIKE '%(automatic)' AND ':x' = ':x' -- a comment; not a statement"
    )
    raw = read_source(database.url, query=query)
    frame = pd.read_csv(telco_path)
    expected = frame[
        (frame["Contract"] == "Two year") & frame["PaymentMethod"].str.endswith("(automatic)")
    ]
    assert list(raw.columns) == ["customerID", "Churn", "tenure", "MonthlyCharges", "PaymentMethod"]
    assert len(raw) == len(expected) > 100
    assert set(raw["customerID"]) == set(expected["customerID"])
    assert raw["tenure"].dtype == np.int64
    assert raw["MonthlyCharges"].dtype == np.float64
    table = load_source(database.url, query=query)
    assert table.mapping["tenure_months"] == "tenure"
    assert len(table.frame) == len(expected)


def test_schema_qualified_and_quoted_names(database, telco_table):
    mixed = pd.DataFrame({"id": ["a", "b"], "Churn": ["Yes", "No"], "tenure": [3, 4]})
    _write(database, mixed, "Mixed Case.v2")
    schema = database.schema or "main"  # SQLite's own database is the schema `main`
    for name in (f'{schema}."Mixed Case.v2"', f'"{schema}"."Mixed Case.v2"'):
        assert read_source(database.url, table=name)["id"].tolist() == ["a", "b"]
    assert len(read_source(database.url, table=f"{schema}.telco")) == 7043
    assert table_name('sales."My.Table"') == ("sales", "My.Table")
    with pytest.raises(SourceError, match="not a table name"):
        table_name("a.b.c")


def test_an_unknown_table_or_schema_lists_what_exists(database, telco_table):
    with pytest.raises(SourceError) as err:
        read_source(database.url, table=database.name("telcoo"))
    message = str(err.value)
    assert "no such table or view" in message
    assert "did you mean 'telco'?" in message
    assert "has: telco" in message
    assert "\n" not in message
    with pytest.raises(SourceError, match="has no schema 'nosuch'"):
        read_source(database.url, table="nosuch.telco")


# -- nothing is ever written ---------------------------------------------------------------


WRITES = [
    "DELETE FROM {t}",
    "SELECT 1; DROP TABLE {t}",
    "SELECT 1 /* ; */ ; DELETE FROM {t}",
    "-- a report\nUPDATE {t} SET tenure = 0",
    "WITH gone AS (DELETE FROM {t} RETURNING *) SELECT * FROM gone",
    "DROP TABLE {t}",
]


def test_write_statements_are_refused_and_the_table_stays(database, telco_table):
    for statement in WRITES:
        with pytest.raises(SourceError) as err:
            read_source(database.url, query=statement.format(t=telco_table))
        assert "\n" not in str(err.value)
    assert database.rows("telco") == 7043
    assert "telco" in inspect(database.engine).get_table_names(schema=database.schema)


def test_the_database_refuses_writes_the_text_check_cannot_see(database, telco_table):
    """Behind the SELECT-only check: PostgreSQL's READ ONLY transaction, SQLite's read-only
    connection."""
    if database.schema:  # a function that writes, called from a SELECT
        with database.engine.begin() as connection:
            connection.exec_driver_sql(
                f"CREATE FUNCTION {database.schema}.wipe() RETURNS integer LANGUAGE sql AS "
                f"'DELETE FROM {telco_table} RETURNING 1'"
            )
        with pytest.raises(SourceError, match="read-only transaction"):
            read_source(database.url, query=f"SELECT {database.schema}.wipe()")
    else:
        engine, _ = _engine(database.url, "test", 5.0)
        with pytest.raises(Exception, match=r"readonly|read-only"), engine.connect() as c:
            c.exec_driver_sql(f"DELETE FROM {telco_table}")
        engine.dispose()
    assert database.rows("telco") == 7043


def test_only_one_select_passes_the_text_check():
    assert checked_query("  SELECT 1 ;  -- done\n") == "SELECT 1"
    assert checked_query("with a as (select ';' as x) select * from a;") == (
        "with a as (select ';' as x) select * from a"
    )
    assert checked_query("SELECT $$a;b$$, E'it\\'s; fine', \"odd;name\" FROM t")
    assert checked_query("(SELECT 1) UNION (SELECT 2)")
    for statement, reason in [
        ("", "empty"),
        (" ; -- nothing", "empty"),
        ("SELECT 1; SELECT 2", "2 statements"),
        ("SELECT $$a;b$$; DROP TABLE t", "2 statements"),
        ("SELECT $x$ it's $$ $x$, 'a''b;'; DELETE FROM t", "2 statements"),
        ("EXPLAIN ANALYZE DELETE FROM t", "starts with EXPLAIN"),
        ("COPY t TO '/tmp/x'", "starts with COPY"),
        ("/* SELECT */ TRUNCATE t", "starts with TRUNCATE"),
    ]:
        with pytest.raises(SourceError, match=reason):
            checked_query(statement)


# -- limits, types, failures ---------------------------------------------------------------


def test_limits_are_counted_while_streaming(database, telco_table):
    with pytest.raises(TableTooLargeError, match="more than 1,000 rows, over the 1,000-row"):
        read_source(database.url, table=telco_table, max_rows=1000)
    with pytest.raises(TableTooLargeError, match="21 columns, over the 20-column"):
        read_source(database.url, table=telco_table, max_columns=20)
    endless = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g) SELECT n FROM g"
    started = time.perf_counter()
    with pytest.raises(TableTooLargeError, match="more than 50,000 rows"):
        read_source(database.url, query=endless, max_rows=50_000)
    assert time.perf_counter() - started < 10  # stopped at the limit: it never ends


def test_a_long_statement_stops_at_the_timeout(database):
    if database.schema:
        slow = "SELECT pg_sleep(30)"
    else:
        slow = (
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g) SELECT count(*) FROM g"
        )
    started = time.perf_counter()
    with pytest.raises(SourceError, match=r"statement timeout.*make the query cheaper"):
        read_source(database.url, query=slow, timeout=0.5)
    assert time.perf_counter() - started < 10


COLUMNS = [
    "customer_id",
    "churned",
    "tenure_months",
    "monthly_revenue",
    "signup_date",
    "churn_date",
    "plan",
]
CUSTOMERS = [
    ("c1", True, 3, "19.90", "2022-01-15", "2022-04-15", "basic"),
    ("c2", False, 14, "45.50", "2021-03-01", None, "pro"),
    ("c3", True, None, "70.25", "2022-06-30", "2023-01-31", "pro"),
    ("c4", False, 30, None, "2020-11-11", None, None),
    ("c5", False, 7, "99.99", None, None, "basic"),
    ("c6", None, 2, "10.00", "2023-01-01", None, "basic"),
]


def _typed_table(database: Database) -> str:
    """CUSTOMERS with SQL types: NUMERIC money, DATE, TIMESTAMPTZ, BOOLEAN, NULLs; on
    PostgreSQL also a JSONB, a BYTEA and a UUID column."""
    pg = database.schema is not None
    name = database.name("typed")
    extra = ", tags JSONB, photo BYTEA, ref UUID" if pg else ""
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE {name} (customer_id TEXT PRIMARY KEY, churned BOOLEAN, "
            "tenure_months INTEGER, monthly_revenue NUMERIC(10, 2), signup_date DATE, "
            f"churn_date {'TIMESTAMPTZ' if pg else 'TIMESTAMP'}, plan TEXT{extra})"
        )
        marks = ", ".join(["%s" if pg else "?"] * len(COLUMNS))
        extras = ", '{\"a\": [1]}', '\\x00ff', gen_random_uuid()" if pg else ""
        for row in CUSTOMERS:
            stamp = row[5] and f"{row[5]} 00:00:00{'+00' if pg else ''}"  # midnight UTC
            values = (*row[:5], stamp, row[6])
            connection.exec_driver_sql(f"INSERT INTO {name} VALUES ({marks}{extras})", values)
    return name


def test_sql_types_arrive_as_validate_expects_them(database, tmp_path):
    name = _typed_table(database)
    raw = read_source(database.url, table=name)
    assert raw["monthly_revenue"].dtype == np.float64  # NUMERIC -> float, not Decimal
    assert raw["tenure_months"].dtype == np.float64  # an INTEGER column with a NULL
    if database.schema:
        assert raw["signup_date"].dtype == "datetime64[ns]"
        assert raw["churn_date"].dtype == "datetime64[ns]"  # TIMESTAMPTZ as naive UTC
        assert set(raw.attrs[ATTR_DROPPED]) == {"tags", "photo"}
        assert raw["ref"].str.len().eq(36).all()  # a UUID as its text
    # the same customers as a CSV file: the same validated table
    path = tmp_path / "customers.csv"
    labels = {True: "1", False: "0", None: None}
    rows = [(r[0], labels[r[1]], *r[2:]) for r in CUSTOMERS]
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    table = load_source(database.url, table=name, drop=["ref"] if database.schema else ())
    csv = read.load_table(path)
    assert table.has_dates
    assert table.has_revenue
    assert frame_hash(table.frame) == frame_hash(csv.frame)
    assert table.mapping == csv.mapping
    if database.schema:
        assert table.dropped["tags"].startswith("nested values")
        assert table.dropped["photo"].startswith("binary values")


def test_a_validation_error_names_the_table_or_the_query(database, telco_table):
    with pytest.raises(DataError, match=r"^query: .*churned"):
        load_source(database.url, query=f'SELECT "customerID", tenure FROM {telco_table}')
    with pytest.raises(DataError, match=rf"^table {telco_table}: mapping churned=Exitted"):
        load_source(database.url, table=telco_table, mapping={"churned": "Exitted"})
    with pytest.raises(DataError, match=r"has columns \(.*\) but no rows"):
        read_source(database.url, query=f"SELECT * FROM {telco_table} WHERE 1 = 0")
    with pytest.raises(SourceError, match="not both"):
        read_source(database.url, table=telco_table, query="SELECT 1")


def test_connection_failures_are_one_line_without_the_password(tmp_path):
    urls = {
        "postgresql+psycopg://ada:topsecret@127.0.0.1:1/retention": "Connection refused",
        "mysql://ada:topsecret@db.internal/retention": "unsupported database driver 'mysql'",
        "postgresql+psycopg2://ada:topsecret@db/x": "unsupported database driver",
        "not a url topsecret": "not a database URL",
        f"sqlite:///{tmp_path / 'absent.db'}": "no such file",
    }
    if POSTGRES:
        from sqlalchemy.engine import make_url

        wrong = make_url(POSTGRES).set(password="topsecret").render_as_string(False)
        urls[wrong] = "password authentication failed"
    for url, reason in urls.items():
        with pytest.raises(SourceError) as err:
            read_source(url, table="customers")
        message = str(err.value)
        assert reason in message, message
        assert "topsecret" not in message
        assert "\n" not in message
    assert not (tmp_path / "absent.db").exists()  # never created by trying to read it


# -- settings --------------------------------------------------------------------------------


def test_source_settings():
    url = "postgresql+psycopg://ada:topsecret@db.internal/crm"
    settings = serve_settings_from_env(
        env={"RETENTION_SOURCE_URL": url, "RETENTION_SOURCE_TABLE": " sales.customers "}
    )
    assert (settings.source_url, settings.source_table) == (url, "sales.customers")
    assert serve_settings_from_env(env={}).source_url is None
    both = {
        "RETENTION_SOURCE_URL": url,
        "RETENTION_SOURCE_TABLE": "customers",
        "RETENTION_SOURCE_QUERY": "SELECT * FROM customers",
    }
    with pytest.raises(ConfigError) as err:
        serve_settings_from_env(env=both)
    assert str(err.value) == (
        "RETENTION_SOURCE_TABLE and RETENTION_SOURCE_QUERY are both set: set one, the table or "
        "the query"
    )
    with pytest.raises(ConfigError, match="RETENTION_SOURCE_QUERY is set but RETENTION_SOURCE_URL"):
        serve_settings_from_env(env={"RETENTION_SOURCE_QUERY": "SELECT 1"})
    with pytest.raises(ConfigError) as err:
        serve_settings_from_env(env={"RETENTION_SOURCE_URL": "mysql://ada:topsecret@db/crm"})
    assert "RETENTION_SOURCE_URL='mysql://ada:***@db/crm'" in str(err.value)
    assert "topsecret" not in str(err.value)
