"""Over time, end to end on a simulated year (issue 13): the demo's history job records a year of
monthly snapshots from the generator; a live model trained on the newest month adds its own; the
services and the REST API then answer "vs last month", movers, revenue retention, monitoring and
campaigns as analysts and scoped managers would ask. The planted campaign effect is measured
within its interval, the planted drift in customer_age is flagged, and every month's revenue
movements add up to its MRR change."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics import datasets, snapshots, synthetic, workflow
from analytics.config import settings_from_env
from analytics.services import history as service
from analytics.store import accounts, db, lifecycle
from analytics.store import snapshots as store
from dashboard.api import history as history_api
from tests.support import MODEL_KEY, over_time_year, signed_in

SETTINGS = settings_from_env(env={})
CUSTOMERS = 8_000  # the demo business at about a tenth of its size: a year in under a minute


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    """A state database with the demo's year recorded (SQLite; the store's own tests run on
    PostgreSQL too), and a live model trained on the newest month."""
    return over_time_year(tmp_path_factory.mktemp("over-time"), CUSTOMERS)


def _json(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_json()


def test_the_demo_history_records_a_year_of_monthly_snapshots(year):
    made = year["made"]
    assert len(made["snapshots"]) == synthetic.HISTORY_SNAPSHOTS == 13
    ends = pd.to_datetime(made["snapshots"])
    assert all((b.to_period("M") - a.to_period("M")).n == 1 for a, b in pairwise(ends))
    infos = [s for s in store.snapshots(year["engine"]) if s.kind == "history"]
    assert [s.summary["in_sample"] for s in infos] == [True] + [False] * 12
    assert all(s.summary["outcome_known"] for s in infos)


def test_the_api_lists_the_snapshots_and_every_view_takes_one(year):
    client = signed_in(year["app"], "analyst")
    listed = _json(client.get("/api/v1/snapshots"))["snapshots"]
    assert len(listed) >= 6
    assert listed[0]["current"]
    assert listed[0]["model_version"] == year["live"].version
    dates = [s["as_of"] for s in listed]
    assert dates == sorted(dates, reverse=True)
    assert len(set(dates)) == len(dates)
    older = dates[3]
    kpis = _json(client.get(f"/api/v1/kpis?snapshot={older}"))
    assert kpis["as_of"] == older
    assert kpis["previous_as_of"] == dates[4]
    at_risk = _json(client.get(f"/api/v1/customers/at-risk?snapshot={older}&limit=5"))
    assert at_risk["items"]
    bad = _json(client.get("/api/v1/kpis?snapshot=2001-01-31"), 400)
    assert "no snapshot as of 2001-01-31" in bad["errors"][0]["message"]
    assert _json(client.get("/api/v1/kpis?snapshot=yesterday"), 400)


def test_kpis_say_what_changed_since_last_month(year):
    client = signed_in(year["app"], "analyst")
    kpis = _json(client.get("/api/v1/kpis"))
    change = kpis["vs_previous"]
    assert change["churn_rate"]["kind"] == "points"
    assert change["mrr"]["kind"] == "relative"
    previous = kpis["previous"]
    assert math.isclose(change["churn_rate"]["change"], kpis["churn_rate"] - previous["churn_rate"])
    assert math.isclose(change["mrr"]["change"], kpis["mrr"] / previous["mrr"] - 1)


def test_movers_are_ranked_by_the_rise_with_reasons_then_and_now(year):
    client = signed_in(year["app"], "analyst")
    found = _json(client.get("/api/v1/customers/movers?limit=20"))
    items = found["items"]
    assert len(items) == 20
    rises = [m["p_churn"] - m["p_churn_previous"] for m in items]
    assert rises == sorted(rises, reverse=True)
    assert all(math.isclose(m["rise"], r) for m, r in zip(items, rises, strict=True))
    assert items[0]["reasons"]
    assert "reasons_previous" in items[0]
    assert found["newly_at_risk_total"] >= len(found["newly_at_risk"]) > 0


def test_a_scoped_manager_sees_movers_and_campaigns_of_their_region_only(year):
    manager = signed_in(year["app"], "manager", scope="region=North")
    items = _json(manager.get("/api/v1/customers/movers?limit=50"))["items"]
    live = year["history"].base(year["history"].current(_live_base(year))).scored
    regions = live.set_index(live[C.CUSTOMER_ID].astype(str))["region"]
    assert items
    assert {regions[m["customer_id"]] for m in items} == {"North"}
    made = _json(manager.post("/api/v1/campaigns", json={"name": "North winback", "limit": 200}),
                 201)  # fmt: skip
    assert made["treated"] + made["control"] == 200
    assert {regions[c] for c in made["treated_ids"]} == {"North"}
    others = signed_in(year["app"], "analyst")
    names = [c["name"] for c in _json(others.get("/api/v1/campaigns"))["campaigns"]]
    assert "North winback" in names  # analysts see every campaign


def _live_base(year):
    from dashboard.app import served_base

    return served_base(year["app"])


def test_revenue_movements_add_up_and_grr_is_at_most_nrr(year):
    client = signed_in(year["app"], "analyst")
    months = _json(client.get("/api/v1/revenue"))["months"]
    assert len(months) == 12
    for m in months:
        net = m["new"] + m["reactivation"] + m["expansion"] - m["contraction"] - m["churned"]
        assert round(m["mrr_end"] - m["mrr_start"], 2) == round(net, 2) == round(m["net"], 2)
        assert 0 <= m["grr"] <= m["nrr"]
    for movement in ("new", "reactivation", "expansion", "contraction", "churned"):
        assert sum(m[movement] for m in months) > 0, movement


def test_monitoring_shows_realised_performance_and_flags_the_planted_drift(year):
    client = signed_in(year["app"], "analyst")
    found = _json(client.get("/api/v1/monitoring"))
    outside = [s for s in found["snapshots"] if not s["in_sample"]]
    assert len(outside) == 12
    assert all(0.6 < s["realised_roc_auc"] <= 1 for s in outside)
    assert all(len(s["calibration"]) == 10 for s in outside)
    drift = {d["feature"]: d for d in found["drift"]}
    assert drift[synthetic.DRIFT["feature"]]["level"] == "large"
    assert found["drift"][0]["feature"] == synthetic.DRIFT["feature"]
    others = [d["psi"] for f, d in drift.items() if f != synthetic.DRIFT["feature"]]
    assert max(others) < 0.1
    # The model that saw the drift is not the live one (trained on the newest month): no
    # banner, and the note says why; for the model in use, the same drift raises it.
    assert found["banner"] is None
    assert "has replaced it" in found["note"]
    watched = service.monitoring(year["history"])
    assert "customer_age" in watched["banner"]
    assert "retrain" in watched["banner"].lower()


def test_the_past_campaign_is_measured_within_its_interval(year):
    client = signed_in(year["app"], "analyst")
    campaigns = _json(client.get("/api/v1/campaigns"))["campaigns"]
    demo = next(c for c in campaigns if c["name"] == synthetic.CAMPAIGN["name"])
    assert demo["as_of"] == synthetic.CAMPAIGN["as_of"]
    assert demo["control"] / (demo["treated"] + demo["control"]) == pytest.approx(0.2, abs=0.01)
    low, high = demo["ci_low"], demo["ci_high"]
    assert low <= demo["measured_save_rate"] <= high
    assert low <= synthetic.CAMPAIGN["save_rate"] <= high
    plan = _json(client.get("/api/v1/planner"))
    assert plan["save_rate_source"]["used"] == "measured"
    assert plan["assumptions"]["save_rate"] == pytest.approx(demo["measured_save_rate"])
    given = _json(client.get("/api/v1/planner?save_rate=0.2"))
    assert given["save_rate_source"]["used"] == "given"


def test_a_new_campaign_holds_out_a_stratified_tenth(year):
    client = signed_in(year["app"], "analyst")
    made = _json(client.post("/api/v1/campaigns", json={"name": "Autumn offer", "limit": 1000}),
                 201)  # fmt: skip
    assert made["treated"] + made["control"] == 1000
    assert made["control"] == pytest.approx(100, abs=3)  # rounded within each risk band
    members = store.members(year["engine"], made["campaign_id"])
    assert set(members.loc[members["group"] == "treated", "customer_id"]) == set(
        made["treated_ids"]
    )
    for _, band in members.groupby("risk_band"):
        share = (band["group"] == "control").mean()
        assert abs(share - 0.10) <= 1 / len(band) + 1e-9
    listed = _json(client.get("/api/v1/campaigns"))["campaigns"]
    mine = next(c for c in listed if c["campaign_id"] == made["campaign_id"])
    assert mine["measured_save_rate"] is None
    assert "later snapshot" in mine["note"]
    audit = [e["action"] for e in accounts.events(year["engine"], 50)]
    assert "campaign.create" in audit
    bad = _json(client.post("/api/v1/campaigns", json={"name": "", "control_share": 0.9}), 422)
    fields = {e["field"] for e in bad["errors"]}
    assert {"name", "control_share"} <= fields


def test_a_snapshot_is_recorded_once_and_its_file_is_checked(empty_state, tmp_path):
    db.upgrade(empty_state)
    frame = pd.DataFrame({C.CUSTOMER_ID: ["a", "b"], C.P_CHURN: [0.1, 0.7]})
    info, _, _ = datasets.add_frame(
        empty_state, tmp_path, pd.DataFrame({C.CUSTOMER_ID: ["a", "b"], C.CHURNED: [0, 1],
                                             C.TENURE: [3, 4]}), "t", SETTINGS)  # fmt: skip
    kwargs = dict(as_of=pd.Timestamp("2026-10-31").date(), model_version="v1",
                  dataset_id=info.id, kind="promote", summary={"threshold": 0.5})  # fmt: skip
    first, created = store.add_snapshot(empty_state, tmp_path, frame, **kwargs)
    again, created_again = store.add_snapshot(empty_state, tmp_path, frame, **kwargs)
    assert created
    assert not created_again
    assert again.id == first.id
    assert len(list((tmp_path / store.FOLDER).iterdir())) == 1
    pd.testing.assert_frame_equal(store.read_frame(tmp_path, first), frame)
    (tmp_path / first.path).write_bytes(b"changed")
    with pytest.raises(Exception, match="changed since it was written"):
        store.read_frame(tmp_path, first)
    assert np.array_equal([e["action"] for e in accounts.events(empty_state, 5)][:1],
                          ["snapshot.add"])  # fmt: skip


def test_alerts_through_the_api_reach_a_loopback_receiver_once(year):
    from analytics.config import serve_settings_from_env
    from tests.test_alert_delivery import Receiver

    hook = Receiver()
    try:
        year["app"].extensions[history_api.SERVE_CONFIG] = serve_settings_from_env(env={})
        admin = signed_in(year["app"], "admin")
        analyst = signed_in(year["app"], "analyst")
        body = {"name": "Newly at risk", "kind": "new_at_risk", "threshold": 1,
                "channel": "webhook", "target": hook.url}  # fmt: skip
        assert analyst.post("/api/v1/alerts/rules", json=body).status_code == 403
        rule = _json(admin.post("/api/v1/alerts/rules", json=body), 201)
        sent = _json(admin.post(f"/api/v1/alerts/rules/{rule['id']}/test"))
        assert sent["state"] == "sent"
        assert len(hook.requests) == 1
        assert "text" in hook.bodies()[0]
        # A refresh-like snapshot (the live model scoring the month before) checks the rules.
        engine, state = year["engine"], year["history"].state_dir
        september = sorted({s.as_of for s in store.snapshots(engine)})[-2]
        export = next(s for s in store.snapshots(engine) if s.as_of == september)
        info = lifecycle.dataset(engine, export.dataset_id)
        table = datasets.open_table(info, state, SETTINGS)
        snap, created = snapshots.record_scored(engine, state, SETTINGS, year["live"], info, table,
                                                kind="refresh", as_of=september)  # fmt: skip
        assert created
        assert len(hook.requests) == 2
        fired = hook.bodies()[1]
        assert "newly high-value high-risk" in fired["text"]
        frame = store.read_frame(state, snap)
        snapshots._alert(engine, state, snap, frame, SETTINGS)  # evaluated again: sent once
        assert len(hook.requests) == 2
        log = _json(admin.get("/api/v1/alerts/deliveries"))["deliveries"]
        assert [d["state"] for d in log[:2]] == ["sent", "sent"]
    finally:
        hook.close()


def test_the_model_in_use_seeing_drift_raises_the_retrain_banner(year):
    """Served by last year's model (the one that saw the customer_age drift), the banner
    suggests a retrain and names it."""
    from analytics.services.base import ServedBase

    engine, state = year["engine"], year["history"].state_dir
    old = year["made"]["model_version"]
    first = min((s for s in store.snapshots(engine) if s.model_version == old),
                key=lambda s: s.as_of)  # fmt: skip
    info = lifecycle.dataset(engine, first.dataset_id)
    table = datasets.open_table(info, state, SETTINGS)
    model = workflow.load(year["models"], old, key=MODEL_KEY)
    served = ServedBase(workflow.model_workspace(model, table, SETTINGS, info.name, "test"))
    found = service.monitoring(year["history"], served)
    assert found["watched_model"] == old
    assert "customer_age" in found["banner"]
    assert old in found["banner"]
