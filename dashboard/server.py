"""Serving start-up around the settings: the mapping file, warnings for unknown variables, the
effective configuration, settling after start-up and the workspace.

The settings themselves (ServeSettings, Settings) are declared and validated in
analytics.config; `python -m dashboard --check-config` prints them (`describe`).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Mapping

from analytics.config import (
    ConfigError,
    ServeSettings,
    Settings,
    masked,
    setting_from_env,
    unknown_variables,
    usable_cores,
    variable_name,
)
from analytics.ingest import read
from analytics.ingest.errors import DataError

# Flask config key the REST API reads its rows-per-request limit from.
BATCH_LIMIT_KEY = variable_name("batch_limit")


def column_mapping(config: ServeSettings) -> dict[str, str]:
    """The RETENTION_MAPPING file's {canonical: source column}, read and checked at start."""
    if config.mapping is None:
        return {}
    try:
        return read.load_mapping_file(config.mapping)
    except DataError as exc:
        raise ConfigError(f"{variable_name('mapping')}={str(config.mapping)!r}: {exc}") from None


def warn_unknown_variables(log: logging.Logger, env: Mapping[str, str] | None = None) -> None:
    """One WARNING line per RETENTION_* variable no setting declares (a typo, most likely)."""
    for line in unknown_variables(env):
        log.warning("%s", line)


def _source(name: str, model, env: Mapping[str, str]) -> str:
    if (env.get(variable_name(name)) or "").strip():
        if setting_from_env(type(model), name, env) == getattr(model, name):
            return "environment"
        return "command line"  # a flag won over the variable
    if name in model.model_fields_set:
        return "command line"
    if name == "workers":
        return f"default: {usable_cores()} usable core(s)"
    return "default"


def _shown(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return "none" if value is None else str(value)


def describe(config: ServeSettings, settings: Settings, env: Mapping[str, str] | None = None):
    """The effective configuration, one `VARIABLE = value  (source)` line per setting."""
    env = os.environ if env is None else env
    rows = [
        (variable_name(name), _shown(masked(name, getattr(model, name))), _source(name, model, env))
        for model in (config, settings)
        for name in type(model).model_fields
    ]
    width = max(len(variable) for variable, _, _ in rows)
    return [f"{variable:<{width}} = {value}  ({source})" for variable, value, source in rows]


def settle() -> None:
    """Call once the app is built, just before serving. What start-up loaded lives as long as
    the process, so it is moved out of the garbage collector's sight (gc.freeze): otherwise
    every full collection walks all of pandas, scikit-learn, plotly and Dash (0.1 s on a
    2-core machine, paid by whichever request triggers it). Under gunicorn's preload it also
    keeps the workers' collections from writing to, and so copying, the master's pages."""
    gc.collect()
    gc.freeze()
