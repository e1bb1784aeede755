"""Every registered Dash callback, fed wrong-typed and oversized inputs through the app's own
test client as a logged-in analyst: a 4xx (or the view's own answer), never a 5xx, and no
traceback in the log."""

from __future__ import annotations

import json
import logging

import pytest

from dashboard.app import create_app, dash_app
from dashboard.layout import components_by_id
from tests.support import callback_body, callback_item, signed_in

# Values a hostile or broken client may send in place of any input.
WRONG = (
    "a",
    "",
    -1,
    1e308,
    True,
    [1],
    ["a", "b"],
    [None, None],
    [[1]],
    {},
    {"a": 1},
    {"startRow": "a", "endRow": "b"},
    {"startRow": 0, "endRow": 10, "filterModel": [1], "sortModel": "x"},
    "x" * 5000,
)


@pytest.fixture(scope="module")
def app(demo_workspace):
    return create_app(demo_workspace)


@pytest.fixture(scope="module")
def analyst(app):
    return signed_in(app, "analyst")


PAGE: list = []  # the full page's layout, for the concrete pattern-matching ids


@pytest.fixture(scope="module", autouse=True)
def _page(app):
    PAGE[:] = [dash_app(app).layout()]


def _concrete(pattern_text: str) -> list[dict]:
    """The ids in the full page that a pattern-matching (ALL) id matches, as the renderer finds
    them; a pattern with none there (the chips, made by a callback) gets one made-up id."""
    pattern = json.loads(pattern_text)
    found = [
        json.loads(cid)
        for cid in components_by_id(PAGE[0])
        if cid.startswith("{") and json.loads(cid).get("type") == pattern["type"]
    ]
    if found:
        return found
    return [{k: (f"x{k}" if isinstance(v, list) else v) for k, v in pattern.items()}]


def _item(declared, value=None):
    return callback_item(declared, value, concrete=_concrete)


def _body(key: str, spec: dict, inputs: list, state: list) -> dict:
    return callback_body(key, spec, inputs, state, concrete=_concrete)


# Sensible values for every other input while one is fuzzed, so that the callback gets past its
# "not my tab" check and the wrong value reaches the code behind it.
BASELINE = {
    ("url", "search"): "",
    ("url", "pathname"): "/",
    ("filter-query", "data"): "",
    ("trend-split", "value"): False,
    ("threshold-slider", "value"): 0.5,
    ("plan-save-rate", "value"): 0.25,
    ("plan-cost", "value"): 10,
    ("plan-margin", "value"): 0.6,
    ("plan-discount", "value"): 0.01,
    ("at-risk-grid", "getRowsRequest"): {"startRow": 0, "endRow": 100},
    ("predict-submit", "n_clicks"): 1,
    ("predict-load", "n_clicks"): 1,
    ("at-risk-export", "n_clicks"): 1,
    ("plan-export", "n_clicks"): 1,
}


def _baseline(spec: dict, tab: str | None) -> list:
    items = spec["inputs"] + spec.get("state", [])
    return [tab if i["id"] == "tabs" else BASELINE.get((i["id"], i["property"])) for i in items]


def _made(spec: dict, values: list) -> list:
    items = spec["inputs"] + spec.get("state", [])
    made = [_item(i, v) for i, v in zip(items, values, strict=True)]
    n = len(spec["inputs"])
    return made[:n], made[n:]


def _tab_for(client, key: str, spec: dict) -> tuple[str | None, list[int]]:
    """The tab on which the callback answers (not 204 "no update") with baseline inputs, and
    the statuses of every tab's baseline request."""
    from dashboard.layout import TABS

    codes = []
    for tab, _ in TABS:
        body = _body(key, spec, *_made(spec, _baseline(spec, tab)))
        codes.append(client.post("/_dash-update-component", json=body).status_code)
        if codes[-1] == 200:
            return tab, codes
    return None, codes


def test_every_callback_answers_wrong_typed_inputs_without_a_5xx(app, analyst, caplog):
    callbacks = dash_app(app).callback_map
    failures = []
    tried = 0
    caplog.set_level(logging.INFO)
    baseline_refused = []
    for key, spec in callbacks.items():
        if "callback" not in spec:
            continue  # clientside: runs in the browser only (refused: see below)
        items = spec["inputs"] + spec.get("state", [])
        tab, codes = _tab_for(analyst, key, spec)
        if any(c not in (200, 204) for c in codes):
            baseline_refused.append((key[:60], codes))
        for n, item in enumerate(items):
            for value in WRONG:
                values = _baseline(spec, tab)
                values[n] = value
                body = _body(key, spec, *_made(spec, values))
                r = analyst.post("/_dash-update-component", json=body)
                tried += 1
                if r.status_code >= 500:
                    failures.append((key[:60], item["id"], item["property"], repr(value)[:40]))
    assert tried > 300
    assert not baseline_refused, f"working inputs refused: {baseline_refused}"
    assert not failures, f"{len(failures)} 5xx answers, e.g. {failures[:10]}"
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "body",
    [{}, {"output": 1}, {"output": "x", "inputs": "a"}, [1], "a", None],
    ids=["empty", "output-int", "inputs-str", "list", "str", "null"],
)
def test_a_malformed_callback_body_is_a_400(analyst, body):
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 400, r.get_data(as_text=True)[:200]


def test_every_input_a_callback_reads_is_declared(app):
    from dashboard.app import served_base
    from dashboard.callback_inputs import Checker

    assert Checker(dash_app(app).callback_map, served_base(app)).missing() == set()


def test_a_wrong_value_is_a_400_naming_the_input(app, analyst):
    callbacks = dash_app(app).callback_map
    key = next(k for k in callbacks if k == "at-risk-grid.getRowsResponse")
    spec = callbacks[key]
    request = {
        "startRow": 0,
        "endRow": 100,
        "filterModel": {
            "p_churn": {
                "operator": "OR",
                "conditions": [{"type": "equals", "filter": i} for i in range(100_000)],
            }
        },
    }
    state = [_item(spec["state"][0], ""), *(_item(s) for s in spec["state"][1:])]
    body = _body(key, spec, [_item(spec["inputs"][0], request)], state)
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert "at-risk-grid.getRowsRequest" in r.get_json()["error"]
    assert len(r.get_data()) < 500  # the value is not echoed
    good = {"startRow": 0, "endRow": 100, "sortModel": [{"colId": "p_churn", "sort": "desc"}]}
    body = _body(key, spec, [_item(spec["inputs"][0], good)], state)
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 200
    assert len(r.get_json()["response"]["at-risk-grid"]["getRowsResponse"]["rowData"]) == 100


def test_a_clientside_callback_is_not_run_on_the_server(app, analyst):
    callbacks = dash_app(app).callback_map
    key, spec = next((k, s) for k, s in callbacks.items() if "callback" not in s)
    body = _body(key, spec, [_item(i) for i in spec["inputs"]], [])
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 400, (key, r.get_data(as_text=True)[:300])


def _key(app, startswith: str) -> tuple[str, dict]:
    callbacks = dash_app(app).callback_map
    return next((k, s) for k, s in callbacks.items() if k.startswith(startswith))


def _filter_request(app, levels: dict, changed: list[str] | None = None) -> dict:
    """The filter callback's request as the browser sends it after picking `levels`."""
    key, spec = _key(app, "..url.search...filter-query.data")
    values = _baseline(spec, None)
    body = _body(key, spec, *_made(spec, values))
    for entry in body["inputs"]:
        if isinstance(entry, list) and entry and entry[0]["id"].get("type") == "filter":
            for item in entry:
                item["value"] = levels.get(item["id"]["column"])
    body["changedPropIds"] = changed or []
    return body


def test_the_filter_callback_as_the_browser_sends_it(app, analyst):
    changed = ['{"column":"region","type":"filter"}.value']
    r = analyst.post(
        "/_dash-update-component", json=_filter_request(app, {"region": ["North"]}, changed)
    )
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.get_json()["response"]["filter-query"]["data"] == "?region=North"


@pytest.mark.parametrize(
    ("levels", "changed"),
    [
        ({"region": ["Atlantis"]}, None),  # a level the column does not have
        ({"region": ["North", 1]}, None),  # a level that is not text
        ({"region": ["North"]}, ["{bad.value"]),  # Dash would json.loads it
        ({"region": ["North"]}, ["url.nope"]),  # not an input of the request
    ],
    ids=["unknown-level", "number-level", "broken-changed-id", "foreign-changed-id"],
)
def test_a_forged_filter_request_is_a_400(app, analyst, levels, changed):
    r = analyst.post("/_dash-update-component", json=_filter_request(app, levels, changed))
    assert r.status_code == 400


def test_pattern_lists_must_agree_in_one_request(app, analyst):
    body = _filter_request(app, {"region": ["North"]})
    state = next(e for e in body["state"] if isinstance(e, list))
    state.pop()  # one id fewer than values: the callback would zip them
    assert analyst.post("/_dash-update-component", json=body).status_code == 400
    body = _filter_request(app, {"region": ["North"]})
    columns = next(e for e in body["inputs"] if isinstance(e, list))
    columns.append(dict(columns[0]))  # the same component twice
    assert analyst.post("/_dash-update-component", json=body).status_code == 400


def test_a_doughnut_click_without_a_label_is_a_400(app, analyst):
    key, spec = _key(app, "..url.search...filter-query.data")
    values = _baseline(spec, None)
    position = next(n for n, i in enumerate(spec["inputs"]) if i["id"] == "segment-doughnut")
    values[position] = {"points": [{}]}
    body = _body(key, spec, *_made(spec, values))
    assert analyst.post("/_dash-update-component", json=body).status_code == 400


def test_load_a_customer_into_the_prediction_card_as_the_browser_does(app, analyst):
    from dashboard.app import served_base

    key, spec = _key(app, '..{"feature":["ALL"],"type":"predict-field"}.value')
    customer = str(served_base(app).scored["customer_id"].iloc[0])
    values = _baseline(spec, None)
    values[[i["id"] for i in spec["state"]].index("predict-load-id") + len(spec["inputs"])] = (
        customer
    )
    body = _body(key, spec, *_made(spec, values))
    body["changedPropIds"] = ["predict-load.n_clicks"]
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert customer in json.dumps(r.get_json()["response"])
