"""The dashboard's over-time views without a browser (issue 13): the snapshot picker, "vs last
month", movers, revenue retention, the trend's predicted beside realised churn, campaigns and
monitoring. Callbacks run as the browser sends them (through the login, the role and scope
guard and the input checks) for an analyst, a scoped manager and an admin, against a state
database holding the demo business's year of monthly snapshots; each view's numbers are the
ones the REST API returns for the same filters and snapshot."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from analytics import access, synthetic
from analytics import columns as C
from analytics.config import settings_from_env
from analytics.store import accounts
from analytics.store import snapshots as store
from dashboard import figures, ids
from dashboard.api import history as history_api
from dashboard.app import create_app, dash_app, served_base
from dashboard.callbacks import filters as filter_cb
from dashboard.callbacks import snapshots as snapshot_cb
from dashboard.layout import LIVE, components_by_id, tabs_for
from tests.support import callback_item, over_time_year, role_clients, signed_in

SETTINGS = settings_from_env(env={})
CUSTOMERS = 3_000  # the demo business at a twenty-fifth of its size: its year in ~10 s
SCOPE = "region=North"


def build_year(root: Path, customers: int = CUSTOMERS) -> dict:
    """The demo's year at a twenty-fifth of its size (tests.support.over_time_year)."""
    return over_time_year(root, customers)


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    return build_year(tmp_path_factory.mktemp("dashboard-history"))


@pytest.fixture(scope="module")
def clients(year):
    return role_clients(year["app"], SCOPE)


def api(client, path: str) -> dict:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()


def run(client, app, output: tuple[str, str], values: dict, *, status: int = 200):
    """Run the callback writing `output` (id, property) as the renderer would: `values` maps
    (id, property) of its inputs and state to their values (the rest None). Returns
    {component id: {property: value}}, or None for any status but 200."""
    callbacks = dash_app(app).callback_map

    def writes(spec) -> bool:
        outs = spec["output"] if isinstance(spec["output"], list) else [spec["output"]]
        return any((o.component_id, o.component_property) == output for o in outs)

    key = next(k for k, spec in callbacks.items() if "callback" in spec and writes(spec))
    spec = callbacks[key]
    page = dash_app(app).layout()

    def concrete(pattern_text):
        wanted = json.loads(pattern_text)["type"]
        return [
            json.loads(c)
            for c in components_by_id(page)
            if c.startswith("{") and json.loads(c).get("type") == wanted
        ]

    def item(declared):
        return callback_item(
            declared, values.get((declared["id"], declared["property"])), concrete=concrete
        )

    outputs = spec["output"] if isinstance(spec["output"], list) else [spec["output"]]
    outs = [callback_item(o.to_dict(), with_value=False, concrete=concrete) for o in outputs]
    body = {
        "output": key,
        "outputs": outs if isinstance(spec["output"], list) else outs[0],
        "inputs": [item(i) for i in spec["inputs"]],
        "state": [item(i) for i in spec.get("state", [])],
        "changedPropIds": [],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    if status != 200:
        return None
    return response.get_json()["response"]


def array(value) -> list:
    """A figure's data array as JSON carries it: a list, or plotly's typed array (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def dates(year) -> list[str]:
    return [s.label for s in reversed(year["history"].chosen(year["model"].version))]


def region_of(year) -> pd.Series:
    live = served_base(year["app"]).scored
    return live.set_index(live[C.CUSTOMER_ID].astype(str))["region"].astype(str)


# -- the picker -------------------------------------------------------------------------------


def test_every_role_gets_the_picker_the_banner_and_the_over_time_tabs(year):
    for role in access.ROLES:
        assert {"changes", "campaigns", "monitoring"} <= set(tabs_for(role))
    manager = signed_in(year["app"], "manager", SCOPE)
    layout = json.dumps(manager.get("/_dash-layout").get_json())
    for cid in (
        ids.SNAPSHOT,
        ids.MONITOR_BANNER,
        ids.MOVERS_GRID,
        ids.REVENUE_GRAPH,
        ids.CAMPAIGN_LIST,
        ids.CAMPAIGN_CREATE,
        ids.MONITOR_PERFORMANCE,
    ):
        assert f'"{cid}"' in layout, cid
    assert '"model-roc"' not in layout  # the model view stays the analysts'


def test_the_picker_offers_every_as_of_newest_first_as_the_api_lists_them(year, clients):
    for role, client in clients.items():
        options = run(client, year["app"], (ids.SNAPSHOT, "options"), {(ids.URL, "pathname"): "/"})
        values = [o["value"] for o in options[ids.SNAPSHOT]["options"]]
        listed = [s["as_of"] for s in api(client, "/api/v1/snapshots")["snapshots"]]
        assert values == [LIVE, *listed], role
        assert len(listed) == synthetic.HISTORY_SNAPSHOTS
        assert listed == sorted(listed, reverse=True)


def test_a_link_keeps_the_snapshot_and_drops_one_there_is_not(year):
    data = served_base(year["app"])
    options = filter_cb.view_options(data, [])
    older = dates(year)[3]
    id_list = [{"type": ids.FILTER, "column": c} for c in data.filter_columns]
    with year["app"].test_request_context():
        page = filter_cb.PageState(f"?risk=High&snapshot={older}", [[]] * len(id_list), id_list)
        out = filter_cb.sync(data, options, None, page)
        assert out["view"]["snapshot"] == older  # the picker opens on the link's snapshot
        assert out["search"] is filter_cb.no_update
        picked = year["history"].base(year["history"].resolve(older, data))
        assert out["summary"].startswith(
            f"{picked.count('?risk=High'):,} of {len(picked.scored):,}"
        )
        page = filter_cb.PageState("?snapshot=2001-01-31", [[]] * len(id_list), id_list)
        out = filter_cb.sync(data, options, None, page)
        assert out["search"] == ""  # an unknown date opens the live base, cleanly
        # the user picks a snapshot: it goes into the URL after the filters
        page = filter_cb.PageState(
            "?risk=High",
            [[]] * len(id_list),
            id_list,
            view={"snapshot": older},
            stored_query="?risk=High",
        )
        out = filter_cb.sync(data, options, ids.SNAPSHOT, page)
        assert out["search"] == f"?risk=High&snapshot={older}"
        assert out["query"] is filter_cb.no_update  # the views read the picker themselves
        assert out["summary"].startswith(f"{picked.count('?risk=High'):,} of")


# -- "vs last month" --------------------------------------------------------------------------


def kpi_children(response) -> dict[str, object]:
    """{KPI id name: children} from the KPI callback's response."""
    return {json.loads(k)["name"]: v["children"] for k, v in response.items() if k.startswith("{")}


@pytest.mark.parametrize("role", ["analyst", "manager"])
def test_kpi_cards_say_vs_last_month_as_the_api_does(year, clients, role):
    client = clients[role]
    older = dates(year)[3]
    for snapshot, path in ((LIVE, ""), (older, f"&snapshot={older}")):
        out = run(
            client,
            year["app"],
            (ids.KPI_CHANGE_NOTE, "children"),
            {
                (ids.FILTER_QUERY, "data"): "?contract=Monthly",
                (ids.SNAPSHOT, "value"): snapshot,
            },
        )
        cards = kpi_children(out)
        found = api(client, f"/api/v1/kpis?contract=Monthly{path}")
        assert cards["customers"] == f"{found['customers']:,}"
        churn = found["vs_previous"]["churn_rate"]
        line = cards["churn_rate-change"]["props"]
        assert f"{100 * churn['change']:+.1f} pts vs last month" in line["children"]
        assert found["previous_as_of"] in line["title"]
        mrr = found["vs_previous"]["mrr"]["change"]
        assert f"{mrr:+.1%}" in cards["mrr-change"]["props"]["children"]
        assert out[ids.KPI_CHANGE_NOTE]["children"] is None
        picked = out[ids.SNAPSHOT_NOTE]["children"]
        if snapshot == LIVE:
            assert picked is None
        else:
            assert f"Snapshot of {older}" in json.dumps(picked)
    if role == "manager":
        north = api(
            clients["analyst"], f"/api/v1/kpis?contract=Monthly&region=North&snapshot={older}"
        )
        assert cards["customers"] == f"{north['customers']:,}"  # the last one read: older


def test_the_oldest_snapshot_says_there_is_nothing_to_compare_with(year, clients):
    oldest = dates(year)[-1]
    out = run(
        clients["analyst"],
        year["app"],
        (ids.KPI_CHANGE_NOTE, "children"),
        {
            (ids.FILTER_QUERY, "data"): "",
            (ids.SNAPSHOT, "value"): oldest,
        },
    )
    assert "No earlier snapshot to compare with" in json.dumps(out[ids.KPI_CHANGE_NOTE])
    assert kpi_children(out)["churn_rate-change"] == ""


def test_change_lines_read_as_points_for_rates_and_percent_for_amounts():
    from dashboard.callbacks import overview

    assert overview.change_text("churn_rate", {"change": 0.012, "kind": "points"}) == (
        "▲ +1.2 pts",
        "worse",
    )
    assert overview.change_text("mrr", {"change": -0.034, "kind": "relative"}) == (
        "▼ -3.4%",
        "worse",
    )
    assert overview.change_text("retention_rate", {"change": 0.0001, "kind": "points"})[0] == (
        "no change"
    )
    assert overview.change_text("mrr", {"change": None, "kind": "relative"}) == ("–", "")


# -- every customer view reads the picked snapshot -------------------------------------------


@pytest.mark.parametrize("role", ["analyst", "manager"])
def test_every_customer_view_reads_the_picked_snapshot(year, clients, role):
    client, app = clients[role], year["app"]
    # an earlier snapshot whose at-risk list is not empty in this role's scope
    older = next(
        (
            d
            for d in dates(year)[2:]
            if api(client, f"/api/v1/customers/at-risk?snapshot={d}&limit=1")["total"]
        ),
        None,
    )
    assert older is not None, "no earlier snapshot has an at-risk customer in this scope"
    picked = {(ids.FILTER_QUERY, "data"): "", (ids.SNAPSHOT, "value"): older}
    rows = run(
        client,
        app,
        (ids.AT_RISK_GRID, "getRowsResponse"),
        {
            **picked,
            (ids.AT_RISK_GRID, "getRowsRequest"): {"startRow": 0, "endRow": 50},
        },
    )[ids.AT_RISK_GRID]["getRowsResponse"]
    listed = api(client, f"/api/v1/customers/at-risk?snapshot={older}&limit=50")
    assert rows["rowCount"] == listed["total"]
    assert [r[C.CUSTOMER_ID] for r in rows["rowData"]] == [
        r[C.CUSTOMER_ID] for r in listed["items"]
    ]
    live = api(client, "/api/v1/customers/at-risk?limit=50")
    assert [r[C.CUSTOMER_ID] for r in live["items"]] != [r[C.CUSTOMER_ID] for r in rows["rowData"]]
    first = rows["rowData"][0][C.CUSTOMER_ID]
    detail = run(
        client,
        app,
        (ids.DETAIL_BODY, "children"),
        {
            (ids.AT_RISK_GRID, "cellClicked"): {"rowId": first},
            (ids.SNAPSHOT, "value"): older,
        },
    )
    shown = api(client, f"/api/v1/customers/{first}?snapshot={older}")
    assert f"{shown['probability']:.1%}" in json.dumps(detail[ids.DETAIL_BODY])
    plan = run(
        client,
        app,
        (ids.PLAN_SUMMARY, "children"),
        {
            **picked,
            (ids.TABS, "active_tab"): "planner",
            (ids.PLAN_SAVE_RATE, "value"): 0.3,
            (ids.PLAN_COST, "value"): 10,
            (ids.PLAN_MARGIN, "value"): 0.6,
            (ids.PLAN_DISCOUNT, "value"): 0.01,
        },
    )
    want = api(
        client,
        f"/api/v1/planner?snapshot={older}&save_rate=0.3&cost_per_contact=10"
        "&margin=0.6&discount=0.01",
    )
    assert f"{want['best_n']:,} customers" in json.dumps(plan[ids.PLAN_SUMMARY])
    segments = run(
        client,
        app,
        (ids.SEGMENT_PROFILE, "children"),
        {**picked, (ids.TABS, "active_tab"): "overview"},
    )
    found = api(client, f"/api/v1/segments?snapshot={older}")
    sizes = array(segments[ids.DOUGHNUT]["figure"]["data"][0]["values"])
    assert sorted(sizes) == sorted(s["customers"] for s in found["segments"])
    factor = run(
        client,
        app,
        (ids.FACTOR_GRAPH, "figure"),
        {
            **picked,
            (ids.TABS, "active_tab"): "drivers",
            (ids.FACTOR, "value"): "contract",
        },
    )
    levels = api(client, f"/api/v1/drivers?snapshot={older}&factor=contract")["levels"]
    bars = factor[ids.FACTOR_GRAPH]["figure"]["data"][0]
    assert dict(zip(array(bars["y"]), array(bars["x"]), strict=True)) == pytest.approx(
        {lv["level"]: lv["churn_rate"] for lv in levels}
    )
    if role == "manager":
        regions = region_of(year)
        assert {regions.get(r[C.CUSTOMER_ID], "North") for r in rows["rowData"]} == {"North"}


def test_a_forged_snapshot_is_no_update_and_nonsense_a_400(year, clients):
    values = {(ids.FILTER_QUERY, "data"): "", (ids.SNAPSHOT, "value"): "2001-01-31"}
    run(clients["analyst"], year["app"], (ids.KPI_CHANGE_NOTE, "children"), values, status=204)
    values[(ids.SNAPSHOT, "value")] = "yesterday"
    run(clients["analyst"], year["app"], (ids.KPI_CHANGE_NOTE, "children"), values, status=400)


# -- movers and revenue -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["analyst", "manager"])
def test_movers_are_the_apis_ranked_by_the_rise(year, clients, role):
    client = clients[role]
    out = run(
        client,
        year["app"],
        (ids.MOVERS_GRID, "rowData"),
        {
            (ids.FILTER_QUERY, "data"): "",
            (ids.TABS, "active_tab"): "changes",
        },
    )
    rows = out[ids.MOVERS_GRID]["rowData"]
    found = api(client, "/api/v1/customers/movers")
    assert [r[C.CUSTOMER_ID] for r in rows] == [m[C.CUSTOMER_ID] for m in found["items"]]
    assert [r["rise"] for r in rows] == pytest.approx([m["rise"] for m in found["items"]])
    assert [r["rise"] for r in rows] == sorted((r["rise"] for r in rows), reverse=True)
    assert rows[0]["reasons"] == "; ".join(found["items"][0]["reasons"])
    assert rows[0]["p_churn_previous"] == pytest.approx(found["items"][0]["p_churn_previous"])
    newly = out[ids.NEWLY_GRID]["rowData"]
    assert [r[C.CUSTOMER_ID] for r in newly] == [m[C.CUSTOMER_ID] for m in found["newly_at_risk"]]
    assert found["previous_as_of"] in out[ids.MOVERS_NOTE]["children"]
    assert f"{found['newly_at_risk_total']:,} customers joined" in out[ids.NEWLY_NOTE]["children"]
    if role == "manager":
        regions = region_of(year)
        assert {regions[r[C.CUSTOMER_ID]] for r in rows + newly} == {"North"}


def test_revenue_movements_are_the_apis_and_add_up(year, clients):
    for role, client in clients.items():
        out = run(
            client,
            year["app"],
            (ids.REVENUE_GRAPH, "figure"),
            {
                (ids.FILTER_QUERY, "data"): "?contract=Monthly",
                (ids.TABS, "active_tab"): "changes",
            },
        )
        months = api(client, "/api/v1/revenue?contract=Monthly")["months"]
        assert len(months) == synthetic.HISTORY_SNAPSHOTS - 1
        traces = {t["name"]: t for t in out[ids.REVENUE_GRAPH]["figure"]["data"]}
        assert array(traces["New"]["y"]) == pytest.approx([m["new"] for m in months])
        assert array(traces["Churned"]["y"]) == pytest.approx([-m["churned"] for m in months])
        assert array(traces["Contraction"]["y"]) == pytest.approx(
            [-m["contraction"] for m in months]
        )
        bars = [
            array(traces[n]["y"])
            for n in ("New", "Reactivation", "Expansion", "Contraction", "Churned")
        ]
        stacked = [round(sum(col), 2) for col in zip(*bars, strict=True)]
        assert stacked == pytest.approx(array(traces["Net movement"]["y"]), abs=0.01)
        assert stacked == pytest.approx([m["mrr_end"] - m["mrr_start"] for m in months], abs=0.01)
        rates = {t["name"]: array(t["y"]) for t in out[ids.REVENUE_RATES]["figure"]["data"]}
        assert rates["Gross revenue retention (GRR)"] == pytest.approx([m["grr"] for m in months])
        assert rates["Net revenue retention (NRR)"] == pytest.approx([m["nrr"] for m in months])
        assert f"{months[-1]['grr']:.1%}" in json.dumps(out[ids.REVENUE_TABLE])
        if role == "manager":
            everyone = api(clients["analyst"], "/api/v1/revenue?contract=Monthly")["months"]
            assert months[0]["mrr_start"] < everyone[0]["mrr_start"]


# -- the trend: predicted beside realised ------------------------------------------------------


@pytest.fixture(scope="module")
def dated(year, demo_workspace):
    """The built-in demo file served live (it has dates: a monthly trend) over the year."""
    app = create_app(demo_workspace, state=year["engine"])
    app.extensions[history_api.EXTENSION] = year["history"]
    return app


def test_the_trend_shows_each_snapshots_predicted_beside_realised_churn(dated):
    analyst = signed_in(dated, "analyst")
    overview = {(ids.TABS, "active_tab"): "overview", (ids.TREND_SPLIT, "value"): False}
    out = run(analyst, dated, (ids.TREND, "figure"), {(ids.FILTER_QUERY, "data"): "", **overview})
    traces = {t["name"]: t for t in out[ids.TREND]["figure"]["data"]}
    listed = api(analyst, "/api/v1/snapshots")["snapshots"]
    by_date = {s["as_of"]: s for s in listed}
    predicted = traces["Predicted (snapshot mean p)"]
    realised = traces["Realised (snapshot)"]
    assert sorted(array(predicted["x"])) == sorted(by_date)
    shown = zip(array(predicted["x"]), array(predicted["y"]), array(realised["y"]), strict=True)
    for x, p, r in shown:
        assert p == pytest.approx(by_date[x]["predicted_churn"])
        assert r == pytest.approx(by_date[x]["realised_churn"])
    # the list's figures are the base's (or the scope's): not drawn beside a filtered selection
    query = {(ids.FILTER_QUERY, "data"): "?contract=Monthly", **overview}
    filtered = run(analyst, dated, (ids.TREND, "figure"), query)
    assert len(filtered[ids.TREND]["figure"]["data"]) == 2
    assert "shown without filters" in filtered[ids.TREND_NOTE]["children"]
    manager = signed_in(dated, "manager", SCOPE)
    scoped = run(
        manager, dated, (ids.TREND, "figure"), {(ids.FILTER_QUERY, "data"): "", **overview}
    )
    mine = {s["as_of"]: s for s in api(manager, "/api/v1/snapshots")["snapshots"]}
    shown = {t["name"]: t for t in scoped[ids.TREND]["figure"]["data"]}[
        "Predicted (snapshot mean p)"
    ]
    for x, p in zip(array(shown["x"]), array(shown["y"]), strict=True):
        assert p == pytest.approx(mine[x]["predicted_churn"])
        assert p != pytest.approx(by_date[x]["predicted_churn"])  # the scope's, not everyone's
    split = run(
        analyst,
        dated,
        (ids.TREND, "figure"),
        {
            (ids.FILTER_QUERY, "data"): "",
            **overview,
            (ids.TREND_SPLIT, "value"): True,
        },
    )
    assert "Predicted (snapshot mean p)" not in json.dumps(split)


# -- monitoring -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["analyst", "manager", "admin"])
def test_monitoring_draws_the_apis_realised_figures_and_drift(year, clients, role):
    client = clients[role]
    out = run(
        client,
        year["app"],
        (ids.MONITOR_PERFORMANCE, "figure"),
        {
            (ids.FILTER_QUERY, "data"): "",
            (ids.TABS, "active_tab"): "monitoring",
        },
    )
    found = api(client, "/api/v1/monitoring")
    outside = sorted(
        (s for s in found["snapshots"] if not s["in_sample"]), key=lambda s: s["as_of"]
    )
    traces = {t["name"]: t for t in out[ids.MONITOR_PERFORMANCE]["figure"]["data"]}
    assert array(traces["Realised ROC-AUC"]["y"]) == pytest.approx(
        [s["realised_roc_auc"] for s in outside]
    )
    assert array(traces["Expected ROC-AUC"]["y"]) == pytest.approx(
        [s["expected_roc_auc"] for s in outside]
    )
    assert array(traces["Realised PR-AUC"]["y"]) == pytest.approx(
        [s["realised_pr_auc"] for s in outside]
    )
    newest = outside[-1]
    bars = out[ids.MONITOR_CALIBRATION]["figure"]["data"]
    assert array(bars[1]["y"]) == pytest.approx([c["churn_rate"] for c in newest["calibration"]])
    assert newest["as_of"] in out[ids.MONITOR_CALIBRATION]["figure"]["layout"]["title"]["text"]
    table = json.dumps(out[ids.MONITOR_DRIFT]["children"])
    first = found["drift"][0]
    assert first["feature"] == synthetic.DRIFT["feature"]
    assert first["level"] == "large"
    assert table.index("Customer age") < table.index("Tenure")  # sorted by PSI
    assert f"{first['psi']:.3f}" in table
    if role == "manager":
        everyone = api(clients["analyst"], "/api/v1/monitoring")["snapshots"]
        assert [s["realised_roc_auc"] for s in found["snapshots"]] != [
            s["realised_roc_auc"] for s in everyone
        ]  # realised within the scope; the drift is the model's
        assert found["drift"] == api(clients["analyst"], "/api/v1/monitoring")["drift"]


def test_the_banner_is_quiet_when_a_newer_model_replaced_the_drifted_one(year, clients):
    """The demo's drift was seen by last year's model; the live one was trained on the newest
    month, so no retrain is suggested (services.history.monitoring says why; test_over_time
    shows the banner for a live model that sees drift)."""
    for client in clients.values():
        out = run(
            client, year["app"], (ids.MONITOR_BANNER, "children"), {(ids.URL, "pathname"): "/"}
        )
        text = json.dumps(out[ids.MONITOR_BANNER]["children"])
        assert synthetic.DRIFT["feature"] not in text
    page = dash_app(year["app"]).layout()
    found = components_by_id(page)
    assert ids.MONITOR_BANNER not in components_by_id(found[ids.TABS])  # above every tab


# -- campaigns --------------------------------------------------------------------------------


def test_the_campaign_list_shows_the_measured_save_rate_with_its_interval(year, clients):
    out = run(
        clients["analyst"],
        year["app"],
        (ids.CAMPAIGN_LIST, "children"),
        {
            (ids.TABS, "active_tab"): "campaigns",
        },
    )
    text = json.dumps(out[ids.CAMPAIGN_LIST]["children"])
    demo = next(
        c
        for c in api(clients["analyst"], "/api/v1/campaigns")["campaigns"]
        if c["name"] == synthetic.CAMPAIGN["name"]
    )
    assert demo["name"] in text
    assert f"{demo['measured_save_rate']:.0%}" in text
    assert f"95% interval {demo['ci_low']:.0%} to {demo['ci_high']:.0%}" in text
    for group in ("treated", "control"):
        tally = demo[f"{group}_outcome"]
        assert f"{tally['churn_rate']:.1%} ({tally['churned']:,} of {tally['n']:,})" in text
        assert f"{demo[group]:,}" in text


def test_the_planner_uses_the_measured_save_rate_and_says_so(year, clients):
    client, app = clients["analyst"], year["app"]
    measured = api(client, "/api/v1/planner")["save_rate_source"]
    assert measured["used"] == "measured"
    s = measured["save_rate"]
    inputs = {
        (ids.FILTER_QUERY, "data"): "",
        (ids.TABS, "active_tab"): "planner",
        (ids.PLAN_COST, "value"): SETTINGS.cost_per_contact,
        (ids.PLAN_MARGIN, "value"): SETTINGS.margin,
        (ids.PLAN_DISCOUNT, "value"): SETTINGS.discount,
    }
    out = run(
        client,
        app,
        (ids.PLAN_SAVE_RATE_SOURCE, "children"),
        {**inputs, (ids.PLAN_SAVE_RATE, "value"): round(s, 3)},  # the input's default
    )
    note = json.dumps(out[ids.PLAN_SAVE_RATE_SOURCE]["children"])
    assert "measured" in note
    assert synthetic.CAMPAIGN["name"] in note
    assert f"95% interval {measured['ci_low']:.0%} to {measured['ci_high']:.0%}" in note
    plan = api(client, f"/api/v1/planner?save_rate={round(s, 3)}")
    assert f"{plan['best_n']:,} customers" in json.dumps(out[ids.PLAN_SUMMARY])
    mine = run(
        client,
        app,
        (ids.PLAN_SAVE_RATE_SOURCE, "children"),
        {**inputs, (ids.PLAN_SAVE_RATE, "value"): 0.2},
    )
    assert "your input" in json.dumps(mine[ids.PLAN_SAVE_RATE_SOURCE]["children"])
    # a page opened without ?save_rate= puts the measured one in the input
    data = served_base(app)
    options = filter_cb.view_options(data, [])
    id_list = [{"type": ids.FILTER, "column": c} for c in data.filter_columns]
    with app.test_request_context():
        page = filter_cb.PageState(
            "", [[]] * len(id_list), id_list, view={"save_rate": SETTINGS.save_rate}
        )
        out = filter_cb.sync(data, options, None, page)
    assert out["view"]["save_rate"] == round(s, 3)  # 0.367, not 0.3673469387755102


def create_values(name, *, share=10, size="best", limit=None, snapshot=LIVE, query=""):
    return {
        (ids.CAMPAIGN_CREATE, "n_clicks"): 1,
        (ids.FILTER_QUERY, "data"): query,
        (ids.SNAPSHOT, "value"): snapshot,
        (ids.CAMPAIGN_NAME, "value"): name,
        (ids.CAMPAIGN_SHARE, "value"): share,
        (ids.CAMPAIGN_SIZE, "value"): size,
        (ids.CAMPAIGN_LIMIT, "value"): limit,
        (ids.PLAN_SAVE_RATE, "value"): 0.3,
        (ids.PLAN_COST, "value"): 10,
        (ids.PLAN_MARGIN, "value"): 0.6,
        (ids.PLAN_DISCOUNT, "value"): 0.01,
    }


def test_a_manager_creates_a_campaign_of_their_scope_and_downloads_only_the_treated(year, clients):
    client, app, engine = clients["manager"], year["app"], year["engine"]
    before = {c.id for c in store.campaigns(engine)}
    out = run(
        client,
        app,
        (ids.CAMPAIGN_RESULT, "children"),
        create_values("North winback", size="given", limit=100),
    )
    made = [c for c in store.campaigns(engine) if c.id not in before]
    assert len(made) == 1
    assert made[0].scope_column == "region"
    members = store.members(engine, made[0].id)
    treated = members.loc[members["group"] == "treated", C.CUSTOMER_ID].astype(str)
    assert len(members) == 100
    assert made[0].control == pytest.approx(10, abs=3)
    text = json.dumps(out[ids.CAMPAIGN_RESULT]["children"])
    assert f"{made[0].treated:,} customers to contact" in text
    assert f"{made[0].control:,} held out" in text
    download = out[ids.CAMPAIGN_DOWNLOAD]["data"]
    assert download["filename"].startswith("campaign-north-winback-treated-")
    csv = pd.read_csv(io.StringIO(download["content"]), dtype={"Customer": str})
    assert set(csv["Customer"]) == set(treated)  # the control group is never exported
    assert {region_of(year)[c] for c in csv["Customer"]} == {"North"}
    events = accounts.events(engine, 20)
    assert any(e["action"] == "export" and e["target"] == "campaign treated list" for e in events)
    # analysts see it; it waits for a later snapshot
    listed = run(
        clients["analyst"],
        app,
        (ids.CAMPAIGN_LIST, "children"),
        {(ids.TABS, "active_tab"): "campaigns"},
    )
    assert "North winback" in json.dumps(listed)
    assert "Waiting for a later snapshot" in json.dumps(listed)


def test_the_plans_best_n_makes_a_campaign_and_bad_input_says_why(year, clients):
    client, app = clients["analyst"], year["app"]
    out = run(client, app, (ids.CAMPAIGN_RESULT, "children"), create_values("Best N", share=20))
    plan = api(client, "/api/v1/planner?save_rate=0.3&cost_per_contact=10&margin=0.6&discount=0.01")
    made = next(c for c in store.campaigns(year["engine"]) if c.name == "Best N")
    assert made.treated + made.control == plan["best_n"]
    assert made.control == pytest.approx(0.2 * plan["best_n"], abs=3)
    assert out[ids.CAMPAIGN_DOWNLOAD]["data"]["content"]
    for values, says in (
        (create_values(""), "a name of 1 to 200 characters is required"),
        (create_values("x", share=80), "control_share"),
        (create_values("x", size="given", limit=2.5), "a whole number"),
        (create_values("x", snapshot=dates(year)[2]), 'Pick \\"latest (live)\\"'),
    ):
        shown = run(client, app, (ids.CAMPAIGN_RESULT, "children"), values)
        text = json.dumps(shown[ids.CAMPAIGN_RESULT]["children"])
        assert says in text or says.replace("control_share", "at most 0.5") in text, text
        assert ids.CAMPAIGN_DOWNLOAD not in shown  # nothing to download


# -- without a state database -----------------------------------------------------------------


def test_without_snapshots_the_views_say_so_and_nothing_breaks(demo_workspace):
    app = create_app(demo_workspace)  # no History: a server without a state database
    client = signed_in(app, "analyst")
    out = run(client, app, (ids.SNAPSHOT, "options"), {(ids.URL, "pathname"): "/"})
    assert out[ids.SNAPSHOT]["options"] == [{"label": "latest (live)", "value": LIVE}]
    kpis = run(client, app, (ids.KPI_CHANGE_NOTE, "children"), {(ids.FILTER_QUERY, "data"): ""})
    assert "No snapshots yet" in json.dumps(kpis[ids.KPI_CHANGE_NOTE])
    changes = {(ids.FILTER_QUERY, "data"): "", (ids.TABS, "active_tab"): "changes"}
    assert "No snapshots yet" in json.dumps(run(client, app, (ids.MOVERS_GRID, "rowData"), changes))
    assert "No snapshots yet" in json.dumps(
        run(client, app, (ids.REVENUE_GRAPH, "figure"), changes)
    )
    watch = {(ids.FILTER_QUERY, "data"): "", (ids.TABS, "active_tab"): "monitoring"}
    assert "No snapshots yet" in json.dumps(
        run(client, app, (ids.MONITOR_PERFORMANCE, "figure"), watch)
    )
    listed = run(
        client, app, (ids.CAMPAIGN_LIST, "children"), {(ids.TABS, "active_tab"): "campaigns"}
    )
    assert "No snapshots yet" in json.dumps(listed)
    made = run(client, app, (ids.CAMPAIGN_RESULT, "children"), create_values("x"))
    assert "No snapshots yet" in json.dumps(made)
    assert (
        run(client, app, (ids.MONITOR_BANNER, "children"), {(ids.URL, "pathname"): "/"}) is not None
    )
    with app.test_request_context():
        assert snapshot_cb.history() is None


# -- figures ----------------------------------------------------------------------------------


MONTHS = [
    {
        "month": "2026-01",
        "mrr_start": 100.0,
        "mrr_end": 104.0,
        "new": 6.0,
        "reactivation": 1.0,
        "expansion": 3.0,
        "contraction": 2.0,
        "churned": 4.0,
        "net": 4.0,
        "grr": 0.94,
        "nrr": 0.97,
        "revenue_churn_rate": 0.04,
    },
    {
        "month": "2026-02",
        "mrr_start": 104.0,
        "mrr_end": 101.0,
        "new": 1.0,
        "reactivation": 0.0,
        "expansion": 2.0,
        "contraction": 1.0,
        "churned": 5.0,
        "net": -3.0,
        "grr": 0.942,
        "nrr": 0.962,
        "revenue_churn_rate": 0.048,
    },
]


def test_revenue_figures_stack_gains_up_losses_down_with_the_net_line():
    fig = figures.revenue_movements(MONTHS, "EUR")
    assert isinstance(fig, go.Figure)
    assert fig.layout.barmode == "relative"
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["New", "Reactivation", "Expansion", "Contraction", "Churned"]
    assert list(bars[3].y) == [-2.0, -1.0]
    assert list(bars[4].y) == [-4.0, -5.0]
    assert list(fig.data[-1].y) == [4.0, -3.0]
    assert fig.data[-1].name == "Net movement"
    assert " EUR" in bars[0].hovertemplate
    rates = figures.revenue_rates(MONTHS)
    assert [t.name for t in rates.data] == [
        "Net revenue retention (NRR)",
        "Gross revenue retention (GRR)",
    ]
    assert list(rates.data[1].y) == [0.94, 0.942]


def test_monitoring_figures():
    rows = [
        {
            "as_of": "2026-02-28",
            "model_version": "v1",
            "in_sample": False,
            "expected_roc_auc": 0.8,
            "realised_roc_auc": 0.78,
            "realised_pr_auc": 0.5,
            "realised_lift": 2.5,
        },
        {
            "as_of": "2026-01-31",
            "model_version": "v1",
            "in_sample": True,
            "expected_roc_auc": 0.8,
            "realised_roc_auc": 0.81,
            "realised_pr_auc": 0.52,
            "realised_lift": 2.7,
        },
        {
            "as_of": "2026-03-31",
            "model_version": "v1",
            "in_sample": False,
            "expected_roc_auc": 0.8,
            "realised_roc_auc": 0.7,
            "realised_pr_auc": 0.4,
            "realised_lift": 2.1,
        },
    ]
    fig = figures.realised_performance(rows)
    traces = {t.name: t for t in fig.data}
    assert list(traces["Realised ROC-AUC"].x) == ["2026-02-28", "2026-03-31"]  # out of time
    assert list(traces["ROC-AUC in sample"].y) == [0.81]
    assert traces["Top-decile lift (right axis)"].yaxis == "y2"
    deciles = [{"decile": k, "mean_p": 0.5 / k, "churn_rate": 0.4 / k, "n": 10} for k in (1, 2)]
    cal = figures.calibration_deciles(deciles, "2026-03-31")
    assert [t.name for t in cal.data] == ["Predicted (mean p)", "Realised churn rate"]
    assert "2026-03-31" in cal.layout.title.text


def test_the_trend_draws_snapshot_points_on_the_churn_axis():
    trend = pd.DataFrame(
        {
            "month": pd.to_datetime(["2026-01-01", "2026-02-01"]),
            "churn_rate": [0.02, 0.03],
            "retention_rate": [0.98, 0.97],
            "churned": [2, 3],
            "active_start": [100, 100],
        }
    )
    points = [{"as_of": "2026-01-31", "predicted_churn": 0.05, "realised_churn": None}]
    fig = figures.monthly_trend(trend, snapshots=points)
    assert [t.name for t in fig.data][2:] == ["Predicted (snapshot mean p)", "Realised (snapshot)"]
    assert fig.layout.yaxis.range[1] > 0.05  # the prediction is on the axis
    assert math.isclose(fig.data[2].y[0], 0.05)
