"""Datasets: customer tables brought in by an admin, validated by the one loader and stored
immutable by content.

A file (an upload, the API, the configured RETENTION_DATA) or a database source's rows are
written to RETENTION_STATE_DIR/datasets under a temporary name while being hashed and counted,
validated by analytics.ingest exactly as the CLI validates a file, and only then moved to
`<sha256>.<suffix>` and recorded. A table that fails validation leaves nothing: no file, no row.
The dataset id is the sha256 of the file's hash and the mapping, so the same file with another
mapping is another dataset (the admin page's "change the mapping" makes one). The mapping holds
the columns kept although they look like label leaks (its "keep" entry), so every reload of a
dataset (a training job, a refresh, a promotion's snapshot) keeps them too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import pandas as pd
from sqlalchemy import Engine

from analytics import columns as C
from analytics.config import Settings
from analytics.ingest import read
from analytics.ingest.errors import DataError, FileTooLargeError
from analytics.ingest.validate import Table
from analytics.store import artifacts, lifecycle
from analytics.store.lifecycle import DatasetInfo

DATASETS_DIR = "datasets"
COPY_CHUNK = 1 << 20
_SUFFIXES = (".csv.gz", ".tsv.gz", ".txt.gz", ".csv", ".tsv", ".txt", ".parquet", ".pq")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def folder(state_dir: Path) -> Path:
    return Path(state_dir) / DATASETS_DIR


def suffix_of(name: str) -> str:
    """The table suffix of a file name, or a DataError naming what is accepted."""
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise DataError(
        f"{shown_name(name)}: unsupported file type; upload a .csv, .tsv or .txt table "
        "(optionally .gz) or a .parquet file"
    )


def shown_name(name: str) -> str:
    """A client's file name as we keep and show it: its last part, printable, bounded."""
    last = re.split(r"[\\/]", str(name or ""))[-1]
    return _UNSAFE.sub("_", last).strip()[:200] or "table"


def dataset_id(file_sha256: str, mapping: Mapping[str, str], drop: Sequence[str] = ()) -> str:
    spec = json.dumps({"mapping": dict(sorted(mapping.items())), "drop": sorted(drop)})
    return hashlib.sha256(f"{file_sha256}\n{spec}".encode()).hexdigest()


def report(table: Table, drop: Sequence[str] = ()) -> dict:
    """The load report the admin page and the API show: what was mapped, repaired, coerced and
    left out, and what the table can answer."""
    frame = table.frame
    churned = int(frame[C.CHURNED].sum()) if table.has_label else None
    return {
        "rows": len(frame),
        "source_columns": list(table.source_columns),
        "mapping": dict(table.mapping),
        "features": list(table.features),
        "categorical": list(table.categorical),
        "numeric": list(table.numeric),
        "dropped": dict(table.dropped),
        # Probable label leaks (analytics.leaks): column, why with its figure, kept or left out.
        "leaks": [leak.as_dict() for leak in table.leaks],
        "coercions": {k: int(v) for k, v in table.coercions.items() if v},
        "notes": list(table.notes),
        "drop": list(drop),
        "has_label": table.has_label,
        "has_dates": table.has_dates,
        "has_revenue": table.has_revenue,
        "churned": churned,
        "churn_rate": round(churned / len(frame), 4)
        if churned is not None and len(frame)
        else None,
    }


@contextlib.contextmanager
def _temp_file(directory: Path, suffix: str) -> Iterator[Path]:
    """A temp file in `directory` (same file system: the final move is a rename), removed
    unless the caller moved it away."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{secrets.token_hex(8)}{suffix}"
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _copy(stream: BinaryIO, target: Path, limit: int, name: str) -> str:
    """Copy `stream` to `target` in chunks, hashing; a FileTooLargeError past `limit` bytes."""
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        while chunk := stream.read(COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise FileTooLargeError(
                    f"{name}: the file is larger than {limit / 2**20:.0f} MB "
                    "(RETENTION_MAX_FILE_MB): split it or raise the limit"
                )
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if not size:
        raise DataError(f"{name}: the file is empty")
    return digest.hexdigest()


def _store(
    engine: Engine,
    state_dir: Path,
    tmp: Path,
    file_sha: str,
    suffix: str,
    name: str,
    kind: str,
    settings: Settings,
    mapping: Mapping[str, str] | None,
    drop: Sequence[str],
    actor: str | None,
    address: str | None,
    require_label: bool = True,
) -> tuple[DatasetInfo, Table, bool]:
    mapping = dict(mapping or {})
    table = _validated(tmp, name, settings, mapping, drop, require_label)
    final = folder(state_dir) / f"{file_sha}{suffix}"
    if final.exists():
        tmp.unlink()
    else:
        os.replace(tmp, final)
        artifacts._fsync_dir(final.parent)
    info = DatasetInfo(
        id=dataset_id(file_sha, mapping, drop),
        name=name,
        kind=kind,
        file_sha256=file_sha,
        path=final.name,
        mapping=mapping,
        rows=len(table.frame),
        report=report(table, drop),
    )
    created = lifecycle.add_dataset(engine, info, actor, address)
    return (lifecycle.dataset(engine, info.id) or info), table, created


def _validated(path: Path, name: str, settings, mapping, drop, require_label=True) -> Table:
    """read.load_table of `path`, with errors naming the client's file, not the temp file."""
    try:
        return read.load_table(
            path,
            mapping or None,
            drop=drop,
            require_label=require_label,
            **read.size_limits(settings),
        )
    except DataError as exc:
        raise type(exc)(str(exc).replace(path.name, name)) from None


def add_stream(
    engine: Engine,
    state_dir: Path,
    stream: BinaryIO,
    name: str,
    settings: Settings,
    *,
    mapping: Mapping[str, str] | None = None,
    drop: Sequence[str] = (),
    kind: str = "upload",
    actor: str | None = None,
    address: str | None = None,
    require_label: bool = True,
) -> tuple[DatasetInfo, Table, bool]:
    """Validate and store a table read from `stream`: (dataset, its table, newly created).
    require_label=False stores a table whose label was not recognised (its report says so) for
    an admin to map one; a table to train now (start-up, refresh) needs it."""
    name = shown_name(name)
    suffix = suffix_of(name)
    with _temp_file(folder(state_dir), suffix) as tmp:
        file_sha = _copy(stream, tmp, settings.max_file_bytes, name)
        return _store(
            engine, state_dir, tmp, file_sha, suffix, name, kind, settings, mapping, drop,
            actor, address, require_label,
        )  # fmt: skip


def add_path(
    engine: Engine,
    state_dir: Path,
    path: Path,
    settings: Settings,
    *,
    mapping: Mapping[str, str] | None = None,
    drop: Sequence[str] = (),
    kind: str = "file",
    actor: str | None = None,
) -> tuple[DatasetInfo, Table, bool]:
    """add_stream of a file on this machine (RETENTION_DATA, `python -m analytics datasets add`)."""
    path = Path(path)
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with stream:
        return add_stream(
            engine, state_dir, stream, path.name, settings, mapping=mapping, drop=drop,
            kind=kind, actor=actor,
        )  # fmt: skip


def add_frame(
    engine: Engine,
    state_dir: Path,
    raw: pd.DataFrame,
    name: str,
    settings: Settings,
    *,
    mapping: Mapping[str, str] | None = None,
    kind: str = "database",
    actor: str | None = None,
    address: str | None = None,
    require_label: bool = True,
) -> tuple[DatasetInfo, Table, bool]:
    """Store rows read from a database as a Parquet snapshot (a dataset never changes under
    its id, even when the source table does); the hash is of the rows, not of the file's bytes,
    so the same rows read twice are the same dataset."""
    name = shown_name(name)
    with _temp_file(folder(state_dir), ".parquet") as tmp:
        raw.to_parquet(tmp, index=False)
        return _store(
            engine, state_dir, tmp, artifacts.frame_hash(raw), ".parquet", name, kind, settings,
            mapping, (), actor, address, require_label,
        )  # fmt: skip


def remap(
    engine: Engine,
    state_dir: Path,
    source: DatasetInfo,
    mapping: Mapping[str, str],
    settings: Settings,
    *,
    actor: str | None = None,
    address: str | None = None,
    require_label: bool = True,
) -> tuple[DatasetInfo, Table, bool]:
    """The same stored file with another mapping: a new dataset (the old one stays)."""
    stored = folder(state_dir) / source.path
    suffix = suffix_of(source.path)
    with _temp_file(folder(state_dir), suffix) as tmp:
        # A copy, not a link: the temp file is moved or removed, never the stored one.
        with stored.open("rb") as src:
            _copy(src, tmp, max(settings.max_file_bytes, stored.stat().st_size), source.name)
        return _store(
            engine, state_dir, tmp, source.file_sha256, suffix, source.name, source.kind,
            settings, mapping, source.report.get("drop", []), actor, address, require_label,
        )  # fmt: skip


def open_table(info: DatasetInfo, state_dir: Path, settings: Settings) -> Table:
    """The dataset's validated table, read from its stored file by the same loader."""
    path = folder(state_dir) / info.path
    if not path.is_file():
        raise DataError(f"dataset {info.id[:12]} ({info.name}): its stored file {path} is missing")
    return _validated(
        path, info.name, settings, info.mapping, info.report.get("drop", []),
        require_label=info.report.get("has_label", True),
    )  # fmt: skip


STALE_TEMP_SECONDS = 3600


def remove_stale_temp(state_dir: Path) -> list[str]:
    """Temp files a killed upload left: untouched for an hour, no upload is still writing them
    (a live one writes a chunk at least every few seconds)."""
    directory = folder(state_dir)
    removed = []
    if directory.is_dir():
        before = time.time() - STALE_TEMP_SECONDS
        for entry in directory.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < before:
                    entry.unlink()
                    removed.append(entry.name)
    return removed
