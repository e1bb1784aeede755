"""Hostile files through the CLI (issue 11, item 3): formula cells in what `score` writes,
oversized and nested tables, interrupted saves and read-only model directories."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from analytics import cli, synthetic, workflow
from analytics import columns as C
from analytics.config import PROJ_ROOT, settings_from_env
from analytics.export import FORMULA_STARTS
from analytics.ingest import read
from analytics.ingest.errors import TableTooLargeError
from analytics.model import explain, fastscore
from analytics.model.features import ONEHOT_MAX_WIDTH, build_preprocessor
from analytics.store import artifacts


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
    workflow.save(trained, models, key=artifacts.installation_key())  # what cli.main checks
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
    code = cli.main(
        ["score", "--data", str(data), "--out", str(out), "--models-dir", str(models), "--quiet"]
    )
    assert code == 0
    written = cells(out)
    assert len(written) > len(hostile) * 5
    assert [c for c in written if c.startswith(FORMULA_STARTS)] == []
    # Shown, not lost: the id is still there, behind the apostrophe.
    assert "'=cmd|' /C calc'!A1-0" in written


# -- limits on rows and columns ---------------------------------------------------------------


def tiny_rows_gzip(path, rows: int) -> None:
    block = "".join(f"C{i:07d},{i % 2},{i % 72}\n" for i in range(10_000))
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("customer_id,churned,tenure_months\n")
        for _ in range(rows // 10_000):
            f.write(block)


def test_a_gzip_of_too_many_rows_is_stopped_while_streaming(tmp_path):
    path = tmp_path / "tiny.csv.gz"
    tiny_rows_gzip(path, 2_000_000)
    # Cut off its end: reading it whole would fail there; the row limit must stop it first.
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 9 // 10])
    with pytest.raises(TableTooLargeError) as err:
        read.read_table(path, max_rows=5_000)
    message = str(err.value)
    assert message.startswith("tiny.csv.gz has more than ")
    assert "lines, over the 5,000-row limit; raise it with RETENTION_MAX_ROWS" in message
    found = int(message.split("more than ")[1].split(" lines")[0].replace(",", ""))
    assert 5_000 < found < 200_000  # stopped within a chunk or so of the limit


def test_rows_over_the_limit_are_counted_exactly_once_parsed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "customer_id,churned,tenure_months\n" + "".join(f"c{i},{i % 2},{i}\n" for i in range(50)),
        encoding="utf-8",
    )
    assert len(read.read_table(path, max_rows=50)) == 50
    with pytest.raises(
        TableTooLargeError,
        match=r"^t\.csv has 50 rows, over the 49-row limit; "
        "raise it with RETENTION_MAX_ROWS if the file is right$",
    ):
        read.read_table(path, max_rows=49)


def wide_frame(rows: int, columns: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {f"x{j}": [float(i * j % 7) for i in range(rows)] for j in range(columns - 3)}
    )
    frame.insert(0, "tenure_months", [i % 40 for i in range(rows)])
    frame.insert(0, "churned", [i % 2 for i in range(rows)])
    frame.insert(0, "customer_id", [f"c{i}" for i in range(rows)])
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_too_many_columns_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys, suffix):
    path = tmp_path / f"wide{suffix}"
    frame = wide_frame(30, 25)
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    monkeypatch.setenv("RETENTION_MAX_COLUMNS", "24")
    code = cli.main(["train", "--data", str(path), "--models-dir", str(tmp_path / "m")])
    assert code == cli.EXIT_ERROR
    assert one_error_line(capsys) == (
        f"error: wide{suffix} has 25 columns, over the 24-column limit; raise it with "
        "RETENTION_MAX_COLUMNS if the file is right"
    )
    assert not list(tmp_path.glob("m/*"))  # no model saved


def test_parquet_rows_are_checked_from_its_footer(tmp_path):
    path = tmp_path / "long.parquet"
    wide_frame(300, 5).to_parquet(path)
    with pytest.raises(TableTooLargeError, match="has 300 rows, over the 299-row limit"):
        read.read_table(path, max_rows=299)


def test_the_limits_are_settings_with_defaults_far_above_a_million_customers():
    settings = settings_from_env(env={})
    assert settings.max_rows >= 5_000_000
    assert settings_from_env(env={"RETENTION_MAX_ROWS": "2000"}).max_rows == 2000
    assert settings_from_env(env={"RETENTION_MAX_COLUMNS": "30"}).max_columns == 30


# -- nested Parquet columns -------------------------------------------------------------------


def nested_parquet(path, *, usable: bool = True) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 400
    columns = {}
    if usable:
        columns = {
            "customer_id": pa.array([f"c{i}" for i in range(n)]),
            "churned": pa.array([int(i % 3 == 0) for i in range(n)]),
            "tenure_months": pa.array([i % 50 for i in range(n)]),
            "plan": pa.array([["Basic", "Plus"][i % 2] for i in range(n)]),
        }
    columns["visits"] = pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int64()))
    columns["address"] = pa.array([{"city": "X", "zip": i} for i in range(n)])
    columns["tags"] = pa.array([[("a", i)] for i in range(n)], pa.map_(pa.string(), pa.int64()))
    pq.write_table(pa.table(columns), path)


def test_nested_parquet_columns_are_left_out_with_a_note(tmp_path):
    path = tmp_path / "nested.parquet"
    nested_parquet(path)
    table = read.load_table(path)
    assert set(table.dropped) == {"visits", "address", "tags"}
    assert table.dropped["visits"] == (
        "a list<element: int64> column: nested values, not one value per customer"
    )
    assert "visits" not in table.frame.columns
    assert table.features == (C.TENURE, "plan")
    # --drop of a column the reader already left out is not an error
    assert read.load_table(path, drop=["visits"]).dropped == table.dropped


def test_a_nested_parquet_file_trains_through_the_cli(tmp_path, capsys):
    path = tmp_path / "nested.parquet"
    nested_parquet(path)
    code = cli.main(["train", "--data", str(path), "--models-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert "not used: tags (a map<string, int64> column: nested values" in err
    assert (tmp_path / "m" / "CURRENT").is_file()


def test_a_parquet_file_of_nested_columns_only_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "only.parquet"
    nested_parquet(path, usable=False)
    code = cli.main(["train", "--data", str(path), "--models-dir", str(tmp_path / "m")])
    assert code == cli.EXIT_ERROR
    assert one_error_line(capsys) == (
        "error: only.parquet has no usable column: visits, address, tags hold nested values "
        "(lists, structs or maps), not one value per customer"
    )


# -- memory that grows with rows x columns ----------------------------------------------------


def wide_numbers(rows: int, columns: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"x{j}" for j in range(columns)])
    y = (X["x0"] + rng.normal(size=rows) > 0).astype(int).to_numpy()
    return X, y


@pytest.fixture
def cells_seen(monkeypatch):
    """Cells (rows x columns) of every frame the pipeline is asked to score, within a budget of
    2,400 cells."""
    monkeypatch.setattr(fastscore, "CHUNK_CELLS", 2_400)
    seen: list[int] = []
    original = explain.predict_proba

    def recording(pipeline, X):
        seen.append(X.shape[0] * X.shape[1])
        return original(pipeline, X)

    monkeypatch.setattr(explain, "predict_proba", recording)
    return seen


def test_permutation_importance_scores_a_wide_table_a_few_cells_at_a_time(cells_seen):
    X, y = wide_numbers(40, 30)
    model = LogisticRegression().fit(X, y)
    drop = explain.permutation_drop(model, X, y, n_repeats=3, random_state=0)
    assert drop.shape == (30, 3)
    assert len(cells_seen) > 10
    assert max(cells_seen) <= 2_400


def test_drivers_of_a_wide_table_are_computed_a_few_cells_at_a_time(cells_seen):
    X, y = wide_numbers(40, 30)
    model = LogisticRegression().fit(X, y)
    typical = {c: float(X[c].median()) for c in X.columns}
    _, deltas = explain.probability_and_deltas(model, X, typical)
    assert deltas.shape == (40, 30)
    assert max(cells_seen) <= 2_400
    # the same numbers as one row at a time
    one = explain.probability_and_deltas(model, X.iloc[[7]], typical)[1]
    np.testing.assert_allclose(deltas.iloc[[7]].to_numpy(), one.to_numpy(), atol=1e-12)


def test_fast_drivers_stack_a_few_cells_at_a_time(monkeypatch):
    monkeypatch.setattr(fastscore, "CHUNK_CELLS", 2_400)
    X, y = wide_numbers(40, 30)
    model = LogisticRegression().fit(X.to_numpy(), y)
    seen: list[int] = []

    def proba(R):
        seen.append(R.size)
        return model.predict_proba(R)[:, 1]

    scorer = fastscore.FastScorer(list(X.columns), {}, proba)
    typical = {c: float(X[c].median()) for c in X.columns}
    p, deltas = scorer.probability_and_deltas(X.to_numpy(), typical)
    assert deltas.shape == (40, 30)
    assert len(seen) > 1
    assert max(seen) <= 2_400
    np.testing.assert_allclose(p, model.predict_proba(X.to_numpy())[:, 1])


def test_one_hot_width_stays_within_its_budget_however_many_categorical_columns():
    rng = np.random.default_rng(1)
    columns = [f"c{j}" for j in range(150)]
    X = pd.DataFrame({c: pd.Categorical(rng.integers(0, 30, 900).astype(str)) for c in columns})
    pre = build_preprocessor("linear", [], columns).fit(X)
    assert 150 <= pre.transform(X).shape[1] <= ONEHOT_MAX_WIDTH == 2_000


def test_categorical_encoders_are_tabulated_a_group_of_columns_at_a_time(monkeypatch):
    monkeypatch.setattr(fastscore, "CHUNK_CELLS", 3_000)
    rng = np.random.default_rng(2)
    columns = [f"c{j}" for j in range(40)]
    levels = {c: [str(v) for v in range(12)] for c in columns}
    X = pd.DataFrame(
        {
            c: pd.Categorical(rng.integers(0, 12, 500).astype(str), categories=levels[c])
            for c in columns
        }
    )
    encoder = build_preprocessor("linear", [], columns).fit(X).named_transformers_["cat"]
    width = encoder.transform(X).shape[1]
    seen: list[tuple[int, int]] = []

    class Recording:
        def transform(self, frame):
            seen.append(frame.shape)
            return encoder.transform(frame)

    transform, _ = fastscore._tabulated(Recording(), columns, levels, width)
    assert len(seen) > 2
    assert max(r * c for r, c in seen) <= 3_000
    codes = np.array(
        [
            [levels[c].index(v) for c, v in zip(columns, row, strict=True)]
            for row in X.astype(str).itertuples(index=False)
        ],
        dtype="float64",
    )
    np.testing.assert_array_equal(transform(codes), encoder.transform(X))


# -- the models directory ---------------------------------------------------------------------

SLOW_SAVE = """
import sys, time
from analytics.store import artifacts

class Slow:  # pickled after the bytes before it: the save hangs with a partial pipeline file
    def __reduce__(self):
        time.sleep(120)
        return (int, (0,))

artifacts.save_model_version(
    sys.argv[1], "v1", {"weights": b"x" * 1_000_000, "slow": Slow()}, {"data_hash": "x"}, {},
    key=b"k" * 32,
)
"""


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


def wait_for(condition, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_killed_save_is_removed_at_the_next_start_but_not_while_it_runs(tmp_path, capsys):
    models = tmp_path / "models"
    saving = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(models)], cwd=PROJ_ROOT)
    try:
        partial = wait_for(
            lambda: [p for p in models.glob(".tmp-v1-*") if (p / "pipeline.joblib").is_file()]
        )[0]
        age(partial, 3600)
        # Old, but a live process is writing it (two workers starting while one saves).
        assert artifacts.remove_stale_temp(models) == []
    finally:
        saving.kill()
        saving.wait()
    assert partial.is_dir()
    fresh = models / ".tmp-v2-0123abcd"  # unlocked but just made: maybe a save about to lock
    fresh.mkdir()
    other = models / ".tmp-somebody-else"  # not a name this code makes
    other.mkdir()
    age(other, 3600)
    cli.main(["evaluate", "--models-dir", str(models)])
    assert "no trained model" in capsys.readouterr().err
    assert not partial.exists()
    assert fresh.is_dir()
    assert other.is_dir()


def test_two_processes_cleaning_at_once_each_remove_a_leftover_once(tmp_path):
    for i in range(30):
        folder = tmp_path / f".tmp-v{i}-{i:08x}"
        folder.mkdir()
        (folder / "pipeline.joblib").write_bytes(b"partial")
        age(folder, 3600)
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: artifacts.remove_stale_temp(tmp_path), range(4)))
    removed = [name for run in runs for name in run]
    assert sorted(removed) == sorted(f".tmp-v{i}-{i:08x}" for i in range(30))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory this process cannot write to, even as root (where chmod is not enough)."""
    folder = tmp_path / "models"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if os.access(folder, os.W_OK):  # root
        chattr = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        immutable = chattr.returncode == 0
        if not immutable:
            pytest.skip("cannot make a directory read-only here (root without chattr)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_a_read_only_models_directory_is_refused_before_training(
    small_model, read_only_dir, tmp_path, capsys
):
    base, _ = small_model
    data = tmp_path / "base.csv"
    base.to_csv(data, index=False)
    code = cli.main(["train", "--data", str(data), "--models-dir", str(read_only_dir)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR
    assert "reading" not in err  # nothing read, nothing trained
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: the models directory {read_only_dir} is not writable "
        f"({'Operation not permitted' if os.geteuid() == 0 else 'Permission denied'}): "
        "make it writable or choose another with --models-dir or RETENTION_MODELS_DIR"
    ]
