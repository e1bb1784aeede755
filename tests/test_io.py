"""ingest.read and store.artifacts: reading real and messy files, refusing bad ones, atomic
writes, model versions."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from analytics import columns as C
from analytics.ingest import read
from analytics.ingest.errors import (
    DataError,
    DuplicateIdError,
    EmptyTableError,
    EncodingError,
    FileTooLargeError,
    MappingError,
    NotATableError,
)
from analytics.ingest.mapping import parse_mapping_pairs
from analytics.ingest.validate import Table
from analytics.store import artifacts
from analytics.store.artifacts import ArtifactError

HEADER = [
    "customerID",
    "gender",
    "SeniorCitizen",
    "tenure",
    "Contract",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
]
ROWS = [
    ["7590-VHVEG", "Female", "0", "1", "Month-to-month", "29.85", "29.85", "No"],
    ["5575-GNVDE", "Male", "0", "34", "One year", "56.95", "1889.5", "No"],
    ["3668-QPYBK", "Male", "0", "2", "Month-to-month", "53.85", "108.15", "Yes"],
    ["7795-CFOCW", "Male", "0", "45", "One year", "42.3", "1840.75", "No"],
    ["9237-HQITU", "Female", "0", "2", "Month-to-month", "70.7", "151.65", "Yes"],
    ["4472-LVYGI", "Female", "0", "0", "Two year", "52.55", " ", "No"],
    ["9305-CDSKC", "", "1", "8", "Month-to-month", "99.65", "820.5", "Yes"],
    ["1452-KIOVK", "Male", "0", "22", "Month-to-month", "89.1", "1949.4", "No"],
    ["6713-OKOMC", "Female", "1", "10", "Month-to-month", "29.75", "301.9", "No"],
    ["7892-POOKP", "Female", "0", "28", "Month-to-month", "104.8", "3046.05", "Yes"],
]
NUMERIC = {"tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"}


def csv_text(rows=ROWS, header=HEADER, sep=",", newline="\n") -> str:
    return newline.join(sep.join(r) for r in [header, *rows]) + newline


def write(tmp_path, name: str, content: str | bytes) -> object:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.fixture
def clean(tmp_path) -> Table:
    return read.load_table(write(tmp_path, "clean.csv", csv_text()))


def relabel(rows, yes: str, no: str):
    return [[*r[:-1], yes if r[-1] == "Yes" else no] for r in rows]


def european(rows):
    """';' files from decimal-comma locales: 1.889,5 and 29,85."""

    def cell(column, value):
        if column not in NUMERIC or not value.strip():
            return value
        whole, _, frac = value.partition(".")
        whole = f"{int(whole):,}".replace(",", ".")
        return whole + ("," + frac if frac else "")

    return [[cell(c, v) for c, v in zip(HEADER, r, strict=True)] for r in rows]


def with_missing_tokens(rows):
    tokens = iter(["?", "N/A", "null", "-", "NA"])
    return [[next(tokens) if v.strip() == "" else v for v in r] for r in rows]


MESSY = {
    "bom_crlf.csv": ("\ufeff" + csv_text(newline="\r\n")).encode("utf-8"),
    "semicolon.csv": csv_text(european(ROWS), sep=";").encode("utf-8"),
    "excel_sep.csv": ("sep=;\r\n" + csv_text(european(ROWS), sep=";", newline="\r\n")).encode(),
    "tabs.tsv": csv_text(sep="\t").encode("utf-8"),
    "pipes.txt": csv_text(sep="|").encode("utf-8"),
    "quoted.csv": csv_text([[f'"{v}"' for v in r] for r in ROWS]).encode("utf-8"),
    "tokens.csv": csv_text(with_missing_tokens(ROWS)).encode("utf-8"),
    "blank_lines.csv": ("\n\n" + csv_text() + "\n\n\n").encode("utf-8"),
    "utf16.csv": csv_text().encode("utf-16"),
    "spaced_header.csv": csv_text(header=[f" {h} " for h in HEADER]).encode("utf-8"),
    "extra_columns.csv": csv_text(
        [[str(i + 1), *r, "", "FR", f"Surname{i}"] for i, r in enumerate(ROWS)],
        header=["RowNumber", *HEADER, "Notes", "Country", "Surname"],
    ).encode("utf-8"),
}


@pytest.mark.parametrize("name", sorted(MESSY))
def test_messy_copies_load_to_the_clean_frame(tmp_path, clean, name):
    table = read.load_table(write(tmp_path, name, MESSY[name]))
    pd.testing.assert_frame_equal(table.frame, clean.frame)
    assert table.features == clean.features
    assert table.categorical == clean.categorical


@pytest.mark.parametrize(
    ("yes", "no"),
    [
        ("Yes", "No"),
        ("True", "False"),
        ("1", "0"),
        ("Y", "N"),
        ("T", "F"),
        ("1.0", "0.0"),
        ("churned", "stayed"),
        ("Attrited Customer", "Existing Customer"),
    ],
)
def test_each_label_spelling_loads_to_the_clean_frame(tmp_path, clean, yes, no):
    table = read.load_table(write(tmp_path, "labels.csv", csv_text(relabel(ROWS, yes, no))))
    pd.testing.assert_frame_equal(table.frame, clean.frame)


def test_gzip_and_parquet_load_to_the_clean_frame(tmp_path, clean):
    gz = tmp_path / "data.csv.gz"
    gz.write_bytes(gzip.compress(csv_text().encode("utf-8")))
    pd.testing.assert_frame_equal(read.load_table(gz).frame, clean.frame)

    text = read.read_table(tmp_path / "clean.csv")
    text.to_parquet(tmp_path / "text.parquet")
    pd.testing.assert_frame_equal(read.load_table(tmp_path / "text.parquet").frame, clean.frame)

    typed = text.assign(
        SeniorCitizen=text["SeniorCitizen"].astype(int),
        tenure=text["tenure"].astype(int),
        MonthlyCharges=text["MonthlyCharges"].astype(float),
        TotalCharges=pd.to_numeric(text["TotalCharges"].str.strip().replace("", None)),
        Churn=text["Churn"] == "Yes",
        Contract=text["Contract"].astype("category"),
    )
    typed.to_parquet(tmp_path / "typed.parquet")
    table = read.load_table(tmp_path / "typed.parquet")
    pd.testing.assert_frame_equal(table.frame, clean.frame)
    assert artifacts.frame_hash(table.frame) == artifacts.frame_hash(clean.frame)


def test_clean_frame_is_canonical(clean):
    frame = clean.frame
    assert clean.mapping == {
        "customer_id": "customerID",
        "churned": "Churn",
        "tenure_months": "tenure",
        "monthly_revenue": "MonthlyCharges",
        "total_revenue": "TotalCharges",
    }
    assert frame[C.CHURNED].tolist() == [0, 0, 1, 0, 1, 0, 1, 0, 0, 1]
    assert frame[C.TOTAL_REVENUE][5] == 0.0
    assert clean.notes == (
        "total_revenue: 1 missing cells filled with tenure_months x monthly_revenue",
    )
    assert clean.categorical == ("gender", "Contract")


def test_windows_1252_file_is_read_and_noted(tmp_path):
    rows = [[*r[:4], "Zürich tarif" if i % 2 else r[4], *r[5:]] for i, r in enumerate(ROWS)]
    utf8 = read.load_table(write(tmp_path, "utf8.csv", csv_text(rows)))
    legacy = read.load_table(write(tmp_path, "legacy.csv", csv_text(rows).encode("cp1252")))
    pd.testing.assert_frame_equal(legacy.frame, utf8.frame)
    assert any("Windows-1252" in n for n in legacy.notes)


def test_telco_file_loads_unchanged(telco_path):
    table = read.load_table(telco_path)
    frame = table.frame
    assert len(frame) == 7043
    assert int(frame[C.CHURNED].sum()) == 1869
    assert table.mapping[C.CUSTOMER_ID] == "customerID"
    assert any(n.startswith("total_revenue: 11 ") for n in table.notes)
    assert not frame[C.TOTAL_REVENUE].isna().any()
    assert table.coercions == {}
    assert table.dropped == {}
    assert frame["SeniorCitizen"].dtype == np.float64
    assert "Contract" in table.categorical
    assert frame[C.CUSTOMER_ID].dtype == "str"


def test_telco_hash_is_the_same_from_csv_and_parquet(telco_path, tmp_path):
    artifacts.write_table(read.read_table(telco_path), tmp_path / "telco.parquet")
    from_parquet = read.load_table(tmp_path / "telco.parquet").frame
    assert artifacts.frame_hash(from_parquet) == artifacts.frame_hash(
        read.load_table(telco_path).frame
    )


def test_explicit_mapping_from_pairs_and_from_a_json_file(tmp_path):
    rows = [[r[0], r[3], r[-1]] for r in ROWS]
    path = write(tmp_path, "odd.csv", csv_text(rows, header=["Kunde", "Monate", "Gekuendigt"]))
    pairs = ["customer_id=Kunde", "tenure_months=Monate", "churned=Gekuendigt"]
    from_pairs = read.load_table(path, parse_mapping_pairs(pairs))
    mapping_file = write(
        tmp_path,
        "map.json",
        json.dumps({"customer_id": "Kunde", "tenure_months": "Monate", "churned": "Gekuendigt"}),
    )
    from_file = read.load_table(path, read.load_mapping_file(mapping_file))
    pd.testing.assert_frame_equal(from_pairs.frame, from_file.frame)
    assert from_file.frame[C.CHURNED].sum() == 4
    with pytest.raises(MappingError) as exc:
        read.load_table(path, {"churned": "Gekundigt"})
    assert "odd.csv: mapping churned=Gekundigt" in str(exc.value)
    assert "did you mean 'Gekuendigt'" in str(exc.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON \\(line 1"),
        ('["churned", "Exited"]', "must be a JSON object"),
        ('{"churned": 3}', "must be a JSON object"),
        ('{"churn": "Exited"}', "not a canonical column.*did you mean 'churned'"),
    ],
)
def test_bad_mapping_files(tmp_path, content, match):
    with pytest.raises(MappingError, match=match):
        read.load_mapping_file(write(tmp_path, "map.json", content))
    with pytest.raises(MappingError, match="no such file"):
        read.load_mapping_file(tmp_path / "absent.json")


def test_ids_and_row_numbers_dropped_with_reasons(tmp_path):
    rows = [
        [
            str(i),
            f"C{i:03d}",
            f"tok{i * 7919 % 1000}",
            "Yes" if i % 4 == 0 else "No",
            str(i % 12),
            f"{i % 5}",
        ]
        for i in range(80)
    ]
    path = write(
        tmp_path,
        "bank.csv",
        csv_text(
            rows, header=["Unnamed: 0", "CustomerId", "Session", "Exited", "Tenure", "Rating"]
        ),
    )
    table = read.load_table(path)
    assert table.dropped["Unnamed: 0"].startswith("row number")
    assert table.dropped["Session"].startswith("identifier-like: 80 distinct values in 80 rows")
    assert table.features == ("tenure_months", "Rating")


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "error", "match"),
    [
        ("empty.csv", b"", EmptyTableError, "empty.csv is empty \\(0 bytes\\)"),
        ("blank.csv", b"\n \r\n\n", EmptyTableError, "only blank lines"),
        ("header.csv", b"customerID,Churn\r\n", EmptyTableError, "header but no data rows"),
        ("rows.csv", b"customerID,Churn\n,\n , \n", EmptyTableError, "every row .* blank"),
        ("binary.csv", b"id,churn\n1,\x00\x01\x02", NotATableError, "NUL byte at offset 11"),
        ("book.csv", b"PK\x03\x04rest", NotATableError, "ZIP archive .*Excel"),
        ("page.csv", b"<!DOCTYPE html><html></html>", NotATableError, "HTML page"),
        (
            "merge.csv",
            b"id,churn\n1,Yes\n<<<<<<< HEAD\n2,No\n=======\n2,Yes\n>>>>>>> main\n",
            NotATableError,
            "line 3 holds a merge-conflict marker '<<<<<<< HEAD'",
        ),
        (
            "single.csv",
            b"customers\nalice\nbob\n",
            NotATableError,
            "single column and no ',', ';', tab or '|' delimiter",
        ),
        (
            "ragged.csv",
            b"a,b\n1,2\n3,4,5,6\n",
            NotATableError,
            r"line 3 \(1 row\) has 4 fields where the header has 2; a cell holding ',' must be",
        ),
        (
            "bytes.csv",
            b"id,churn\n1,Yes\n2,\x81\x90\n",
            EncodingError,
            "neither UTF-8 nor Windows-1252 .*byte 0x81 at offset 17",
        ),
        ("fake.parquet", b"id,churn\n1,Yes\n", NotATableError, "not a Parquet file"),
        ("broken.parquet", b"PAR1garbage", NotATableError, "not a readable Parquet file"),
        ("data.csv.gz", b"\x1f\x8bnot really gzip", NotATableError, "not a readable gzip"),
    ],
)
def test_bad_files_raise_typed_one_line_errors(tmp_path, name, content, error, match):
    with pytest.raises(error, match=match) as exc:
        read.load_table(write(tmp_path, name, content))
    assert "\n" not in str(exc.value)
    assert name in str(exc.value) or error is EmptyTableError


def test_missing_directory_and_unsupported_paths(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read.read_table(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="is a directory"):
        read.read_table(tmp_path)
    with pytest.raises(DataError, match=r"unsupported file type '.xlsx'.*expected .csv"):
        read.read_table(write(tmp_path, "book.xlsx", b"PK\x03\x04"))


def test_file_over_the_size_limit(tmp_path, monkeypatch):
    path = write(tmp_path, "big.csv", csv_text() * 50)
    with pytest.raises(FileTooLargeError) as exc:
        read.read_table(path, max_bytes=1024)
    message = str(exc.value)
    assert "big.csv is 0.0 MB, over the 0.0 MB limit" in message
    assert "RETENTION_MAX_FILE_MB" in message
    monkeypatch.setenv("RETENTION_MAX_FILE_MB", "0.001")
    with pytest.raises(FileTooLargeError):
        read.read_table(path)
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(csv_text().encode() + b"x" * 100_000))
    with pytest.raises(FileTooLargeError, match="decompresses to more than"):
        read.read_table(bomb, max_bytes=10_000)


def test_validation_errors_name_the_file(tmp_path):
    path = write(tmp_path, "dups.csv", csv_text([ROWS[0], ROWS[1], ROWS[0]]))
    with pytest.raises(DuplicateIdError, match=r"^dups.csv: customer_id .*7590-VHVEG"):
        read.load_table(path)


def test_blank_label_rows_are_reported_with_file_lines(tmp_path):
    rows = [[*r[:-1], ""] if i == 3 else r for i, r in enumerate(ROWS)]
    table = read.load_table(write(tmp_path, "gaps.csv", "\n" + csv_text(rows)))
    assert len(table.frame) == 9
    assert table.coercions == {"churned": 1}
    assert "churned: 1 rows with a blank label dropped (lines 6)" in table.notes


# --- writes -------------------------------------------------------------------------------------


def test_write_table_round_trips(tmp_path, clean):
    for name in ("out.parquet", "out.csv", "out.csv.gz"):
        artifacts.write_table(clean.frame, tmp_path / name)
        again = read.load_table(tmp_path / name)
        pd.testing.assert_frame_equal(again.frame, clean.frame)
    with pytest.raises(DataError, match=r"cannot write '.xlsx'"):
        artifacts.write_table(clean.frame, tmp_path / "out.xlsx")


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "sub" / "scores.parquet"
    artifacts.atomic_write_text(target, "previous")

    def failing_writer(tmp):
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        artifacts.atomic_write_with(target, failing_writer)
    assert target.read_text() == "previous"
    assert [p.name for p in target.parent.iterdir()] == ["scores.parquet"]

    unwritable = pd.DataFrame({"x": [{"a": 1}, 3]})  # pyarrow cannot store this column
    with pytest.raises((TypeError, ValueError)):  # pyarrow.ArrowTypeError / ArrowInvalid
        artifacts.write_table(unwritable, target)
    assert target.read_text() == "previous"
    assert [p.name for p in target.parent.iterdir()] == ["scores.parquet"]


def test_atomic_write_bytes_replaces(tmp_path):
    path = tmp_path / "a.bin"
    artifacts.atomic_write_bytes(path, b"one")
    artifacts.atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_frame_hash_is_content_and_order_sensitive(clean):
    frame = clean.frame
    assert artifacts.frame_hash(frame) == artifacts.frame_hash(frame.copy())
    assert artifacts.frame_hash(frame) == artifacts.frame_hash(frame.set_axis(range(10, 20)))
    assert artifacts.frame_hash(frame) != artifacts.frame_hash(frame.iloc[::-1])
    renamed = frame.rename(columns={"gender": "sex"})
    assert artifacts.frame_hash(frame) != artifacts.frame_hash(renamed)
    changed = frame.copy()
    changed.loc[0, C.MONTHLY_REVENUE] = 30.0
    assert artifacts.frame_hash(frame) != artifacts.frame_hash(changed)
    assert len(artifacts.frame_hash(frame)) == 64


# --- model versions -----------------------------------------------------------------------------


def fitted_objects() -> dict:
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression(random_state=42).fit(X, [0, 0, 1, 1])
    return {"pipeline": model, "threshold": 0.4}


KEY = b"k" * 32  # the signing key (tests/test_artifacts_signing.py tests the signing)


def save(models_dir, version="v1"):
    tables = {"scores": pd.DataFrame({"customer_id": ["a", "b"], "p_churn": [0.1, 0.9]})}
    meta = {
        "features": ["x"],
        "roc_auc": np.float64(0.75),
        "data_hash": "abc",
        "curve": np.array([0.5, np.nan]),
    }
    return artifacts.save_model_version(
        models_dir, version, fitted_objects(), meta, tables, key=KEY
    )


def edit_meta(folder, *, sign=False, **changes):
    """Change model.json; sign=True signs it again, as this installation would have."""
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    if sign:
        meta["signature"] = artifacts._signature(meta, KEY)
    (folder / "model.json").write_text(json.dumps(meta))


def test_model_version_round_trip(tmp_path):
    models = tmp_path / "models"
    folder = save(models)
    assert folder == models / "v1"
    assert (models / "CURRENT").read_text().strip() == "v1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.json",
        "pipeline.joblib",
        "scores.parquet",
    ]
    loaded = artifacts.load_model_version(models, key=KEY)
    assert loaded.version == "v1"
    assert loaded.path == folder
    assert loaded.objects["threshold"] == 0.4
    assert loaded.objects["pipeline"].predict([[3.0]])[0] == 1
    assert loaded.meta["format"] == artifacts.MODEL_FORMAT
    assert loaded.meta["roc_auc"] == 0.75
    assert loaded.meta["curve"] == [0.5, None]
    assert loaded.meta["libraries"]["sklearn"] == artifacts.library_versions()["sklearn"]
    assert loaded.meta["created_at"].endswith("+00:00")
    assert loaded.tables["scores"]["p_churn"].tolist() == [0.1, 0.9]

    save(models, "v2")
    assert artifacts.list_model_versions(models) == ["v1", "v2"]
    assert artifacts.load_model_version(models, key=KEY).version == "v2"
    assert artifacts.load_model_version(models, "v1", key=KEY).version == "v1"


def test_no_model_yet(tmp_path):
    hint = r"no trained model in .*: run `python -m analytics train`"
    with pytest.raises(ArtifactError, match=hint):
        artifacts.load_model_version(tmp_path / "models", key=KEY)
    (tmp_path / "models").mkdir()
    with pytest.raises(ArtifactError, match=hint):
        artifacts.load_model_version(tmp_path / "models", key=KEY)
    assert artifacts.list_model_versions(tmp_path / "models") == []
    save(tmp_path / "models")
    with pytest.raises(ArtifactError, match=r"no model version 'v9' .*available: v1"):
        artifacts.load_model_version(tmp_path / "models", "v9", key=KEY)


def test_corrupt_pipeline_is_refused_before_unpickling(tmp_path):
    folder = save(tmp_path / "models")
    data = bytearray((folder / "pipeline.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "pipeline.joblib").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"pipeline.joblib was changed after .*refusing"):
        artifacts.load_model_version(tmp_path / "models", key=KEY)


def test_foreign_or_unreadable_sidecar(tmp_path):
    folder = save(tmp_path / "models")
    edit_meta(folder, format="someone-else/3")
    with pytest.raises(ArtifactError, match=r"not a model of this dashboard.*someone-else/3"):
        artifacts.load_model_version(tmp_path / "models", key=KEY)
    (folder / "model.json").write_text("{broken")
    with pytest.raises(ArtifactError, match=r"model.json is unreadable"):
        artifacts.load_model_version(tmp_path / "models", key=KEY)


def test_library_version_mismatch(tmp_path):
    folder = save(tmp_path / "models")
    libraries = artifacts.library_versions()
    edit_meta(folder, sign=True, libraries={**libraries, "sklearn": "0.24.2"})
    with pytest.raises(ArtifactError) as exc:
        artifacts.load_model_version(tmp_path / "models", key=KEY)
    assert (
        f"trained with scikit-learn 0.24.2, installed {libraries['sklearn']}: "
        "retrain with `python -m analytics train`"
    ) in str(exc.value)
    edit_meta(folder, sign=True, libraries={**libraries, "numpy": "1.26.4"})
    with pytest.raises(ArtifactError, match=r"trained with numpy 1.26.4"):
        artifacts.load_model_version(tmp_path / "models", key=KEY)
    edit_meta(folder, sign=True, libraries={**libraries, "lightgbm": "3.3.5"})
    with pytest.raises(ArtifactError, match=r"trained with LightGBM 3.3.5"):
        artifacts.load_model_version(tmp_path / "models", key=KEY)
    # a model saved before LightGBM was recorded loads (none of its parts can be LightGBM's)
    edit_meta(folder, sign=True, libraries={k: v for k, v in libraries.items() if k != "lightgbm"})
    assert artifacts.load_model_version(tmp_path / "models", key=KEY).meta is not None


def test_unloadable_pipeline_signed_by_this_installation(tmp_path):
    folder = save(tmp_path / "models")
    (folder / "pipeline.joblib").write_bytes(b"not a pickle")
    digest = artifacts.file_sha256(folder / "pipeline.joblib")
    files = {**json.loads((folder / "model.json").read_text())["files"], "pipeline.joblib": digest}
    edit_meta(folder, sign=True, pipeline_sha256=digest, files=files)
    with pytest.raises(ArtifactError, match="could not be loaded"):
        artifacts.load_model_version(tmp_path / "models", key=KEY)


class Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle Unpicklable")


def test_failed_save_leaves_nothing_and_keeps_current(tmp_path):
    models = tmp_path / "models"
    save(models)
    with pytest.raises(TypeError, match="cannot pickle"):
        artifacts.save_model_version(models, "v2", {"f": Unpicklable()}, {}, {}, key=KEY)
    assert sorted(p.name for p in models.iterdir()) == ["CURRENT", "v1"]
    assert artifacts.load_model_version(models, key=KEY).version == "v1"


def test_versions_are_immutable_and_safely_named(tmp_path):
    save(tmp_path / "models")
    with pytest.raises(ArtifactError, match="already exists"):
        save(tmp_path / "models")
    for bad in ("../escape", ".hidden", "CURRENT", ""):
        with pytest.raises(ArtifactError, match="not a safe name"):
            save(tmp_path / "models", bad)


def test_artifact_error_reason_drops_the_advice_to_train(tmp_path):
    with pytest.raises(artifacts.ArtifactError) as exc:
        artifacts.load_model_version(tmp_path / "none", key=KEY)
    assert "python -m analytics train" in str(exc.value)
    assert "python -m analytics train" not in exc.value.reason
    assert "no trained model" in exc.value.reason


def test_rows_with_another_delimiter_than_the_header_are_refused(tmp_path):
    # Two exports pasted together: pandas would read the ';' rows as one cell and blanks.
    path = tmp_path / "mixed.csv"
    path.write_text("customer_id,tenure,churn\nA,1,Yes\nB;2;No\nC,3,No\nD;4;Yes\n")
    with pytest.raises(NotATableError) as exc:
        read.read_table(path)
    assert str(exc.value) == (
        "mixed.csv: lines 3, 5 (2 rows) have 1 field where the header has 3; the file mixes "
        "',' (the header's) and ';' (these rows): save it again with one delimiter"
    )
    # A first cell that merely holds a ';' with the other cells blank is data, not a row of
    # another delimiter.
    path.write_text("customer_id,tenure,churn\nA;x,,\nB,2,No\n")
    assert len(read.read_table(path)) == 2
