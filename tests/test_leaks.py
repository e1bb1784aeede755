"""Probable label leaks (METRICS.md, "Leaks"; analytics.leaks): a column that ranks churners on its
own (ROC-AUC >= 0.95, or equal to the label on >= 98% of rows) or is named as recorded after
leaving is left out of the model and named with its figure in the load and training reports,
unless the user keeps it (--keep, the mapping's "keep" entry, the admin's data page)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from analytics import cli, leaks, synthetic, workflow
from analytics import columns as C
from analytics.config import DEMO_DATA, ServeSettings, settings_from_env
from analytics.ingest import read
from analytics.ingest.errors import MappingError
from analytics.ingest.validate import validate
from analytics.store import accounts
from tests.support import TEST_SECRET, csrf_token, log_in, make_user


def bank(n: int = 2000, seed: int = 7) -> pd.DataFrame:
    """A bank table as text cells (as read_table gives a CSV): honest features, `Complain` equal
    to the label on 99.8% of rows, `days_since_cancel` filled for every churner and for 2% of
    the others (ROC-AUC about 0.99), and a `Churn Reason` filled for churners."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    products = rng.integers(1, 5, n)
    churned = (rng.random(n) < 1 / (1 + np.exp(-(-1.6 + 0.05 * (age - 45))))).astype(int)
    complain = churned.copy()
    flip = rng.choice(n, n // 500, replace=False)  # 0.2% of rows disagree
    complain[flip] = 1 - complain[flip]
    cancelled = (churned == 1) | (rng.random(n) < 0.02)
    days = np.where(cancelled, rng.integers(1, 90, n).astype(str), "")
    text = {
        "CustomerId": [f"B{i:05d}" for i in range(n)],
        "Tenure": rng.integers(0, 11, n).astype(str),
        "Age": age.astype(str),
        "Balance": rng.normal(60_000, 20_000, n).round(2).astype(str),
        "Geography": rng.choice(["France", "Spain", "Germany"], n),
        "NumOfProducts": products.astype(str),
        "Complain": complain.astype(str),
        "days_since_cancel": days,
        "Churn Reason": np.where(churned == 1, rng.choice(["Price", "Service"], n), ""),
        "Exited": churned.astype(str),
    }
    frame = pd.DataFrame(text).astype(object)
    return frame.where(frame != "", None)


def by_column(table) -> dict[str, leaks.Leak]:
    return {leak.column: leak for leak in table.leaks}


# -- the rule --------------------------------------------------------------------------------


def test_a_bank_tables_leaks_are_left_out_and_named_with_their_figures():
    table = validate(bank())
    found = by_column(table)
    assert set(found) == {"Complain", "days_since_cancel", "Churn Reason"}
    assert found["Complain"].rule == "equal"
    assert found["Complain"].line() == (
        "Complain: equals the label on 99.8% of rows; left out of the model "
        "(keep it with --keep Complain)"
    )
    auc = found["days_since_cancel"]
    assert auc.rule == "auc"
    assert 0.98 <= auc.figure < 1.0
    assert re.fullmatch(r"on its own it ranks churners with ROC-AUC 0\.9\d\d", auc.why)
    assert found["Churn Reason"].rule == "name"
    assert "--keep 'Churn Reason'" in found["Churn Reason"].line()
    assert not any(leak.kept for leak in table.leaks)
    # Left out everywhere: not a feature, not in the frame, listed with why.
    for column in found:
        assert column not in table.features
        assert column not in table.frame.columns
        assert table.dropped[column].startswith("probable label leak: ")
    assert set(table.features) == {"tenure_months", "Age", "Balance", "Geography", "NumOfProducts"}
    lines = workflow.describe_table(table)
    assert f"probable label leak — {found['Complain'].line()}" in lines
    assert not any(line.startswith("not used: Complain") for line in lines)


def test_a_kept_leak_stays_a_feature_from_the_mapping_a_mapping_file_and_the_cli(tmp_path):
    table = validate(bank(), {"keep": ["complain"]})  # names match as --drop's do
    assert table.keep == ("Complain",)
    found = by_column(table)
    assert found["Complain"].kept
    assert not found["days_since_cancel"].kept
    assert found["Complain"].line() == (
        "Complain: equals the label on 99.8% of rows; kept in the model as the user asked (--keep)"
    )
    assert "Complain" in table.numeric
    assert "Complain" not in table.dropped
    # A kept name leak is judged by its figures too, and named as kept.
    named = by_column(validate(bank(), {"keep": "Churn Reason"}))["Churn Reason"]
    assert (named.kept, named.rule) == (True, "auc")  # its levels give churners away too

    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"churned": "Exited", "keep": ["Complain", "Churn Reason"]}))
    mapping = read.load_mapping_file(path)
    assert mapping == {"churned": "Exited", "keep": ["Churn Reason", "Complain"]}
    assert set(validate(bank(), mapping).keep) == {"Complain", "Churn Reason"}
    args = cli.build_parser().parse_args(
        [
            "train",
            "--mapping-file",
            str(path),
            "--keep",
            "days_since_cancel",
            "--map",
            "tenure_months=Tenure",
        ]
    )
    assert cli._mapping(args) == {
        "churned": "Exited",
        "tenure_months": "Tenure",
        "keep": ["Churn Reason", "Complain", "days_since_cancel"],
    }


def test_a_keep_naming_no_column_or_a_dropped_one_is_refused_in_one_line(tmp_path):
    with pytest.raises(MappingError, match=r"--keep Complian: .*did you mean 'Complain'"):
        validate(bank(), {"keep": ["Complian"]})
    with pytest.raises(MappingError, match=r"'Complain' is both kept .* and dropped"):
        validate(bank(), {"keep": ["Complain"]}, drop=["Complain"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"churned": "Exited", "keep": [3]}))
    with pytest.raises(MappingError, match=r"keep entry must be a column name or a list"):
        read.load_mapping_file(path)


def test_figures_are_honest_for_many_levels_rare_flags_and_tiny_tables():
    rng = np.random.default_rng(3)
    n = 4000
    y = (rng.random(n) < 0.2).astype(int)
    # 1,900 levels of about 2 rows each (not id-like to the loader): in-sample churn rates rank
    # most rows right, out of fold nobody.
    codes = rng.integers(0, 1900, n)
    levels = pd.Series(pd.Categorical.from_codes(codes, categories=[f"L{i}" for i in range(1900)]))
    rate = np.bincount(codes, weights=y, minlength=1900) / np.maximum(
        np.bincount(codes, minlength=1900), 1
    )
    assert leaks.numeric_auc(rate[codes], y) > 0.9  # memorised
    assert leaks.categorical_auc(codes, y, np.random.default_rng(0)) < 0.6  # out of fold
    # A rare flag equals a rare label on most rows without saying anything about it.
    y_rare = (rng.random(n) < 0.015).astype(int)
    flag = (rng.random(n) < 0.005).astype(float)
    assert leaks.agreement(flag.astype(int), y_rare) >= 0.98
    found, _ = leaks.find({"levels": levels, "flag": flag}, y_rare)
    assert found == []
    assert leaks.find({"levels": levels}, y)[0] == []
    # Blank cells that mark the churners are a leak, wherever they rank.
    marked = np.where(y == 1, np.nan, rng.normal(size=n))
    assert leaks.numeric_auc(marked, y) == 1.0
    # With fewer than 20 churners nothing is judged by its figures (chance alone reaches 0.95).
    few = np.zeros(60, dtype=int)
    few[:10] = 1
    assert leaks.find({"copy": few.astype(float)}, few) == ([], [])


def test_a_big_base_is_judged_on_a_stratified_sample_and_says_so():
    rng = np.random.default_rng(5)
    n = leaks.SAMPLE_ROWS + 50_000
    y = (rng.random(n) < 0.1).astype(int)
    leak = np.where(y == 1, rng.normal(3, 1, n), rng.normal(0, 0.3, n))
    found, notes = leaks.find({"leak": leak, "noise": rng.normal(size=n)}, y)
    assert [f.column for f in found] == ["leak"]
    assert notes == [
        f"leak check: each column's ROC-AUC measured on a stratified sample of "
        f"{leaks.SAMPLE_ROWS:,} of {n:,} rows"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "Churn Reason",
        "churn_category",
        "Churn Score",
        "Attrition_Flag",
        "Cancellation Reason",
        "exit_date",
        "TerminationDate",
        "DateofTermination",
        "TermReason",
        "leave_reason",
        "reason_for_leaving",
        "lost_reason",
        "Exited",  # a second label
        "cancelled",
    ],
)
def test_names_recorded_after_leaving(name):
    assert leaks.name_says_leaving(name)


@pytest.mark.parametrize(
    "name",
    [
        "Complain",
        "days_since_cancel",  # judged by its figures, not its name
        "num_cancelled_orders",
        "Satisfaction Score",
        "status",  # a generic label name: its figures decide
        "annual_leave_days",
        "Contract",
        "YearsAtCompany",
        "last_login_date",
    ],
)
def test_names_that_say_nothing_of_leaving(name):
    assert not leaks.name_says_leaving(name)


def test_the_demo_flags_nothing():
    assert read.load_table(DEMO_DATA).leaks == ()


def test_the_telco_table_flags_nothing(telco_path):
    telco = read.load_table(telco_path)
    assert telco.leaks == ()
    assert len(telco.features) == 19


# -- training --------------------------------------------------------------------------------


def test_a_leak_of_the_windows_label_is_found_on_the_dated_base():
    """With dates the label is the window's: a column that marks who left in the last month is
    no leak of the file's every-churn label the loader sees, but is one on the base."""
    frame = synthetic.generate(3000, seed=4, as_of="2026-10-31")
    settings = settings_from_env(env={})
    churn = pd.to_datetime(frame[C.CHURN_DATE])
    frame["billing_hold"] = (churn > pd.Timestamp("2026-09-30")).astype(int)
    table = validate(frame.astype(str).where(frame.notna(), None))
    assert "billing_hold" in table.features
    assert table.leaks == ()
    base, _ = workflow.prepare_base(table, settings)
    found = workflow.base_leaks(table, base.reset_index(drop=True))
    assert [(f.column, f.rule) for f in found] == [("billing_hold", "equal")]
    features = workflow.model_features(table, found)[0]
    assert "billing_hold" not in features
    assert C.TOTAL_REVENUE not in features
    kept = validate(frame.astype(str).where(frame.notna(), None), {"keep": ["billing_hold"]})
    again = workflow.base_leaks(kept, base.reset_index(drop=True))
    assert [f.kept for f in again] == [True]
    assert "billing_hold" in workflow.model_features(kept, again)[0]


def test_train_names_the_leaks_in_its_report_and_score_reads_a_kept_one(tmp_path, capsys):
    data = tmp_path / "bank.csv"
    bank(600).to_csv(data, index=False)
    models = tmp_path / "models"
    code = cli.main(
        ["train", "--data", str(data), "--models-dir", str(models), "--keep", "Complain"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "probable label leak — days_since_cancel: on its own it ranks churners" in err
    assert "probable label leak — Complain: equals the label on 99.8% of rows; kept" in err
    assert "\nProbable label leaks:\n" in out
    assert "  - Complain: equals the label on 99.8% of rows; kept in the model" in out
    assert (
        "  - Churn Reason: its name says it is recorded when or after a customer leaves; left "
        "out of the model (keep it with --keep 'Churn Reason')"
    ) in out
    meta = json.loads(next(models.rglob("model.json")).read_text())
    assert "Complain" in meta["features"]
    assert "days_since_cancel" not in meta["features"]
    assert {leak["column"]: leak["kept"] for leak in meta["leaks"]} == {
        "Complain": True,
        "days_since_cancel": False,
        "Churn Reason": False,
    }
    # Scoring the table again needs no --keep: the model's kept leak is read for it.
    code = cli.main(
        [
            "score",
            "--data",
            str(data),
            "--models-dir",
            str(models),
            "--out",
            str(tmp_path / "s.csv"),
        ]
    )
    assert code == 0, capsys.readouterr().err


# -- the admin's data page -------------------------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """A server on the bank table, no model yet (its training job is queued, never run here)."""
    from dashboard import live

    data = tmp_path / "bank.csv"
    bank(600).to_csv(data, index=False)
    config = ServeSettings(
        data=data, state_dir=tmp_path / "state", models_dir=tmp_path / "models",
        secret_key=TEST_SECRET,
    )  # fmt: skip
    return live.start(config, settings_from_env(env={}))


def test_the_admin_ticks_a_leak_to_keep_it_audited_and_role_checked(served):
    engine = served.ctx.engine
    dataset = served.ctx.configured
    assert {leak["column"] for leak in dataset.report["leaks"]} == {
        "Complain",
        "days_since_cancel",
        "Churn Reason",
    }
    admin = served.app.test_client()
    log_in(admin, make_user(served.app, "admin"))
    page = admin.get(f"/admin/data/datasets/{dataset.id}").get_data(as_text=True)
    assert 'name="keep" value="Complain"' in page
    assert "equals the label on 99.8% of rows; left out of the model" in page

    form = {"csrf_token": csrf_token(page), "map-churned": "Exited", "keep": ["Complain", "Age"]}
    answer = admin.post(f"/admin/data/datasets/{dataset.id}/mapping", data=form)
    assert answer.status_code == 302
    new_id = answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert new_id != dataset.id
    from analytics.store import lifecycle

    info = lifecycle.dataset(engine, new_id)
    assert info.mapping == {"churned": "Exited", "keep": ["Complain"]}  # "Age" was no leak shown
    kept = {leak["column"]: leak["kept"] for leak in info.report["leaks"]}
    assert kept == {"Complain": True, "days_since_cancel": False, "Churn Reason": False}
    assert "Complain" in info.report["features"]
    event = accounts.events(engine, actions=["dataset.add"])[0]
    assert (event["target"], event["details"]["keep"]) == (new_id[:12], ["Complain"])
    page = admin.get(f"/admin/data/datasets/{new_id}").get_data(as_text=True)
    assert re.search(r'value="Complain" id="keep-\d+" checked', page)
    # The dataset keeps it on every reload (a training job, a refresh, a promotion's snapshot).
    from analytics import datasets

    assert (
        "Complain"
        in datasets.open_table(info, served.ctx.config.state_dir, served.ctx.settings).features
    )

    # Unticking makes a dataset without it; an analyst cannot change the mapping at all.
    form = {"csrf_token": csrf_token(page), "map-churned": "Exited"}
    answer = admin.post(f"/admin/data/datasets/{new_id}/mapping", data=form)
    back = lifecycle.dataset(engine, answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert back.mapping == {"churned": "Exited"}
    analyst = served.app.test_client()
    log_in(analyst, make_user(served.app, "analyst"))
    refused = analyst.post(
        f"/admin/data/datasets/{dataset.id}/mapping", data={"keep": ["Complain"]}
    )
    assert refused.status_code == 403
