"""The over-time views in a browser (issue 13), as an analyst and as a scoped manager: the
snapshot picker, "vs last month", movers, revenue retention, campaigns (one created from the
planner, its treated list downloaded) and monitoring, over the demo business's year of monthly
snapshots; at 1440 and 375 px the page never scrolls sideways."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from dash.testing.wait import until
from selenium.webdriver.common.by import By

from analytics import columns as C
from analytics import synthetic
from dashboard import ids
from dashboard.app import dash_app, served_base
from tests.support import PASSWORD, make_user
from tests.test_browser import (
    KPI_CUSTOMERS,
    WAIT,
    assert_clean_console,
    by_id,
    click,
    log_in,
    open_tab,
    wait_for_download,
)
from tests.test_dashboard_history import build_year

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
]

SCOPE = "region=North"
CHANGE = by_id(type=ids.KPI, name="churn_rate-change")


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    return build_year(tmp_path_factory.mktemp("browser-history"))


def start(dash_duo, year, role: str, scope: str | None = None, *, debug: bool = True) -> str:
    """Serve the year's app, log in through the form as a new `role` user, open the page."""
    name = make_user(year["app"], role, scope)
    dash_duo.start_server(
        dash_app(year["app"]), navigate=False, debug=debug, use_reloader=False,
        dev_tools_hot_reload=False,
    )  # fmt: skip
    dash_duo.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]},
    )
    log_in(dash_duo, name, PASSWORD)
    dash_duo.server_url = dash_duo.server.url
    until(lambda: dash_duo.find_element(KPI_CUSTOMERS).text not in ("", "–"), WAIT)
    return name


def api(dash_duo, path: str) -> dict:
    """GET an API path in the logged-in browser's session (the same user as the page)."""
    script = "return fetch(arguments[0]).then(r => r.json());"
    return dash_duo.driver.execute_script(script, dash_duo.server_url + path)


def pick_snapshot(dash_duo, as_of: str) -> None:
    """Choose `as_of` in the snapshot picker (Dash 4 dropdown)."""
    click(dash_duo, f"#{ids.SNAPSHOT}")
    menu = dash_duo.wait_for_element(".dash-dropdown-options")
    for item in menu.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"):
        if item.text.strip().startswith(as_of):
            item.click()
            return
    pytest.fail(f"{as_of} not offered: {menu.text.splitlines()}")


def grid_ids(dash_duo, grid: str) -> list[str]:
    cells = dash_duo.find_elements(
        f"#{grid} .ag-pinned-left-cols-container .ag-row .ag-cell[col-id='{C.CUSTOMER_ID}']"
    )
    rows = sorted(cells, key=lambda c: c.location["y"])
    return [c.text.strip() for c in rows]


def active_pane(dash_duo) -> str:
    return dash_duo.find_element(".tab-content > .tab-pane.active").text


def test_an_analyst_reads_an_older_snapshot_and_every_over_time_view(dash_duo, year):
    start(dash_duo, year, "analyst")
    # The drift was seen by last year's model; the live one (trained on the newest month)
    # replaced it, so no retrain banner (the Monitoring tab flags the drift and says why).
    assert api(dash_duo, "/api/v1/monitoring")["banner"] is None
    assert not dash_duo.find_elements(f"#{ids.MONITOR_BANNER} .alert")
    listed = api(dash_duo, "/api/v1/snapshots")["snapshots"]
    older, before = listed[3]["as_of"], listed[4]["as_of"]

    pick_snapshot(dash_duo, older)

    until(lambda: f"snapshot={older}" in dash_duo.driver.current_url, WAIT, msg="URL lacks it")
    dash_duo.wait_for_contains_text(f"#{ids.SNAPSHOT_NOTE}", f"Snapshot of {older}", WAIT)
    kpis = api(dash_duo, f"/api/v1/kpis?snapshot={older}")
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, f"{kpis['customers']:,}", timeout=WAIT)
    change = kpis["vs_previous"]["churn_rate"]["change"]
    line = dash_duo.wait_for_element(f"{CHANGE} span", timeout=WAIT)
    assert f"{100 * change:+.1f} pts vs last month" in line.text
    assert before in line.get_attribute("title")  # the previous as_of, in the tooltip

    open_tab(dash_duo, "Changes")
    rows = f"#{ids.MOVERS_GRID} .ag-center-cols-container .ag-row"
    dash_duo.wait_for_element(rows, timeout=WAIT)
    movers = api(dash_duo, f"/api/v1/customers/movers?snapshot={older}")
    until(
        lambda: grid_ids(dash_duo, ids.MOVERS_GRID)[:5]
        == [m[C.CUSTOMER_ID] for m in movers["items"][:5]],
        WAIT,
        msg="the movers grid is not the API's movers",
    )
    dash_duo.wait_for_contains_text(f"#{ids.MOVERS_NOTE}", f"from the snapshot of {before}", WAIT)
    dash_duo.wait_for_element(f"#{ids.NEWLY_GRID} .ag-center-cols-container .ag-row", WAIT)
    dash_duo.wait_for_contains_text(f"#{ids.REVENUE_GRAPH} .gtitle", "MRR movements", WAIT)
    assert len(dash_duo.find_elements(f"#{ids.REVENUE_GRAPH} .barlayer .trace")) == 5
    months = api(dash_duo, f"/api/v1/revenue?snapshot={older}")["months"]
    dash_duo.wait_for_contains_text(f"#{ids.REVENUE_TABLE}", f"{months[-1]['nrr']:.1%}", WAIT)

    open_tab(dash_duo, "Campaigns")
    dash_duo.wait_for_contains_text(f"#{ids.CAMPAIGN_LIST}", synthetic.CAMPAIGN["name"], WAIT)
    assert "95% interval" in dash_duo.find_element(f"#{ids.CAMPAIGN_LIST}").text

    open_tab(dash_duo, "Monitoring")
    dash_duo.wait_for_contains_text(f"#{ids.MONITOR_PERFORMANCE} .gtitle", "Realised", WAIT)
    dash_duo.wait_for_contains_text(f"#{ids.MONITOR_DRIFT}", "large", WAIT)
    first = dash_duo.find_element(f"#{ids.MONITOR_DRIFT} tbody tr").text
    assert first.startswith("Customer age")  # the largest PSI first
    assert_clean_console(dash_duo)


def test_a_scoped_manager_creates_a_campaign_and_downloads_only_the_treated(dash_duo, year):
    start(dash_duo, year, "manager", SCOPE)
    live = served_base(year["app"]).scored
    regions = live.set_index(live[C.CUSTOMER_ID].astype(str))["region"].astype(str)
    north = int((regions == "North").sum())
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, f"{north:,}", timeout=WAIT)
    dash_duo.wait_for_contains_text(f"{CHANGE} span", "vs last month", WAIT)

    open_tab(dash_duo, "Retention planner")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_SUMMARY}", "customers", timeout=WAIT)
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_SAVE_RATE_SOURCE}", "Save rate", WAIT)
    name = dash_duo.find_element(f"#{ids.CAMPAIGN_NAME}")
    name.send_keys("North spring offer")
    click(dash_duo, f"#{ids.CAMPAIGN_CREATE}")

    dash_duo.wait_for_contains_text(f"#{ids.CAMPAIGN_RESULT}", "created", timeout=WAIT)
    text = dash_duo.find_element(f"#{ids.CAMPAIGN_RESULT}").text
    treated = int(text.split(": ", 1)[1].split(" customers to contact")[0].replace(",", ""))
    path = wait_for_download(Path(dash_duo.download_path))
    assert path.name.startswith("campaign-north-spring-offer-treated-")
    with path.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == treated > 0
    assert {regions[r["Customer"]] for r in table} == {"North"}
    campaign = api(dash_duo, "/api/v1/campaigns")["campaigns"][0]
    assert campaign["name"] == "North spring offer"
    assert campaign["treated"] == treated
    assert campaign["control"] == pytest.approx((treated + campaign["control"]) * 0.1, abs=3)

    # an older snapshot cannot make a campaign: the button says why
    older = api(dash_duo, "/api/v1/snapshots")["snapshots"][2]["as_of"]
    pick_snapshot(dash_duo, older)
    dash_duo.wait_for_contains_text(f"#{ids.CAMPAIGN_HINT}", "latest (live)", WAIT)
    assert not dash_duo.find_element(f"#{ids.CAMPAIGN_CREATE}").is_enabled()

    open_tab(dash_duo, "Campaigns")
    dash_duo.wait_for_contains_text(f"#{ids.CAMPAIGN_LIST}", "North spring offer", WAIT)
    assert "Waiting for a later snapshot" in dash_duo.find_element(f"#{ids.CAMPAIGN_LIST}").text
    open_tab(dash_duo, "Monitoring")
    dash_duo.wait_for_contains_text(f"#{ids.MONITOR_PERFORMANCE} .gtitle", "Realised", WAIT)
    open_tab(dash_duo, "Changes")  # the movers into the older snapshot, in the scope
    dash_duo.wait_for_element(f"#{ids.MOVERS_GRID} .ag-center-cols-container .ag-row", WAIT)
    history = year["history"]
    then = history.base(history.resolve(older, served_base(year["app"]))).scored
    regions_then = then.set_index(then[C.CUSTOMER_ID].astype(str))["region"].astype(str)
    until(lambda: len(grid_ids(dash_duo, ids.MOVERS_GRID)) > 5, WAIT, msg="no movers shown")
    assert {regions_then[c] for c in grid_ids(dash_duo, ids.MOVERS_GRID)} == {"North"}
    assert_clean_console(dash_duo)


OVERFLOW = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"


@pytest.mark.parametrize("width", [1440, 375])
@pytest.mark.parametrize("role", ["analyst", "manager"])
def test_the_over_time_tabs_never_scroll_sideways(dash_duo, year, role, width):
    start(dash_duo, year, role, SCOPE if role == "manager" else None, debug=False)
    dash_duo.driver.set_window_size(width, 900)
    older = api(dash_duo, "/api/v1/snapshots")["snapshots"][1]["as_of"]
    for tab, ready in (
        ("changes", f"#{ids.REVENUE_GRAPH} .gtitle"),
        ("campaigns", f"#{ids.CAMPAIGN_LIST} .alert, #{ids.CAMPAIGN_LIST} table"),
        ("monitoring", f"#{ids.MONITOR_DRIFT} table"),
        ("planner", f"#{ids.PLAN_SAVE_RATE_SOURCE} .badge"),
        ("overview", f"#{ids.TREND} .gtitle"),
    ):
        dash_duo.driver.get(f"{dash_duo.server_url}/?snapshot={older}#{tab}")
        dash_duo.wait_for_element(ready, timeout=WAIT)
        time.sleep(0.5)  # let Plotly and the grids finish resizing to the column
        inner = dash_duo.driver.execute_script("return window.innerWidth")
        assert inner <= width, f"the window did not shrink (innerWidth {inner})"
        scroll, visible = dash_duo.driver.execute_script(OVERFLOW)
        assert scroll <= visible, f"{tab} at {width}px: page {scroll}px wide in {visible}px"
        picker = dash_duo.find_element(f"#{ids.SNAPSHOT}").rect
        assert picker["x"] >= 0
        assert picker["x"] + picker["width"] <= visible + 1
    dash_duo.driver.save_screenshot(f"/tmp/over-time-{role}-{width}.png")  # for a human
    logs = [e["message"] for e in dash_duo.get_logs()]
    assert not logs, "\n".join(logs)
