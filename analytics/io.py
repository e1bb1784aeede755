"""Every read and write of files: customer tables (CSV / Parquet) and model versions.

Reads turn any delimited text or Parquet file into a raw frame (text cells as `str`, no
guessing by pandas: schema.validate decides types), refusing files that are too large,
binary, half-merged or not decodable, with one-line DataErrors naming the file. Writes are
atomic: a temp file in the target directory, fsync, os.replace; a failed write leaves nothing.
Model versions are directories written whole then renamed, with a JSON sidecar whose checksum
and library versions are checked before anything is unpickled.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics import schema
from analytics.config import ENV_PREFIX, settings_from_env
from analytics.schema import (
    DataError,
    EmptyTableError,
    EncodingError,
    FileTooLargeError,
    MappingError,
    NotATableError,
    Table,
)

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITERS = (",", ";", "\t", "|")
SNIFF_LINES = 50
MAX_FILE_ENV = f"{ENV_PREFIX}MAX_FILE_MB"

MODEL_FORMAT = "retention-dashboard-model/1"
PIPELINE_FILE = "pipeline.joblib"
META_FILE = "model.json"
CURRENT_FILE = "CURRENT"
TRAIN_HINT = "run `python -m analytics train`"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# Leading bytes of files people mistake for tables, with what to tell them.
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?): save it as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file: save it as CSV"),
    (b"%PDF", "a PDF document"),
    (b"PAR1", "a Parquet file: give it the .parquet extension"),
    (b"SQLite format 3", "an SQLite database: export the table as CSV"),
)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_CONFLICT = re.compile(r"^(?:<{7}(?: .*)?|={7}|>{7}(?: .*)?)\r?$", re.MULTILINE)


class ArtifactError(Exception):
    """A saved model cannot be used; the one-line message says why and what to run."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))

    @property
    def reason(self) -> str:
        """The message without the advice to train, for callers that retrain by themselves."""
        text = str(self)
        for sep in (": ", "; "):
            text = text.replace(f"{sep}{TRAIN_HINT}", "")
        return text


# ---------------------------------------------------------------------------------------------
# Reading tables.


def _kind(path: Path) -> str:
    name = path.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    if base.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    suffix = "".join(path.suffixes[-2:]) or "(none)"
    raise DataError(
        f"{path.name}: unsupported file type '{suffix}'; expected .csv, .csv.gz, .tsv or .parquet"
    )


def _limit(max_bytes: int | None) -> int:
    return settings_from_env().max_file_bytes if max_bytes is None else int(max_bytes)


def _too_large(path: Path, size: int, limit: int, what: str = "is") -> FileTooLargeError:
    return FileTooLargeError(
        f"{path.name} {what} {size / 2**20:.1f} MB, over the {limit / 2**20:.1f} MB limit; "
        f"raise it with {MAX_FILE_ENV} if the file is right"
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path} is a directory; expected a CSV or Parquet file")


def _check_size(path: Path, limit: int) -> int:
    size = path.stat().st_size
    if size == 0:
        raise EmptyTableError(f"{path.name} is empty (0 bytes)")
    if size > limit:
        raise _too_large(path, size, limit)
    return size


def _read_bytes(path: Path, limit: int) -> bytes:
    """The file's bytes, gunzipped when compressed, never more than limit bytes of them."""
    with path.open("rb") as f:
        head = f.read(2)
    if head != b"\x1f\x8b":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise NotATableError(f"{path.name} is not a readable gzip file ({exc})") from None
    if len(data) > limit:
        raise _too_large(path, len(data), limit, what="decompresses to more than")
    if not data:
        raise EmptyTableError(f"{path.name} is empty (0 bytes once decompressed)")
    return data


def _check_binary(path: Path, data: bytes) -> None:
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            raise NotATableError(f"{path.name} is {what}, not a delimited text table")
    # UTF-16 text is full of NUL bytes: it is checked once decoded
    nul = -1 if data.startswith(_UTF16_BOMS) else data.find(b"\x00")
    if nul >= 0:
        raise NotATableError(f"{path.name} is binary, not a text table (NUL byte at offset {nul})")


def decode_text(name: str, data: bytes) -> tuple[str, str | None]:
    """(text, note). UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252 if it decodes.

    Latin-1 would decode any bytes, so it is never a fallback: a file that is neither UTF-8
    nor cp1252 is an EncodingError naming the first offending byte.
    """
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError as exc:
            raise EncodingError(
                f"{name} starts with a UTF-16 byte-order mark but byte offset {exc.start} is "
                "not UTF-16: re-save it as UTF-8"
            ) from None
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        bad = data[utf8_error.start]
        raise EncodingError(
            f"{name} is neither UTF-8 nor Windows-1252 text (byte 0x{bad:02x} at offset "
            f"{utf8_error.start} is not valid UTF-8): re-save it as UTF-8"
        ) from None
    return (
        text,
        f"{name}: read as Windows-1252 text (not valid UTF-8 from byte offset {utf8_error.start})",
    )


def _check_text(name: str, text: str) -> None:
    nul = text.find("\x00")
    if nul >= 0:
        raise NotATableError(f"{name} is binary, not a text table (NUL character {nul})")
    if ("<<<<<<<" in text or ">>>>>>>" in text) and (match := _CONFLICT.search(text)):
        line = text.count("\n", 0, match.start()) + 1
        raise NotATableError(
            f"{name} line {line} holds a merge-conflict marker "
            f"'{match.group(0).strip()[:30]}': resolve the conflict and save the file again"
        )
    start = text.lstrip()[:200].lower()
    if start.startswith(("<!doctype html", "<html")):
        raise NotATableError(
            f"{name} is an HTML page, not a table (a download link that returned a web page?)"
        )


def sniff_delimiter(sample: str) -> str | None:
    """The delimiter giving the same number (>= 2) of fields on most of the first lines."""
    lines = [line for line in sample.splitlines()[:SNIFF_LINES] if line.strip()]
    if not lines:
        return None
    best, best_score = None, (0.0, 0)
    for delimiter in DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        if widths[0] < 2:
            continue
        agree = sum(w == widths[0] for w in widths) / len(widths)
        score = (round(agree, 2), widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _parse_csv(name: str, text: str) -> pd.DataFrame:
    text, first_line, excel_sep = _trim(text)
    if not text:
        raise EmptyTableError(f"{name} is empty (only blank lines)")
    sample = text[:1_000_000].rsplit("\n", 1)[0] if len(text) > 1_000_000 else text
    delimiter = excel_sep or sniff_delimiter(sample)
    if delimiter is None:
        header = text.split("\n", 1)[0].strip()[:60]
        raise NotATableError(
            f"{name} has a single column and no ',', ';', tab or '|' delimiter "
            f"(first line: '{header}'): is it a CSV table?"
        )
    physical = text.count("\n") + 1
    # Parsed from UTF-8 bytes: io.StringIO would hold 4 bytes per character (1.3 GB more for
    # a 1,000,000-customer file) and the C parser reads bytes anyway.
    body = text.encode("utf-8")
    del text, sample
    try:
        raw = pd.read_csv(
            io.BytesIO(body),
            encoding="utf-8",
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            index_col=False,
        )
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise NotATableError(
            f"{name} is not a consistent {_delimiter_name(delimiter)}-delimited table: {detail}"
        ) from None
    del body
    if raw.empty:
        raise EmptyTableError(f"{name} has a header but no data rows")
    if physical == len(raw) + 1:  # no quoted line breaks: row i sits on file line i + first
        raw.attrs[schema.ATTR_FIRST_LINE] = first_line + 1
    if delimiter == ";":
        raw.attrs[schema.ATTR_DECIMAL] = ","  # ';' files come from decimal-comma locales
    return raw


def _trim(text: str) -> tuple[str, int, str | None]:
    """(text without leading/trailing blank lines or an Excel 'sep=' line, header line, sep)."""
    lead = re.match(r"(?:[ \t]*\r?\n)*", text)
    skipped = text.count("\n", 0, lead.end()) if lead else 0
    text = text[lead.end() if lead else 0 :].rstrip()
    excel = re.match(r"sep=(.)\r?\n", text)
    if excel:
        text = text[excel.end() :]
        skipped += 1
    return text, skipped + 1, excel.group(1) if excel else None


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}[delimiter]


def _read_parquet(path: Path) -> pd.DataFrame:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PAR1":
        raise NotATableError(f"{path.name} is not a Parquet file (it does not start with PAR1)")
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotATableError(f"{path.name} is not a readable Parquet file: {first}") from None
    if raw.empty and len(raw.columns):
        raise EmptyTableError(f"{path.name} has columns but no rows")
    return raw.reset_index(drop=True)


def read_table(path: str | os.PathLike, *, max_bytes: int | None = None) -> pd.DataFrame:
    """The raw table in a CSV (.csv/.tsv/.txt, optionally .gz) or Parquet file.

    CSV cells come back as `str` (blank -> missing); the encoding and delimiter are detected.
    max_bytes defaults to RETENTION_MAX_FILE_MB. Raises a DataError subclass naming the file.
    """
    path = Path(path)
    limit = _limit(max_bytes)
    _check_exists(path)
    kind = _kind(path)
    _check_size(path, limit)
    if kind == "parquet":
        return _read_parquet(path)
    notes: list[str] = []
    # The text is passed on, not kept here: _parse_csv frees it before parsing (a 1,000,000-
    # customer file is 350 MB of text; holding every copy at once peaked at 3.2 GB).
    raw = _parse_csv(path.name, _checked_text(path, limit, notes))
    if notes:
        raw.attrs[schema.ATTR_NOTES] = notes
    return raw


def _checked_text(path: Path, limit: int, notes: list[str]) -> str:
    data = _read_bytes(path, limit)
    _check_binary(path, data)
    text, note = decode_text(path.name, data)
    del data
    _check_text(path.name, text)
    if note:
        notes.append(note)
    return text


def load_table(
    path: str | os.PathLike,
    mapping: Mapping[str, str] | None = None,
    *,
    require_label: bool = True,
    drop: Sequence[str] = (),
    max_bytes: int | None = None,
) -> Table:
    """read_table + schema.validate; validation errors are prefixed with the file name."""
    path = Path(path)
    raw = read_table(path, max_bytes=max_bytes)
    try:
        return schema.validate(raw, mapping, require_label=require_label, drop=drop)
    except DataError as exc:
        raise type(exc)(f"{path.name}: {exc}") from None


def load_mapping_file(path: str | os.PathLike) -> dict[str, str]:
    """{canonical: source column} from a JSON object such as {"churned": "Exited"}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise MappingError(f"mapping file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"mapping file {path} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise MappingError(
            f"mapping file {path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}:"
            f" {exc.msg})"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in data.items()
    ):
        raise MappingError(
            f"mapping file {path.name} must be a JSON object of canonical column -> source "
            'column names, e.g. {"churned": "Exited", "customer_id": "CustomerId"}'
        )
    return schema.parse_mapping_pairs([f"{k}={v}" for k, v in data.items()])


# ---------------------------------------------------------------------------------------------
# Atomic writes.


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); platforms without directory fds skip it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside `path`; on success it replaces `path`, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; outputs are meant to be read by others (reading os.umask would
    # briefly change it for every thread in the process).
    os.chmod(tmp, 0o644)
    try:
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with _atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], object]) -> None:
    """Call writer(temp_path) and move the result onto path atomically."""
    with _atomic_path(Path(path)) as tmp:
        writer(tmp)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write df as CSV (.csv, .csv.gz) or Parquet by suffix, atomically, without the index."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        atomic_write_with(path, lambda tmp: df.to_parquet(tmp, index=False))
    elif name.endswith(tuple(s + ".gz" for s in CSV_SUFFIXES)):
        # Compress in memory with a fixed mtime and no file name in the header, so the same frame
        # always gives the same bytes (pandas would store the random temp file's name).
        data = gzip.compress(df.to_csv(index=False).encode("utf-8"), mtime=0)
        atomic_write_bytes(path, data)
    elif name.endswith(CSV_SUFFIXES):
        atomic_write_with(path, lambda tmp: df.to_csv(tmp, index=False))
    else:
        raise DataError(f"{path.name}: cannot write '{path.suffix}'; use .csv, .csv.gz or .parquet")


def frame_hash(df: pd.DataFrame) -> str:
    """sha256 hex of a frame's column names and values, row order included, index ignored."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in df.columns]).encode("utf-8"))
    rows = pd.util.hash_pandas_object(df, index=False).to_numpy(dtype=np.uint64)
    digest.update(rows.tobytes())
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Model versions.


@dataclass(frozen=True)
class LoadedModel:
    version: str
    objects: dict[str, Any]
    meta: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    path: Path


def library_versions() -> dict[str, str]:
    import joblib
    import sklearn

    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }


def _plain(value: object) -> object:
    """meta as strict JSON: numpy values unwrapped, NaN/inf as null, paths and dates as text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (Path, pd.Timestamp, datetime)):
        return str(value)
    return value


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name == CURRENT_FILE:
        raise ArtifactError(
            f"{what} '{name}' is not a safe name: use letters, digits, '.', '_' or '-'"
        )
    return name


def save_model_version(
    models_dir: str | os.PathLike,
    version: str,
    objects: dict[str, Any],
    meta: dict[str, Any],
    tables: Mapping[str, pd.DataFrame],
) -> Path:
    """Write models_dir/<version> whole (or not at all) and point models_dir/CURRENT at it.

    Files: pipeline.joblib (joblib.dump of objects), model.json (meta plus format, checksum,
    library versions, created_at) and <name>.parquet per table. Versions are immutable.
    """
    models_dir = Path(models_dir)
    _check_name(version, "model version")
    for name in tables:
        _check_name(name, "table name")
    final = models_dir / version
    if final.exists():
        raise ArtifactError(f"model version {final} already exists; choose a new version name")
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = models_dir / f".tmp-{version}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        _write_version(tmp, version, objects, meta, tables)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(models_dir)
    atomic_write_text(models_dir / CURRENT_FILE, version + "\n")
    return final


def _write_version(tmp: Path, version: str, objects, meta, tables) -> None:
    import joblib

    pipeline = tmp / PIPELINE_FILE
    joblib.dump(objects, pipeline)
    for name, table in tables.items():
        table.to_parquet(tmp / f"{name}.parquet", index=False)
    sidecar = {
        **meta,
        "format": MODEL_FORMAT,
        "version": version,
        "pipeline_sha256": file_sha256(pipeline),
        "libraries": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": sorted(tables),
    }
    text = json.dumps(_plain(sidecar), indent=2, allow_nan=False)
    (tmp / META_FILE).write_text(text + "\n", encoding="utf-8")
    for file in tmp.iterdir():
        with file.open("rb+") as f:
            os.fsync(f.fileno())


def list_model_versions(models_dir: str | os.PathLike) -> list[str]:
    """Names of complete model versions (directories with a model.json), sorted."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in models_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / META_FILE).is_file()
    )


def _current_version(models_dir: Path) -> str:
    no_model = f"no trained model in {models_dir}: {TRAIN_HINT}"
    if not models_dir.is_dir():
        raise ArtifactError(no_model)
    try:
        version = (models_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ArtifactError(no_model) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{models_dir / CURRENT_FILE} cannot be read ({exc}): {TRAIN_HINT}"
        ) from None
    if not version:
        raise ArtifactError(f"{models_dir / CURRENT_FILE} is empty: {TRAIN_HINT}")
    return version


def _read_meta(folder: Path) -> dict[str, Any]:
    file = folder / META_FILE
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{file} is missing (incomplete model): {TRAIN_HINT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{file} is unreadable ({exc}): {TRAIN_HINT}") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ArtifactError(
            f"{file} is not a model of this dashboard (format {found!r}, expected "
            f"{MODEL_FORMAT!r}): refusing to load it; {TRAIN_HINT}"
        )
    return meta


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def _check_libraries(file: Path, meta: Mapping[str, Any]) -> None:
    saved = meta.get("libraries") or {}
    installed = library_versions()
    # scikit-learn pickles are only safe within one minor version; numpy/pandas across a major
    checks = (("sklearn", "scikit-learn", 2), ("numpy", "numpy", 1), ("pandas", "pandas", 1))
    for key, label, parts in checks:
        trained = str(saved.get(key, "unknown"))
        if trained.split(".")[:parts] != installed[key].split(".")[:parts]:
            raise ArtifactError(
                f"{file} was trained with {label} {trained}, installed {installed[key]}: "
                f"retrain with `python -m analytics train`"
            )


def load_model_version(models_dir: str | os.PathLike, version: str | None = None) -> LoadedModel:
    """Load models_dir/<version> (default: the one named in CURRENT), checking it first.

    Nothing is unpickled unless model.json is ours, the pipeline's sha256 matches it and the
    library versions are compatible; every refusal is an ArtifactError saying what to run.
    """
    models_dir = Path(models_dir)
    version = _current_version(models_dir) if version is None else version
    _check_name(version, "model version")
    folder = models_dir / version
    if not folder.is_dir():
        available = ", ".join(list_model_versions(models_dir)) or "none"
        raise ArtifactError(
            f"no model version '{version}' in {models_dir} (available: {available}): {TRAIN_HINT}"
        )
    meta = _read_meta(folder)
    pipeline = folder / PIPELINE_FILE
    if not pipeline.is_file():
        raise ArtifactError(f"{pipeline} is missing (incomplete model): {TRAIN_HINT}")
    if file_sha256(pipeline) != meta.get("pipeline_sha256"):
        raise ArtifactError(
            f"{pipeline} does not match the checksum in {META_FILE} (corrupt or replaced "
            f"file): refusing to load it; {TRAIN_HINT}"
        )
    _check_libraries(folder / META_FILE, meta)
    objects = _unpickle(pipeline)
    tables = {name: _read_model_table(folder, name) for name in meta.get("tables", [])}
    return LoadedModel(version=version, objects=objects, meta=meta, tables=tables, path=folder)


def _unpickle(pipeline: Path) -> dict[str, Any]:
    import joblib

    try:
        objects = joblib.load(pipeline)
    except Exception as exc:  # unpickling can raise anything; the file was checksummed
        raise ArtifactError(
            f"{pipeline} could not be loaded ({type(exc).__name__}: {exc}): {TRAIN_HINT}"
        ) from None
    if not isinstance(objects, dict):
        raise ArtifactError(f"{pipeline} does not hold a dict of model objects: {TRAIN_HINT}")
    return objects


def _read_model_table(folder: Path, name: str) -> pd.DataFrame:
    file = folder / f"{_check_name(name, 'table name')}.parquet"
    try:
        return pd.read_parquet(file)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{file} cannot be read ({exc}): {TRAIN_HINT}") from None
