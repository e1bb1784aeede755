"""The REST API through Flask's test client over the dashboard's own server (create_app)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from flask import Flask

from analytics import columns as C
from analytics import filters
from analytics.definitions import KPI_DEFINITIONS
from analytics.metrics import kpis, value
from analytics.model import predict
from analytics.services.base import ServedBase
from dashboard.api import routes as api
from dashboard.api.http import max_body_bytes
from dashboard.app import create_app, served_base
from tests.support import signed_in

JSON = "application/json"


@pytest.fixture(scope="module")
def app(demo_workspace):
    return create_app(demo_workspace)


@pytest.fixture(scope="module")
def client(app):
    return signed_in(app, "admin")


@pytest.fixture(scope="module")
def data(app) -> ServedBase:
    return served_base(app)


@pytest.fixture(scope="module")
def schema(demo_workspace):
    return predict.input_schema(demo_workspace.model.meta)


@pytest.fixture(scope="module")
def norev_client(no_revenue_workspace):
    return signed_in(create_app(no_revenue_workspace), "analyst")


def typical_record(schema) -> dict:
    return {name: spec["default"] for name, spec in schema.items()}


def body(response) -> dict:
    """The JSON body; every API answer is JSON, whatever its status."""
    assert response.mimetype == JSON, response.get_data(as_text=True)[:200]
    return json.loads(response.get_data(as_text=True))


def fields(response) -> set[str]:
    return {e["field"] for e in body(response)["errors"]}


# -- health ------------------------------------------------------------------------------------


def test_health_when_ready(client, demo_workspace):
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    got = body(r)
    assert got["status"] == "ready"
    assert got["rows"] == len(demo_workspace.scored)
    assert got["model_version"] == demo_workspace.model.version
    assert got["data_hash"] == demo_workspace.model.meta["data_hash"]
    assert got["data"] == "demo_customers.csv.gz"
    assert got["currency"] == demo_workspace.settings.currency  # money is plain numbers in it


def test_the_openapi_document_declares_the_currency(client):
    health = body(client.get("/api/v1/openapi.json"))["components"]["schemas"]["Health"]
    assert "currency" in health["properties"]
    assert "currency" in health["required"]


def test_without_data_or_model_every_route_says_not_ready():
    server = Flask("bare")
    api.register(server, None)
    client = server.test_client()
    r = client.get("/api/v1/health")
    assert r.status_code == 503
    got = body(r)
    assert (got["status"], got["reason"]) == ("not ready", "no data loaded")
    for path in ("/api/v1/kpis", "/api/v1/model", "/api/v1/customers/at-risk"):
        r = client.get(path)
        assert r.status_code == 503
        assert body(r)["status"] == "not ready"
    assert client.post("/api/v1/predict", json={}).status_code == 503
    assert client.get("/api/v1/nope").status_code == 404


# -- KPIs --------------------------------------------------------------------------------------


def test_kpis_without_filters_match_the_whole_base(client, data):
    got = body(client.get("/api/v1/kpis"))
    want = kpis.kpis(data.scored)
    for key in ("customers", "active_customers", "churned"):
        assert got[key] == want[key]
    for key in ("churn_rate", "retention_rate", "mrr", "avg_clv", "mrr_at_risk"):
        assert got[key] == pytest.approx(want[key])
    assert got["definitions"] == KPI_DEFINITIONS
    assert got["filters"] == {"query": "", "levels": {}, "tenure_min": None, "tenure_max": None}


def test_kpis_apply_the_dashboard_filters(client, data):
    segment = data.allowed[C.SEGMENT][0]
    query = {"risk": ["High", "Medium"], "segment": segment, "tenure_min": "3", "tenure_max": 24}
    got = body(client.get("/api/v1/kpis", query_string=query))
    state = filters.FilterState(
        levels={C.RISK_BAND: ("High", "Medium"), C.SEGMENT: (segment,)},
        tenure_min=3,
        tenure_max=24,
    )
    want = kpis.kpis(filters.apply(data.scored, state))
    assert 0 < got["customers"] == want["customers"] < len(data.scored)
    assert got["churn_rate"] == pytest.approx(want["churn_rate"])
    assert got["filters"]["levels"] == {"risk": ["High", "Medium"], "segment": [segment]}
    assert (got["filters"]["tenure_min"], got["filters"]["tenure_max"]) == (3, 24)
    # A categorical column of the data filters by its own name, as in dashboard links.
    got = body(client.get("/api/v1/kpis", query_string={"contract": "Monthly"}))
    assert got["customers"] == int((data.scored["contract"] == "Monthly").sum())


def test_kpis_list_every_bad_filter(client):
    query = "segment=Nope&fruit=apple&risk=High&risk=Severe&tenure_min=abc&tenure_max=-1"
    r = client.get(f"/api/v1/kpis?{query}")
    assert r.status_code == 400
    got = body(r)
    assert got["error"] == "invalid query parameters"
    assert fields(r) == {"segment", "fruit", "risk", "tenure_min", "tenure_max"}
    messages = " ".join(e["message"] for e in got["errors"])
    assert "'Nope'" in messages
    assert "'Severe'" in messages
    assert "unknown filter 'fruit'" in messages


def test_kpis_refuse_an_empty_tenure_range(client):
    r = client.get("/api/v1/kpis?tenure_min=30&tenure_max=3")
    assert r.status_code == 400
    assert "greater than tenure_max" in body(r)["errors"][0]["message"]


def test_kpis_of_an_empty_selection_are_null_not_nan(client):
    r = client.get("/api/v1/kpis?tenure_min=10000")
    got = body(r)
    assert r.status_code == 200
    assert got["customers"] == 0
    assert got["churn_rate"] is None


def test_kpis_without_revenue_say_why(norev_client):
    got = body(norev_client.get("/api/v1/kpis"))
    assert got["mrr"] is None
    assert "monthly_revenue" in got["reasons"]["mrr"]
    assert got["churn_rate"] is not None


# -- the at-risk list ---------------------------------------------------------------------------


def test_at_risk_list_default_order_and_columns(client, data):
    got = body(client.get("/api/v1/customers/at-risk"))
    hv = value.high_value_at_risk(data.scored)
    assert got["total"] == len(hv) > 50
    assert (got["limit"], got["offset"]) == (50, 0)
    assert [row["customer_id"] for row in got["items"]] == list(hv[C.CUSTOMER_ID][:50])
    losses = [row["expected_loss"] for row in got["items"]]
    assert losses == sorted(losses, reverse=True)
    expected = {
        C.CUSTOMER_ID,
        C.P_CHURN,
        C.RISK_BAND,
        C.SEGMENT,
        C.MONTHLY_REVENUE,
        C.CLV,
        C.VALUE,
        C.EXPECTED_LOSS,
        C.TENURE,
        *C.REASONS,
    }
    assert set(got["items"][0]) == expected
    assert all(row[C.RISK_BAND] == "High" for row in got["items"])


def test_at_risk_paging_sorting_and_filters(client, data):
    first = body(client.get("/api/v1/customers/at-risk?limit=7&sort=p_churn"))
    second = body(client.get("/api/v1/customers/at-risk?limit=7&offset=7&sort=p_churn"))
    both = body(client.get("/api/v1/customers/at-risk?limit=14&sort=p_churn"))
    assert first["items"] + second["items"] == both["items"]
    probs = [row[C.P_CHURN] for row in both["items"]]
    assert probs == sorted(probs)
    assert first["sort"] == ["p_churn"]
    several = body(client.get("/api/v1/customers/at-risk?sort=segment,-expected_loss&limit=1000"))
    keys = [(row[C.SEGMENT], -row[C.EXPECTED_LOSS]) for row in several["items"]]
    assert keys == sorted(keys)

    segment = data.allowed[C.SEGMENT][0]
    got = body(client.get("/api/v1/customers/at-risk", query_string={"segment": segment}))
    view = filters.apply(data.scored, filters.FilterState(levels={C.SEGMENT: (segment,)}))
    assert got["total"] == len(value.high_value_at_risk(view))
    assert all(row[C.SEGMENT] == segment for row in got["items"])

    past = body(client.get("/api/v1/customers/at-risk?offset=1000000"))
    assert past["items"] == []
    assert past["total"] == first["total"]


@pytest.mark.parametrize(
    ("query", "bad"),
    [
        ("limit=0", {"limit"}),
        ("limit=1001", {"limit"}),
        ("limit=ten", {"limit"}),
        ("offset=-1", {"offset"}),
        ("sort=-monthly_usage_hours", {"sort"}),
        ("limit=0&offset=x&sort=churned&risk=Extreme", {"limit", "offset", "sort", "risk"}),
    ],
)
def test_at_risk_bad_parameters_are_400_listing_each(client, query, bad):
    r = client.get(f"/api/v1/customers/at-risk?{query}")
    assert r.status_code == 400
    assert fields(r) == bad


def test_at_risk_without_revenue_is_409(norev_client):
    r = norev_client.get("/api/v1/customers/at-risk")
    assert r.status_code == 409
    assert "not available because the data has no monthly_revenue column" in (
        body(r)["error"].lower()
    )


# -- one customer -------------------------------------------------------------------------------


def test_customer_detail(client, data):
    row = value.high_value_at_risk(data.scored).iloc[0]
    r = client.get(f"/api/v1/customers/{row[C.CUSTOMER_ID]}")
    assert r.status_code == 200
    got = body(r)
    assert got["customer_id"] == row[C.CUSTOMER_ID]
    assert got["probability"] == pytest.approx(row[C.P_CHURN])
    assert got["risk_band"] == "High"
    assert got["segment"] == row[C.SEGMENT]
    assert got["expected_loss"] == pytest.approx(row[C.EXPECTED_LOSS])
    assert set(got["profile"]) == set(data.ws.table.features)
    assert got["profile"]["contract"] == row["contract"]
    assert got["drivers"] == [row[r] for r in C.REASONS if row[r]]
    assert got["drivers"]
    assert len(got["recommended_action"]) > 20


def test_unknown_customer_is_404(client):
    r = client.get("/api/v1/customers/NO-SUCH-ID")
    assert r.status_code == 404
    assert "NO-SUCH-ID" in body(r)["error"]


# -- predict ------------------------------------------------------------------------------------


def test_predict_one_customer_matches_the_prediction_card(client, demo_workspace, schema):
    record = typical_record(schema) | {"contract": "monthly", "customer_id": "new-1"}
    r = client.post("/api/v1/predict", json=record)
    assert r.status_code == 200
    got = body(r)
    clean, problems = predict.check_record(schema, record)
    assert not problems
    settings = demo_workspace.settings
    want = predict.predict(
        demo_workspace.model, [clean], margin=settings.margin, discount=settings.discount
    )[0]
    assert got["probability"] == want["probability"]
    assert got["risk_band"] == want["risk_band"]
    assert got["threshold"] == want["threshold"]
    assert got["customer_id"] == "new-1"
    assert got["model_version"] == demo_workspace.model.version
    for key in ("clv", "value", "expected_loss"):
        assert got[key] == pytest.approx(want[key])
    assert got["drivers"] == want["drivers"]


def test_predict_batch_keeps_order(client, schema):
    base = typical_record(schema)
    records = [
        base | {"customer_id": "a", "contract": "Monthly", "support_tickets_90d": 6},
        base | {"customer_id": "b"},
        base | {"customer_id": "c", "tenure_months": schema["tenure_months"]["max"]},
    ]
    r = client.post("/api/v1/predict", json={"customers": records})
    assert r.status_code == 200
    got = body(r)
    assert got["count"] == 3
    assert [p["customer_id"] for p in got["predictions"]] == ["a", "b", "c"]
    assert got["predictions"][0]["probability"] > got["predictions"][1]["probability"]
    assert got["predictions"][0]["drivers"]


def test_predict_a_full_batch_and_refuse_one_more(client, schema):
    base = typical_record(schema)
    top = int(schema["tenure_months"]["max"])
    records = [base | {"tenure_months": i % top, "customer_id": i} for i in range(10_000)]
    r = client.post("/api/v1/predict", json={"customers": records})
    assert r.status_code == 200
    got = body(r)
    assert got["count"] == 10_000
    assert got["predictions"][9_999]["customer_id"] == "9999"  # ids come back as text
    # One over the batch limit: 413, the batch is too large (not invalid); nothing is scored.
    r = client.post("/api/v1/predict", json={"customers": [*records, base]})
    assert r.status_code == 413
    assert body(r)["limit"] == 10_000
    assert "10,001" in body(r)["error"]


def test_batch_limit_is_the_app_setting(app, client, schema, monkeypatch):
    monkeypatch.setitem(app.config, "RETENTION_BATCH_LIMIT", 2)
    records = [typical_record(schema)] * 3
    r = client.post("/api/v1/predict", json={"customers": records})
    assert r.status_code == 413
    assert body(r)["limit"] == 2
    assert client.post("/api/v1/predict", json={"customers": records[:2]}).status_code == 200


def test_body_over_the_byte_limit_is_a_json_413(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "RETENTION_BATCH_LIMIT", 1)
    limit = max_body_bytes(1)
    payload = json.dumps({"customers": [{"x": "y" * limit}]})
    r = client.post("/api/v1/predict", data=payload, content_type=JSON)
    assert r.status_code == 413
    assert "larger than the limit" in body(r)["error"]


def test_predict_lists_every_problem_with_its_field(client, schema):
    good = typical_record(schema)
    bad = dict(good)
    del bad["region"]
    bad |= {
        "tenure_months": "twelve",
        "monthly_revenue": 1e9,
        "contract": "Lifetime",
        "plan": ["Basic"],
        "favourite_colour": "blue",
        "customer_age": True,
    }
    r = client.post("/api/v1/predict", json={"customers": [good, bad, 7]})
    assert r.status_code == 422
    got = body(r)
    assert got["error"] == "invalid request body"
    assert fields(r) == {
        "customers[1].region",
        "customers[1].tenure_months",
        "customers[1].monthly_revenue",
        "customers[1].contract",
        "customers[1].plan",
        "customers[1].favourite_colour",
        "customers[1].customer_age",
        "customers[2]",
    }
    by_field = {e["field"]: e["message"] for e in got["errors"]}
    assert "missing" in by_field["customers[1].region"]
    assert "out of range" in by_field["customers[1].monthly_revenue"]
    assert "unknown level 'Lifetime'" in by_field["customers[1].contract"]
    assert by_field["customers[1].favourite_colour"] == "unknown field"


def test_predict_single_record_problems_have_plain_field_names(client, schema):
    record = typical_record(schema) | {"tenure_months": -50, "customer_id": {"a": 1}}
    r = client.post("/api/v1/predict", json=record)
    assert r.status_code == 422
    assert fields(r) == {"tenure_months", "customer_id"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"customers": []}, "customers"),
        ({"customers": {"a": 1}}, "customers"),
        ([], "body"),
        ("text", "body"),
        (None, "body"),
    ],
)
def test_predict_wrong_shapes_are_422(client, schema, payload, field):
    r = client.post("/api/v1/predict", data=json.dumps(payload), content_type=JSON)
    assert r.status_code == 422
    assert field in fields(r)


def test_predict_batch_envelope_with_extra_keys_is_422(client, schema):
    payload = {"customers": [typical_record(schema)], "mode": "fast"}
    r = client.post("/api/v1/predict", json=payload)
    assert r.status_code == 422
    assert fields(r) == {"mode"}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", JSON),
        ('{"tenure_months": NaN}', JSON),
        (b"\xff\xfe{}", JSON),
        ("[" * 100_000, JSON),
        ('{"a": 1}', "text/plain"),
        ('{"a": 1}', "application/x-www-form-urlencoded"),
        ('{"a": 1}', None),
    ],
)
def test_predict_malformed_json_or_wrong_type_is_400(client, data, content_type):
    r = client.post("/api/v1/predict", data=data, content_type=content_type)
    assert r.status_code == 400
    assert body(r)["error"]


def test_predict_without_revenue_has_no_value_fields(norev_client, no_revenue_workspace):
    schema = predict.input_schema(no_revenue_workspace.model.meta)
    got = body(norev_client.post("/api/v1/predict", json=typical_record(schema)))
    assert 0 <= got["probability"] <= 1
    assert "clv" not in got


def test_predict_on_telco(telco_workspace):
    client = signed_in(create_app(telco_workspace), "analyst")
    model = body(client.get("/api/v1/model"))
    record = {name: spec["default"] for name, spec in model["features"].items()}
    got = body(client.post("/api/v1/predict", json={"customers": [record, record]}))
    assert got["count"] == 2
    column = telco_workspace.table.categorical[0]
    level = str(telco_workspace.scored[column].iloc[0])
    kpi = body(client.get("/api/v1/kpis", query_string={column: level}))
    assert kpi["customers"] == int((telco_workspace.scored[column] == level).sum())


# -- model and OpenAPI --------------------------------------------------------------------------


def test_model_document(client, demo_workspace, schema):
    got = body(client.get("/api/v1/model"))
    meta = demo_workspace.model.meta
    assert got["version"] == demo_workspace.model.version
    assert got["created_at"].startswith("20")
    assert got["chosen"] == meta["chosen"]
    assert {c["name"] for c in got["candidates"]} == {c["name"] for c in meta["candidates"]}
    assert got["metrics"]["roc_auc"] == pytest.approx(meta["metrics"]["roc_auc"])
    assert got["threshold"] == pytest.approx(meta["threshold"])
    assert "F1" in got["threshold_rule"]
    assert "StratifiedKFold" in got["protocol"]
    assert list(got["features"]) == meta["features"]
    assert got["features"]["contract"]["type"] == "categorical"
    assert got["features"]["contract"]["levels"] == schema["contract"]["levels"]
    tenure = got["features"]["tenure_months"]
    assert tenure["type"] == "numeric"
    assert tenure["min"] == schema["tenure_months"]["min"]
    assert tenure["max"] == schema["tenure_months"]["max"]
    assert got["importance"][0]["feature"] in meta["features"]


def _flask_api_routes(server) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in server.url_map.iter_rules():
        if not rule.rule.startswith(api.PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        routes.setdefault(path, set()).update(methods)
    return routes


def test_openapi_documents_every_route_and_only_those(app, client, data):
    spec = body(client.get("/api/v1/openapi.json"))
    assert spec["openapi"].startswith("3.1")
    documented = {path: set(ops) for path, ops in spec["paths"].items()}
    assert documented == _flask_api_routes(app)
    known = str(data.scored[C.CUSTOMER_ID].iloc[0])  # a customer of the current base
    for path, methods in documented.items():
        concrete = path.replace("{customer_id}", known)
        for method in methods:
            r = client.open(concrete, method=method.upper(), json={} if method == "post" else None)
            assert r.status_code not in (404, 405), (method, path)
        assert len({op["operationId"] for op in spec["paths"][path].values()}) == len(methods)


def test_openapi_request_schema_comes_from_the_model(client, schema, data):
    spec = body(client.get("/api/v1/openapi.json"))
    customer = spec["components"]["schemas"]["Customer"]
    assert customer["additionalProperties"] is False
    assert set(customer["required"]) == set(schema)
    assert customer["properties"]["contract"]["enum"] == schema["contract"]["levels"]
    tenure = customer["properties"]["tenure_months"]
    assert tenure["minimum"] == schema["tenure_months"]["allowed_min"]
    assert tenure["maximum"] == schema["tenure_months"]["allowed_max"]
    batch = spec["components"]["schemas"]["CustomerBatch"]["properties"]["customers"]
    assert batch["maxItems"] == 10_000
    params = {p["name"]: p for p in spec["paths"]["/api/v1/kpis"]["get"]["parameters"]}
    assert params["segment"]["schema"]["items"]["enum"] == data.allowed[C.SEGMENT]
    assert {"risk", "value_tier", "contract", "tenure_min", "tenure_max"} <= set(params)
    predict_responses = spec["paths"]["/api/v1/predict"]["post"]["responses"]
    assert {"200", "400", "413", "422", "500", "503"} <= set(predict_responses)


def test_openapi_references_all_resolve(client):
    spec = body(client.get("/api/v1/openapi.json"))
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(spec))
    assert refs
    for ref in refs:
        node = spec
        for part in ref.split("/"):
            node = node[part]


# -- errors: never HTML, never a trace -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nope"),
        ("POST", "/api/v1/nope/deeper"),
        ("GET", "/api/v1/kpis/"),
        ("GET", "/api/v1/customers/"),
        ("GET", "/api/v2/kpis"),
        ("DELETE", "/api/other"),
        ("GET", "/api/"),
        ("PATCH", "/api/"),
        ("OPTIONS", "/api/v1/nope"),
    ],
)
def test_unknown_api_routes_are_json_404(client, method, path):
    r = client.open(path, method=method)
    assert r.status_code == 404
    assert "not found" in body(r)["error"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/v1/kpis", "GET"),
        ("DELETE", "/api/v1/customers/C000003", "GET"),
        ("GET", "/api/v1/predict", "POST"),
        ("PUT", "/api/v1/health", "GET"),
    ],
)
def test_wrong_method_is_json_405(client, method, path, allow):
    r = client.open(path, method=method)
    assert r.status_code == 405
    assert allow in r.headers["Allow"]
    assert "not allowed" in body(r)["error"]


def test_options_lists_only_the_real_methods(client):
    r = client.open("/api/v1/kpis", method="OPTIONS")
    assert r.status_code == 200
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_the_dashboard_page_is_still_html(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.mimetype == "text/html"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_unexpected_error_is_a_generic_json_500_and_is_logged(client, schema, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals /srv/models/x.joblib")

    monkeypatch.setattr(predict, "predict", boom)
    handler = _Records()
    logging.getLogger("dashboard.api").addHandler(handler)
    try:
        r = client.post("/api/v1/predict", json=typical_record(schema))
    finally:
        logging.getLogger("dashboard.api").removeHandler(handler)
    assert r.status_code == 500
    text = r.get_data(as_text=True)
    assert "secret" not in text
    assert "Traceback" not in text
    assert body(r) == {"error": api.INTERNAL}
    assert any(rec.exc_info and "secret" in str(rec.exc_info[1]) for rec in handler.records)


def test_an_error_outside_the_blueprint_under_api_is_json_too(demo_workspace):
    server = create_app(demo_workspace)

    @server.route("/api/boom")
    def _boom():
        raise RuntimeError("secret")

    r = signed_in(server).get("/api/boom")
    assert r.status_code == 500
    assert "secret" not in r.get_data(as_text=True)
    assert body(r) == {"error": api.INTERNAL}


def test_markup_in_input_comes_back_as_escaped_json_text(client, schema):
    script = "<script>alert(1)</script>"
    r = client.post("/api/v1/predict", json=typical_record(schema) | {"plan": script})
    assert r.status_code == 422
    raw = r.get_data(as_text=True)
    assert r.mimetype == JSON
    assert "<script>" not in raw
    assert script in body(r)["errors"][0]["message"]

    tag = '<img src=x onerror="alert(1)">&'
    r = client.post("/api/v1/predict", json=typical_record(schema) | {"customer_id": tag})
    assert r.status_code == 200
    assert "<img" not in r.get_data(as_text=True)
    assert body(r)["customer_id"] == tag

    r = client.get("/api/v1/customers/%3Cscript%3Ealert(1)%3C%2Fb%3E")
    assert r.status_code == 404
    assert "<script>" not in r.get_data(as_text=True)

    r = client.get("/api/v1/kpis", query_string={"segment": script})
    assert r.status_code == 400
    assert "<script>" not in r.get_data(as_text=True)
    assert script in body(r)["errors"][0]["message"]


def test_predict_refuses_fractions_of_whole_number_features(client, schema, demo_workspace):
    whole = demo_workspace.model.meta["whole_numbers"]
    assert {"support_tickets_90d", "tenure_months"} <= set(whole)
    assert "monthly_revenue" not in whole
    assert schema["support_tickets_90d"]["whole"]
    record = typical_record(schema) | {"support_tickets_90d": 2.5, "monthly_revenue": 49.95}
    r = client.post("/api/v1/predict", json=record)
    assert r.status_code == 422
    assert fields(r) == {"support_tickets_90d"}
    assert "a whole number is required, got 2.5" in body(r)["errors"][0]["message"]
    fixed = record | {"support_tickets_90d": 2}
    assert client.post("/api/v1/predict", json=fixed).status_code == 200
    document = body(client.get("/api/v1/openapi.json"))
    assert "multipleOf" in json.dumps(document)


def test_json_response_writes_numpy_dates_and_gaps_like_plain():
    import datetime as dt

    import numpy as np
    import pandas as pd

    from dashboard.api.http import json_response, plain

    clean = {"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True)}
    clean["at"] = dt.date(2026, 1, 2)
    gaps = {**clean, "nan": float("nan"), "inf": np.float64(np.inf), "nat": pd.NaT, "na": pd.NA}
    for payload in (clean, gaps, [clean, gaps]):
        response = json_response(payload)
        assert json.loads(response.get_data(as_text=True)) == plain(payload)
    assert json.loads(json_response(gaps).get_data(as_text=True))["nan"] is None


def test_predict_an_integer_too_large_for_a_float_is_422(client, schema):
    body_text = json.dumps(typical_record(schema) | {"tenure_months": 10**400})
    r = client.post("/api/v1/predict", data=body_text, content_type="application/json")
    assert r.status_code == 422
    assert fields(r) == {"tenure_months"}
    message = body(r)["errors"][0]["message"]
    assert message.startswith("expected a number, got 1000")
    assert len(message) < 80


# -- the views, served with the dashboard's query parameters ------------------------------------

VIEW_FILTERS = (
    "",
    "tenure_max=6",
    "tenure_min=12&tenure_max=36",
    "contract=Monthly&tenure_max=6",
    "risk=High",
    "value_tier=High&region=East",
)


@pytest.mark.parametrize("query", VIEW_FILTERS)
def test_the_trends_last_month_is_the_kpi_month(client, query):
    """Every filter applies to the trend, tenure as of each month: its last month is the base
    the KPIs describe (the demo's window is its last calendar month)."""
    k = body(client.get(f"/api/v1/kpis?{query}"))
    points = body(client.get(f"/api/v1/trend?{query}"))["points"]
    assert points[-1]["customers"] == k["customers"]
    assert points[-1]["churned"] == k["churned"]
    assert points[-1]["churn_rate"] == pytest.approx(k["churn_rate"])


def test_trend_and_cohorts_of_a_selection_matching_nobody_are_empty(client):
    for query in ("tenure_min=100000", "tenure_min=5.2&tenure_max=5.8"):
        assert body(client.get(f"/api/v1/kpis?{query}"))["customers"] == 0
        for path in ("trend", "cohorts"):
            found = body(client.get(f"/api/v1/{path}?{query}"))
            assert found.get("points", found.get("cohorts")) == [], (path, query)
            assert "No customers match" in found["note"]


def test_cohorts_keep_the_tenure_range_and_say_what_a_score_filter_means(client):
    whole = body(client.get("/api/v1/cohorts"))
    ranged = body(client.get("/api/v1/cohorts?tenure_min=3&tenure_max=5"))
    assert whole["months"][:3] == [0, 1, 2]
    assert ranged["months"] == [3, 4, 5]
    assert whole["note"] == ranged["note"] == ""
    by_risk = body(client.get("/api/v1/trend?risk=High"))
    assert "today's score" in by_risk["note"]
    assert len(by_risk["points"]) == 1
    assert "Clear it" in body(client.get("/api/v1/cohorts?risk=High"))["note"]


@pytest.mark.parametrize("query", ["", "contract=Monthly", "tenure_max=6&risk=High"])
def test_segment_counts_add_up_to_the_kpi_count(client, query):
    k = body(client.get(f"/api/v1/kpis?{query}"))
    found = body(client.get(f"/api/v1/segments?{query}"))
    assert sum(s["customers"] for s in found["segments"]) == k["customers"]
    assert sum(s["churned"] for s in found["segments"]) == k["churned"]
    for s in found["segments"]:
        assert s["ci_low"] <= s["churn_rate"] <= s["ci_high"]


def test_drivers_give_the_base_and_the_selection_rates(client, data):
    query = "contract=Monthly&tenure_max=12"
    found = body(client.get(f"/api/v1/drivers?factor=plan&{query}"))
    base = body(client.get("/api/v1/kpis"))["churn_rate"]
    selection = body(client.get(f"/api/v1/kpis?{query}"))["churn_rate"]
    assert found["base_churn_rate"] == pytest.approx(base)
    assert found["selection_churn_rate"] == pytest.approx(selection)
    assert found["selection_churn_rate"] != pytest.approx(found["base_churn_rate"])
    assert sum(level["customers"] for level in found["levels"]) == data.count(f"?{query}")
    r = client.get("/api/v1/drivers?factor=nope")
    assert r.status_code == 400
    assert "unknown factor" in json.dumps(body(r))


def test_unknown_paths_are_404_not_the_dashboard_page(client):
    for path in ("/healthz", "/metrics", "/admin", "/favicon.png", "/x/y"):
        assert client.get(path).status_code == 404, path
    assert client.get("/").status_code == 200
