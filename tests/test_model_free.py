"""A server whose data has no model yet (issue 12, item 4): it serves every view that needs no
model (KPIs without the risk figures, trend or survival, cohorts, churn by factor, filters)
while the model trains as a job, says how far training is (health, the API's 503, a panel in
place of each view that needs the model), keeps the role checks as they are, and the page
switches to the full dashboard by itself once the model is ready.

The numbers a model-free server answers are the same as the full server's for the same data."""

from __future__ import annotations

import json
import threading
import time

import pytest

from analytics import access
from analytics import columns as C
from analytics.config import DEMO_DATA, settings_from_env
from analytics.ingest import read
from analytics.ingest.validate import validate
from analytics.metrics import value
from analytics.services import training as training_status
from analytics.workflow import NO_MODEL_YET, model_free_workspace
from dashboard import ids
from dashboard.api.openapi import OPERATIONS
from dashboard.api.routes import NEEDS_MODEL
from dashboard.app import create_app, dash_app, served_base
from dashboard.callback_inputs import Checker
from dashboard.layout import PANEL, components_by_id
from tests.support import (
    call_operation,
    callback_body,
    callback_item,
    signed_in,
    success_status,
)

RUNNING = {
    "job_id": "job-1",
    "state": "running",
    "progress": 0.4,
    "step": "fitting candidates",
    "error": None,
}
TRAINING_TEXT = "The model is training: 40% — fitting candidates"
NORTH = "region=North"
# Every score column a model adds: none of them before it.
MODEL_COLUMNS = (
    C.P_CHURN,
    C.P_MONTHLY,
    C.RISK_BAND,
    C.SEGMENT,
    C.CLV,
    C.EXPECTED_LOSS,
    *C.REASONS,
)


class Job:
    """The `training` callable: the job a test sets, read per request as the lead's DB read is."""

    def __init__(self, job: dict | None = RUNNING) -> None:
        self.job = dict(job) if job else None
        self.calls = 0

    def __call__(self) -> dict | None:
        self.calls += 1
        return None if self.job is None else dict(self.job)


def body(response) -> dict:
    return json.loads(response.get_data())


@pytest.fixture(scope="module")
def settings():
    return settings_from_env(env={})


@pytest.fixture(scope="module")
def free_demo(settings):
    return model_free_workspace(read.load_table(DEMO_DATA), settings, str(DEMO_DATA))


@pytest.fixture(scope="module")
def job():
    return Job()


@pytest.fixture
def running(job):
    """The job as RUNNING for a test, whatever an earlier test left."""
    job.job = dict(RUNNING)
    return job


@pytest.fixture(scope="module")
def free_app(free_demo, job):
    return create_app(free_demo, training=job)


@pytest.fixture(scope="module")
def full_app(demo_workspace):
    return create_app(demo_workspace)


@pytest.fixture(scope="module")
def clients(free_app):
    out = {
        role: signed_in(free_app, role, NORTH if role == access.MANAGER else None)
        for role in access.ROLES
    }
    out["anonymous"] = free_app.test_client()
    return out


@pytest.fixture(scope="module")
def full_admin(full_app):
    return signed_in(full_app, access.ADMIN)


# -- the workspace ----------------------------------------------------------------------------


def test_the_model_free_workspace_has_the_base_and_no_score(free_demo, demo_workspace):
    assert free_demo.model is None
    assert free_demo.how == NO_MODEL_YET
    scored = free_demo.scored
    assert not set(MODEL_COLUMNS) & set(scored.columns)
    assert len(scored) == len(demo_workspace.scored)
    assert free_demo.history is not None
    assert len(free_demo.history) == len(demo_workspace.history)
    # Value at the base's churn rate and its tiers need no model: the same numbers as later.
    full = demo_workspace.scored.set_index(C.CUSTOMER_ID)
    mine = scored.set_index(C.CUSTOMER_ID).loc[full.index]
    for column in value.SIZE_COLUMNS:
        assert mine[column].astype(str).equals(full[column].astype(str)), column


def test_without_revenue_or_a_label_no_value_columns_are_made_up(free_demo):
    frame = free_demo.scored.drop(columns=list(value.SIZE_COLUMNS))
    assert value.add_size_columns(frame.drop(columns=[C.MONTHLY_REVENUE])).columns.equals(
        frame.drop(columns=[C.MONTHLY_REVENUE]).columns
    )
    assert value.add_size_columns(frame.drop(columns=[C.CHURNED])).columns.equals(
        frame.drop(columns=[C.CHURNED]).columns
    )


# -- health and the training status -----------------------------------------------------------


def test_health_says_training_with_the_jobs_progress(clients, running, free_demo):
    r = clients["anonymous"].get("/api/v1/health")  # load balancers need no user
    assert r.status_code == 200
    got = body(r)
    assert got["status"] == "training"
    assert (got["job_id"], got["state"], got["progress"], got["step"]) == (
        "job-1",
        "running",
        0.4,
        "fitting candidates",
    )
    assert got["message"] == TRAINING_TEXT
    assert got["model_version"] is None
    assert got["rows"] == len(free_demo.scored)
    assert got["data"] == "demo_customers.csv.gz"
    running.job.update(progress=0.75, step="permutation importance")  # asked per request
    got = body(clients["anonymous"].get("/api/v1/health"))
    assert (got["progress"], got["step"]) == (0.75, "permutation importance")


@pytest.mark.parametrize(
    ("given", "status", "message"),
    [
        (None, "no model", "No model yet: no training job for this data"),
        ({**RUNNING, "state": "queued", "progress": 0.0, "step": None}, "training", "queued"),
        (
            {**RUNNING, "state": "failed", "error": "out of memory"},
            "no model",
            "Training failed: out of memory",
        ),
        ({**RUNNING, "state": "cancelled"}, "no model", "the training job was cancelled"),
    ],
    ids=["no-job", "queued", "failed", "cancelled"],
)
def test_health_without_a_running_job_still_serves(clients, job, given, status, message):
    job.job = None if given is None else dict(given)
    r = clients["anonymous"].get("/api/v1/health")
    assert r.status_code == 200
    got = body(r)
    assert got["status"] == status
    assert message in got["message"]
    model = clients["analyst"].get("/api/v1/model")
    assert model.status_code == 503
    assert body(model)["status"] == status
    if given and given["state"] == "failed":
        assert "training failed (out of memory)" in body(model)["error"]


def test_a_progress_out_of_range_is_clamped():
    status = training_status.model_status(False, {**RUNNING, "progress": 1.7})
    assert (status.progress, status.percent) == (1.0, 100)
    assert training_status.model_status(False, {**RUNNING, "progress": "x"}).progress is None
    assert training_status.model_status(True, RUNNING).status == training_status.READY


# -- what the API answers without a model -----------------------------------------------------


def test_kpis_count_every_customer_without_the_risk_figures(clients, full_admin, running):
    free = body(clients["admin"].get("/api/v1/kpis"))
    full = body(full_admin.get("/api/v1/kpis"))
    for key in ("customers", "active_customers", "churned", "churn_rate", "mrr"):
        assert free[key] == full[key], key
    assert free["mrr_at_risk"] is None
    assert free["avg_clv"] is None
    assert full["mrr_at_risk"] is not None
    assert "until the churn model is trained" in free["reasons"]["mrr_at_risk"]
    filtered = "/api/v1/kpis?contract=Monthly&tenure_max=12"
    assert (
        body(clients["admin"].get(filtered))["customers"]
        == body(full_admin.get(filtered))["customers"]
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/trend",
        "/api/v1/cohorts",
        "/api/v1/drivers?factor=contract",
        "/api/v1/trend?contract=Annual",
        "/api/v1/cohorts?value_tier=High",
    ],
)
def test_model_free_views_equal_the_full_servers(clients, full_admin, path):
    r = clients["analyst"].get(path)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    free, full = body(r), body(full_admin.get(path))
    for key in ("points", "cohorts", "months", "levels", "base_churn_rate", "note"):
        assert free.get(key) == full.get(key), key
    if "importance" in free:
        assert free["importance"] == []
        assert full["importance"]
        assert "until the churn model is trained" in free["importance_note"]


@pytest.mark.parametrize("endpoint", sorted(NEEDS_MODEL))
def test_routes_that_need_the_model_are_503_with_the_training_progress(
    clients, free_demo, running, endpoint
):
    op = next(o for o in OPERATIONS if _endpoint(o) == endpoint)
    path = "/api/v1" + op.path.replace("{customer_id}", str(free_demo.scored[C.CUSTOMER_ID][0]))
    client = clients["admin"]
    r = client.post(path, json={}) if op.method == "post" else client.get(path)
    assert r.status_code == 503, (path, r.get_data(as_text=True)[:200])
    got = body(r)
    assert got["error"] == (
        "the model is training (40%: fitting candidates); try again when GET /api/v1/health "
        "says ready"
    )
    assert (got["status"], got["progress"], got["step"], got["job_id"]) == (
        "training",
        0.4,
        "fitting candidates",
        "job-1",
    )
    assert got["needs_model"] == NEEDS_MODEL[endpoint]
    assert r.headers["Retry-After"] == "10"


def _endpoint(op) -> str:
    """The route function's name for an OpenAPI operation (dashboard.api.routes)."""
    names = {
        "movers": "movers_view",
        "campaign_create": "campaign_create",
        "segments": "segments_view",
        "value_risk": "scatter_view",
        "at_risk": "at_risk_list",
        "customer": "customer",
        "planner": "planner_view",
        "model_curves": "curves_view",
        "model_threshold": "threshold_view",
        "predict": "predict_view",
        "model": "model_view",
    }
    return names.get(op.operation_id, op.operation_id)


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/api/v1/trend?split=true", "the trend split by segment"),
        ("/api/v1/kpis?risk=High", "the risk band filter"),
        ("/api/v1/drivers?factor=contract&segment=x", "the segment filter"),
        ("/api/v1/drivers?factor=segment", "churn by segment"),
    ],
)
def test_options_that_need_the_model_are_503_too(clients, running, path, what):
    r = clients["analyst"].get(path)
    assert r.status_code == 503
    assert body(r)["needs_model"] == what


@pytest.mark.parametrize("role", [*access.ROLES, "anonymous"])
def test_role_checks_come_first_as_on_the_full_server(clients, free_demo, running, role):
    """401 without a user, 403 without the right (a manager on the model view), then 503 for
    a route that needs the model and 200 for the others."""
    client = clients[role]
    record = {"customer_id": "x"}
    customer = str(free_demo.scored[C.CUSTOMER_ID][0])
    ids: dict = {}
    for op in OPERATIONS:
        r = call_operation(client, op, customer_id=customer, record=record, ids=ids)
        if op.right is None:
            want = 200
        elif role == "anonymous":
            want = 401
        elif not access.allowed(role, op.right):
            want = 403
        else:
            want = 503 if _endpoint(op) in NEEDS_MODEL else success_status(op)
        assert r.status_code == want, (op.path, role, r.get_data(as_text=True)[:200])


def test_the_openapi_document_declares_the_training_answers(clients):
    doc = body(clients["analyst"].get("/api/v1/openapi.json"))
    schemas = doc["components"]["schemas"]
    assert "training" in json.dumps(schemas["Health"]["properties"]["status"])
    assert set(schemas["ModelPending"]["required"]) >= {"error", "status", "needs_model"}
    answer = doc["paths"]["/api/v1/model"]["get"]["responses"]["503"]
    assert "ModelPending" in json.dumps(answer)


# -- the page ---------------------------------------------------------------------------------


def layout_json(client) -> dict:
    r = client.get("/_dash-layout")
    assert r.status_code == 200
    return r.get_json()


def panels(node) -> list[dict]:
    """The props of every training panel in a /_dash-layout tree."""
    found, stack = [], [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            props = item.get("props", {})
            if PANEL in str(props.get("className", "")).split():
                found.append(props)
            stack.extend(v for v in props.values() if isinstance(v, list | dict))
    return found


@pytest.mark.parametrize("role", access.ROLES)
def test_the_page_shows_a_training_panel_for_each_view_that_needs_the_model(clients, running, role):
    page = layout_json(clients[role])
    text = json.dumps(page, ensure_ascii=False)
    found = panels(page)
    # segments, importance, at-risk list, planner, predictions, changes, campaigns, monitoring,
    # and the model view if allowed
    assert len(found) == (9 if access.allowed(role, access.MODEL) else 8)
    assert all(TRAINING_TEXT in json.dumps(p, ensure_ascii=False) for p in found)
    assert '"aria-valuenow": 40' in json.dumps(found)
    assert "Model: training 40%" in text
    for present in (ids.KPI_ROW, ids.TREND, ids.COHORT, ids.FACTOR_GRAPH):
        assert present in text, present
    for absent in (ids.DOUGHNUT, ids.AT_RISK_GRID, ids.PLAN_GRID, ids.MODEL_ROC, ids.IMPORTANCE):
        assert absent not in text, absent
    assert ('"Model"' in text) == (role != access.MANAGER)  # the tab rules are unchanged
    deps = clients[role].get("/_dash-dependencies")
    assert deps.status_code == 200
    outputs = " ".join(e["output"] for e in deps.get_json())
    assert ids.TREND in outputs
    assert ids.FACTOR_GRAPH in outputs


def test_the_panel_says_why_when_training_failed(clients, job):
    job.job = {**RUNNING, "state": "failed", "error": "the label has one class"}
    found = panels(layout_json(clients["analyst"]))
    assert found
    assert all("alert-danger" in p["className"] for p in found)
    assert "Training failed: the label has one class" in json.dumps(found)
    assert all(p["children"][2]["props"]["hidden"] for p in found)  # no progress bar


def test_no_callback_of_a_view_that_needs_the_model_is_registered(free_app):
    callbacks = dash_app(free_app).callback_map
    names = " ".join(callbacks)
    for absent in (ids.DOUGHNUT, ids.SCATTER, ids.AT_RISK_GRID, ids.PLAN_CURVE, ids.MODEL_ROC):
        assert absent not in names, absent
    assert Checker(callbacks, served_base(free_app)).missing() == set()
    page = dash_app(free_app).layout()
    in_layout = set(components_by_id(page))
    for spec in dash_app(free_app)._callback_list:
        for dep in spec["inputs"] + spec["state"]:
            if not str(dep["id"]).startswith("{"):  # pattern-matching ids are JSON text
                assert dep["id"] in in_layout, dep["id"]


# Sensible inputs, so each callback gets past its "not my tab" check.
BASELINE = {
    (ids.URL, "search"): "",
    (ids.URL, "pathname"): "/",
    (ids.URL, "hash"): "",
    (ids.FILTER_QUERY, "data"): "",
    (ids.TREND_SPLIT, "value"): False,
    (ids.FACTOR, "value"): "contract",
}


def _callback_request(app, key: str, spec: dict, tab: str) -> dict:
    page = dash_app(app).layout()
    concrete_ids = [json.loads(c) for c in components_by_id(page) if c.startswith("{")]

    def concrete(pattern_text: str) -> list[dict]:
        kind = json.loads(pattern_text)["type"]
        found = [c for c in concrete_ids if c.get("type") == kind]
        return found or [{"type": kind, "column": "xcolumn", "value": "xvalue"}]

    def item(declared):
        value = (
            tab
            if declared["id"] == ids.TABS
            else BASELINE.get((declared["id"], declared["property"]))
        )
        return callback_item(declared, value, concrete=concrete)

    return callback_body(
        key,
        spec,
        [item(i) for i in spec["inputs"]],
        [item(i) for i in spec.get("state", [])],
        concrete=concrete,
    )


def _answers(app, client) -> dict[str, dict]:
    """Each server-side callback's answer on the first tab it answers for."""
    from dashboard.layout import TABS

    out = {}
    for key, spec in dash_app(app).callback_map.items():
        if "callback" not in spec:
            continue  # clientside
        for tab, _ in TABS:
            r = client.post("/_dash-update-component", json=_callback_request(app, key, spec, tab))
            assert r.status_code in (200, 204), (key, tab, r.get_data(as_text=True)[:300])
            if r.status_code == 200:
                out[key] = r.get_json()["response"]
                break
        else:
            pytest.fail(f"{key} answered no tab")
    return out


@pytest.mark.parametrize("role", access.ROLES)
def test_the_model_free_callbacks_answer_each_role(free_app, clients, running, role):
    answers = _answers(free_app, clients[role])
    kpis = next(v for k, v in answers.items() if "kpi" in k)
    shown = json.dumps(kpis, ensure_ascii=False)
    if role == access.MANAGER:
        north = int((served_base(free_app).scored["region"].astype(str) == "North").sum())
        assert f"{north:,}" in shown
    else:
        assert "23,143" in shown
    assert "once the churn model is trained" in shown  # MRR at risk and average CLV
    trend = answers[f"..{ids.TREND}.figure...{ids.TREND_NOTE}.children.."]
    assert trend[ids.TREND]["figure"]["data"]
    cohort = answers[f"{ids.COHORT}.figure"][ids.COHORT]["figure"]
    assert cohort["data"][0]["type"] == "heatmap"
    bars = answers[f"{ids.FACTOR_GRAPH}.figure"][ids.FACTOR_GRAPH]["figure"]
    assert bars["data"]
    assert "error_x" in json.dumps(bars["data"])  # with intervals
    assert any(ids.FILTER_QUERY in k for k in answers)  # the URL and filter callback


def test_a_filter_change_selects_through_the_url_callback(free_app, clients, free_demo):
    app = dash_app(free_app)
    key = next(k for k in app.callback_map if f"{ids.FILTER_QUERY}.data" in k)
    request = _callback_request(free_app, key, app.callback_map[key], "overview")
    for item in request["inputs"][1]:  # the filter dropdowns' values
        if item["id"] == {"type": ids.FILTER, "column": "contract"}:
            item["value"] = ["Monthly"]
    request["changedPropIds"] = [
        json.dumps({"column": "contract", "type": ids.FILTER}, separators=(",", ":")) + ".value"
    ]
    r = clients["analyst"].post("/_dash-update-component", json=request)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    got = r.get_json()["response"]
    monthly = int((free_demo.scored["contract"].astype(str) == "Monthly").sum())
    assert got[ids.FILTER_QUERY]["data"] == "?contract=Monthly"
    assert got[ids.SELECTION_SUMMARY]["children"].startswith(f"{monthly:,} of 23,143")


def test_a_link_with_a_split_trend_draws_it_whole_until_the_model(free_app, clients, running):
    app = dash_app(free_app)
    key = f"..{ids.TREND}.figure...{ids.TREND_NOTE}.children.."
    request = _callback_request(free_app, key, app.callback_map[key], "overview")
    request["inputs"][1]["value"] = True  # split=segment from a shared link
    r = clients["analyst"].post("/_dash-update-component", json=request)
    assert r.status_code == 200
    traces = r.get_json()["response"][ids.TREND]["figure"]["data"]
    assert traces
    assert not any("Segment" in str(t.get("name", "")) for t in traces)


def test_the_page_loads_its_training_script_under_the_csp(clients):
    page = clients["admin"].get("/")
    assert page.status_code == 200
    assert "/assets/training.js" in page.get_data(as_text=True)
    policy = page.headers["Content-Security-Policy"]
    script_src = next(p for p in policy.split("; ") if p.startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    assert "'self'" in script_src
    assert "connect-src 'self'" in policy
    script = clients["anonymous"].get("/assets/training.js")
    assert script.status_code == 200
    assert b"/api/v1/health" in script.data
    assert b"location.reload" in script.data


# -- the IBM Telco file: no dates, so survival ---------------------------------------------------


@pytest.fixture(scope="module")
def telco_free(telco_path, settings):
    return model_free_workspace(read.load_table(telco_path), settings, str(telco_path))


def test_telco_without_a_model(telco_free, telco_workspace):
    job = Job()
    free = signed_in(create_app(telco_free, training=job), access.ANALYST)
    full = signed_in(create_app(telco_workspace), access.ANALYST)
    kpis = body(free.get("/api/v1/kpis"))
    assert kpis["customers"] == body(full.get("/api/v1/kpis"))["customers"] == 7043
    for path in ("/api/v1/trend", "/api/v1/cohorts", "/api/v1/drivers?factor=Contract"):
        r = free.get(path)
        assert r.status_code == 200, (path, r.get_data(as_text=True)[:200])
        mine, theirs = body(r), body(full.get(path))
        for key in ("kind", "points", "note", "levels", "cohorts"):
            assert mine.get(key) == theirs.get(key), (path, key)
    assert body(free.get("/api/v1/trend"))["kind"] == "survival"
    for path in ("/api/v1/model", "/api/v1/segments", "/api/v1/customers/at-risk"):
        r = free.get(path)
        assert r.status_code == 503
        assert "the model is training (40%: fitting candidates)" in body(r)["error"]
    assert job.calls >= 3
    page = layout_json(free)
    assert len(panels(page)) == 9
    assert ids.COHORT not in json.dumps(page)  # no dates: survival instead of cohorts


# -- a new 100,000-customer table --------------------------------------------------------------


def test_a_100000_row_table_is_served_without_training(settings, capsys):
    """The first useful dashboard of a new 100,000-row table: validated, the model-free
    workspace and the app, then the overview's KPIs and trend. The timing is printed, not
    asserted (benchmarks/ holds timing targets)."""
    from analytics import synthetic

    raw = synthetic.generate(100_000, seed=11)
    started = time.perf_counter()
    table = validate(raw)
    validated = time.perf_counter()
    workspace = model_free_workspace(table, settings, "synthetic-100000.csv")
    built = time.perf_counter()
    server = create_app(workspace, training=Job())
    app_made = time.perf_counter()
    client = signed_in(server, access.ANALYST)
    kpis = body(client.get("/api/v1/kpis"))
    assert client.get("/api/v1/trend").status_code == 200
    answered = time.perf_counter()
    assert len(table.frame) == 100_000
    assert kpis["customers"] == len(workspace.scored) > 0
    assert body(client.get("/api/v1/model"))["status"] == "training"
    with capsys.disabled():
        print(
            f"\n100,000-row table without a model: validate {validated - started:.2f} s, "
            f"workspace {built - validated:.2f} s, app {app_made - built:.2f} s, first KPIs and "
            f"trend {answered - app_made:.2f} s; {kpis['customers']:,} customers in the base"
        )


# -- in a browser ------------------------------------------------------------------------------


class Swappable:
    """A WSGI app that forwards to the app of the moment, as each worker swaps in the full app
    when the training job is done."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def _prepared(server):
    """Dash's set-up done before the first request, as dashboard.app.start does."""
    with server.test_request_context("/"):
        dash_app(server)._setup_server()
    return server


@pytest.mark.browser
@pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning")
def test_browser_follows_the_training_and_switches_when_the_model_is_ready(
    dash_duo, free_demo, demo_workspace, tmp_path
):
    from dash.testing.wait import until
    from selenium.webdriver.common.by import By
    from werkzeug.serving import make_server

    from analytics.store import db
    from dashboard import auth
    from tests.support import PASSWORD, make_user

    wait = 20
    state, config = db.memory_state(), auth.AuthConfig.for_tests()
    job = Job()
    free = _prepared(create_app(free_demo, training=job, state=state, auth_config=config))
    full = _prepared(create_app(demo_workspace, state=state, auth_config=config))
    name = make_user(free, access.ADMIN)
    swappable = Swappable(free)
    http = make_server("127.0.0.1", 0, swappable, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_port}"
    driver = dash_duo.driver
    try:
        driver.set_window_size(1440, 900)
        driver.get(url + "/login")
        dash_duo.wait_for_element("#username").send_keys(name)
        dash_duo.find_element("#password").send_keys(PASSWORD)
        dash_duo.find_element("#login-submit").click()
        until(lambda: "/login" not in driver.current_url, wait, msg="login did not finish")

        panel = f".{PANEL} .training-text"
        dash_duo.wait_for_text_to_equal(panel, TRAINING_TEXT, timeout=wait)
        kpi = f"[id='{json.dumps({'name': 'customers', 'type': ids.KPI}, separators=(',', ':'))}']"
        dash_duo.wait_for_text_to_equal(kpi, "23,143", timeout=wait)  # no model needed
        bar = dash_duo.find_element(f".{PANEL} .training-progress")
        assert bar.get_attribute("aria-valuenow") == "40"
        assert bar.is_displayed()
        driver.save_screenshot(str(tmp_path / "model-free-1440.png"))

        # The job moves on: the panel follows without a reload.
        driver.execute_script("window.__sameDocument = true;")
        job.job.update(progress=0.7, step="permutation importance")
        dash_duo.wait_for_text_to_equal(
            panel, "The model is training: 70% — permutation importance", timeout=wait
        )
        until(lambda: bar.get_attribute("aria-valuenow") == "70", wait, msg="bar stayed")
        assert driver.execute_script("return window.__sameDocument === true")
        # A tab opened now shows the latest status too.
        driver.find_element(
            By.XPATH, "//a[contains(@class, 'nav-link') and normalize-space()='At-risk customers']"
        ).click()
        until(
            lambda: any(
                "70%" in e.text for e in driver.find_elements(By.CSS_SELECTOR, panel) if e.text
            ),
            wait,
            msg="the at-risk tab's panel is not current",
        )

        # Done: the server swaps in the full app; the page reloads itself into it.
        swappable.app = full
        until(
            lambda: driver.find_elements(By.ID, ids.DOUGHNUT)
            and not driver.find_elements(By.CSS_SELECTOR, f".{PANEL}"),
            wait,
            msg="the page did not switch to the full dashboard",
        )
        assert not driver.execute_script("return window.__sameDocument === true")
        assert (
            f"Model: {demo_workspace.model.version}" in dash_duo.find_element(f"#{ids.STATUS}").text
        )
        logs = [e["message"] for e in dash_duo.get_logs()]
        assert not logs, "\n".join(logs)
    finally:
        http.shutdown()
