"""The data and model lifecycle on SQLite and on a real PostgreSQL: datasets stored only when
valid, one job per dataset, atomic claims, jobs ending once, stale jobs failed, promotion and
rollback audited, refresh deciding both ways, pruning that spares the live and previous
versions, progress that only goes forward, and upserts applied by the live model."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from analytics import columns as C
from analytics import datasets, jobs, versions, workflow
from analytics.config import settings_from_env
from analytics.ingest.errors import DataError
from analytics.store import accounts, db, lifecycle
from analytics.store.tables import Job
from tests.support import MODEL_KEY

SETTINGS = settings_from_env(env={})


@pytest.fixture
def engine(empty_state):
    db.upgrade(empty_state)
    return empty_state


def _table_bytes(rows: int = 60) -> bytes:
    lines = ["customer_id,tenure,monthly_charges,plan,churn"]
    for i in range(rows):
        lines.append(
            f"C{i:04d},{1 + i % 40},{20 + i % 30}.5,{'ab'[i % 2]},{'Yes' if i % 3 else 'No'}"
        )
    return ("\n".join(lines) + "\n").encode()


def _add(engine, state: Path, data: bytes, name="customers.csv", mapping=None):
    return datasets.add_stream(
        engine, state, io.BytesIO(data), name, SETTINGS, mapping=mapping, actor="ada"
    )


def _stored(state: Path) -> list[str]:
    folder = datasets.folder(state)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_valid_table_is_stored_once_by_content_and_audited(engine, tmp_path):
    state = tmp_path / "state-files"
    info, table, created = _add(engine, state, _table_bytes())
    assert created
    assert info.rows == 60 == len(table.frame)
    assert info.report["has_label"]
    assert info.report["mapping"][C.CHURNED] == "churn"
    again, _, created_again = _add(engine, state, _table_bytes(), name="renamed.csv")
    assert not created_again
    assert again.id == info.id
    assert len(_stored(state)) == 1  # one file, no temp left
    other, _, _ = _add(engine, state, _table_bytes(), mapping={"churned": "churn"})
    assert other.id != info.id
    assert other.file_sha256 == info.file_sha256
    assert [e["action"] for e in accounts.events(engine, 10)].count("dataset.add") == 2


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (b"customer_id,churn\nA,1\n\x00\x00\x00\x00\n", "nul.csv", "nul.csv"),
        (_table_bytes(10) + b"<<<<<<< HEAD\n", "merge.csv", "merge-conflict"),
        (b"", "empty.csv", "empty"),
        (b"PK\x03\x04rest", "book.csv", "ZIP"),
        (_table_bytes(), "table.xlsx", "unsupported file type"),
    ],
)
def test_a_broken_table_stores_nothing(engine, tmp_path, data, name, says):
    state = tmp_path / "state-files"
    with pytest.raises(DataError, match=says):
        _add(engine, state, data, name=name)
    assert _stored(state) == []
    assert lifecycle.datasets(engine) == []


def test_a_file_over_the_limit_is_refused_while_streaming(engine, tmp_path):
    small = settings_from_env(env={"RETENTION_MAX_FILE_MB": "0.01"})
    with pytest.raises(DataError, match="larger than"):
        datasets.add_stream(
            engine, tmp_path, io.BytesIO(_table_bytes(2000)), "big.csv", small, actor="ada"
        )
    assert _stored(tmp_path) == []


def test_one_job_per_dataset_and_claims_are_atomic(engine, tmp_path):
    info, _, _ = _add(engine, tmp_path, _table_bytes())
    first = lifecycle.enqueue(engine, info.id, "ada")
    with pytest.raises(lifecycle.LifecycleError, match="already queued or running") as exc:
        lifecycle.enqueue(engine, info.id, "bob")
    assert exc.value.status == 409
    claims = []
    threads = [
        threading.Thread(target=lambda i=i: claims.append(lifecycle.claim(engine, f"r{i}")))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    assert won[0].id == first.id
    assert won[0].state == lifecycle.RUNNING
    assert lifecycle.finish(engine, first.id, lifecycle.DONE, result={"model_version": "v"})
    assert not lifecycle.finish(engine, first.id, lifecycle.FAILED, error="late")  # ended once
    assert lifecycle.job(engine, first.id).state == lifecycle.DONE
    second = lifecycle.enqueue(engine, info.id, "ada")  # the dataset is free again
    cancelled = lifecycle.request_cancel(engine, second.id, "ada")
    assert cancelled.state == lifecycle.CANCELLED


def test_a_job_whose_heartbeat_stops_fails_with_its_reason(engine, tmp_path):
    info, _, _ = _add(engine, tmp_path, _table_bytes())
    job = lifecycle.enqueue(engine, info.id, "ada", runner="host:1")
    with Session(engine) as session:
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(heartbeat_at=accounts.now() - timedelta(seconds=120))
        )
        session.commit()
    assert lifecycle.fail_stale(engine, 60) == [job.id]
    failed = lifecycle.job(engine, job.id)
    assert failed.state == lifecycle.FAILED
    assert "no heartbeat" in failed.error
    assert lifecycle.active_job(engine, info.id) is None


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Two model versions of the same 1,875 customers (every 40th of the demo's history, so its
    window base has churners; trained once for both databases)."""
    models = tmp_path_factory.mktemp("models")
    demo = Path(__file__).resolve().parents[1] / "data" / "demo_customers.csv.gz"
    sample = pd.read_csv(demo).iloc[::40].to_csv(index=False).encode()
    tables = [sample, sample.replace(b"\n", b"\r\n")]  # two files, the same customers
    made = []
    for i, data in enumerate(tables):
        state = tmp_path_factory.mktemp(f"state{i}")
        _, table, _ = datasets.add_stream(
            db.memory_state(), state, io.BytesIO(data), "t.csv", SETTINGS
        )
        model = workflow.train(table, SETTINGS, source="t.csv")
        made.append((data, workflow.save(model, models, key=MODEL_KEY), model.meta))
    return models, made


def test_promote_rollback_refresh_decisions_and_pruning(engine, tmp_path, two_versions):
    models, made = two_versions
    names = []
    for i, (data, version, meta) in enumerate(made):
        info, _, _ = _add(engine, tmp_path, data, name=f"{i}.csv")
        lifecycle.add_version(engine, version, info.id, versions.version_metrics(meta), "ada")
        names.append(version)
    v1, v2 = names
    first = lifecycle.promote(engine, v1, "ada")
    assert (first.version, first.previous, first.serial) == (v1, None, 1)
    second = lifecycle.promote(engine, v2, "ada")
    assert (second.version, second.previous) == (v2, v1)
    back = lifecycle.promote(engine, v1, "ada")
    assert (back.version, back.previous, back.serial) == (v1, v2, 3)
    actions = [e["action"] for e in accounts.events(engine, 3)]
    assert actions[:2] == ["model.rollback", "model.promote"]
    with pytest.raises(lifecycle.LifecycleError, match="live already"):
        lifecycle.promote(engine, v1, "ada")

    live_auc = lifecycle.version(engine, v1).metrics["roc_auc"]
    worse = {"roc_auc": live_auc - 0.05}
    kept = jobs.promotion_decision(engine, worse, jobs.PROMOTE_IF_NOT_WORSE, 0.01, "")
    assert not kept.promote
    assert "worse than the live" in kept.reason
    taken = jobs.promotion_decision(engine, worse, jobs.PROMOTE_IF_NOT_WORSE, 0.1, "")
    assert taken.promote
    assert "within the margin" in taken.reason

    # Band changes between two versions of the same customers.
    compared = versions.compare(engine, models, MODEL_KEY, v2, None)
    assert compared["against"]["version"] == v1
    assert compared["band_changes"]["common_customers"] > 0

    assert versions.prune(engine, models, keep=1) == []  # live and previous are spared
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) >= sorted(
        [v1, v2]
    )


def test_progress_only_goes_forward_through_a_training():
    tracker = jobs.ProgressTracker()
    messages = [
        "reading a.csv (3,000 rows)",
        "validated 3,000 rows: 12 features",
        "segmenting customers (k-means, k by silhouette)",
        "cross-validating 2 candidates: logistic, boosting",
        *[f"cross-validating logistic (fold {k}/5)" for k in range(1, 6)],
        *[f"cross-validating boosting (fold {k}/5)" for k in range(1, 6)],
        "choosing the threshold on boosting's out-of-fold scores",
        "refitting boosting on all 3,000 rows",
        *[f"permutation importance (fold {k}/5)" for k in range(1, 6)],
        "explaining out-of-fold scores (top three drivers per customer)",
        "saving the model version",
    ]
    values = [tracker.update(m) for m in messages]
    assert values == sorted(values)
    assert values[-1] < 1.0
    assert len(set(values)) >= 15
    # Both candidates' folds spread over the cross-validation share, in order.
    assert values[4] < values[9] < values[14]


def test_upserts_change_a_known_customer_and_add_a_new_one(demo_workspace):
    ws = demo_workspace
    model, scored = ws.model, ws.scored
    first = scored.iloc[0]
    features = model.meta["features"]
    changed = {f: first[f] for f in features}
    changed[C.TENURE] = 0 if C.TENURE in changed else changed.get(C.TENURE)
    fresh = {f: scored.iloc[1][f] for f in features}
    out = workflow.apply_updates(
        model,
        scored,
        [(str(first[C.CUSTOMER_ID]), changed), ("NEW-1", fresh)],
        ws.settings,
    )
    assert len(out) == len(scored) + 1
    row = out[out[C.CUSTOMER_ID].astype(str) == str(first[C.CUSTOMER_ID])].iloc[0]
    assert row[C.TENURE] == 0
    added = out[out[C.CUSTOMER_ID].astype(str) == "NEW-1"].iloc[0]
    assert 0 <= added[C.P_CHURN] <= 1
    assert added[C.RISK_BAND] in ("Low", "Medium", "High")
    assert added[C.CHURNED] == 0
    untouched = out.iloc[2:10][C.P_CHURN].to_numpy()
    assert (untouched == scored.iloc[2:10][C.P_CHURN].to_numpy()).all()  # the model stays


def test_the_refresh_schedule_runs_when_due_and_says_a_bad_cron_in_one_line(monkeypatch):
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from analytics import refresh
    from analytics.config import ConfigError, serve_settings_from_env
    from dashboard import live

    calls = []

    def fake_refresh(engine, config, settings, *, key, actor, run_here):
        calls.append((actor, run_here))
        return refresh.Refreshed(None, None, "queued")

    monkeypatch.setattr(refresh, "refresh", fake_refresh)
    config = SimpleNamespace(refresh_cron="0 3 1 * *")
    ctx = SimpleNamespace(config=config, engine=None, settings=None, key=b"k" * 32)
    schedule = live.Schedule(ctx)
    assert schedule.due == refresh.next_run("0 3 1 * *", datetime.now())
    assert (schedule.due.day, schedule.due.hour, schedule.due.minute) == (1, 3, 0)
    schedule()
    assert calls == []  # not due yet
    schedule.due = datetime.now() - timedelta(seconds=1)
    schedule()
    assert calls == [("schedule", False)]  # queued for the runner, not trained in its thread
    assert schedule.due > datetime.now()

    with pytest.raises(ConfigError, match="RETENTION_REFRESH_CRON='every night'"):
        serve_settings_from_env({"RETENTION_REFRESH_CRON": "every night"})
