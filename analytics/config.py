"""Paths and settings. Paths live here only; settings come from the environment.

Every setting has a default from ../shared/METRICS.md and is validated once, at start, with a
message naming the variable, what was found and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJ_ROOT / "data"
MODELS_DIR = PROJ_ROOT / "models"
DEMO_DATA = DATA_DIR / "demo_customers.csv.gz"

ENV_PREFIX = "RETENTION_"


class ConfigError(ValueError):
    """A setting from the environment or the command line is invalid (one line)."""


@dataclass(frozen=True)
class Settings:
    """Business and runtime assumptions; each maps to RETENTION_<NAME> in the environment."""

    margin: float = 1.0  # gross margin m in CLV
    discount: float = 0.01  # monthly discount rate d in CLV
    save_rate: float = 0.25  # share of would-be churners an offer keeps (planner)
    cost_per_contact: float = 10.0  # planner
    window_months: int = 1  # observation window when the data has dates
    max_file_mb: float = 512.0  # refuse input files larger than this
    random_state: int = 42

    def __post_init__(self) -> None:
        _check_range("margin", self.margin, 0.0, 1.0, low_open=True)
        _check_range("discount", self.discount, 0.0, 1.0)
        _check_range("save_rate", self.save_rate, 0.0, 1.0)
        _check_range("cost_per_contact", self.cost_per_contact, 0.0, float("inf"))
        _check_range("window_months", self.window_months, 1, 24)
        _check_range("max_file_mb", self.max_file_mb, 0.0, float("inf"), low_open=True)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


def _check_range(name, value, low, high, *, low_open=False) -> None:
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={value}: must be in {bound}")


def models_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    """RETENTION_MODELS_DIR, else models/ in the project: the CLI and the server agree."""
    env = os.environ if env is None else env
    raw = (env.get(ENV_PREFIX + "MODELS_DIR") or "").strip()
    return Path(raw) if raw else MODELS_DIR


def settings_from_env(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Settings from RETENTION_* variables; keyword overrides (CLI flags) win."""
    env = os.environ if env is None else env
    values = {}
    for f in fields(Settings):
        var = ENV_PREFIX + f.name.upper()
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        kind = int if f.type in ("int", int) else float
        try:
            values[f.name] = kind(raw.strip())
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{var}={raw!r}: expected {expected}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
