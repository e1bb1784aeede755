"""The application factory: Flask owns the app; the REST API is a blueprint on it and the Dash
dashboard is mounted on it. `start` is the one start-up path of wsgi.py and `python -m dashboard`.

Callbacks are registered on each Dash app explicitly (app.callback), so two apps built in the
same process (tests, a second data set) each get their own.
"""

from __future__ import annotations

import logging

from dash import Dash
from flask import Flask, abort, request

from analytics import columns as C
from analytics.config import PROJ_ROOT, ServeSettings, Settings, setting_from_env
from analytics.formatting import header, money_js
from analytics.model import predict
from analytics.services.base import ServedBase
from analytics.store import db
from analytics.workflow import Workspace
from dashboard import callbacks, layout, logs, security
from dashboard.api import routes as api
from dashboard.server import BATCH_LIMIT_KEY, load_workspace, settle

log = logging.getLogger("dashboard")

ASSETS = PROJ_ROOT / "assets"
SERVED_BASE = "retention_served_base"
STATE_DB = "retention_state_db"  # the state database's engine (accounts, audit log)
DASH_APP = "retention_dash_app"


# Number filters open on "greater than or equal", the question a user asks of a list sorted by
# risk ("at least 50%"); AG Grid's default, "equals", finds nothing among real-valued columns.
NUMBER_FILTER = {
    "type": "numericColumn",
    "filter": "agNumberColumnFilter",
    "filterParams": {"defaultOption": "greaterThanOrEqual"},
}
# The probability is stored as a fraction and shown as a percentage, so it is filtered in
# percent too: the client-side planner grid through filterValueGetter, the server-side at-risk
# grid by dividing the typed value by 100 (callbacks.customers.PERCENT_COLUMNS).
PROBABILITY = {
    **NUMBER_FILTER,
    "headerName": header(C.P_CHURN),
    "headerTooltip": "The model's churn probability for the next window, in percent.",
    "valueFormatter": {"function": "d3.format('.1%')(params.value)"},
    "filterValueGetter": {"function": f"100 * params.data.{C.P_CHURN}"},
    "minWidth": 100,
}
# What the value tier and the high-value list are cut on, said where Value and CLV sit side by
# side: a High-tier customer can have a lower CLV than a Low-tier one, never a lower Value.
VALUE_TOOLTIP = (
    "Value: the customer's size at the average risk. Value tiers and the high-value list are "
    "cut on Value."
)
CLV_TOOLTIP = "CLV: risk-adjusted expected future value (uses this customer's own risk)."


def money_column(currency: str) -> dict:
    """A money column: amounts with the currency setting, filtered as numbers."""
    return {
        **NUMBER_FILTER,
        "valueFormatter": {"function": money_js(currency)},
        "minWidth": 88,
    }


def _column(field: str, **extra) -> dict:
    return {"field": field, "headerName": header(field), **extra}


def grid_columns(data: ServedBase, *, plan: bool = False) -> list[dict]:
    """At-risk list columns (METRICS.md) with the top three reasons; the planner's contact list
    adds each customer's expected saving. Headers are formatting.header, money is shown with
    the currency setting (formatting.money_js, the grid's twin of formatting.money).

    The minimum widths add up to what a 1440 px screen gives the grid, so it does not scroll
    sideways there; flex hands the rest to the reasons, which carry a tooltip with their whole
    text when a narrower screen cuts them."""
    money = money_column(data.ws.settings.currency)
    reasons = [
        _column(
            r,
            tooltipField=r,
            filter="agTextColumnFilter",
            minWidth=114 if i == 1 else 84,
            flex=2 if i == 1 else 1.5,
        )
        for i, r in enumerate(C.REASONS, start=1)
    ]
    # Who, how likely, what is at stake and why come first: on a narrow screen the rest
    # scrolls sideways.
    cols = [
        # pinned: a fixed width, the other columns share the rest
        _column(C.CUSTOMER_ID, pinned="left", width=104, flex=None),
        {"field": C.P_CHURN, **PROBABILITY},
        # "Expected" and the sort arrow side by side
        _column(C.EXPECTED_LOSS, sort="desc", **{**money, "minWidth": 112}),
        reasons[0],
        _column(C.RISK_BAND, minWidth=72),
        _column(C.SEGMENT, minWidth=104, tooltipField=C.SEGMENT),
        _column(C.TENURE, **NUMBER_FILTER, minWidth=92),  # "(months)" whole
        _column(C.MONTHLY_REVENUE, **money),
        _column(C.CLV, **{**money, "minWidth": 72}, headerTooltip=CLV_TOOLTIP),
        _column(C.VALUE, **{**money, "minWidth": 72}, headerTooltip=VALUE_TOOLTIP),
        *reasons[1:],
    ]
    cols = [c for c in cols if c["field"] in data.grid_fields]
    if plan:
        cols.insert(1, _column(C.EXPECTED_SAVING, **money))
    return cols


def value_note(data: ServedBase) -> str | None:
    if C.MONTHLY_REVENUE not in data.scored.columns:
        return (
            "Value views are off: not available because the data has no monthly_revenue "
            "column (map one with --map monthly_revenue=<column>)."
        )
    return None


# Paths the app answers besides its API: the page and Dash's own routes. Dash would answer any
# other GET with the page too; here an unknown path is a 404.
PAGE_PATHS = ("/",)
DASH_PREFIXES = ("/_dash-", "/_reload-hash", "/_favicon.ico", "/assets/", "/api/")


def _only_known_paths(server: Flask) -> None:
    @server.before_request
    def _unknown_path_is_404():
        path = request.path
        if path in PAGE_PATHS or path.startswith(DASH_PREFIXES):
            return None
        abort(404)


def create_app(workspace: Workspace, *, batch_limit: int | None = None) -> Flask:
    """The application over one loaded Workspace: a Flask app with the REST API and the Dash
    dashboard mounted on it, both answering from one ServedBase through analytics.services."""
    base = ServedBase(workspace)
    schema = predict.input_schema(workspace.model.meta)
    server = Flask(__name__)
    server.config[BATCH_LIMIT_KEY] = batch_limit or setting_from_env(ServeSettings, "batch_limit")
    server.extensions[SERVED_BASE] = base
    api.register(server, base)
    _only_known_paths(server)
    app = Dash(
        __name__,
        server=server,
        title="Customer Retention",
        assets_folder=str(ASSETS),
        external_stylesheets=[],  # Bootstrap is served from assets/: no CDN
        suppress_callback_exceptions=False,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
        update_title=None,
    )
    app.layout = layout.page(
        base,
        schema,
        grid_columns(base),
        grid_columns(base, plan=True),
        value_note(base),
    )
    callbacks.register(app, base, schema)
    server.extensions[DASH_APP] = app
    security.install(app)
    logs.install_request_logging(server)
    return server


def dash_app(server: Flask) -> Dash:
    """The Dash app mounted on `server` (for tests and the development server)."""
    return server.extensions[DASH_APP]


def served_base(server: Flask) -> ServedBase:
    return server.extensions[SERVED_BASE]


def start(
    config: ServeSettings,
    settings: Settings,
    *,
    mapping: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> Flask:
    """The one start-up path of `wsgi.py` and `python -m dashboard`: load the table and its model
    (retraining only as RETENTION_RETRAIN allows), build the app, finish Dash's set-up with one
    request, and freeze what start-up loaded out of the garbage collector's sight."""
    url = db.database_url(config.state_dir, config.database_url)
    state, revision = db.open_state(url)
    log.info("state database %s at revision %s", db.safe_url(url), revision)
    workspace = load_workspace(config, settings, log, mapping=mapping, drop=drop)
    log.info("%s: %s", workspace.source, workspace.how)
    server = create_app(workspace, batch_limit=config.batch_limit)
    server.extensions[STATE_DB] = state
    if config.debug:
        dash_app(server).enable_dev_tools(debug=True, dev_tools_hot_reload=False)
        log.warning("RETENTION_DEBUG is on: Dash dev tools show tracebacks to every client")
    # Dash finishes its set-up (registering the component files it may serve) on a process's
    # first request, and marks it done before it is: under gthread, a second thread's request
    # for a component file can arrive in between and get a 500 ("not a registered library").
    # One request here completes the set-up once; under gunicorn's preload every worker forks
    # with it done.
    with server.test_client() as client:
        client.get("/", headers={logs.REQUEST_ID_HEADER: "preload"})
    settle()
    return server
