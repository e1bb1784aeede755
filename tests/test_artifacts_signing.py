"""Model versions are signed with this installation's key (issue 12, item 3): a pickle or a
scored table this installation did not write is refused before it is unpickled or read, even
when whoever rewrote it also recomputed every checksum in model.json."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import multiprocessing
import os
import pathlib
import stat

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from analytics import workflow
from analytics.config import DEMO_DATA, settings_from_env
from analytics.store import artifacts
from analytics.store.artifacts import ArtifactError

KEY = hashlib.sha256(b"this installation").digest()
OTHER_KEY = hashlib.sha256(b"another installation").digest()
SECRET = "a-secret-key-of-at-least-thirty-two-characters"
NOT_SIGNED = r"is not signed by this installation .*: refusing to load it; .*retrain"


def save(models, version="v1", key=KEY):
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    objects = {"pipeline": LogisticRegression(random_state=0).fit(X, [0, 0, 1, 1])}
    tables = {
        "scored": pd.DataFrame({"customer_id": ["a", "b", "c"], "p_churn": [0.1, 0.5, 0.9]}),
        "importance": pd.DataFrame({"feature": ["x"], "drop": [0.2]}),
    }
    meta = {"features": ["x"], "roc_auc": np.float64(0.75), "curve": np.array([0.5, np.nan])}
    return artifacts.save_model_version(models, version, objects, meta, tables, key=key)


def sidecar(folder) -> dict:
    return json.loads((folder / "model.json").read_text())


def write_sidecar(folder, meta: dict) -> None:
    (folder / "model.json").write_text(json.dumps(meta, indent=2))


def recompute_checksums(folder) -> None:
    """What someone who can write the models directory but has no key can do."""
    meta = sidecar(folder)
    for name in meta["files"]:
        meta["files"][name] = artifacts.file_sha256(folder / name)
    meta["pipeline_sha256"] = meta["files"]["pipeline.joblib"]
    write_sidecar(folder, meta)


def forbid_reading(monkeypatch) -> list[str]:
    """From now on, unpickling or reading a parquet file fails the test (and is recorded)."""
    calls = []

    def refuse(name):
        return lambda *a, **k: calls.append(name) or pytest.fail(f"{name} was called")

    monkeypatch.setattr(joblib, "load", refuse("joblib.load"))
    monkeypatch.setattr(pd, "read_parquet", refuse("pd.read_parquet"))
    return calls


class MakesMarker:
    """A pickle that creates a file when it is unpickled."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_the_right_key_loads_what_it_signed(tmp_path):
    folder = save(tmp_path)
    meta = sidecar(folder)
    assert set(meta["files"]) == {"pipeline.joblib", "scored.parquet", "importance.parquet"}
    for name, digest in meta["files"].items():
        assert artifacts.file_sha256(folder / name) == digest
    # The documented signature: HMAC-SHA256 over the canonical JSON of the rest of the sidecar.
    unsigned = {k: v for k, v in meta.items() if k != "signature"}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    assert meta["signature"] == hmac.new(KEY, canonical, hashlib.sha256).hexdigest()

    loaded = artifacts.load_model_version(tmp_path, key=KEY)
    assert loaded.version == "v1"
    assert loaded.objects["pipeline"].predict([[3.0]])[0] == 1
    assert loaded.tables["scored"]["p_churn"].tolist() == [0.1, 0.5, 0.9]
    assert loaded.meta["curve"] == [0.5, None]


def test_a_rewritten_pipeline_with_recomputed_checksums_is_never_unpickled(tmp_path):
    payload = tmp_path / "payload.joblib"
    joblib.dump(MakesMarker(tmp_path / "proof"), payload)
    joblib.load(payload)  # the payload is live: unpickling it makes its file
    assert (tmp_path / "proof").exists()

    marker = tmp_path / "marker"
    folder = save(tmp_path / "models")
    joblib.dump({"pipeline": MakesMarker(marker)}, folder / "pipeline.joblib")
    recompute_checksums(folder)
    with pytest.raises(ArtifactError, match=NOT_SIGNED) as exc:
        artifacts.load_model_version(tmp_path / "models", key=KEY)
    assert "does not match this installation's key" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not marker.exists()
    # Nor through the workflow that the server and the CLI call.
    with pytest.raises(ArtifactError, match=NOT_SIGNED):
        workflow.load(tmp_path / "models", key=KEY)
    assert not marker.exists()


def test_a_rewritten_pipeline_alone_is_refused_before_unpickling(tmp_path, monkeypatch):
    folder = save(tmp_path)
    joblib.dump({"pipeline": MakesMarker(tmp_path / "marker")}, folder / "pipeline.joblib")
    no_reading = forbid_reading(monkeypatch)
    with pytest.raises(ArtifactError, match=r"pipeline\.joblib was changed after model version"):
        artifacts.load_model_version(tmp_path, key=KEY)
    assert no_reading == []
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("recompute", [False, True], ids=["file only", "and its checksums"])
def test_a_rewritten_scored_table_is_refused_before_it_is_read(tmp_path, monkeypatch, recompute):
    folder = save(tmp_path)
    scored = pd.read_parquet(folder / "scored.parquet")
    scored.loc[scored["customer_id"] == "c", "p_churn"] = 0.01  # one customer made safe
    scored.to_parquet(folder / "scored.parquet", index=False)
    if recompute:
        recompute_checksums(folder)
        expected = NOT_SIGNED
    else:
        expected = r"scored\.parquet was changed after model version v1 was signed"
    no_reading = forbid_reading(monkeypatch)
    with pytest.raises(ArtifactError, match=expected):
        artifacts.load_model_version(tmp_path, key=KEY)
    assert no_reading == []


def test_nothing_is_read_when_the_signature_fails(tmp_path, monkeypatch):
    save(tmp_path)
    no_reading = forbid_reading(monkeypatch)
    with pytest.raises(ArtifactError, match=NOT_SIGNED):
        artifacts.load_model_version(tmp_path, key=OTHER_KEY)
    assert no_reading == []


def test_a_version_signed_with_another_key_is_refused(tmp_path):
    save(tmp_path, key=OTHER_KEY)
    with pytest.raises(ArtifactError, match=NOT_SIGNED) as exc:
        artifacts.load_model_version(tmp_path, key=KEY)
    assert "RETENTION_SECRET_KEY" in str(exc.value)
    assert "python -m analytics train" in str(exc.value)
    assert artifacts.load_model_version(tmp_path, key=OTHER_KEY).version == "v1"


@pytest.mark.parametrize("removed", [("signature",), ("signature", "files")])
def test_an_unsigned_version_is_refused(tmp_path, removed):
    """("signature", "files"): a version saved before versions were signed."""
    folder = save(tmp_path)
    write_sidecar(folder, {k: v for k, v in sidecar(folder).items() if k not in removed})
    with pytest.raises(ArtifactError, match=NOT_SIGNED + ".*") as exc:
        artifacts.load_model_version(tmp_path, key=KEY)
    assert "has no signature" in str(exc.value)


def test_a_signed_version_copied_under_another_name_is_refused(tmp_path):
    folder = save(tmp_path)
    folder.rename(tmp_path / "v2")
    with pytest.raises(ArtifactError, match=r"signed as version 'v1'"):
        artifacts.load_model_version(tmp_path, "v2", key=KEY)


def test_an_unsigned_version_goes_to_the_automatic_retrain(demo_workspace, tmp_path):
    """load_or_train treats it as any unusable model: the reason goes to before_retrain (the
    server logs it and retrains, or refuses with RETENTION_RETRAIN=0)."""
    version = workflow.save(dataclasses.replace(demo_workspace.model), tmp_path, key=KEY)
    assert workflow.load(tmp_path, key=KEY).version == version
    folder = tmp_path / version
    write_sidecar(folder, {k: v for k, v in sidecar(folder).items() if k != "signature"})
    reasons = []

    class Refused(Exception):
        pass

    def before_retrain(reason):
        reasons.append(reason)
        raise Refused

    settings = settings_from_env(env={})
    with pytest.raises(Refused):
        workflow.load_or_train(
            DEMO_DATA, settings, models_dir=tmp_path, key=KEY, before_retrain=before_retrain
        )
    (reason,) = reasons
    assert "is not signed by this installation" in reason
    assert "python -m analytics train" not in reason  # the caller retrains by itself
    with pytest.raises(ArtifactError, match=NOT_SIGNED):
        workflow.load_or_train(DEMO_DATA, settings, models_dir=tmp_path, key=KEY, retrain=False)


def test_a_key_that_is_not_bytes_is_a_programming_error(tmp_path):
    with pytest.raises(TypeError, match="signing key"):
        save(tmp_path, key=SECRET)
    assert not (tmp_path / "v1").exists()


# -- the installation's key ----------------------------------------------------------------


def test_without_a_secret_the_key_is_made_once_private_and_kept(tmp_path):
    state = tmp_path / "state"  # not there yet: made, as the state database's folder is
    key = artifacts.signing_key(state, None)
    path = state / artifacts.KEY_FILE
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.hex() + "\n"
    made = path.stat()
    assert artifacts.signing_key(state, None) == key
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    assert sorted(p.name for p in state.iterdir()) == [artifacts.KEY_FILE]  # no temp file left
    assert artifacts.signing_key(tmp_path / "elsewhere", None) != key


def test_a_damaged_key_file_is_one_line_saying_what_to_do(tmp_path):
    (tmp_path / artifacts.KEY_FILE).write_text("not hex\n")
    with pytest.raises(ArtifactError, match=r"does not hold a model-signing key .*retrain"):
        artifacts.signing_key(tmp_path, None)


def _make_key(state_dir, barrier, results) -> None:
    barrier.wait()  # every process asks at the same instant
    results.put(artifacts.signing_key(state_dir, None).hex())


def test_processes_starting_at_once_agree_on_one_key(tmp_path):
    context = multiprocessing.get_context("fork")  # the test's imports, already made
    for attempt in range(10):
        state = tmp_path / f"state-{attempt}"
        barrier, results = context.Barrier(6), context.Queue()
        processes = [
            context.Process(target=_make_key, args=(state, barrier, results)) for _ in range(6)
        ]
        for p in processes:
            p.start()
        keys = [results.get(timeout=60) for _ in processes]
        for p in processes:
            p.join(60)
            assert p.exitcode == 0
        assert set(keys) == {(state / artifacts.KEY_FILE).read_text().strip()}
        assert os.listdir(state) == [artifacts.KEY_FILE]


def test_with_a_secret_the_key_is_derived_and_no_file_is_made(tmp_path):
    key = artifacts.signing_key(tmp_path, SECRET)
    assert len(key) == 32
    secret = SECRET.encode()
    # Not the secret, nor what a naive derivation gives: the session key and this one differ.
    assert key not in (secret, secret[:32], hashlib.sha256(secret).digest())
    assert artifacts.signing_key(tmp_path / "other", SECRET) == key  # every host shares it
    assert artifacts.signing_key(tmp_path, SECRET + "x") != key
    assert list(tmp_path.iterdir()) == []


def test_installation_key_reads_the_settings(tmp_path):
    env = {"RETENTION_STATE_DIR": str(tmp_path)}
    assert artifacts.installation_key(env) == artifacts.signing_key(tmp_path, None)
    env["RETENTION_SECRET_KEY"] = SECRET
    assert artifacts.installation_key(env) == artifacts.signing_key(tmp_path, SECRET)
