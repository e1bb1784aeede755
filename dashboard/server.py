"""Serving configuration from the environment, validated once at start.

Every RETENTION_* variable is checked here (business settings in analytics.config.Settings);
a bad value is a ConfigError of one line naming the variable, the value and what is allowed.
`python -m dashboard --check-config` prints the effective configuration (`describe`).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from analytics import io
from analytics.config import DEMO_DATA, ENV_PREFIX, MODELS_DIR, ConfigError, Settings
from analytics.schema import DataError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
BATCH_LIMIT_RANGE = (1, 1_000_000)
WORKERS_RANGE = (1, 64)
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")

# Flask config key the REST API reads its rows-per-request limit from.
BATCH_LIMIT_KEY = ENV_PREFIX + "BATCH_LIMIT"


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


@dataclass(frozen=True)
class ServeConfig:
    data: Path = DEMO_DATA
    models_dir: Path = MODELS_DIR
    mapping: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8050
    log_level: str = "INFO"
    log_format: str = "text"
    batch_limit: int = 10_000
    workers: int = field(default_factory=default_workers)
    debug: bool = False
    retrain: bool = True  # a missing, corrupt or other-data model is retrained at start
    mapping_file: Path | None = None


def _env_reader(env: Mapping[str, str]) -> Callable[[str], str | None]:
    def get(name: str) -> str | None:
        raw = env.get(ENV_PREFIX + name)
        return raw.strip() if raw and raw.strip() else None

    return get


def _int_in(name: str, raw: str, low: int, high: int) -> int:
    text = raw.replace("_", "").replace(",", "")
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: expected a whole number {low}-{high:,}")
    return int(text)


def _choice(name: str, raw: str, allowed: tuple[str, ...], *, upper: bool) -> str:
    value = raw.upper() if upper else raw.lower()
    if value not in allowed:
        raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: expected one of {', '.join(allowed)}")
    return value


def _flag(name: str, raw: str) -> bool:
    value = raw.lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(f"{ENV_PREFIX}{name}={raw!r}: expected 1/true/yes/on or 0/false/no/off")


def _existing_file(name: str, raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise ConfigError(f"{name}={raw!r}: {what}; expected a CSV or Parquet customer table")
    return path


def _models_dir(name: str, raw: str) -> Path:
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name}={raw!r}: not a directory; expected a models directory")
    return path


def _host(raw: str) -> str:
    if any(c.isspace() for c in raw) or "/" in raw or len(raw) > 253:
        raise ConfigError(f"{ENV_PREFIX}HOST={raw!r}: expected an interface name or IP address")
    return raw


def batch_limit_from_env(env: Mapping[str, str] | None = None) -> int:
    """RETENTION_BATCH_LIMIT alone (the API's rows-per-request cap), validated."""
    raw = _env_reader(os.environ if env is None else env)("BATCH_LIMIT")
    return 10_000 if raw is None else _int_in("BATCH_LIMIT", raw, *BATCH_LIMIT_RANGE)


def log_format_from_env(env: Mapping[str, str] | None = None) -> str:
    """RETENTION_LOG_FORMAT alone (gunicorn's logger class reads it), validated."""
    raw = _env_reader(os.environ if env is None else env)("LOG_FORMAT")
    return "text" if raw is None else _choice("LOG_FORMAT", raw, LOG_FORMATS, upper=False)


def serve_config_from_env(env: Mapping[str, str] | None = None, **overrides) -> ServeConfig:
    """RETENTION_DATA, RETENTION_MAPPING (JSON file), RETENTION_MODELS_DIR, RETENTION_HOST,
    RETENTION_PORT, RETENTION_LOG_LEVEL, RETENTION_LOG_FORMAT, RETENTION_BATCH_LIMIT,
    RETENTION_WORKERS, RETENTION_DEBUG, RETENTION_RETRAIN; keyword overrides (command-line
    flags) win when not None."""
    env = os.environ if env is None else env
    get = _env_reader(env)
    var = ENV_PREFIX

    values: dict = {}
    if get("DATA"):
        values["data"] = _existing_file(var + "DATA", get("DATA"))
    if get("MODELS_DIR"):
        values["models_dir"] = _models_dir(var + "MODELS_DIR", get("MODELS_DIR"))
    if get("HOST"):
        values["host"] = _host(get("HOST"))
    if get("PORT"):
        values["port"] = _int_in("PORT", get("PORT"), 1, 65535)
    if get("MAPPING"):
        raw = get("MAPPING")
        try:
            values["mapping"] = io.load_mapping_file(Path(raw).expanduser())
        except DataError as exc:
            raise ConfigError(f"{var}MAPPING={raw!r}: {exc}") from None
        values["mapping_file"] = Path(raw).expanduser()
    if get("LOG_LEVEL"):
        values["log_level"] = _choice("LOG_LEVEL", get("LOG_LEVEL"), LOG_LEVELS, upper=True)
    values["log_format"] = log_format_from_env(env)
    values["batch_limit"] = batch_limit_from_env(env)
    if get("WORKERS"):
        values["workers"] = _int_in("WORKERS", get("WORKERS"), *WORKERS_RANGE)
    if get("DEBUG"):
        values["debug"] = _flag("DEBUG", get("DEBUG"))
    if get("RETRAIN"):
        values["retrain"] = _flag("RETRAIN", get("RETRAIN"))

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "models_dir" in overrides:
        overrides["models_dir"] = _models_dir("--models-dir", str(overrides["models_dir"]))
    if "port" in overrides and not 0 < int(overrides["port"]) < 65536:
        raise ConfigError(f"--port {overrides['port']}: expected a port number 1-65535")
    values.update(overrides)
    return ServeConfig(**values)


def describe(config: ServeConfig, settings: Settings, env: Mapping[str, str] | None = None):
    """The effective configuration, one `VARIABLE = value  (source)` line per setting."""
    env = os.environ if env is None else env
    get = _env_reader(env)
    rows = [
        ("DATA", config.data),
        ("MAPPING", config.mapping_file or ("{}" if not config.mapping else dict(config.mapping))),
        ("MODELS_DIR", config.models_dir),
        ("HOST", config.host),
        ("PORT", config.port),
        ("WORKERS", config.workers),
        ("LOG_LEVEL", config.log_level),
        ("LOG_FORMAT", config.log_format),
        ("BATCH_LIMIT", config.batch_limit),
        ("DEBUG", int(config.debug)),
        ("RETRAIN", int(config.retrain)),
        *((f.name.upper(), getattr(settings, f.name)) for f in fields(Settings)),
    ]
    width = max(len(ENV_PREFIX + name) for name, _ in rows)
    lines = []
    defaults = ServeConfig(workers=config.workers)
    for name, value in rows:
        attr = name.lower()
        if get(name):
            source = "environment"
        elif hasattr(defaults, attr) and getattr(defaults, attr) != getattr(config, attr):
            source = "command line"
        else:
            source = "default"
        if name == "WORKERS" and source == "default":
            source = f"default: {usable_cores()} usable core(s)"
        lines.append(f"{ENV_PREFIX + name:<{width}} = {value}  ({source})")
    return lines


def settle() -> None:
    """Call once the app is built, just before serving. What start-up loaded lives as long as
    the process, so it is moved out of the garbage collector's sight (gc.freeze): otherwise
    every full collection walks all of pandas, scikit-learn, plotly and Dash (0.1 s on a
    2-core machine, paid by whichever request triggers it). Under gunicorn's preload it also
    keeps the workers' collections from writing to, and so copying, the master's pages."""
    gc.collect()
    gc.freeze()


def load_workspace(
    config: ServeConfig, settings: Settings, log: logging.Logger, *, drop: tuple[str, ...] = ()
):
    """The table and its model for serving. A missing, corrupt or other-data model is one
    WARNING line and the documented automatic retrain; with RETENTION_RETRAIN=0 it is an
    ArtifactError saying so (the caller exits non-zero)."""
    from analytics.workflow import load_or_train

    def before_retrain(reason: str) -> None:
        if not config.retrain:
            raise io.ArtifactError(f"model: {reason}; not retraining because {ENV_PREFIX}RETRAIN=0")
        log.warning("model: %s; retraining on %s", reason, config.data)

    def progress(message: str) -> None:
        if not message.startswith("no usable model"):  # already said, by before_retrain
            log.info("%s", message)

    return load_or_train(
        config.data,
        settings,
        models_dir=config.models_dir,
        mapping=dict(config.mapping) or None,
        drop=drop,
        progress=progress,
        before_retrain=before_retrain,
    )
