"""benchmarks/model_quality.py and benchmarks/other_tables.py: the generated public schemas, the
references (LightGBM and CatBoost imported lazily), and a whole run on a small table."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from analytics.ingest import read
from benchmarks import model_quality, other_tables

ECOMMERCE_COLUMNS = [
    "CustomerID",
    "Churn",
    "Tenure",
    "PreferredLoginDevice",
    "CityTier",
    "WarehouseToHome",
    "PreferredPaymentMode",
    "Gender",
    "HourSpendOnApp",
    "NumberOfDeviceRegistered",
    "PreferedOrderCat",
    "SatisfactionScore",
    "MaritalStatus",
    "NumberOfAddress",
    "Complain",
    "OrderAmountHikeFromlastYear",
    "CouponUsed",
    "OrderCount",
    "DaySinceLastOrder",
    "CashbackAmount",
]
BLANK_IN_REAL_FILE = {
    "Tenure",
    "WarehouseToHome",
    "HourSpendOnApp",
    "OrderAmountHikeFromlastYear",
    "CouponUsed",
    "OrderCount",
    "DaySinceLastOrder",
}


def test_ecommerce_has_the_public_schema_its_blanks_and_a_learnable_signal():
    frame = other_tables.ecommerce()
    assert list(frame.columns) == ECOMMERCE_COLUMNS
    assert len(frame) == 5_630
    assert frame["CustomerID"].is_unique
    assert 0.15 < frame["Churn"].mean() < 0.20  # the real file: 16.8 %
    blanks = frame.isna().mean()
    assert set(blanks[blanks > 0].index) == BLANK_IN_REAL_FILE
    assert blanks[list(BLANK_IN_REAL_FILE)].between(0.03, 0.07).all()
    # Realistic, not trivially separable: the first months and a complaint tell, not perfectly.
    early = frame["Tenure"] <= 1
    assert frame.loc[early, "Churn"].mean() > 2 * frame.loc[~early, "Churn"].mean()
    assert roc_auc_score(frame["Churn"], frame["Complain"]) < 0.75
    pd.testing.assert_frame_equal(frame, other_tables.ecommerce())  # fixed seed


def test_bank_records_complain_equals_the_label_on_998_per_mille_and_the_rest_is_noise():
    frame = other_tables.bank_records()
    assert len(frame) == 10_000
    assert list(frame.columns[-4:]) == [
        "Complain",
        "Satisfaction Score",
        "Card Type",
        "Point Earned",
    ]
    assert (frame["Complain"] == frame["Exited"]).mean() == pytest.approx(0.998, abs=1e-12)
    for col in ("Satisfaction Score", "Point Earned"):
        assert abs(roc_auc_score(frame["Exited"], frame[col]) - 0.5) < 0.03
    assert set(frame["Card Type"]) == {"DIAMOND", "GOLD", "SILVER", "PLATINUM"}
    bank = other_tables.bank_style(10_000, 321)
    pd.testing.assert_frame_equal(frame[bank.columns], bank)  # the bank table's own signal


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    """1,200 e-commerce customers read as the product reads a user's file."""
    path = tmp_path_factory.mktemp("tables") / "ecommerce_small.csv"
    other_tables.ecommerce(n=1_200, seed=5).to_csv(path, index=False)
    return path, read.load_table(path)


def test_every_installed_reference_fits_the_products_features_with_blanks(small_table):
    _, table = small_table
    X, y = table.frame[list(table.features)], table.frame["churned"].to_numpy().astype(int)
    train, test = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
    pipelines = model_quality.reference_pipelines(table.numeric, table.categorical)
    missing = model_quality.missing_references()
    shown = {name for name, _ in model_quality.REFERENCES.values()}
    assert set(pipelines) | set(missing) == shown
    assert not set(pipelines) & set(missing)
    for name, pipeline in pipelines.items():
        fitted = clone(pipeline).fit(X[train], y[train])
        p = model_quality.probability.predict_proba(fitted, X[test])
        assert ((p >= 0) & (p <= 1)).all(), name
        assert roc_auc_score(y[test], p) > 0.65, name


def test_an_absent_library_is_named_not_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("lightgbm", "catboost") else real(name, *a),
    )
    missing = model_quality.missing_references()
    assert missing == {
        "LightGBM (default)": "not installed (pip install lightgbm)",
        "CatBoost (default)": "not installed (pip install catboost)",
    }
    names = model_quality.reference_pipelines(["a"], ["b"], keys=["hgb", "lightgbm", "catboost"])
    assert list(names) == ["HistGradientBoosting (default)"]


def test_a_run_on_any_file_prints_the_product_against_each_reference(small_table, capsys):
    path, _ = small_table
    code = model_quality.main(
        ["--no-builtin", "--data", str(path), "--references", "logistic", "hgb_tuned"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "**product: " in out
    assert "## Summary" in out
    assert "logistic regression (one-hot, scaled) |" in out
    assert "HistGradientBoosting tuned" in out
    assert "LightGBM" not in out
    assert "s per 10,000" in out


def test_a_file_without_a_label_fails_in_one_line(tmp_path, capsys):
    path = tmp_path / "nolabel.csv"
    other_tables.ecommerce(n=200).drop(columns=["Churn"]).to_csv(path, index=False)
    assert model_quality.main(["--no-builtin", "--data", str(path)]) == 1
    assert "**FAILED**" in capsys.readouterr().out
