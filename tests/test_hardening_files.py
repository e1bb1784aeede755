"""Hostile files through the CLI (issue 11, item 3): formula cells in what `score` writes,
oversized and nested tables, interrupted saves and read-only model directories."""

from __future__ import annotations

import csv
import gzip

import pandas as pd
import pytest

from analytics import cli, synthetic, workflow
from analytics import columns as C
from analytics.config import settings_from_env
from analytics.export import FORMULA_STARTS
from analytics.ingest import read


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A model trained on a small synthetic base (no dates: the base is every row)."""
    base = synthetic.generate(1500, seed=3).drop(columns=[C.SIGNUP_DATE, C.CHURN_DATE])
    folder = tmp_path_factory.mktemp("small")
    path = folder / "base.csv"
    base.to_csv(path, index=False)
    settings = settings_from_env(env={})
    trained = workflow.train(read.load_table(path), settings)
    models = folder / "models"
    workflow.save(trained, models)
    return base, models


def cells(path) -> list[str]:
    if path.name.endswith(".parquet"):
        frame = pd.read_parquet(path)
        return [str(c) for c in frame.columns] + [
            str(v) for col in frame.columns for v in frame[col].dropna()
        ]
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        return [cell for row in csv.reader(f) for cell in row]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_score_output_holds_no_formula_cell(small_model, tmp_path, suffix):
    base, models = small_model
    hostile = base.drop(columns=[C.CHURNED]).head(120).copy()
    # A bare carriage return inside a cell would start a new row in a spreadsheet.
    payloads = [f"{s}cmd|' /C calc'!A1" for s in FORMULA_STARTS] + ["\t=1+1", "x\r=2+2"]
    for i in range(len(hostile)):
        if i % 3 == 0:
            hostile.loc[hostile.index[i], C.CUSTOMER_ID] = f"{payloads[i % len(payloads)]}-{i}"
        if i % 3 == 1:
            hostile.loc[hostile.index[i], "contract"] = payloads[i % len(payloads)]
    data, out = tmp_path / "hostile.csv", tmp_path / f"scores{suffix}"
    hostile.to_csv(data, index=False, quoting=csv.QUOTE_ALL)
    code = cli.main(["score", "--data", str(data), "--out", str(out),
                     "--models-dir", str(models), "--quiet"])
    assert code == 0
    written = cells(out)
    assert len(written) > len(hostile) * 5
    assert [c for c in written if c.startswith(FORMULA_STARTS)] == []
    # Shown, not lost: the id is still there, behind the apostrophe.
    assert "'=cmd|' /C calc'!A1-0" in written
