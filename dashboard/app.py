"""The application factory: Flask owns the app; the REST API is a blueprint on it and the Dash
dashboard is mounted on it. `start` is the one start-up path of wsgi.py and `python -m dashboard`.

Callbacks are registered on each Dash app explicitly (app.callback), so two apps built in the
same process (tests, a second data set) each get their own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable

from dash import Dash
from dash.exceptions import DependencyException
from flask import Flask, abort, g, request
from flask_wtf.csrf import generate_csrf
from sqlalchemy import Engine

from analytics import access, budget
from analytics import columns as C
from analytics.config import PROJ_ROOT, ServeSettings, setting_from_env
from analytics.formatting import header, money_js
from analytics.model import predict
from analytics.services import training as training_status
from analytics.services.base import ServedBase
from analytics.store import db
from analytics.workflow import Workspace
from dashboard import auth, callback_inputs, callbacks, layout, logs, security
from dashboard.api import routes as api
from dashboard.server import BATCH_LIMIT_KEY

log = logging.getLogger("dashboard")

ASSETS = PROJ_ROOT / "assets"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SERVED_BASE = "retention_served_base"
STATE_DB = auth.STATE_DB  # the state database's engine (accounts, audit log)
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
PAGE_PATHS = ("/", "/login", "/logout")
DASH_PREFIXES = ("/_dash-", "/_reload-hash", "/_favicon.ico", "/assets/", "/api/", "/admin/")


# A component file's fingerprint: `<name>.v<package version>m<mtime>.<ext>`.
_FINGERPRINT = re.compile(r"(_dash-component-suites/[^\"']*?\.)v([\w-]+?)m([0-9a-fA-F]+\.)")
_VERSION_KEYS = ("dash_version", "python_version", "plotly_version", "ddk_version")


class RetentionDash(Dash):
    """Dash without telling every visitor which Python, Dash and Plotly versions run here (a
    head start for anyone matching them against known vulnerabilities)."""

    def _config(self):
        # The production renderer reads none of these (only the dev tools' version check).
        config = super()._config()
        for key in (*_VERSION_KEYS, "dash_version_url"):
            config.pop(key, None)
        return config

    def interpolate_index(self, **kwargs):
        # A component file's fingerprint keeps busting caches on upgrade, with a keyed hash
        # in place of the version (Dash strips any fingerprint of this form when serving).
        key = str(self.server.secret_key or "").encode()

        def hidden(match: re.Match) -> str:
            digest = hmac.new(key, match.group(2).encode(), hashlib.sha256).hexdigest()[:10]
            return f"{match.group(1)}v{digest}m{match.group(3)}"

        kwargs["scripts"] = _FINGERPRINT.sub(hidden, kwargs["scripts"])
        kwargs["favicon"] = re.sub(r"\?v=[^\"']*", "", kwargs["favicon"])
        return super().interpolate_index(**kwargs)


def _only_known_paths(server: Flask) -> None:
    def _unknown_component_file(exc):
        # Dash raises DependencyException for a component file it never registered, and
        # FileNotFoundError for a registered one its package does not ship (two source maps):
        # the client asked for a file that does not exist, not a server fault.
        if request.path.startswith("/_dash-component-suites/"):
            return auth.json_response({"error": "not found"}, 404)
        raise exc

    server.register_error_handler(DependencyException, _unknown_component_file)
    server.register_error_handler(FileNotFoundError, _unknown_component_file)

    @server.before_request
    def _unknown_path_is_404():
        path = request.path
        if path == "/logout" and request.method != "POST":
            abort(405)  # Dash would answer a GET with the page
        if path in PAGE_PATHS or path.startswith(DASH_PREFIXES):
            return None
        abort(404)


def create_app(
    workspace: Workspace,
    *,
    batch_limit: int | None = None,
    max_body_mb: float | None = None,
    request_seconds: float | None = None,
    state: Engine | None = None,
    auth_config: auth.AuthConfig | None = None,
    training: Callable[[], dict | None] | None = None,
) -> Flask:
    """The application over one loaded Workspace: a Flask app with the REST API and the Dash
    dashboard mounted on it, both answering from one ServedBase through analytics.services,
    behind the login (dashboard.auth). `state`: the state database (default: a private
    in-memory one); `auth_config`: the auth settings (default: a random secret key).

    A Workspace without a model (workflow.model_free_workspace) is served too: the views that
    need none as usual, the others as a training panel (the page) or a 503 (the API) saying how
    far `training()` is: the data's current training job ({"job_id", "state", "progress",
    "step", "error"}, or None), asked per request. When the job is done the caller builds a new
    app over the trained model; the page reloads itself once health says ready."""
    base = ServedBase(workspace)
    schema = predict.input_schema(workspace.model.meta) if base.has_model else {}

    def model_status() -> training_status.ModelStatus | None:
        if base.has_model:
            return None
        return training_status.model_status(False, training() if training else None)

    server = Flask(__name__)
    server.config[BATCH_LIMIT_KEY] = batch_limit or setting_from_env(ServeSettings, "batch_limit")
    # Werkzeug refuses a larger body (413) from its Content-Length, or while streaming a chunked
    # one, before the app reads it.
    body_mb = max_body_mb or setting_from_env(ServeSettings, "max_body_mb")
    server.config["MAX_CONTENT_LENGTH"] = int(body_mb * 2**20)
    _time_budget(server, request_seconds or setting_from_env(ServeSettings, "request_seconds"))
    server.extensions[SERVED_BASE] = base
    _only_known_paths(server)
    forbidden: dict[str, frozenset] = {}  # role -> component ids outside its layout
    auth.install(
        server,
        state if state is not None else db.memory_state(),
        auth_config or auth.AuthConfig.for_tests(),
        dash_rights=lambda user, body: _callback_right(forbidden, callbacks_of(server), user, body),
    )
    api.register(server, base, training)
    from dashboard import admin

    admin.register(server)
    app = RetentionDash(
        __name__,
        server=server,
        title="Customer Retention",
        assets_folder=str(ASSETS),
        external_stylesheets=[],  # Bootstrap is served from assets/: no CDN
        suppress_callback_exceptions=False,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
        update_title=None,
    )
    columns = (grid_columns(base), grid_columns(base, plan=True), value_note(base))

    def page_for(role, scope=None, menu=None):
        levels = base.levels_for(scope)
        return layout.page(
            base,
            schema,
            *columns,
            role=role,
            levels=levels,
            user_menu=menu,
            model_status=model_status(),
        )

    full = page_for(access.ADMIN)
    every_id = frozenset(map(callback_inputs.key_of, layout.components_by_id(full)))
    for role in access.ROLES:
        forbidden[role] = every_id - frozenset(
            map(callback_inputs.key_of, layout.components_by_id(page_for(role)))
        )

    def serve_layout():
        user = auth.user()
        if user is None:  # Dash's own checks, outside a user's request: the whole page
            return full
        scope = user.scope if user.role == access.MANAGER else None
        menu = layout.user_menu(
            user.username, user.role, str(scope) if scope else None, generate_csrf()
        )
        return page_for(user.role, scope, menu)

    app.layout = serve_layout

    @server.after_request
    def _dependencies_for_user(response):
        # The browser is told only of the callbacks of its user's views: the renderer then
        # finds every id it is told of, and the other views' wiring is not sent either.
        user = auth.user()
        hidden = forbidden.get(user.role) if user is not None else None
        if request.path != "/_dash-dependencies" or response.status_code != 200 or not hidden:
            return response
        callbacks = callbacks_of(server)
        kept = [
            entry
            for entry in json.loads(response.get_data())
            if not (
                entry.get("output") in callbacks
                and callback_inputs.declared_ids(callbacks[entry["output"]]) & hidden
            )
        ]
        response.set_data(json.dumps(kept))
        return response

    # Dash keeps the whole page to check callbacks in the browser; it would send every role
    # the ids of views it may not see. The server checks callbacks itself (_callback_right).
    app.validation_layout = None
    callbacks.register(app, base, schema)
    server.extensions[DASH_APP] = app
    _check_callback_requests(server, callback_inputs.Checker(app.callback_map, base))
    security.install(app)
    logs.install_request_logging(server)
    return server


def _time_budget(server: Flask, seconds: float) -> None:
    """Every callback and API request gets `seconds` (analytics.budget: checked between steps);
    past it, a 503 that says so instead of a worker thread held."""

    @server.before_request
    def _enter_budget():
        if request.path.startswith(("/_dash-update-component", "/api/")):
            g.budget_token = budget.enter(seconds)

    @server.teardown_request
    def _leave_budget(_exc=None):
        token = g.pop("budget_token", None)
        if token is not None:
            budget.leave(token)

    @server.errorhandler(budget.OverBudget)
    def _over_budget(exc):  # the API answers its own (dashboard.api.routes), in its format
        log.warning("%s %s: %s", request.method, request.path, exc)
        return auth.json_response({"error": str(exc)}, 503, {"Retry-After": "30"})


def _check_callback_requests(server: Flask, checker: callback_inputs.Checker) -> None:
    """Every callback request is checked against its callback's declaration before Dash runs
    it (after the login guard, so an anonymous request is a 401, not a 400)."""

    @server.before_request
    def _callback_inputs():
        if request.path != "/_dash-update-component" or request.method != "POST":
            return None
        try:
            checker.check(request.get_json(silent=True))
        except callback_inputs.Refused as exc:
            log.debug("callback request refused: %s", exc)
            return auth.json_response({"error": f"bad callback request: {exc}"}, 400)
        return None


def _callback_right(forbidden: dict, callbacks: dict, user, body) -> str | None:
    """The right a callback request needs: MODEL when the callback Dash would run for it (its
    "output" key) touches a component outside the user's layout (the model view is the only
    such view), else None."""
    output = body.get("output") if isinstance(body, dict) else None
    spec = callbacks.get(output) if isinstance(output, str) else None
    if spec is None:
        return None  # no such callback: Dash refuses it itself
    if callback_inputs.declared_ids(spec) & forbidden.get(user.role, frozenset()):
        return access.MODEL
    return None


def callbacks_of(server: Flask) -> dict:
    app = server.extensions.get(DASH_APP)
    return app.callback_map if app is not None else {}


def dash_app(server: Flask) -> Dash:
    """The Dash app mounted on `server` (for tests and the development server)."""
    return server.extensions[DASH_APP]


def served_base(server: Flask) -> ServedBase:
    return server.extensions[SERVED_BASE]
