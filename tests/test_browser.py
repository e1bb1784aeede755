"""Browser tests: headless Chromium clicks through the dashboard like a user (dash.testing).

Each test asserts what a user would see, then that the browser console has no errors and Dash
shows no callback error. Servers run in debug mode (without hot reload) so a callback error
would also surface in Dash's error overlay.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from dash.testing.wait import until
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from analytics import columns as C
from dashboard import ids

pytestmark = [
    pytest.mark.browser,
    # selenium 4.2 (pinned by dash[testing]) calls a urllib3 API deprecated in 1.26.
    pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning"),
]

WAIT = 20  # seconds: the first view of a fresh app computes (and caches) every figure
ALL_CUSTOMERS = "23,143"  # rows in the built-in demo base


# -- helpers ---------------------------------------------------------------------------------


def dom_id(**parts: str) -> str:
    """A pattern-matching id as Dash writes it into the DOM: JSON with sorted keys."""
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


def by_id(**parts: str) -> str:
    """CSS selector for a pattern-matching id."""
    return f"[id='{dom_id(**parts)}']"


KPI_CUSTOMERS = by_id(type=ids.KPI, name="customers")
RISK_FILTER = by_id(type=ids.FILTER, column=C.RISK_BAND)


def shown(column: str) -> str:
    """The selection a filter dropdown shows in its closed button (Dash 4 DOM: `<id>-value`)."""
    return f"[id='{dom_id(type=ids.FILTER, column=column)}-value']"


def start(dash_duo, workspace, *, debug: bool = True, role: str = "admin", scope=None):
    """Serve the app, log in through the form as a new `role` user, open the dashboard."""
    from dashboard.app import create_app, dash_app
    from tests.support import PASSWORD, make_user

    server = create_app(workspace)
    name = make_user(server, role, scope)
    dash_duo.start_server(
        dash_app(server),
        navigate=False,
        debug=debug,
        use_reloader=False,
        dev_tools_hot_reload=False,
    )
    # Bootstrap scrolls smoothly unless the user prefers reduced motion, and a scroll still
    # animating makes Selenium click where the element is not yet: ask for reduced motion.
    dash_duo.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]},
    )
    log_in(dash_duo, name, PASSWORD)
    dash_duo.server_url = dash_duo.server.url  # the page, now with the session cookie
    return name


def log_in(dash_duo, name: str, password: str) -> None:
    dash_duo.driver.get(dash_duo.server.url + "/login")
    dash_duo.wait_for_element("#username").send_keys(name)
    dash_duo.find_element("#password").send_keys(password)
    dash_duo.find_element("#login-submit").click()
    until(lambda: "/login" not in dash_duo.driver.current_url, WAIT, msg="login did not finish")


def click(dash_duo, css: str) -> None:
    """Click an element as a user would after scrolling it to mid-screen, clear of Dash's
    dev-tools bar at the bottom of the window."""
    element = dash_duo.find_element(css)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def kpi_number(dash_duo) -> int:
    return int(dash_duo.find_element(KPI_CUSTOMERS).text.replace(",", ""))


def wait_for_kpi_change(dash_duo, old: str) -> int:
    until(
        lambda: dash_duo.find_element(KPI_CUSTOMERS).text not in (old, "–", ""),
        WAIT,
        msg=f"the Customers KPI stayed at {old}",
    )
    return kpi_number(dash_duo)


def query(dash_duo) -> dict[str, list[str]]:
    return parse_qs(urlparse(dash_duo.driver.current_url).query)


def open_tab(dash_duo, text: str) -> None:
    dash_duo.find_element(
        f"//a[contains(@class, 'nav-link') and normalize-space()='{text}']", attribute="XPATH"
    ).click()
    until(lambda: active_tab(dash_duo) == text, WAIT, msg=f"tab {text!r} did not open")


def active_tab(dash_duo) -> str:
    tabs = dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#{ids.TABS} .nav-link.active")
    return tabs[0].text.strip() if tabs else ""


def choose(dash_duo, dropdown_css: str, option: str) -> None:
    """Open a multi dropdown, tick one option, close it with Escape."""
    dash_duo.find_element(dropdown_css).click()
    menu = dash_duo.wait_for_element(".dash-dropdown-options")
    for item in menu.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option"):
        if item.text.strip() == option:
            item.click()
            break
    else:
        pytest.fail(f"option {option!r} not in {menu.text.splitlines()}")
    ActionChains(dash_duo.driver).send_keys(Keys.ESCAPE).perform()


# the dev tools' error count and the error popup (debug mode only)
DASH_ERRORS = ".test-devtools-error-count, .dash-fe-error__title, .dash-fe-error-item"


def assert_clean_console(dash_duo) -> None:
    """No SEVERE browser log entries and no Dash callback error on the page."""
    logs = dash_duo.get_logs()
    assert not logs, f"browser console errors: {logs}"
    errors = dash_duo.driver.find_elements(By.CSS_SELECTOR, DASH_ERRORS)
    assert not errors, f"Dash dev tools report errors: {[e.text for e in errors]}"


# -- tests -----------------------------------------------------------------------------------


def test_page_loads_with_kpis(dash_duo, demo_workspace):
    start(dash_duo, demo_workspace)

    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)
    dash_duo.wait_for_contains_text(f"#{ids.SELECTION_SUMMARY}", "23,143 of 23,143", timeout=WAIT)
    values = [e.text for e in dash_duo.find_elements(".kpi-value")]
    assert len(values) == 7
    assert all(v not in ("", "–") for v in values), values
    assert active_tab(dash_duo) == "Overview"
    assert_clean_console(dash_duo)


def test_filter_changes_kpis_and_url(dash_duo, demo_workspace):
    high = int((demo_workspace.scored[C.RISK_BAND].astype(str) == "High").sum())
    start(dash_duo, demo_workspace)
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)

    choose(dash_duo, RISK_FILTER, "High")

    assert wait_for_kpi_change(dash_duo, ALL_CUSTOMERS) == high
    assert 0 < high < 23_598
    dash_duo.wait_for_text_to_equal(shown(C.RISK_BAND), "High")
    dash_duo.wait_for_contains_text(f"#{ids.SELECTION_SUMMARY}", f"{high:,} of 23,143")
    until(lambda: query(dash_duo).get("risk") == ["High"], WAIT, msg="URL lacks risk=High")
    assert_clean_console(dash_duo)


def test_copied_link_reopens_view_and_reset_clears_it(dash_duo, demo_workspace):
    high = int((demo_workspace.scored[C.RISK_BAND].astype(str) == "High").sum())
    start(dash_duo, demo_workspace)
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)

    dash_duo.driver.get(dash_duo.server_url + "/?risk=High#customers")

    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, f"{high:,}", timeout=WAIT)
    dash_duo.wait_for_text_to_equal(shown(C.RISK_BAND), "High")
    until(lambda: active_tab(dash_duo) == "At-risk customers", WAIT, msg="tab not restored")

    click(dash_duo, f"#{ids.RESET}")

    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)
    dash_duo.wait_for_text_to_equal(shown(C.RISK_BAND), "All")
    until(lambda: not urlparse(dash_duo.driver.current_url).query, WAIT, msg="query not cleared")
    assert active_tab(dash_duo) == "At-risk customers"  # Reset clears filters, not the tab
    assert_clean_console(dash_duo)


FIND_POINT_IN_SLICE = """
const path = arguments[0];
path.scrollIntoView({block: 'center'});
const box = path.getBoundingClientRect();
const slice = path.closest('.slice');
for (let i = 1; i < 12; i++) {
  for (let j = 1; j < 12; j++) {
    const x = box.left + box.width * i / 12, y = box.top + box.height * j / 12;
    const hit = document.elementFromPoint(x, y);
    if (hit && hit.closest('.slice') === slice) return [Math.round(x), Math.round(y)];
  }
}
return null;
"""


def test_doughnut_click_filters_to_segment(dash_duo, demo_workspace):
    sizes = demo_workspace.scored[C.SEGMENT].astype(str).value_counts()
    start(dash_duo, demo_workspace)
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)
    dash_duo.wait_for_element(f"#{ids.DOUGHNUT} .slice path.surface", timeout=WAIT)

    # the first slice, clicked where the user sees it (a doughnut's box centre is its hole)
    path = dash_duo.find_elements(f"#{ids.DOUGHNUT} .slice path.surface")[0]
    point = dash_duo.driver.execute_script(FIND_POINT_IN_SLICE, path)
    assert point, "no visible point on the first doughnut slice"
    actions = ActionBuilder(dash_duo.driver)
    actions.pointer_action.move_to_location(*point).click()
    actions.perform()

    until(
        lambda: dash_duo.find_element(shown(C.SEGMENT)).text in sizes.index,
        WAIT,
        msg="the Segment filter did not pick up the clicked slice",
    )
    segment = dash_duo.find_element(shown(C.SEGMENT)).text
    assert wait_for_kpi_change(dash_duo, ALL_CUSTOMERS) == sizes[segment]
    until(lambda: query(dash_duo).get("segment") == [segment], WAIT, msg="URL lacks segment")
    assert_clean_console(dash_duo)


def predict_field(feature: str) -> str:
    return by_id(type=ids.PREDICT_FIELD, feature=feature)


def test_prediction_card_and_inline_validation(dash_duo, demo_workspace):
    start(dash_duo, demo_workspace)
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)
    open_tab(dash_duo, "Predict")

    click(dash_duo, f"#{ids.PREDICT_SUBMIT}")

    badge = dash_duo.wait_for_element(f"#{ids.PREDICT_RESULT} .badge", timeout=WAIT)
    assert badge.text.split() in (["Low", "risk"], ["Medium", "risk"], ["High", "risk"])
    probability = dash_duo.find_element("#predict-0").text
    assert probability.endswith("%")
    assert 0 <= float(probability.rstrip("%")) <= 100
    dash_duo.wait_for_contains_text(f"#{ids.PREDICT_RESULT}", "Recommended action")

    # a user types an impossible tenure
    tenure = dash_duo.find_element(predict_field(C.TENURE))
    dash_duo.clear_input(tenure)
    tenure.send_keys("-500")
    click(dash_duo, f"#{ids.PREDICT_SUBMIT}")

    dash_duo.wait_for_contains_text(f"#{ids.PREDICT_RESULT}", "Please fix", timeout=WAIT)
    message = dash_duo.find_element(f"#{ids.PREDICT_RESULT}").text
    assert "Tenure" in message
    assert not dash_duo.find_elements(f"#{ids.PREDICT_RESULT} .badge")  # no stale result

    # and then leaves another field empty
    usage = dash_duo.find_element(predict_field("monthly_usage_hours"))
    dash_duo.clear_input(usage)
    click(dash_duo, f"#{ids.PREDICT_SUBMIT}")
    dash_duo.wait_for_contains_text(f"#{ids.PREDICT_RESULT}", "Monthly usage hours", timeout=WAIT)
    assert "Tenure" in dash_duo.find_element(f"#{ids.PREDICT_RESULT}").text

    # a fraction in a whole-number field reaches the server and says what is wrong
    dash_duo.clear_input(tenure)
    tenure.send_keys("2.5")
    usage.send_keys("10")
    click(dash_duo, f"#{ids.PREDICT_SUBMIT}")
    dash_duo.wait_for_contains_text(
        f"#{ids.PREDICT_RESULT}", "a whole number is required, got 2.5", timeout=WAIT
    )
    assert "missing" not in dash_duo.find_element(f"#{ids.PREDICT_RESULT}").text
    assert_clean_console(dash_duo)


def wait_for_download(folder: Path, timeout: float = 15) -> Path:
    def done():
        files = [p for p in folder.glob("*.csv") if p.stat().st_size]
        partial = list(folder.glob("*.crdownload"))
        return files[0] if files and not partial else None

    return until(done, timeout, msg=f"no CSV arrived in {folder}")


def test_at_risk_export_and_customer_detail(dash_duo, demo_workspace):
    start(dash_duo, demo_workspace)
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)
    open_tab(dash_duo, "At-risk customers")

    dash_duo.wait_for_contains_text(f"#{ids.AT_RISK_COUNT}", "customers, total expected loss")
    dash_duo.wait_for_element(f"#{ids.AT_RISK_GRID} .ag-center-cols-container .ag-row", WAIT)
    rows = dash_duo.find_elements(f"#{ids.AT_RISK_GRID} .ag-center-cols-container .ag-row")
    assert len(rows) > 1

    click(dash_duo, f"#{ids.AT_RISK_EXPORT}")
    path = wait_for_download(Path(dash_duo.download_path))
    assert path.name.startswith("high-value-at-risk-")
    with path.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    customer, loss = "Customer", "Expected loss ($)"
    assert customer in table[0]
    assert loss in table[0]
    assert 0 <= float(table[0]["Churn probability (%)"]) <= 100
    listed = dash_duo.find_element(f"#{ids.AT_RISK_COUNT}").text.split()[0].replace(",", "")
    assert len(table) == int(listed)
    losses = [float(r[loss]) for r in table]
    assert losses == sorted(losses, reverse=True)

    # the grid lists the same customers first; a click opens that customer's detail
    first = dash_duo.find_element(
        f"#{ids.AT_RISK_GRID} .ag-pinned-left-cols-container .ag-row[row-index='0']"
    )
    assert first.text.strip() == table[0][customer]
    click(
        dash_duo, f"#{ids.AT_RISK_GRID} .ag-center-cols-container .ag-row[row-index='0'] .ag-cell"
    )

    detail = dash_duo.wait_for_element(".offcanvas.show", timeout=WAIT)
    dash_duo.wait_for_contains_text(".offcanvas.show", "Recommended action")
    assert table[0][customer] in detail.text
    assert "Why at risk" in detail.text
    assert_clean_console(dash_duo)


def open_on_phone(dash_duo, workspace) -> tuple[int, int]:
    """Load the page in a 375 px wide window; returns (window.innerWidth, scroll width)."""
    start(dash_duo, workspace, debug=False)  # no dev-tools bar over the page
    dash_duo.driver.set_window_size(375, 800)
    dash_duo.driver.get(dash_duo.server_url)
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)
    dash_duo.wait_for_element(f"#{ids.DOUGHNUT} .slice", timeout=WAIT)
    time.sleep(0.5)  # let Plotly finish resizing to the narrow column before measuring
    width = dash_duo.driver.execute_script("return window.innerWidth")
    assert width <= 400, f"the window did not shrink (innerWidth {width})"
    return width, dash_duo.driver.execute_script("return document.documentElement.scrollWidth")


def test_phone_width_shows_kpis_without_overflow(dash_duo, demo_workspace):
    width, scroll = open_on_phone(dash_duo, demo_workspace)

    assert scroll <= width + 1, f"page is {scroll}px wide in a {width}px window"
    for kpi in dash_duo.find_elements(".kpi-value"):
        assert kpi.is_displayed()
        assert kpi.text not in ("", "–")
        box = kpi.rect
        assert box["x"] >= 0, (kpi.text, box)
        assert box["x"] + box["width"] <= width + 1, (kpi.text, box)
    dash_duo.driver.save_screenshot("/tmp/browser-375.png")  # for a human to look at
    assert_clean_console(dash_duo)


def test_phone_width_page_fits_beside_scrollbar(dash_duo, demo_workspace):
    """Stricter than innerWidth: the area left of a classic scrollbar (clientWidth). Phones use
    overlay scrollbars, where clientWidth == innerWidth, so this is the width a phone has."""
    open_on_phone(dash_duo, demo_workspace)
    visible, scroll = dash_duo.driver.execute_script(
        "const d = document.documentElement; return [d.clientWidth, d.scrollWidth]"
    )
    assert scroll <= visible, f"page is {scroll}px wide in {visible}px: it scrolls sideways"


def test_telco_file_shows_survival_instead_of_cohorts(dash_duo, telco_workspace):
    start(dash_duo, telco_workspace)
    n = f"{len(telco_workspace.scored):,}"
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, n, timeout=WAIT)

    dash_duo.wait_for_contains_text(f"#{ids.TREND} .gtitle", "Retention over tenure", WAIT)
    dash_duo.wait_for_contains_text(f"#{ids.TREND_NOTE}", "no dates")
    assert not dash_duo.find_elements(f"#{ids.COHORT_CARD}")
    assert "Cohort retention" not in dash_duo.find_element(".tab-content > .tab-pane.active").text
    assert_clean_console(dash_duo)


def test_table_without_revenue_explains_missing_value_views(dash_duo, no_revenue_workspace):
    start(dash_duo, no_revenue_workspace)
    n = f"{len(no_revenue_workspace.scored):,}"
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, n, timeout=WAIT)

    open_tab(dash_duo, "At-risk customers")

    dash_duo.wait_for_contains_text(
        ".tab-content > .tab-pane.active",
        "not available because the data has no monthly_revenue column",
    )
    assert not dash_duo.find_elements(f"#{ids.AT_RISK_GRID}")
    assert_clean_console(dash_duo)


# -- shared links, layout at 1440 and 375 px (issue 9) -------------------------------------------


def chip_texts(dash_duo) -> list[str]:
    return [e.text.replace("×", "").strip() for e in dash_duo.find_elements(".filter-chip")]


def test_shared_link_shows_active_filters_as_chips_and_restores_the_view(dash_duo, demo_workspace):
    start(dash_duo, demo_workspace)
    dash_duo.wait_for_text_to_equal(KPI_CUSTOMERS, ALL_CUSTOMERS, timeout=WAIT)
    link = (
        "/?payment_method=Invoice&risk=High&tenure_max=24"
        f"&split=segment&factor=contract&save_rate=0.4&sort=-{C.P_CHURN}#customers"
    )
    dash_duo.driver.get(dash_duo.server_url + link)

    # "payment method" sits folded under "More filters": a chip says it is on
    until(lambda: len(chip_texts(dash_duo)) == 3, WAIT, msg="no chips for the link's filters")
    assert chip_texts(dash_duo) == [
        "Payment method: Invoice",
        "Risk band: High",
        "Tenure ≤ 24 months",
    ]
    # the at-risk list opens sorted as the link says
    dash_duo.wait_for_element(f"#{ids.AT_RISK_GRID} .ag-center-cols-container .ag-row", WAIT)
    sorted_by = (
        f"return dash_ag_grid.getApi('{ids.AT_RISK_GRID}').getColumnState()"
        ".filter(c => c.sort).map(c => c.colId + ' ' + c.sort)"
    )
    until(
        lambda: dash_duo.driver.execute_script(sorted_by) == [f"{C.P_CHURN} desc"],
        WAIT,
        msg="the grid's sort was not restored",
    )
    shown_p = [
        float(e.text.rstrip("%"))
        for e in dash_duo.find_elements(
            f"#{ids.AT_RISK_GRID} .ag-center-cols-container .ag-cell[col-id='{C.P_CHURN}']"
        )
    ]
    assert shown_p == sorted(shown_p, reverse=True)
    assert dash_duo.find_element(f"#{ids.PLAN_SAVE_RATE}").get_attribute("value") == "0.4"
    assert dash_duo.find_element(f"#{ids.TREND_SPLIT}").is_selected()
    # (on a hidden tab: textContent, not the visible text)
    assert "Contract" in dash_duo.find_element(f"#{ids.FACTOR}").get_attribute("textContent")

    # the x on a chip removes that filter only; the view options stay in the URL
    click(dash_duo, ".filter-chip-remove[aria-label='Remove the filter Payment method: Invoice']")
    until(lambda: "payment_method" not in query(dash_duo), WAIT, msg="chip did not remove it")
    assert query(dash_duo)["risk"] == ["High"]
    assert query(dash_duo)["save_rate"] == ["0.4"]
    assert query(dash_duo)["sort"] == [f"-{C.P_CHURN}"]
    until(lambda: len(chip_texts(dash_duo)) == 2, WAIT, msg="the removed chip is still shown")
    assert_clean_console(dash_duo)


TITLE_UNDER_TOOLBAR = """
    return Array.from(document.querySelectorAll('.tab-pane.active .js-plotly-plot'))
      .filter(g => g.offsetParent && g.querySelector('.gtitle') && g.querySelector('.modebar'))
      .map(g => {
        const t = g.querySelector('.gtitle').getBoundingClientRect();
        const m = g.querySelector('.modebar').getBoundingClientRect();
        const apart = t.right <= m.left || m.right <= t.left || t.bottom <= m.top
          || m.bottom <= t.top;
        return [g.id, apart];
      });
"""


@pytest.mark.parametrize("width", [1440, 375])
def test_chart_titles_are_clear_of_the_plot_toolbar(dash_duo, demo_workspace, width):
    start(dash_duo, demo_workspace, debug=False)
    dash_duo.driver.set_window_size(width, 900)
    for tab in ("drivers", "model", "planner", "overview"):
        dash_duo.driver.get(f"{dash_duo.server_url}/#{tab}")
        dash_duo.wait_for_element(".tab-pane.active .js-plotly-plot .gtitle", timeout=WAIT)
        time.sleep(0.5)  # let Plotly finish resizing to the column before measuring
        checked = dash_duo.driver.execute_script(TITLE_UNDER_TOOLBAR)
        assert checked, f"no titled chart on {tab}"
        covered = [graph for graph, apart in checked if not apart]
        assert not covered, f"{tab} at {width}px: the toolbar covers the title of {covered}"


def test_phone_shows_every_tab_and_the_planners_whole_count(dash_duo, demo_workspace):
    width, _ = open_on_phone(dash_duo, demo_workspace)
    for tab in dash_duo.find_elements(f"#{ids.TABS} .nav-link"):
        box = tab.rect
        assert box["x"] >= 0, (tab.text, box)
        assert box["x"] + box["width"] <= width + 1, (tab.text, box)

    open_tab(dash_duo, "Retention planner")
    dash_duo.wait_for_contains_text(f"#{ids.PLAN_SUMMARY}", "customers", timeout=WAIT)
    clipped = dash_duo.driver.execute_script(
        f"return Array.from(document.querySelectorAll('#{ids.PLAN_SUMMARY} .kpi-value'))"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"
    )
    assert not clipped, f"cut at {width}px: {clipped}"
    assert_clean_console(dash_duo)


HEADER_CUT = f"""
    return Array.from(document.querySelectorAll('#{ids.AT_RISK_GRID} .ag-header-cell-text'))
      .filter(e => e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight)
      .map(e => e.textContent);
"""  # strict: one pixel over is already an ellipsis ("Tenure (mont...")


def test_at_risk_grid_fits_1440_with_whole_headers_tooltips_and_a_percent_filter(
    dash_duo, demo_workspace
):
    start(dash_duo, demo_workspace, debug=False)
    dash_duo.driver.set_window_size(1440, 1000)
    dash_duo.driver.get(f"{dash_duo.server_url}/#customers")
    cells = f"#{ids.AT_RISK_GRID} .ag-center-cols-container .ag-row .ag-cell"
    dash_duo.wait_for_element(cells, timeout=WAIT)

    viewport = dash_duo.find_element(f"#{ids.AT_RISK_GRID} .ag-center-cols-viewport")
    scroll, visible = dash_duo.driver.execute_script(
        "return [arguments[0].scrollWidth, arguments[0].clientWidth]", viewport
    )
    assert scroll <= visible, f"the grid scrolls sideways at 1440px ({scroll} > {visible})"
    assert not dash_duo.driver.execute_script(HEADER_CUT)

    # a reason cut by its column shows in full on hover
    reason = dash_duo.find_element(f"{cells}[col-id='{C.REASONS[0]}']")
    ActionChains(dash_duo.driver).move_to_element(reason).perform()
    tooltip = dash_duo.wait_for_element(".ag-tooltip", timeout=WAIT)
    assert tooltip.text == reason.get_attribute("textContent").strip()

    # typing 30 in the probability filter means "at least 30%" (the demo's list runs from
    # about 15% to 70%)
    probability_filter = f".ag-floating-filter[col-id='{C.P_CHURN}'] input"
    box = dash_duo.find_element(f"#{ids.AT_RISK_GRID} {probability_filter}")
    box.send_keys("30")
    dash_duo.wait_for_contains_text(f"#{ids.AT_RISK_COUNT}", "with the column filters", WAIT)
    shown = dash_duo.find_elements(f"{cells}[col-id='{C.P_CHURN}']")
    assert shown
    assert all(float(e.text.rstrip("%")) >= 30 for e in shown)


# -- accounts and roles -----------------------------------------------------------------------

EVERY_TAB = [
    "Overview",
    "Drivers",
    "At-risk customers",
    "Changes",
    "Retention planner",
    "Campaigns",
    "Model",
    "Monitoring",
    "Predict",
]
TAB_LABELS = {
    "admin": EVERY_TAB,
    "analyst": EVERY_TAB,
    "manager": [t for t in EVERY_TAB if t != "Model"],
}


@pytest.mark.parametrize("width", [1440, 375])
@pytest.mark.parametrize("role", ["admin", "analyst", "manager"])
def test_each_role_logs_in_and_sees_only_its_views(dash_duo, demo_workspace, role, width):
    scope = "region=North" if role == "manager" else None
    dash_duo.driver.set_window_size(width, 900)
    name = start(dash_duo, demo_workspace, debug=False, role=role, scope=scope)
    dash_duo.wait_for_element(f"#{ids.KPI_ROW} .kpi-value", timeout=WAIT)
    until(lambda: dash_duo.find_element(KPI_CUSTOMERS).text not in ("", "–"), WAIT)
    tabs = [
        t.get_attribute("textContent").strip()
        for t in dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#{ids.TABS} .nav-link")
    ]
    assert tabs == TAB_LABELS[role]
    menu = dash_duo.find_element(f"#{ids.USER_NAME}").get_attribute("textContent")
    assert name in menu
    assert role in menu
    links = [a.get_attribute("href") for a in dash_duo.driver.find_elements(By.CSS_SELECTOR, "a")]
    assert any(h and h.endswith("/admin/users") for h in links) == (role == "admin")
    customers = kpi_number(dash_duo)
    data = demo_workspace.scored
    if role == "manager":
        assert customers == int((data["region"].astype(str) == "North").sum())
    else:
        assert customers == len(data)
    scroll = dash_duo.driver.execute_script("return document.documentElement.scrollWidth")
    inner = dash_duo.driver.execute_script("return window.innerWidth")
    assert scroll <= inner + 1, f"page is {scroll}px wide in a {inner}px window"
    if role == "admin":
        dash_duo.driver.get(dash_duo.server.url + "/admin/users")
        dash_duo.wait_for_element("#users-table")
        assert name in dash_duo.find_element("#users-table").text
    # log out: the form posts with its CSRF token, and the page then asks for a login
    dash_duo.driver.get(dash_duo.server.url + "/")
    logout = dash_duo.wait_for_element(f"#{ids.LOGOUT}", timeout=WAIT)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", logout)
    logout.click()
    until(lambda: "/login" in dash_duo.driver.current_url, WAIT, msg="logout did not finish")
    dash_duo.driver.get(dash_duo.server.url + "/")
    assert "/login" in dash_duo.driver.current_url
    logs = [e["message"] for e in dash_duo.get_logs()]
    assert not logs, "\n".join(logs)


def test_a_wrong_password_is_told_in_the_form(dash_duo, demo_workspace):
    from dashboard.app import create_app, dash_app

    dash_duo.start_server(dash_app(create_app(demo_workspace)), navigate=False)
    dash_duo.driver.get(dash_duo.server.url + "/")
    assert "/login?next=" in dash_duo.driver.current_url
    dash_duo.wait_for_element("#username").send_keys("nobody")
    dash_duo.find_element("#password").send_keys("not-the-password")
    dash_duo.find_element("#login-submit").click()
    assert "Wrong username or password" in dash_duo.wait_for_element("#login-error").text
