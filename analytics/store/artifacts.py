"""What persists on disk: atomic writes, output tables, hashes and model versions.

Writes are atomic: a temp file in the target directory, fsync, os.replace; a failed write
leaves nothing. Model versions are directories written whole then renamed, with a JSON sidecar
that lists every file's sha256 and is signed (HMAC-SHA256) with this installation's key: a
version is loaded only when the signature and every file check, before anything is unpickled or
read, so whoever can write the models directory cannot make this installation run their pickle
or serve their scores. A save that is killed leaves its temp folder behind: the next save or load
removes it once no live process holds it (a lock the writer keeps while writing) and nothing has
touched it for a while.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import io
import json
import logging
import os
import platform
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.config import ServeSettings, setting_from_env
from analytics.ingest.errors import DataError
from analytics.ingest.read import CSV_SUFFIXES, PARQUET_SUFFIXES

MODEL_FORMAT = "retention-dashboard-model/1"
PIPELINE_FILE = "pipeline.joblib"
META_FILE = "model.json"
CURRENT_FILE = "CURRENT"
TRAIN_HINT = "run `python -m analytics train`"
KEY_FILE = "artifact-signing.key"
KEY_BYTES = 32
# Derives the signing key from RETENTION_SECRET_KEY: never the secret that signs sessions itself.
_KEY_LABEL = b"retention-dashboard/model-signing/1"
# Why a model signed elsewhere is refused, said in every such refusal (before TRAIN_HINT, which
# ArtifactError.reason drops when the caller retrains by itself).
_SIGNED_HINT = (
    "a model is loaded only with the key that signed it: after a new RETENTION_SECRET_KEY, or "
    "for models copied from another installation, retrain"
)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# What a killed save leaves: save_model_version's folder and _atomic_path's temp CURRENT file.
_TEMP_VERSION = re.compile(r"\.tmp-[A-Za-z0-9][A-Za-z0-9._-]{0,99}-[0-9a-f]{8}")
_TEMP_CURRENT = re.compile(r"\.tmp-CURRENT-[A-Za-z0-9_]{1,32}")
# Untouched this long and not locked, a temp folder is an interrupted save. The age also covers
# the instant between the writer creating its folder and locking it.
STALE_AFTER_SECONDS = 120

try:
    import fcntl
except ImportError:  # Windows: a stale folder is known by its age alone
    fcntl = None

log = logging.getLogger(__name__)


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


def write_table(df: pd.DataFrame, path: str | os.PathLike, *, line_end: str = "\n") -> None:
    """Write df as CSV (.csv, .csv.gz) or Parquet by suffix, atomically, without the index.

    line_end="\r\n" (RFC 4180) also quotes cells holding a bare carriage return, which the
    csv writer leaves raw with "\n" line ends: exports need that (analytics.export)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        atomic_write_with(path, lambda tmp: df.to_parquet(tmp, index=False))
    elif name.endswith(tuple(s + ".gz" for s in CSV_SUFFIXES)):
        # Compress in memory with a fixed mtime and no file name in the header, so the same frame
        # always gives the same bytes (pandas would store the random temp file's name).
        text = df.to_csv(index=False, lineterminator=line_end)
        atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
    elif name.endswith(CSV_SUFFIXES):
        atomic_write_with(path, lambda tmp: df.to_csv(tmp, index=False, lineterminator=line_end))
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
# The installation's signing key.


def signing_key(state_dir: Path, secret_key: str | None) -> bytes:
    """The key this installation signs and checks its model versions with.

    With RETENTION_SECRET_KEY: derived from it (HMAC-SHA256 under a fixed label), so every
    worker and host sharing the secret shares the key, and the key is not the secret that signs
    sessions. Without: 32 random bytes kept in <state_dir>/artifact-signing.key (mode 0600),
    made once; processes starting at once all end up with the first one written.
    """
    if secret_key:
        return hmac.new(secret_key.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
    path = Path(state_dir) / KEY_FILE
    try:
        try:
            return _read_key(path)
        except FileNotFoundError:
            _create_key(path)
        return _read_key(path)
    except OSError as exc:
        raise ArtifactError(
            f"the model-signing key {path} cannot be read or created ({exc.strerror or exc}): "
            "make RETENTION_STATE_DIR writable by this user or set RETENTION_SECRET_KEY"
        ) from None


def installation_key(env: Mapping[str, str] | None = None) -> bytes:
    """signing_key from RETENTION_STATE_DIR and RETENTION_SECRET_KEY in env (default
    os.environ), for the command line and other callers without ServeSettings at hand."""
    return signing_key(
        setting_from_env(ServeSettings, "state_dir", env),
        setting_from_env(ServeSettings, "secret_key", env),
    )


def _create_key(path: Path) -> None:
    """Write a new key to a private temp file, then link it into place: like O_EXCL the link
    fails when the key exists (another process won: its key stays), and unlike writing into an
    O_EXCL file no reader ever sees it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{KEY_FILE}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES).hex().encode("ascii") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            _fsync_dir(path.parent)
            log.info("made a new model-signing key in %s (no RETENTION_SECRET_KEY)", path)
    finally:
        os.unlink(tmp)


def _read_key(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ArtifactError(
            f"{path} does not hold a model-signing key ({KEY_BYTES * 2} hex digits): restore it "
            "from a backup, or remove it and retrain (models signed with the old key are refused)"
        )
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users: `chmod 600 %s`", path, path)
    return key


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes) or len(key) < 16:
        raise TypeError("key must be the installation's signing key: artifacts.signing_key(...)")
    return key


def _signature(sidecar: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of the sidecar without its signature, as canonical JSON."""
    unsigned = {k: v for k, v in sidecar.items() if k != "signature"}
    # NaN is allowed so a hostile sidecar holding one fails to match instead of raising: what
    # this code signs never holds one (_plain makes it null).
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


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
    import lightgbm
    import sklearn

    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "lightgbm": lightgbm.__version__,
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


def check_writable(models_dir: str | os.PathLike) -> None:
    """Refuse, before any training, a models directory where no model could be saved."""
    models_dir = Path(models_dir)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=models_dir):  # unnamed where the OS allows: no trace
            pass
    except OSError as exc:
        raise ArtifactError(
            f"the models directory {models_dir} is not writable ({exc.strerror or exc}): make it "
            "writable or choose another with --models-dir or RETENTION_MODELS_DIR"
        ) from None


@contextlib.contextmanager
def _locked(folder: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on `folder` (True when held). The OS releases it when its process dies,
    however it dies, so an unlocked temp folder is no live writer's."""
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # removed meanwhile (by another process cleaning up)
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def _last_touched(path: Path) -> float:
    """Latest modification time of a file, or of a folder and the files in it (a file being
    written is modified as it grows)."""
    if not path.is_dir():
        return path.stat().st_mtime
    with os.scandir(path) as entries:
        times = [e.stat(follow_symlinks=False).st_mtime for e in entries]
    return max([path.stat().st_mtime, *times])


def remove_stale_temp(models_dir: str | os.PathLike) -> list[str]:
    """Remove what interrupted saves left in models_dir (temp version folders no live process
    holds, temp CURRENT files), once untouched for STALE_AFTER_SECONDS; returns their names.
    Two processes starting at once are safe: a folder is removed only under its lock."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    removed = []
    before = time.time() - STALE_AFTER_SECONDS
    for entry in sorted(models_dir.iterdir()):
        folder = _TEMP_VERSION.fullmatch(entry.name) is not None
        if not folder and not _TEMP_CURRENT.fullmatch(entry.name):
            continue
        try:
            if entry.is_symlink() or _last_touched(entry) > before:
                continue
            if folder and entry.is_dir():
                with _locked(entry, wait=False) as held:
                    if not held:
                        continue
                    shutil.rmtree(entry)
            elif not folder and entry.is_file():
                entry.unlink()
            else:
                continue
        except (FileNotFoundError, NotADirectoryError):
            continue  # another process removed it first
        except OSError as exc:  # e.g. a read-only models directory: nothing to do about it here
            log.warning("could not remove %s left by an interrupted save: %s", entry, exc)
            continue
        log.warning("removed %s, left by an interrupted save", entry)
        removed.append(entry.name)
    return removed


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
    *,
    key: bytes,
) -> Path:
    """Write models_dir/<version> whole (or not at all) and point models_dir/CURRENT at it.

    Files: pipeline.joblib (joblib.dump of objects), model.json (meta plus format, library
    versions, created_at, each file's sha256 and the signature with `key`) and <name>.parquet
    per table. Versions are immutable.
    """
    _check_key(key)
    models_dir = Path(models_dir)
    _check_name(version, "model version")
    for name in tables:
        _check_name(name, "table name")
    final = models_dir / version
    if final.exists():
        raise ArtifactError(f"model version {final} already exists; choose a new version name")
    models_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(models_dir)
    tmp = models_dir / f".tmp-{version}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        with _locked(tmp):  # held until renamed: a cleaner never takes a save in progress
            _write_version(tmp, version, objects, meta, tables, key)
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(models_dir)
    atomic_write_text(models_dir / CURRENT_FILE, version + "\n")
    return final


def _write_version(tmp: Path, version: str, objects, meta, tables, key: bytes) -> None:
    import joblib

    pipeline = tmp / PIPELINE_FILE
    joblib.dump(objects, pipeline)
    for name, table in tables.items():
        table.to_parquet(tmp / f"{name}.parquet", index=False)
    files = {PIPELINE_FILE: file_sha256(pipeline)}
    files.update({f"{name}.parquet": file_sha256(tmp / f"{name}.parquet") for name in tables})
    sidecar = {
        **{k: v for k, v in meta.items() if k != "signature"},
        "format": MODEL_FORMAT,
        "version": version,
        "pipeline_sha256": files[PIPELINE_FILE],  # also in files; kept for older readers
        "files": files,
        "libraries": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": sorted(tables),
    }
    # Signed as it will read back: the JSON values, not the numpy ones meta may hold.
    sidecar = _plain(sidecar)
    sidecar["signature"] = _signature(sidecar, key)
    text = json.dumps(sidecar, indent=2, allow_nan=False)
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


def _check_libraries(file: Path, meta: Mapping[str, Any]) -> None:
    saved = meta.get("libraries") or {}
    installed = library_versions()
    # scikit-learn pickles are only safe within one minor version; numpy/pandas across a major
    checks = (("sklearn", "scikit-learn", 2), ("numpy", "numpy", 1), ("pandas", "pandas", 1))
    if "lightgbm" in saved:  # a LightGBM booster's pickle, like scikit-learn's, within a minor
        checks += (("lightgbm", "LightGBM", 2),)
    for key, label, parts in checks:
        trained = str(saved.get(key, "unknown"))
        if trained.split(".")[:parts] != installed[key].split(".")[:parts]:
            raise ArtifactError(
                f"{file} was trained with {label} {trained}, installed {installed[key]}: "
                f"retrain with `python -m analytics train`"
            )


def load_model_version(
    models_dir: str | os.PathLike, version: str | None = None, *, key: bytes
) -> LoadedModel:
    """Load models_dir/<version> (default: the one named in CURRENT), checking it first.

    Nothing is unpickled or read unless model.json is ours and signed with `key`, every file
    matches the sha256 it signed, and the library versions are compatible. Each file is read
    once into memory, checked, then decoded from those bytes: nothing is swapped in between.
    Every refusal is an ArtifactError saying what to run.
    """
    _check_key(key)
    models_dir = Path(models_dir)
    remove_stale_temp(models_dir)
    version = _current_version(models_dir) if version is None else version
    _check_name(version, "model version")
    folder = models_dir / version
    if not folder.is_dir():
        available = ", ".join(list_model_versions(models_dir)) or "none"
        raise ArtifactError(
            f"no model version '{version}' in {models_dir} (available: {available}): {TRAIN_HINT}"
        )
    meta = _read_meta(folder)
    _check_signature(folder, version, meta, key)
    _check_libraries(folder / META_FILE, meta)
    names = [f"{_check_name(name, 'table name')}.parquet" for name in meta.get("tables", [])]
    blobs = {name: _signed_bytes(folder, meta, name) for name in [PIPELINE_FILE, *names]}
    objects = _unpickle(folder / PIPELINE_FILE, blobs.pop(PIPELINE_FILE))
    tables = {
        name.removesuffix(".parquet"): _read_model_table(folder / name, blobs.pop(name))
        for name in names
    }
    return LoadedModel(version=version, objects=objects, meta=meta, tables=tables, path=folder)


def _not_signed(folder: Path, why: str) -> ArtifactError:
    return ArtifactError(
        f"model version {folder} is not signed by this installation ({why}): refusing to load "
        f"it; {_SIGNED_HINT}: {TRAIN_HINT}"
    )


def _check_signature(folder: Path, version: str, meta: Mapping[str, Any], key: bytes) -> None:
    signature = meta.get("signature")
    if not isinstance(signature, str) or not signature:
        raise _not_signed(folder, f"{META_FILE} has no signature: saved before models were signed")
    if not hmac.compare_digest(signature, _signature(meta, key)):
        raise _not_signed(
            folder,
            f"the signature in {META_FILE} does not match this installation's key: signed "
            f"elsewhere or with another key, or {META_FILE} was edited",
        )
    if meta.get("version") != version:  # a signed version copied under another name
        raise _not_signed(folder, f"it was signed as version {meta.get('version')!r}")
    if not isinstance(meta.get("files"), dict):
        raise _not_signed(folder, f"{META_FILE} lists no files")


def _signed_bytes(folder: Path, meta: Mapping[str, Any], name: str) -> bytes:
    """The file's bytes, once they match the sha256 the signed sidecar lists for it."""
    expected = meta["files"].get(name)
    if not isinstance(expected, str):
        raise _not_signed(folder, f"{name} is not among the files it signed")
    file = folder / name
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{file} is missing (incomplete model): {TRAIN_HINT}") from None
    except OSError as exc:
        raise ArtifactError(f"{file} cannot be read ({exc}): {TRAIN_HINT}") from None
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected):
        raise ArtifactError(
            f"{file} was changed after model version {folder.name} was signed (its "
            f"sha256 differs from the signed one in {META_FILE}): refusing to load it; "
            f"{_SIGNED_HINT}: {TRAIN_HINT}"
        )
    return data


def _unpickle(pipeline: Path, data: bytes) -> dict[str, Any]:
    import joblib

    try:
        objects = joblib.load(io.BytesIO(data))
    except Exception as exc:  # unpickling can raise anything; the bytes were signed here
        raise ArtifactError(
            f"{pipeline} could not be loaded ({type(exc).__name__}: {exc}): {TRAIN_HINT}"
        ) from None
    if not isinstance(objects, dict):
        raise ArtifactError(f"{pipeline} does not hold a dict of model objects: {TRAIN_HINT}")
    return objects


def _read_model_table(file: Path, data: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{file} cannot be read ({exc}): {TRAIN_HINT}") from None
