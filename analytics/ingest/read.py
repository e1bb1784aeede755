"""Reading customer tables: any delimited text or Parquet file -> a raw frame, or a clear error.

Cells come back as text (`str`, no guessing by pandas: ingest.validate decides types). Files
that are too large (bytes once decompressed, rows, columns: RETENTION_MAX_FILE_MB, _ROWS,
_COLUMNS), binary, half-merged or not decodable are refused with one-line DataErrors naming the
file; sizes are counted while streaming, so a small gzip of a huge table is stopped early.
load_table reads and validates; load_mapping_file reads a user's mapping.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.config import ENV_PREFIX, settings_from_env
from analytics.ingest.errors import (
    DataError,
    EmptyTableError,
    EncodingError,
    FileTooLargeError,
    MappingError,
    NotATableError,
    TableTooLargeError,
)
from analytics.ingest.mapping import KEEP, keep_list, parse_mapping_pairs, with_keep
from analytics.ingest.messages import EXAMPLES, listing
from analytics.ingest.subscriptions import ATTR_AS_OF
from analytics.ingest.validate import (
    ATTR_DECIMAL,
    ATTR_DROPPED,
    ATTR_FIRST_LINE,
    ATTR_NOTES,
    Table,
    validate,
)

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITERS = (",", ";", "\t", "|")
SNIFF_LINES = 50
MAX_FILE_ENV = f"{ENV_PREFIX}MAX_FILE_MB"
MAX_ROWS_ENV = f"{ENV_PREFIX}MAX_ROWS"
MAX_COLUMNS_ENV = f"{ENV_PREFIX}MAX_COLUMNS"
READ_CHUNK = 1 << 20  # bytes per read while streaming (and counting) a file
# Lines read past the row limit before stopping: the header, blank lines and line breaks inside
# quoted cells are lines but not rows. The exact row count is checked once parsed.
ROW_SLACK = 1_000
MIXED_SAMPLE = 1_000  # rows of a wrong width read to tell which delimiter they use

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


@dataclass(frozen=True)
class Limits:
    """How large an input table may be: bytes (decompressed), rows and columns."""

    bytes: int
    rows: int
    columns: int


def _limits(max_bytes: int | None, max_rows: int | None, max_columns: int | None) -> Limits:
    """The given limits, the others from RETENTION_* settings."""
    if max_bytes is None or max_rows is None or max_columns is None:
        settings = settings_from_env()
        max_bytes = settings.max_file_bytes if max_bytes is None else max_bytes
        max_rows = settings.max_rows if max_rows is None else max_rows
        max_columns = settings.max_columns if max_columns is None else max_columns
    return Limits(int(max_bytes), int(max_rows), int(max_columns))


def size_limits(settings) -> dict:
    """load_table's size limits from a Settings (callers whose settings are not the env's)."""
    return {
        "max_bytes": settings.max_file_bytes,
        "max_rows": settings.max_rows,
        "max_columns": settings.max_columns,
    }


def _too_large(path: Path, size: int, limit: int, what: str = "is") -> FileTooLargeError:
    return FileTooLargeError(
        f"{path.name} {what} {size / 2**20:.1f} MB, over the {limit / 2**20:.1f} MB limit; "
        f"raise it with {MAX_FILE_ENV} if the file is right"
    )


def _too_many_rows(name: str, found: str, limit: int) -> TableTooLargeError:
    return TableTooLargeError(
        f"{name} has {found}, over the {limit:,}-row limit; raise it with {MAX_ROWS_ENV} if the "
        "file is right"
    )


def _check_rows(name: str, rows: int, limit: int) -> None:
    if rows > limit:
        raise _too_many_rows(name, f"{rows:,} rows", limit)


def _check_columns(name: str, columns: int, limit: int) -> None:
    if columns > limit:
        raise TableTooLargeError(
            f"{name} has {columns:,} columns, over the {limit:,}-column limit; raise it with "
            f"{MAX_COLUMNS_ENV} if the file is right"
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


def _read_bytes(path: Path, limits: Limits) -> bytearray:
    """The file's bytes, gunzipped when compressed, read in chunks and counted as they come:
    reading stops as soon as there are more bytes or lines than the limits allow, so a small
    gzip of a huge table is never decompressed whole. A bytearray grows in place (no copy at
    the end, unlike joining chunks)."""
    with path.open("rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    data, lines = bytearray(), 0
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as f:
            while chunk := f.read(READ_CHUNK):
                data += chunk
                lines += chunk.count(b"\n")
                if len(data) > limits.bytes:
                    what = "decompresses to more than" if compressed else "is"
                    raise _too_large(path, len(data), limits.bytes, what=what)
                if lines > limits.rows + ROW_SLACK:
                    raise _too_many_rows(path.name, f"more than {lines:,} lines", limits.rows)
    except (OSError, EOFError, zlib.error) as exc:
        if not compressed:
            raise
        raise NotATableError(f"{path.name} is not a readable gzip file ({exc})") from None
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


def _parse_csv(name: str, text: str, limits: Limits) -> pd.DataFrame:
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
    # Counted on the header before parsing: a wide table costs memory per column at once.
    # (Sliced, not split: splitting would copy the whole text.)
    end = text.find("\n")
    header = next(csv.reader([text[:end] if end >= 0 else text], delimiter=delimiter), [])
    _check_columns(name, len(header), limits.columns)
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
        # a row with more fields than the header: every such row is named, not just the first
        _check_field_counts(name, body, delimiter, len(header), first_line, None)
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise NotATableError(
            f"{name} is not a consistent {_delimiter_name(delimiter)}-delimited table: {detail}"
        ) from None
    if raw.empty:
        raise EmptyTableError(f"{name} has a header but no data rows")
    _check_columns(name, len(raw.columns), limits.columns)
    _check_rows(name, len(raw), limits.rows)
    lines_known = physical == len(raw) + 1  # no quoted line breaks: row i on line i + first
    # pandas pads a row with fewer fields than the header with blanks: such a row (another
    # delimiter's, a cut line) would lose its label or shift silently, so it is refused
    short = raw.iloc[:, -1].isna().to_numpy() & raw.notna().any(axis=1).to_numpy()
    if short.any() and len(raw.columns) > 1:
        rows = np.flatnonzero(short) if lines_known else None
        _check_field_counts(name, body, delimiter, len(raw.columns), first_line, rows)
    del body
    if lines_known:
        raw.attrs[ATTR_FIRST_LINE] = first_line + 1
    if delimiter == ";":
        raw.attrs[ATTR_DECIMAL] = ","  # ';' files come from decimal-comma locales
    return raw


def _field_counts(
    body: bytes, delimiter: str, rows: np.ndarray | None
) -> Iterator[tuple[int, list[str]]]:
    """(line index in the text, 0 = header; fields) of the given data rows when each row is one
    line, else of every record (a quoted cell may span lines)."""
    if rows is None:
        reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""), delimiter=delimiter)
        start = 0
        for fields in reader:
            yield start, fields
            start = reader.line_num
        return
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    starts = np.concatenate([[0], ends + 1])
    ends = np.append(ends, len(body))
    for row in rows:
        line = bytes(body[starts[row + 1] : ends[row + 1]]).decode("utf-8").rstrip("\r")
        yield int(row) + 1, next(csv.reader([line], delimiter=delimiter), [])


def _check_field_counts(
    name: str, body: bytes, delimiter: str, width: int, first_line: int, rows
) -> None:
    """Refuse rows whose number of fields is not the header's, naming their lines and counts
    (a half-converted export: some rows ';', the others ','). Blank rows are not counted."""
    bad: dict[int, list[int]] = {}  # field count -> file lines
    sample: list[list[str]] = []
    for index, fields in _field_counts(body, delimiter, rows):
        if index == 0 or len(fields) == width or not any(f.strip() for f in fields):
            continue
        bad.setdefault(len(fields), []).append(first_line + index)
        if len(sample) < MIXED_SAMPLE:
            sample.append(fields)
    if not bad:
        return
    n = sum(len(lines) for lines in bad.values())
    groups = sorted(bad.items(), key=lambda item: (-len(item[1]), item[0]))
    said = [
        f"{'line' if len(lines) == 1 else 'lines'} {listing_lines(lines)} "
        f"({len(lines):,} row{'s' if len(lines) > 1 else ''}) "
        f"{'has' if len(lines) == 1 else 'have'} {count} field{'s' if count != 1 else ''}"
        for count, lines in groups[:3]
    ]
    if len(groups) > 3:
        said.append(f"{n - sum(len(g[1]) for g in groups[:3]):,} more rows other counts")
    raise NotATableError(
        f"{name}: {', '.join(said)} where the header has {width}; "
        f"{_field_count_cause(sample, delimiter, width)}"
    )


def listing_lines(lines: list[int]) -> str:
    shown = ", ".join(str(line) for line in lines[:EXAMPLES])
    return shown + (", ..." if len(lines) > EXAMPLES else "")


def _field_count_cause(sample: list[list[str]], delimiter: str, width: int) -> str:
    """Why the rows are off: another delimiter (most of them split into the header's width by
    it), empty cells past the header's, unquoted delimiters inside cells, or missing cells."""
    texts = [delimiter.join(fields) for fields in sample]
    for other in DELIMITERS:
        if other == delimiter:
            continue
        fits = sum(len(next(csv.reader([t], delimiter=other), [])) == width for t in texts)
        if fits * 2 > len(texts):
            return (
                f"the file mixes '{delimiter}' (the header's) and '{other}' (these rows): save "
                "it again with one delimiter"
            )
    longer = [fields for fields in sample if len(fields) > width]
    if longer and not any(f.strip() for fields in longer for f in fields[width:]):
        return f"they end with empty cells past the header's: remove the extra '{delimiter}'"
    if longer:
        return (
            f"a cell holding '{delimiter}' must be quoted (\"...\"): save the file again from "
            "its source"
        )
    return "cells are missing: complete the rows or save the file again from its source"


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


def _nested(kind: pa.DataType) -> bool:
    """Lists, structs, maps and unions (also as dictionary values): many values per cell."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_nested(kind)


def _type_text(kind: pa.DataType) -> str:
    # pyarrow names a map after its column ("map<string, int64 ('tags')>"): shown without it
    text = f"map<{kind.key_type}, {kind.item_type}>" if pa.types.is_map(kind) else str(kind)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_text(kind: pa.DataType) -> bool:
    return any(
        check(kind)
        for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                      pa.types.is_large_binary)
    )  # fmt: skip


def _check_decoded(path: Path, schema: pa.Schema, names: list[str], limits: Limits) -> None:
    """Refuse a Parquet file that decodes to more than the byte limit, before decoding it, as a
    gzip is refused. Compression, dictionary and run-length encodings store a value repeated on
    every row once: 1.5 KB held 1 GB of text. The footer gives the decompressed page sizes and
    the fixed-width columns' sizes; text columns are read as dictionaries (as stored) and their
    decoded size is summed from those."""
    meta = pq.read_metadata(path)
    pages = sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )
    if pages > limits.bytes:
        raise _too_large(path, pages, limits.bytes, what="decompresses to")
    text = [n for n in names if _is_text(schema.field(n).type)]
    size = 0
    for name in names:
        if name not in text:
            with contextlib.suppress(ValueError):  # not fixed-width (a dictionary): as stored
                size += meta.num_rows * max(schema.field(name).type.bit_width // 8, 1)
    if text:
        table = pq.read_table(path, columns=text, read_dictionary=text)
        for chunk in (c for column in table.columns for c in column.chunks):
            lengths = pc.take(pc.binary_length(chunk.dictionary), chunk.indices)
            size += pc.sum(lengths).as_py() or 0
    if size > limits.bytes:
        raise _too_large(path, size, limits.bytes, what="decodes to")


def _read_parquet(path: Path, limits: Limits) -> pd.DataFrame:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PAR1":
        raise NotATableError(f"{path.name} is not a Parquet file (it does not start with PAR1)")
    try:
        # The footer alone: sizes are checked before any column is read.
        schema = pq.read_schema(path)
        rows = pq.read_metadata(path).num_rows
        names = [n for n in schema.names if n not in _pandas_index_columns(schema)]
        _check_columns(path.name, len(names), limits.columns)
        _check_rows(path.name, rows, limits.rows)
        nested = {
            n: f"a {_type_text(schema.field(n).type)} column: nested values, not one value per "
            "customer"
            for n in names
            if _nested(schema.field(n).type)
        }
        if nested and len(nested) == len(names):
            raise NotATableError(
                f"{path.name} has no usable column: {listing(list(nested))} hold nested values "
                "(lists, structs or maps), not one value per customer"
            )
        kept = [n for n in names if n not in nested]
        _check_decoded(path, schema, kept, limits)
        raw = pd.read_parquet(path, columns=kept or None)
    except (OSError, ValueError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
        if isinstance(exc, DataError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotATableError(f"{path.name} is not a readable Parquet file: {first}") from None
    if raw.empty and len(raw.columns):
        raise EmptyTableError(f"{path.name} has columns but no rows")
    raw = raw.reset_index(drop=True)
    if nested:
        raw.attrs[ATTR_DROPPED] = nested
    return raw


def _pandas_index_columns(schema: pa.Schema) -> set[str]:
    """Columns pandas wrote for a frame's index (`__index_level_0__`), not table columns."""
    meta = schema.pandas_metadata or {}
    return {c for c in meta.get("index_columns", []) if isinstance(c, str)}


def read_table(
    path: str | os.PathLike,
    *,
    max_bytes: int | None = None,
    max_rows: int | None = None,
    max_columns: int | None = None,
) -> pd.DataFrame:
    """The raw table in a CSV (.csv/.tsv/.txt, optionally .gz) or Parquet file.

    CSV cells come back as `str` (blank -> missing); the encoding and delimiter are detected.
    Parquet columns holding nested values are left out (listed in attrs[ATTR_DROPPED]). The
    limits default to RETENTION_MAX_FILE_MB, _MAX_ROWS and _MAX_COLUMNS. Raises a DataError
    subclass naming the file.
    """
    path = Path(path)
    limits = _limits(max_bytes, max_rows, max_columns)
    _check_exists(path)
    kind = _kind(path)
    _check_size(path, limits.bytes)
    if kind == "parquet":
        return _read_parquet(path, limits)
    notes: list[str] = []
    # The text is passed on, not kept here: _parse_csv frees it before parsing (a 1,000,000-
    # customer file is 350 MB of text; holding every copy at once peaked at 3.2 GB).
    raw = _parse_csv(path.name, _checked_text(path, limits, notes), limits)
    if notes:
        raw.attrs[ATTR_NOTES] = notes
    return raw


def _checked_text(path: Path, limits: Limits, notes: list[str]) -> str:
    data = _read_bytes(path, limits)
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
    max_rows: int | None = None,
    max_columns: int | None = None,
    as_of: str | None = None,
) -> Table:
    """read_table + validate; validation errors are prefixed with the file name. `as_of` is the
    date a subscription log is read at (default: the latest date in the file)."""
    path = Path(path)
    raw = read_table(path, max_bytes=max_bytes, max_rows=max_rows, max_columns=max_columns)
    if as_of is not None:
        raw.attrs[ATTR_AS_OF] = as_of
    try:
        return validate(raw, mapping, require_label=require_label, drop=drop)
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
    return mapping_from_json(data, f"mapping file {path.name}")


def mapping_from_json(data: object, what: str = "the mapping") -> dict:
    """{canonical: source column} from parsed JSON (a file's, an upload form's, an API body's),
    checked as --map pairs are; `what` names it in the error. A "keep" entry lists columns kept
    although they look like label leaks: {"churned": "Exited", "keep": ["Complain"]}."""
    pairs = {k: v for k, v in data.items() if k != KEEP} if isinstance(data, dict) else None
    if pairs is None or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in pairs.items()
    ):
        raise MappingError(
            f"{what} must be a JSON object of canonical column -> source "
            'column names, e.g. {"churned": "Exited", "customer_id": "CustomerId"}'
        )
    mapping = parse_mapping_pairs([f"{k}={v}" for k, v in pairs.items()])
    return with_keep(mapping, keep_list(data.get(KEEP, []), f"{what}: its keep entry"))
