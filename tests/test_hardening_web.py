"""Hostile requests through the app's own test client: oversized bodies, unknown component
files, slow work past its time budget, forged log lines, huge error echoes, cached customer
data, version banners and markup in chart labels."""

from __future__ import annotations

import io
import logging

import dash
import pandas as pd
import plotly
import pytest

from dashboard import figures, ids, logs
from dashboard.app import create_app, dash_app
from tests.support import signed_in


@pytest.fixture(scope="module")
def app(demo_workspace):
    return create_app(demo_workspace, max_body_mb=1)


@pytest.fixture(scope="module")
def analyst(app):
    return signed_in(app, "analyst")


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_dash-update-component", "/api/v1/predict"])
def test_a_body_over_the_limit_is_refused_before_it_is_read(analyst, path):
    # The request says 64 MB and sends 10 bytes: only the header can have been read.
    r = analyst.post(
        path,
        input_stream=io.BytesIO(b'{"a": 1}  '),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(64 * 2**20)},
    )
    assert r.status_code == 413
    assert r.get_json()["error"] == "request body is larger than the limit of 1,048,576 bytes"


def test_a_body_under_the_limit_still_works(analyst):
    assert analyst.post("/api/v1/predict", json={}).status_code == 422


# -- component files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/_dash-component-suites/nope/x.js",
        "/_dash-component-suites/dash/nope.js",
        "/_dash-component-suites/dash/../../etc/passwd",
        "/_dash-component-suites/dash_ag_grid/dash_ag_grid.v1m1.js.map.x",
        # registered, but not shipped by the package (a browser's dev tools ask for it)
        "/_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js.map",
    ],
)
def test_an_unknown_component_file_is_a_404(analyst, path):
    assert analyst.get(path).status_code == 404


def test_the_page_reveals_no_versions_and_its_component_files_load(analyst):
    page = analyst.get("/").get_data(as_text=True)
    import platform

    for version in (dash.__version__, plotly.__version__, platform.python_version()):
        assert version not in page
        assert version.replace(".", "_") not in page
    assert "python_version" not in page
    scripts = [s for s in page.split('"') if s.startswith("/_dash-component-suites/")]
    assert len(scripts) >= 8
    for src in scripts:
        assert analyst.get(src).status_code == 200, src


# The at-risk grid's first ten rows, as the browser asks for them.
GRID_PAGE = {
    "output": "at-risk-grid.getRowsResponse",
    "outputs": {"id": "at-risk-grid", "property": "getRowsResponse"},
    "inputs": [
        {"id": "at-risk-grid", "property": "getRowsRequest", "value": {"startRow": 0, "endRow": 10}}
    ],
    "state": [
        {"id": "filter-query", "property": "data", "value": ""},
        {"id": ids.SNAPSHOT, "property": "value", "value": "live"},
    ],
}


# -- the time budget ---------------------------------------------------------------------------


def test_work_past_its_time_budget_is_a_503(demo_workspace):
    app = create_app(demo_workspace, request_seconds=1e-9)
    client = signed_in(app, "analyst")
    r = client.get("/api/v1/kpis")
    assert r.status_code == 503
    assert "RETENTION_REQUEST_SECONDS" in r.get_json()["error"]
    assert r.headers["Retry-After"] == "30"
    assert GRID_PAGE["output"] in dash_app(app).callback_map
    assert client.post("/_dash-update-component", json=GRID_PAGE).status_code == 503
    assert client.get("/api/v1/health").status_code == 200  # no budget to run out


# -- logs ---------------------------------------------------------------------------------------


def test_a_control_character_in_a_path_forges_no_log_line(analyst):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    access = logging.getLogger(logs.ACCESS_LOGGER)
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        analyst.get("/x%0d%0a2026-11-28 10:00:00,000 ERROR [1] dashboard: admin login\x1b[2J")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    written = stream.getvalue()
    assert written.count("\n") == 1, written
    assert "\\r\\n2026-11-28" in written


def test_the_text_format_escapes_every_field_but_keeps_a_traceback_readable():
    formatter = logs.TextFormatter()
    record = logging.LogRecord("x\ny", logging.INFO, __file__, 1, "a\u2028b %s", ("c\rd",), None)
    assert formatter.format(record).endswith("x\\ny: a\\u2028b c\\rd")
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("boom\n2026-11-28 ERROR forged") from inner
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = formatter.format(record)
    assert "\nTraceback" in text
    assert "ValueError: boom\\n2026-11-28 ERROR forged" in text
    assert "\n2026-11-28" not in text
    assert "KeyError: 'inner'" in text  # the chain is kept


# -- responses -----------------------------------------------------------------------------------


def test_an_error_echoes_a_bounded_part_of_the_request(analyst):
    body = {f"unknown-{i}-" + "k" * 500: "v" * 900 for i in range(600)}  # under 1 MB
    r = analyst.post("/api/v1/predict", json=body)
    assert r.status_code == 422
    assert len(r.get_data()) < 20_000
    found = r.get_json()
    assert len(found["errors"]) == 50
    assert found["errors_total"] > 600
    assert all(len(e["field"]) <= 120 for e in found["errors"])


@pytest.mark.parametrize(
    "path",
    ["/api/v1/kpis", "/api/v1/customers/at-risk?limit=5", "/api/v1/segments", "/_dash-layout"],
)
def test_customer_data_is_never_cached(analyst, path):
    r = analyst.get(path)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"


def test_a_callback_answer_is_never_cached(analyst):
    r = analyst.post("/_dash-update-component", json=GRID_PAGE)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"


# -- markup in data ------------------------------------------------------------------------------

LINK = "<a href='https://evil.example/'>click</a>"


def test_markup_in_a_category_level_is_shown_as_text():
    rates = pd.DataFrame(
        {
            "level": [LINK, "plain"],
            "churn_rate": [0.2, 0.1],
            "customers": [100, 200],
            "churned": [20, 20],
            "ci_low": [0.1, 0.05],
            "ci_high": [0.3, 0.15],
            "small": [False, False],
        }
    )
    fig = figures.rate_bars(rates, f"Churn by {LINK}")
    drawn = fig.to_json()
    assert "<a href" not in drawn
    assert "&lt;a href='https://evil.example/'&gt;click&lt;/a&gt;" in list(fig.data[0].y)
    assert fig.layout.title.text.startswith("Churn by &lt;a")
    sizes = pd.DataFrame({"level": [LINK], "customers": [5], "churn_rate": [0.1]})
    assert "<a href" not in figures.segment_doughnut(sizes).to_json()


def test_a_click_on_an_escaped_slice_filters_on_the_level_itself(app):
    from dashboard.app import served_base
    from dashboard.callbacks.filters import PageState, filter_state

    page = PageState(None, [], [], click={"points": [{"label": figures.plain_text(LINK)}]})
    state = filter_state(served_base(app), "segment-doughnut", page, "")
    assert dict(state.levels).get("segment") == (LINK,)
