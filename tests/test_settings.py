"""Settings declared once (analytics.config): ranges, one-line errors, overrides, the README's
table generated from the declarations, and unknown RETENTION_* variables reported at start."""

from __future__ import annotations

import pytest

from analytics.config import (
    PROJ_ROOT,
    SETTINGS_CLASSES,
    ConfigError,
    ServeSettings,
    Settings,
    configuration_table,
    serve_settings_from_env,
    setting_from_env,
    settings_from_env,
    unknown_variables,
)


def test_every_setting_has_a_description_and_numbers_have_a_range():
    for cls in SETTINGS_CLASSES:
        for name, field in cls.model_fields.items():
            assert field.description, name
            if field.annotation in (int, float):
                assert any(hasattr(m, "ge") or hasattr(m, "gt") for m in field.metadata), name


def test_the_readme_configuration_table_is_the_declared_one():
    readme = (PROJ_ROOT / "README.md").read_text(encoding="utf-8")
    table = configuration_table()
    assert table in readme, (
        "README's configuration table differs from the settings declared in analytics/config.py;"
        " paste the output of: python -c 'from analytics.config import configuration_table as t;"
        " print(t())'"
    )
    for cls in SETTINGS_CLASSES:
        for name in cls.model_fields:
            assert f"| `RETENTION_{name.upper()}` |" in table


def test_the_given_mapping_is_read_not_the_process_environment(monkeypatch):
    monkeypatch.setenv("RETENTION_MARGIN", "0.5")
    monkeypatch.setenv("RETENTION_PORT", "9100")
    assert settings_from_env(env={}) == Settings()
    assert serve_settings_from_env(env={}).port == 8050
    assert settings_from_env().margin == 0.5
    assert Settings().margin == 1.0  # the class alone is the defaults


def test_flags_win_over_the_environment_and_absent_flags_do_not():
    env = {"RETENTION_WINDOW_MONTHS": "3", "RETENTION_SAVE_RATE": "0.3"}
    settings = settings_from_env(env=env, window_months=6, save_rate=None)
    assert (settings.window_months, settings.save_rate) == (6, 0.3)


def test_a_bad_flag_names_the_flag():
    with pytest.raises(ConfigError) as err:
        settings_from_env(env={}, window_months=30)
    assert str(err.value) == "--window-months 30: expected a whole number 1-24"
    with pytest.raises(ConfigError, match=r"^--port 0: expected a whole number 1-65,535$"):
        serve_settings_from_env(env={}, port=0)


@pytest.mark.parametrize("raw", ["$", "EUR", "kr", "CHF", " € "])
def test_currency_is_a_short_symbol_or_code(raw):
    assert settings_from_env(env={"RETENTION_CURRENCY": raw}).currency == raw.strip()


@pytest.mark.parametrize("raw", ["dollars", "US $"])
def test_a_long_or_spaced_currency_is_refused_in_one_line(raw):
    with pytest.raises(ConfigError) as err:
        settings_from_env(env={"RETENTION_CURRENCY": raw})
    assert str(err.value) == f"RETENTION_CURRENCY={raw!r}: expected 1-5 characters, no spaces"


def test_a_blank_variable_means_the_default():
    assert settings_from_env(env={"RETENTION_CURRENCY": "  ", "RETENTION_MARGIN": ""}) == Settings()


def test_one_setting_alone_ignores_another_bad_one():
    env = {"RETENTION_PORT": "http", "RETENTION_LOG_FORMAT": "JSON"}
    assert setting_from_env(ServeSettings, "log_format", env) == "json"
    with pytest.raises(ConfigError, match="RETENTION_PORT"):
        setting_from_env(ServeSettings, "port", env)


def test_unknown_variables_are_named_with_the_closest_declared_one():
    env = {
        "RETENTION_MARGN": "0.4",
        "RETENTION_LOGLEVEL": "DEBUG",
        "RETENTION_WINDOW": "3",
        "RETENTION_COLOUR": "blue",
        "RETENTION_PORT": "8050",  # declared (serving): never reported
        "RETENTION_CURRENCY": "EUR",  # declared (business)
        "PATH": "/usr/bin",  # not ours
    }
    assert unknown_variables(env) == [
        "RETENTION_COLOUR is not a setting and is ignored",
        "RETENTION_LOGLEVEL is not a setting and is ignored; did you mean RETENTION_LOG_LEVEL?",
        "RETENTION_MARGN is not a setting and is ignored; did you mean RETENTION_MARGIN?",
        "RETENTION_WINDOW is not a setting and is ignored; did you mean RETENTION_WINDOW_MONTHS?",
    ]


def test_a_clean_environment_has_no_unknown_variables():
    env = {f"RETENTION_{n.upper()}": "x" for cls in SETTINGS_CLASSES for n in cls.model_fields}
    assert unknown_variables(env) == []
