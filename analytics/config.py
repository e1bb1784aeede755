"""Paths and settings. Paths live here only; every setting is declared here once.

Each setting is a field of a pydantic-settings class with its default (../shared/METRICS.md),
its range and its description; it maps to the environment variable RETENTION_<NAME>. Values
are validated once, at start; a bad one is a ConfigError of one line naming the variable (or
the command-line flag), the value found and what is allowed. The README's configuration table
is `configuration_table()`, so documentation and declarations cannot drift apart.

Both classes live here, serving ones included, so that every entry point (the CLI too, which
must not import the dashboard) knows every declared variable and can report a typo.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

PROJ_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJ_ROOT / "data"
MODELS_DIR = PROJ_ROOT / "models"
STATE_DIR = PROJ_ROOT / "var"
DEMO_DATA = DATA_DIR / "demo_customers.csv.gz"

ENV_PREFIX = "RETENTION_"
FLAG_WORDS = "1/true/yes/on or 0/false/no/off"


class ConfigError(ValueError):
    """A setting from the environment or the command line is invalid (one line)."""


class _Declared(BaseSettings):
    """Shared set-up: RETENTION_ prefix, immutable, unknown keyword arguments refused. Values
    come only from `_from_env` (the environment as an explicit mapping, then overrides), never
    from a .env file or a secrets directory: `Cls()` alone is the defaults."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings,)


class Settings(_Declared):
    """Business assumptions: what the numbers mean (METRICS.md), shared by the CLI and server."""

    margin: float = Field(1.0, gt=0.0, le=1.0, description="gross margin m in CLV")
    discount: float = Field(0.01, ge=0.0, le=1.0, description="monthly discount rate d in CLV")
    save_rate: float = Field(
        0.25, ge=0.0, le=1.0, description="planner: share of would-be churners an offer keeps"
    )
    cost_per_contact: float = Field(
        10.0, ge=0.0, description="planner: cost of one contact, in CURRENCY"
    )
    window_months: int = Field(1, ge=1, le=24, description="observation window for dated tables")
    max_file_mb: float = Field(
        512.0, gt=0.0, description="refuse input files larger than this, in MB"
    )
    max_rows: int = Field(
        10_000_000,
        ge=1,
        le=1_000_000_000,
        description="refuse input tables with more rows than this (counted while reading)",
    )
    max_columns: int = Field(
        200,
        ge=1,
        le=100_000,
        description="refuse input tables with more columns than this (training time grows "
        "with its square: permutation importance and drivers)",
    )
    random_state: int = Field(
        42, ge=0, le=2**32 - 1, description="seed for cross-validation, models and segments"
    )
    train_sample_rows: int = Field(
        200_000,
        ge=1_000,
        le=1_000_000_000,
        description="a base with more customers trains on a stratified sample of this many "
        "(the model search's time grows with the rows); every customer is still scored",
    )
    train_seconds_per_10k_rows: float = Field(
        60.0,
        gt=0,
        le=100_000,
        description="training's time budget, in seconds per 10,000 customers trained on: the "
        "model search tries its configurations in order of value and skips those that would "
        "not fit (said in the report)",
    )
    currency: str = Field(
        "$",
        min_length=1,
        max_length=5,
        pattern=r"^\S+$",
        description="how money is shown: a short symbol or an ISO code (`EUR`)",
    )

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


# -- serving ---------------------------------------------------------------------------------


def usable_cores() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(cores: int | None = None) -> int:
    """One gunicorn worker process per core, at least 2 and at most 8.

    The work is CPU-bound Python (pandas filters, figure building, scikit-learn predict) that
    holds the GIL, so processes, not threads, give parallelism, and more processes than cores
    only add context switches and memory: each worker keeps its own figure caches (lru_cache is
    per process), so the usual I/O-bound rule of 2 * cores + 1 would multiply memory and cache
    misses for no throughput. Concurrency for cheap requests (assets, health, keep-alive) comes
    from gthread's threads inside each worker (gunicorn.conf.py). At least 2 so one busy or
    restarting worker never makes the service unavailable; at most 8 because beyond that memory
    (copy-on-write pages get dirtied over time) grows faster than a dashboard's traffic.
    """
    cores = usable_cores() if cores is None else cores
    return min(max(cores, 2), 8)


def _expand_user(value: Any) -> Any:
    return Path(value).expanduser() if isinstance(value, str | Path) else value


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError("is a directory" if path.is_dir() else "no such file")
    return path


def _directory_or_absent(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError("not a directory")
    return path


def _host_name(host: str) -> str:
    if any(c.isspace() for c in host) or "/" in host or not 0 < len(host) <= 253:
        raise ValueError("not a host name")
    return host


def _database_url(url: str) -> str:
    """A SQLAlchemy URL of a backend the product supports (the password is never echoed)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("not a database URL (postgresql+psycopg://... or sqlite:///...)") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        backend = parsed.get_backend_name()
        raise ValueError(f"unsupported database {backend!r}: sqlite or postgresql")
    return url


# The drivers a customer table may be read with (analytics.ingest.source): psycopg 3 is the
# PostgreSQL driver installed; SQLAlchemy's bare `postgresql://` would look for psycopg2.
SOURCE_DRIVERS = {"postgresql": "psycopg", "sqlite": "pysqlite"}
SOURCE_URL_FORMS = "postgresql+psycopg://USER:PASSWORD@HOST/DB or sqlite:///PATH"


def check_source_url(url: str) -> str:
    """A database URL a customer table can be read from, or a ValueError saying why not (the
    password is never echoed)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL ({SOURCE_URL_FORMS})") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if SOURCE_DRIVERS.get(backend) != driver:
        raise ValueError(
            f"unsupported database driver {parsed.drivername!r}: postgresql+psycopg or sqlite"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("an SQLite source is a file: sqlite:///PATH")
    return url


def _table_name(value: str) -> str:
    if not value.strip() or any(c in value for c in "\n\r\x00"):
        raise ValueError("not a table name")
    return value.strip()


def _cron(value: str) -> str:
    from croniter import croniter

    value = " ".join(value.split())
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError("not a cron schedule: five fields, e.g. `0 3 1 * *`")
    return value


def _secret_key(value: str) -> str:
    if len(value) < 32:
        raise ValueError(f"too short ({len(value)} characters)")
    return value


def _networks(value: str) -> str:
    """Comma-separated IP addresses or networks (checked here, parsed by dashboard.auth)."""
    import ipaddress

    for part in filter(None, (p.strip() for p in value.split(","))):
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network") from None
    return value


def _group_roles(value: str) -> str:
    for part in filter(None, (p.strip() for p in value.split(","))):
        group, sep, role = part.rpartition("=")
        if not sep or not group.strip() or role.strip() not in ("admin", "analyst", "manager"):
            raise ValueError(f"{part!r} is not GROUP=admin|analyst|manager")
    return value


def _storage_uri(value: str) -> str:
    if not value.startswith(("memory://", "redis://", "rediss://", "memcached://")):
        raise ValueError("not a memory://, redis:// or memcached:// URI")
    return value


# An e-mail address as alerts use it (a sender, a rule's recipient): one mailbox, no display
# name, nothing that could end a header or add a recipient.
MAIL_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def check_mail_address(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not MAIL_ADDRESS.match(value):
        raise ValueError("not an e-mail address (name@example.com)")
    return value


SECRET_SETTINGS = ("secret_key", "smtp_password")
URL_SETTINGS = ("database_url", "source_url")  # shown without their password


def masked(name: str, value: Any) -> Any:
    """A setting's value as logs and messages may show it: a database URL without its
    password, the secret key not at all."""
    if name in SECRET_SETTINGS and value is not None:
        return "<hidden>"
    if name not in URL_SETTINGS or value is None:
        return value
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(str(value)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<hidden: not a URL>"


def _case(fold):
    return BeforeValidator(lambda v: fold(v) if isinstance(v, str) else v)


ExistingFile = Annotated[Path, BeforeValidator(_expand_user), AfterValidator(_existing_file)]
Directory = Annotated[Path, BeforeValidator(_expand_user), AfterValidator(_directory_or_absent)]


def _shown(*, allowed: str | None = None, default: str | None = None) -> dict:
    """What a field accepts, or its default, in words where its declaration alone cannot say."""
    extra = {"allowed": allowed, "default_text": default}
    return {"json_schema_extra": {k: v for k, v in extra.items() if v is not None}}


class ServeSettings(_Declared):
    """How the web server runs: what it serves, where it listens, how it logs."""

    data: ExistingFile = Field(
        DEMO_DATA,
        description="the customer table the server serves",
        **_shown(allowed="an existing CSV or Parquet customer table"),
    )
    mapping: ExistingFile | None = Field(
        None,
        description='how the table\'s columns map to canonical ones: `{"churned": "Exited"}`',
        **_shown(allowed="an existing JSON file"),
    )
    source_url: Annotated[str, AfterValidator(check_source_url)] | None = Field(
        None,
        description="a database holding the customer table, read with RETENTION_SOURCE_TABLE or "
        "RETENTION_SOURCE_QUERY in a read-only transaction",
        **_shown(allowed=SOURCE_URL_FORMS),
    )
    source_table: Annotated[str, AfterValidator(_table_name)] | None = Field(
        None,
        description="the table or view in RETENTION_SOURCE_URL with one row per customer",
        **_shown(allowed="a table name or SCHEMA.TABLE"),
    )
    source_query: str | None = Field(
        None,
        description="instead of a table: the query giving one row per customer",
        **_shown(allowed="one SELECT or WITH ... SELECT statement"),
    )
    models_dir: Directory = Field(
        MODELS_DIR,
        description="where model versions are kept (`CURRENT` names the live one)",
        **_shown(allowed="a directory (created when missing)"),
    )
    state_dir: Directory = Field(
        STATE_DIR,
        description="where the embedded SQLite state database lives (no RETENTION_DATABASE_URL)",
        **_shown(allowed="a directory (created when missing)"),
    )
    database_url: Annotated[str, AfterValidator(_database_url)] | None = Field(
        None,
        description="the state database (users, tokens, audit log): PostgreSQL in production",
        **_shown(
            allowed="postgresql+psycopg://USER:PASSWORD@HOST/DB or sqlite:///PATH",
            default="sqlite file under RETENTION_STATE_DIR",
        ),
    )
    host: Annotated[str, AfterValidator(_host_name)] = Field(
        "127.0.0.1",
        description="where the server listens (gunicorn and `python -m dashboard`)",
        **_shown(allowed="an interface name or IP address"),
    )
    port: int = Field(8050, ge=1, le=65535, description="the port the server listens on")
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=64,
        description="gunicorn worker processes",
        **_shown(default="one per core, 2 to 8"),
    )
    client_timeout: int = Field(
        15,
        ge=1,
        le=300,
        description="seconds a client has to send a whole request (headers and body) before "
        "gunicorn closes the connection",
    )
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], _case(str.upper)] = Field(
        "INFO", description="least important log line written"
    )
    log_format: Annotated[Literal["text", "json"], _case(str.lower)] = Field(
        "text", description="log lines as text or JSON (one object per line)"
    )
    batch_limit: int = Field(
        10_000, ge=1, le=1_000_000, description="most customers in one `POST /api/v1/predict`"
    )
    request_seconds: float = Field(
        30.0,
        gt=0.0,
        le=3600.0,
        description="time budget of one dashboard callback or API request: past it the "
        "request ends with 503 (checked between steps)",
    )
    max_body_mb: float = Field(
        32.0,
        gt=0.0,
        le=4096.0,
        description="largest request body accepted by the API and the dashboard, in MB: a "
        "larger one is refused with 413 before it is read",
    )
    retrain: bool = Field(
        True,
        description="retrain when the model is missing, corrupt or for other data; 0 exits",
    )
    demo_history: bool = Field(
        True,
        description="at the built-in demo's first start, a job records its year of monthly "
        "snapshots (with a past campaign and a drift to find); 0 skips it",
    )
    jobs: Literal["embedded", "external"] = Field(
        "embedded",
        description="who runs training jobs: a runner inside the server (one per host), or "
        "only `python -m analytics jobs worker` processes",
    )
    promote_margin: float = Field(
        0.005,
        ge=0.0,
        le=1.0,
        description="a refreshed model goes live unless its ROC-AUC is below the live one's by "
        "more than this",
    )
    keep_versions: int = Field(
        10,
        ge=2,
        le=1000,
        description="model versions kept on disk; older ones are pruned (never the live one or "
        "the previous)",
    )
    refresh_cron: Annotated[str, AfterValidator(_cron)] | None = Field(
        None,
        description="an in-process schedule for `refresh` (cron syntax, server time), where "
        "one server process is enough",
        **_shown(allowed="five cron fields, e.g. `0 3 1 * *` (03:00 on the 1st)"),
    )
    debug: bool = Field(
        False, description="Dash dev tools (tracebacks in the browser): never in production"
    )
    secret_key: Annotated[str, AfterValidator(_secret_key)] | None = Field(
        None,
        description="signs session cookies, CSRF tokens and model versions; required except by "
        "the development server on 127.0.0.1",
        **_shown(
            allowed="32 or more random characters (`python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)",
            default="none (development: random per start)",
        ),
    )
    auth: Literal["password", "proxy"] = Field(
        "password",
        description="log in with a password here, or single sign-on by a trusted proxy",
    )
    trusted_proxies: Annotated[str, AfterValidator(_networks)] = Field(
        "",
        description="addresses whose X-Forwarded-* and SSO headers are believed",
        **_shown(allowed="comma-separated IP addresses or networks (`10.0.0.0/8`)"),
    )
    proxy_user_header: str = Field(
        "X-Forwarded-User", description="SSO: the header the proxy puts the username in"
    )
    proxy_groups_header: str = Field(
        "X-Forwarded-Groups", description="SSO: the header with the user's groups, comma-separated"
    )
    proxy_roles: Annotated[str, AfterValidator(_group_roles)] = Field(
        "",
        description="SSO: which group gives which role (the first listed that matches wins)",
        **_shown(allowed="comma-separated GROUP=admin|analyst|manager"),
    )
    session_idle_minutes: int = Field(
        30, ge=1, le=1440, description="a session ends after this long without a request"
    )
    session_max_hours: int = Field(
        12, ge=1, le=720, description="a session ends this long after its login, used or not"
    )
    login_attempts: int = Field(
        5,
        ge=1,
        le=1000,
        description="wrong passwords per account in 15 minutes before 429 (per address: 4x)",
    )
    ratelimit_storage: Annotated[str, AfterValidator(_storage_uri)] = Field(
        "memory://",
        description="where login attempts are counted: memory is per worker process, Redis or "
        "Memcached is shared",
        **_shown(allowed="memory://, redis://HOST:PORT or memcached://HOST:PORT"),
    )

    # -- alerts (analytics/alerting.py) --
    smtp_host: Annotated[str, AfterValidator(_host_name)] | None = Field(
        None,
        description="the SMTP server alert e-mails are sent through (none: e-mail alerts fail, "
        "saying so)",
        **_shown(allowed="a host name or IP address"),
    )
    smtp_port: int = Field(
        587, ge=1, le=65535, description="the SMTP server's port (587: submission with STARTTLS)"
    )
    smtp_username: str | None = Field(
        None, description="log in to the SMTP server as this user (none: no login)"
    )
    smtp_password: str | None = Field(None, description="the SMTP user's password (never logged)")
    smtp_from: Annotated[str, AfterValidator(check_mail_address)] | None = Field(
        None,
        description="the sender of alert e-mails",
        **_shown(allowed="an e-mail address", default="RETENTION_SMTP_USERNAME if an address"),
    )
    smtp_starttls: bool = Field(
        True,
        description="upgrade the SMTP connection with STARTTLS (certificate checked) before "
        "logging in or sending; 0 only for a relay on the same host, without login",
    )
    smtp_ca_file: ExistingFile | None = Field(
        None,
        description="CA certificates (PEM) trusted for the SMTP server instead of the system's",
        **_shown(allowed="an existing PEM file", default="the system's CA certificates"),
    )
    smtp_timeout: float = Field(
        10.0, gt=0.0, le=300.0, description="seconds an SMTP connection or command may take"
    )
    webhook_timeout: float = Field(
        10.0, gt=0.0, le=300.0, description="seconds an alert webhook's request may take"
    )
    alert_retries: int = Field(
        3,
        ge=1,
        le=10,
        description="attempts to deliver an alert (a short backoff between them) before it is "
        "marked failed",
    )

    @model_validator(mode="after")
    def _smtp_login(self) -> ServeSettings:
        if self.smtp_password and not self.smtp_username:
            raise ValueError(
                f"{variable_name('smtp_password')} is set but {variable_name('smtp_username')} "
                "is not: set the user to log in as"
            )
        if self.smtp_username and not self.smtp_starttls:
            raise ValueError(
                f"{variable_name('smtp_username')} is set with {variable_name('smtp_starttls')}"
                "=0: the password would cross the network unencrypted; turn STARTTLS on"
            )
        return self

    @model_validator(mode="after")
    def _one_source(self) -> ServeSettings:
        if self.source_table and self.source_query:
            raise ValueError(
                f"{variable_name('source_table')} and {variable_name('source_query')} are both "
                "set: set one, the table or the query"
            )
        if (self.source_table or self.source_query) and not self.source_url:
            given = "source_table" if self.source_table else "source_query"
            raise ValueError(
                f"{variable_name(given)} is set but {variable_name('source_url')} is not: set "
                f"the database URL too ({SOURCE_URL_FORMS})"
            )
        return self


# Variables that are inputs to one command, not settings (`users add` reads the password here).
INPUT_VARIABLES = ["NEW_PASSWORD"]
SETTINGS_CLASSES: tuple[type[_Declared], ...] = (ServeSettings, Settings)
S = TypeVar("S", bound=_Declared)


# -- reading ---------------------------------------------------------------------------------


class _VariablesSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, or a test's
    dict). A blank value counts as unset: `RETENTION_X=` in a unit file means the default."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._given = {k: v.strip() for k, v in env.items() if v and v.strip()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str]:
        return {k.lower(): v for k, v in self._given.items()}


def _from_env(cls: type[S], env: Mapping[str, str] | None, overrides: Mapping) -> S:
    found = _VariablesSource(cls, os.environ if env is None else env)()
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**{**found, **given})
    except ValidationError as exc:
        raise ConfigError(_one_line(cls, exc, found)) from None


def settings_from_env(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Business settings from RETENTION_* variables in env (default os.environ); keyword
    overrides (command-line flags) win when not None."""
    return _from_env(Settings, env, overrides)


def serve_settings_from_env(env: Mapping[str, str] | None = None, **overrides) -> ServeSettings:
    """Serving settings from RETENTION_* variables in env (default os.environ); keyword
    overrides (command-line flags) win when not None."""
    return _from_env(ServeSettings, env, overrides)


def setting_from_env(cls: type[_Declared], name: str, env: Mapping[str, str] | None = None):
    """One setting alone, validated (gunicorn's logger needs the log format, the CLI the models
    directory): another variable's bad value is reported by whoever reads that one."""
    env = os.environ if env is None else env
    variable = variable_name(name)
    return getattr(_from_env(cls, {k: v for k, v in env.items() if k == variable}, {}), name)


def variable_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _one_line(cls: type[_Declared], exc: ValidationError, found: Mapping[str, Any]) -> str:
    """The first error as `RETENTION_X='raw': [reason; ]expected <allowed>`."""
    error = exc.errors()[0]
    if not error["loc"]:  # a rule across settings (a model validator): its message says all
        return error["msg"].removeprefix("Value error, ")
    name = str(error["loc"][0])
    field = cls.model_fields.get(name)
    if field is None:  # a keyword the class does not declare: a programming error
        return f"{name}: not a setting of {cls.__name__}"
    if name in found:
        what = f"{variable_name(name)}={masked(name, found[name])!r}"
    else:  # a command-line flag
        what = f"--{name.replace('_', '-')} {error['input']}"
    reason = error["msg"].removeprefix("Value error, ") if error["type"] == "value_error" else ""
    return f"{what}: {reason + '; ' if reason else ''}expected {allowed(field)}"


# -- describing ------------------------------------------------------------------------------


def _bounds(field: FieldInfo) -> dict[str, Any]:
    names = ("gt", "ge", "lt", "le", "min_length", "max_length")
    return {n: getattr(m, n) for m in field.metadata for n in names if hasattr(m, n)}


def _number_range(kind: str, b: Mapping[str, Any]) -> str:
    low, high = b.get("gt", b.get("ge")), b.get("lt", b.get("le"))
    if kind == "a whole number" and low is not None and high is not None:
        return f"{kind} {low}-{high:,}"
    if low is not None and high is not None:
        opening, closing = "(" if "gt" in b else "[", ")" if "lt" in b else "]"
        return f"{kind} in {opening}{low}, {high}{closing}"
    if low is not None:
        return f"{kind} {'>' if 'gt' in b else '>='} {low}"
    return kind


def allowed(field: FieldInfo) -> str:
    """What a field accepts, in words, from its declaration (error messages and the README)."""
    extra = field.json_schema_extra or {}
    kind = field.annotation
    bounds = _bounds(field)
    if extra.get("allowed"):
        return extra["allowed"]
    if kind is bool:
        return FLAG_WORDS
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(get_args(kind))
    if kind is int:
        return _number_range("a whole number", bounds)
    if kind is float:
        return _number_range("a number", bounds)
    if "max_length" in bounds:
        return f"{bounds.get('min_length', 0)}-{bounds['max_length']} characters, no spaces"
    return "text"


def default_text(field: FieldInfo) -> str:
    """A field's default as the README shows it (paths relative to the project)."""
    extra = field.json_schema_extra or {}
    if "default_text" in extra:
        return extra["default_text"]
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{int(value)}`"
    if isinstance(value, Path):
        return f"`{value.relative_to(PROJ_ROOT).as_posix()}`"
    return f"`{value}`"


def configuration_table() -> str:
    """The README's configuration table, generated from the declarations."""
    lines = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for cls in SETTINGS_CLASSES:
        for name, field in cls.model_fields.items():
            lines.append(
                f"| `{variable_name(name)}` | {default_text(field)} | {allowed(field)} "
                f"| {field.description} |"
            )
    return "\n".join(lines)


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """One warning line per RETENTION_* variable that no settings class declares (a typo is
    otherwise silently ignored and the default used), with the closest declared name."""
    env = os.environ if env is None else env
    known = [name.upper() for cls in SETTINGS_CLASSES for name in cls.model_fields]
    known += INPUT_VARIABLES
    lines = []
    for variable in sorted(k for k in env if k.upper().startswith(ENV_PREFIX)):
        name = variable.upper().removeprefix(ENV_PREFIX)
        if name in known:
            continue
        # Compared without the shared prefix, which would make every name look close.
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        lines.append(f"{variable} is not a setting and is ignored{hint}")
    return lines
