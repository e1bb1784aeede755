"""Every registered Dash callback, fed wrong-typed and oversized inputs through the app's own
test client as a logged-in analyst: a 4xx (or the view's own answer), never a 5xx, and no
traceback in the log."""

from __future__ import annotations

import json
import logging

import pytest

from dashboard.app import create_app, dash_app
from tests.support import signed_in

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


def _item(spec_item, value=None, *, with_value=True):
    """An input as the renderer sends it; a pattern-matching (ALL) input is a list of them."""
    cid = spec_item["id"]
    item = {"property": spec_item["property"], **({"value": value} if with_value else {})}
    if isinstance(cid, str) and cid.startswith("{"):
        pattern = json.loads(cid)
        concrete = {k: ("x" if isinstance(v, list) else v) for k, v in pattern.items()}
        return [{"id": concrete, **item}]
    return {"id": cid, **item}


def _body(key: str, spec: dict, inputs: list, state: list) -> dict:
    output = spec["output"]
    outputs = [
        _item(o.to_dict(), with_value=False)
        for o in (output if isinstance(output, list) else [output])
    ]
    return {
        "output": key,
        "outputs": outputs if isinstance(output, list) else outputs[0],
        "inputs": inputs,
        "state": state,
        "changedPropIds": [],
    }


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
    for m, v in zip(made, values, strict=True):
        if isinstance(m, list) and m[0]["property"] == "id" and v is None:
            m[0]["value"] = m[0]["id"]  # as the renderer sends an id
    n = len(spec["inputs"])
    return made[:n], made[n:]


def _tab_for(client, key: str, spec: dict) -> str | None:
    """The tab on which the callback answers (not 204 "no update") with baseline inputs."""
    from dashboard.layout import TABS

    for tab, _ in TABS:
        body = _body(key, spec, *_made(spec, _baseline(spec, tab)))
        if client.post("/_dash-update-component", json=body).status_code == 200:
            return tab
    return None


def test_every_callback_answers_wrong_typed_inputs_without_a_5xx(app, analyst, caplog):
    callbacks = dash_app(app).callback_map
    failures = []
    tried = 0
    caplog.set_level(logging.INFO)
    answered = 0
    for key, spec in callbacks.items():
        if "callback" not in spec:
            continue  # clientside: runs in the browser only (refused: see below)
        items = spec["inputs"] + spec.get("state", [])
        tab = _tab_for(analyst, key, spec)
        answered += tab is not None
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
    assert answered >= 12  # most callbacks really ran with the baseline
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
    body = _body(key, spec, [_item(spec["inputs"][0], request)], [_item(spec["state"][0], "")])
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert "at-risk-grid.getRowsRequest" in r.get_json()["error"]
    assert len(r.get_data()) < 500  # the value is not echoed
    good = {"startRow": 0, "endRow": 100, "sortModel": [{"colId": "p_churn", "sort": "desc"}]}
    body = _body(key, spec, [_item(spec["inputs"][0], good)], [_item(spec["state"][0], "")])
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 200
    assert len(r.get_json()["response"]["at-risk-grid"]["getRowsResponse"]["rowData"]) == 100


def test_a_clientside_callback_is_not_run_on_the_server(app, analyst):
    callbacks = dash_app(app).callback_map
    key, spec = next((k, s) for k, s in callbacks.items() if "callback" not in s)
    body = _body(key, spec, [_item(i) for i in spec["inputs"]], [])
    r = analyst.post("/_dash-update-component", json=body)
    assert r.status_code == 400, (key, r.get_data(as_text=True)[:300])
