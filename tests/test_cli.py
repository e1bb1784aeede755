"""The command line end to end, as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from analytics import columns as C
from analytics.config import PROJ_ROOT
from analytics.workflow import SCORE_COLUMNS


def run_cli(*args, cwd=PROJ_ROOT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analytics", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


@pytest.fixture(scope="module")
def small_base(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "base.csv"
    proc = run_cli("generate", "--customers", 6000, "--seed", 7, "--out", path)
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def trained(small_base, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    proc = run_cli("train", "--data", small_base, "--models-dir", models)
    assert proc.returncode == 0, proc.stderr
    return models, proc


def test_generate_is_deterministic(small_base, tmp_path):
    again = tmp_path / "again.csv"
    assert run_cli("generate", "--customers", 6000, "--seed", 7, "--out", again).returncode == 0
    assert again.read_bytes() == small_base.read_bytes()


def test_train_reports_candidates_winner_threshold_drivers_and_segments(trained):
    models, proc = trained
    out = proc.stdout
    for needle in (
        "Candidates",
        "<- chosen",
        "Threshold t =",
        "precision",
        "recall",
        "F1",
        "ROC-AUC",
        "top-decile lift",
        "Top drivers",
        "Segments",
    ):
        assert needle in out, needle
    # progress goes to stderr, step by step
    assert "cross-validating" in proc.stderr
    current = (models / "CURRENT").read_text().strip()
    meta = json.loads((models / current / "model.json").read_text())
    assert meta["chosen"] in {c["name"] for c in meta["candidates"]}
    assert 0 < meta["threshold"] < 1
    assert meta["metrics"]["roc_auc"] > 0.7


def test_evaluate_reprints_the_saved_report(trained):
    models, _ = trained
    ev = run_cli("evaluate", "--models-dir", models)
    assert ev.returncode == 0, ev.stderr
    assert "<- chosen" in ev.stdout
    assert "Model version" in ev.stdout


def test_a_model_signed_with_another_key_is_refused_in_one_line(trained, small_base, tmp_path):
    """A new RETENTION_SECRET_KEY (or models from another installation) means retraining."""
    models, _ = trained
    env = {**os.environ, "RETENTION_SECRET_KEY": "another-secret-key-" + "x" * 30}
    ev = run_cli("evaluate", "--models-dir", models, env=env)
    assert_one_line_error(ev, "is not signed by this installation", "RETENTION_SECRET_KEY")
    out = tmp_path / "scores.csv"
    sc = run_cli("score", "--data", small_base, "--out", out, "--models-dir", models, env=env)
    assert_one_line_error(sc, "is not signed by this installation", "python -m analytics train")
    assert not out.exists()


def test_the_report_prints_money_in_the_configured_currency(trained):
    models, proc = trained
    assert "total expected loss $" in proc.stdout
    env = {**os.environ, "RETENTION_CURRENCY": "EUR"}
    ev = run_cli("evaluate", "--models-dir", models, env=env)
    assert ev.returncode == 0, ev.stderr
    assert re.search(r"total expected loss [\d,]+ EUR\)", ev.stdout), ev.stdout


def test_score_writes_one_row_per_input_customer_with_every_column(trained, small_base, tmp_path):
    models, _ = trained
    # New customers: a subset with a shuffled column order, no label.
    raw = pd.read_csv(small_base).sample(500, random_state=1)
    raw = raw.drop(columns=[C.CHURNED])[list(reversed(raw.columns.drop(C.CHURNED)))]
    new = tmp_path / "new.csv"
    raw.to_csv(new, index=False)
    out = tmp_path / "scores.csv"
    proc = run_cli("score", "--data", new, "--out", out, "--models-dir", models)
    assert proc.returncode == 0, proc.stderr
    scores = pd.read_csv(out)
    assert len(scores) == 500
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert set(scores[C.CUSTOMER_ID]) == set(raw[C.CUSTOMER_ID])
    assert scores[C.P_CHURN].between(0, 1).all()
    assert set(scores[C.RISK_BAND]) <= {"Low", "Medium", "High"}
    assert scores["reason_1"].notna().any()


def test_score_without_a_model_is_one_clear_line(small_base, tmp_path):
    proc = run_cli(
        "score",
        "--data",
        small_base,
        "--out",
        tmp_path / "o.csv",
        "--models-dir",
        tmp_path / "none",
    )
    assert_one_line_error(proc, "train")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a"),
        (b"customer_id,churned,tenure_months\nA,1,3\nA,0,4\nB,0,5\n", "duplicate"),
        (b"customer_id,tenure_months\nA,3\nB,4\n", "churned"),
        (b"customer_id,churned,tenure_months\nA,yes,3\nB,no,4\nC,maybe,5\n", "maybe"),
        (b"customer_id,churned,tenure_months,monthly_revenue\nA,1,3,-5\nB,0,4,10\n", "negative"),
    ],
)
def test_bad_inputs_fail_with_one_line_and_non_zero_exit(tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    proc = run_cli("train", "--data", path, "--models-dir", tmp_path / "m")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_file_over_the_size_limit_is_refused(small_base, tmp_path):
    env = {**__import__("os").environ, "RETENTION_MAX_FILE_MB": "0.01"}
    proc = run_cli("train", "--data", small_base, "--models-dir", tmp_path / "m", env=env)
    assert_one_line_error(proc, "RETENTION_MAX_FILE_MB")


def test_invalid_setting_in_environment_names_the_variable(small_base, tmp_path):
    env = {**__import__("os").environ, "RETENTION_MARGIN": "lots"}
    proc = run_cli("train", "--data", small_base, "--models-dir", tmp_path / "m", env=env)
    assert_one_line_error(proc, "RETENTION_MARGIN")


def test_missing_file_is_one_line(tmp_path):
    proc = run_cli("train", "--data", tmp_path / "nope.csv", "--models-dir", tmp_path / "m")
    assert_one_line_error(proc, "nope.csv")


def test_mapping_to_an_absent_column_names_it(small_base, tmp_path):
    proc = run_cli(
        "train", "--data", small_base, "--map", "churned=Exited", "--models-dir", tmp_path / "m"
    )
    assert_one_line_error(proc, "Exited")


def test_bad_flag_values_are_usage_errors(tmp_path):
    proc = run_cli("generate", "--customers", "many", "--out", tmp_path / "x.csv")
    assert proc.returncode == 2
    assert "whole number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unrecognisable_schema_trains_with_an_explicit_mapping(small_base, tmp_path):
    """Another schema: renamed, unguessable columns, ';' delimiter, decimal commas, Yes/No."""
    df = pd.read_csv(small_base).drop(columns=["signup_date", "churn_date"])
    df = df.rename(
        columns={
            C.CUSTOMER_ID: "Kundennummer",
            C.CHURNED: "Gekuendigt",
            C.TENURE: "Laufzeit",
            C.MONTHLY_REVENUE: "Monatsbetrag",
        }
    )
    df["Gekuendigt"] = df["Gekuendigt"].map({1: "Yes", 0: "No"})
    path = tmp_path / "export.csv"
    df.to_csv(path, sep=";", decimal=",", index=False)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"customer_id": "Kundennummer", "churned": "Gekuendigt"}))
    proc = run_cli(
        "train",
        "--data",
        path,
        "--mapping-file",
        mapping,
        "--map",
        "tenure_months=Laufzeit",
        "--map",
        "monthly_revenue=Monatsbetrag",
        "--models-dir",
        tmp_path / "m",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert "<- chosen" in proc.stdout


@pytest.mark.slow
def test_train_on_the_telco_file_unchanged(telco_path, tmp_path):
    proc = run_cli("train", "--data", telco_path, "--models-dir", tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    current = (tmp_path / "m" / "CURRENT").read_text().strip()
    meta = json.loads((tmp_path / "m" / current / "model.json").read_text())
    assert meta["base_rows"] == 7043
    assert meta["churned"] == 1869
    assert meta["metrics"]["roc_auc"] >= 0.845
    assert meta["mapping"][C.CUSTOMER_ID] == "customerID"


def test_an_unknown_setting_is_one_warning_and_the_command_still_runs(tmp_path):
    env = {**__import__("os").environ, "RETENTION_SAVERATE": "0.3"}
    proc = run_cli("generate", "--customers", 500, "--out", tmp_path / "x.csv", env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: RETENTION_SAVERATE is not a setting and is ignored;"
        " did you mean RETENTION_SAVE_RATE?"
    ]


def test_a_models_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    env = {**__import__("os").environ, "RETENTION_MODELS_DIR": str(tmp_path / "a_file")}
    proc = run_cli("evaluate", env=env)
    assert_one_line_error(proc, "RETENTION_MODELS_DIR=", "not a directory")
