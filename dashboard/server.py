"""Serving configuration from the environment, validated once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from analytics import io
from analytics.config import DEMO_DATA, ENV_PREFIX, MODELS_DIR, ConfigError


@dataclass(frozen=True)
class ServeConfig:
    data: Path = DEMO_DATA
    models_dir: Path = MODELS_DIR
    mapping: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8050


def serve_config_from_env(env: Mapping[str, str] | None = None, **overrides) -> ServeConfig:
    """RETENTION_DATA, RETENTION_MAPPING (JSON file), RETENTION_MODELS_DIR, RETENTION_HOST,
    RETENTION_PORT; keyword overrides (command-line flags) win when not None."""
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        raw = env.get(ENV_PREFIX + name)
        return raw.strip() if raw and raw.strip() else None

    values: dict = {}
    if get("DATA"):
        values["data"] = Path(get("DATA"))
    if get("MODELS_DIR"):
        values["models_dir"] = Path(get("MODELS_DIR"))
    if get("HOST"):
        values["host"] = get("HOST")
    if get("PORT"):
        raw = get("PORT")
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ConfigError(f"{ENV_PREFIX}PORT={raw!r}: expected a port number 1-65535")
        values["port"] = int(raw)
    if get("MAPPING"):
        values["mapping"] = io.load_mapping_file(Path(get("MAPPING")))
    values.update({k: v for k, v in overrides.items() if v is not None})
    port = values.get("port", 8050)
    if not 0 < int(port) < 65536:
        raise ConfigError(f"port {port}: expected 1-65535")
    return ServeConfig(**values)
