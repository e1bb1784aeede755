"""The over-time surfaces (issue 13) as an attacker with each role would use them: a scoped
manager never sees figures of customers outside their scope (the snapshot list, monitoring,
alert deliveries), bad input is a clear 4xx and never a 500 (campaign bodies, alert rule
names), a snapshot file changed on disk is refused without breaking the live views, a
campaign cannot be back-dated to a snapshot whose outcome is known, and a webhook's secret
never reaches the delivery log, even when the receiver echoes its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics import columns as C
from analytics import datasets, snapshots, versions, workflow
from analytics.config import settings_from_env
from analytics.services import history as service
from analytics.store import db, lifecycle
from analytics.store import snapshots as store
from dashboard.api import history as history_api
from dashboard.app import create_app
from tests.support import MODEL_KEY, signed_in

SETTINGS = settings_from_env(env={})
CUSTOMERS = 2_000  # the demo business's year at a small size: about 20 s
SCOPE = "region=North"


def build_year(root: Path) -> dict:
    """The demo's year of monthly snapshots (as the first-start job records it), a live model
    trained on the newest month with its own snapshot, and the app serving it."""
    state, models = root / "state", root / "models"
    engine = db.open_state(db.database_url(state, None))[0]
    snapshots.demo_history(engine, state, models, SETTINGS, MODEL_KEY, n_customers=CUSTOMERS)
    newest = max(store.snapshots(engine), key=lambda s: s.as_of)
    info = lifecycle.dataset(engine, newest.dataset_id)
    table = datasets.open_table(info, state, SETTINGS)
    model = workflow.train(table, SETTINGS, source=info.name)
    model.version = workflow.save(model, models, key=MODEL_KEY)
    lifecycle.add_version(
        engine, model.version, info.id, versions.version_metrics(model.meta), None
    )
    lifecycle.promote(engine, model.version, "ada")
    snapshots.record_live(engine, state, models, SETTINGS, MODEL_KEY, model.version, actor="ada")
    workspace = workflow.model_workspace(model, table, SETTINGS, info.name, "test")
    history = service.History(engine, state, SETTINGS)
    app = create_app(workspace, state=engine)
    app.extensions[history_api.EXTENSION] = history
    return {"engine": engine, "state": state, "history": history, "app": app, "model": model}


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    return build_year(tmp_path_factory.mktemp("over-time-security"))


@pytest.fixture(scope="module")
def clients(year):
    return {
        "admin": signed_in(year["app"], "admin"),
        "analyst": signed_in(year["app"], "analyst"),
        "manager": signed_in(year["app"], "manager", SCOPE),
    }


def answer(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_json()


def snapshot_frames(year) -> dict[str, object]:
    """Each listed as_of's whole snapshot, read straight from the store."""
    history = year["history"]
    return {
        i.label: store.read_frame(year["state"], i) for i in history.chosen(year["model"].version)
    }


# -- the snapshot list ------------------------------------------------------------------------


def test_a_scoped_manager_gets_the_snapshot_list_with_their_scopes_figures(year, clients):
    """The list's customers and churn were the whole base's for everyone: a manager scoped to
    region=North read how many customers the company had and its churn, month by month."""
    frames = snapshot_frames(year)
    mine = answer(clients["manager"].get("/api/v1/snapshots"))["snapshots"]
    whole = answer(clients["analyst"].get("/api/v1/snapshots"))["snapshots"]
    assert [s["as_of"] for s in mine] == [s["as_of"] for s in whole]
    for item, full in zip(mine, whole, strict=True):
        frame = frames[item["as_of"]]
        north = frame[frame["region"].astype(str) == "North"]
        assert 0 < item["customers"] == len(north) < full["customers"] == len(frame)
        assert item["predicted_churn"] == pytest.approx(north[C.P_CHURN].mean())
        if full["realised_churn"] is not None:
            assert item["realised_churn"] == pytest.approx(north[C.CHURNED].mean())
