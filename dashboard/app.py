"""create_app(...): the Dash app over one loaded Workspace.

Callbacks are registered on this app explicitly (app.callback), so two apps built in the same
process (tests, a second data set) each get their own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dash import Dash

from analytics import columns as C
from analytics.config import PROJ_ROOT, Settings, serve_settings_from_env, settings_from_env
from analytics.model import predict
from analytics.workflow import Workspace, load_or_train
from dashboard import api, callbacks, layout
from dashboard.data import DashboardData
from dashboard.server import column_mapping, install

log = logging.getLogger("dashboard")

ASSETS = PROJ_ROOT / "assets"


def grid_columns(data: DashboardData, *, plan: bool = False) -> list[dict]:
    """At-risk list columns (METRICS.md) with the top three reasons; the planner's contact list
    adds each customer's expected saving."""
    money = {
        "type": "numericColumn",
        "filter": "agNumberColumnFilter",
        "valueFormatter": {"function": "d3.format(',.0f')(params.value)"},
    }
    reasons = [
        {"field": r, "headerName": f"Reason {i}", "minWidth": 220, "filter": "agTextColumnFilter"}
        for i, r in enumerate(C.REASONS, start=1)
    ]
    # Who, how likely, what is at stake and why come first: on a laptop screen the rest
    # scrolls sideways.
    cols = [
        {"field": C.CUSTOMER_ID, "headerName": "Customer", "pinned": "left", "minWidth": 130},
        {
            "field": C.P_CHURN,
            "headerName": "Churn probability",
            "minWidth": 130,
            "type": "numericColumn",
            "filter": "agNumberColumnFilter",
            "valueFormatter": {"function": "d3.format('.1%')(params.value)"},
        },
        {"field": C.EXPECTED_LOSS, "headerName": "Expected loss", "sort": "desc", **money},
        reasons[0],
        {"field": C.RISK_BAND, "headerName": "Risk band"},
        {"field": C.SEGMENT, "headerName": "Segment", "minWidth": 160},
        {
            "field": C.TENURE,
            "headerName": "Tenure (months)",
            "type": "numericColumn",
            "filter": "agNumberColumnFilter",
        },
        {"field": C.MONTHLY_REVENUE, "headerName": "Monthly revenue", **money},
        {"field": C.CLV, "headerName": "CLV", **money},
        {"field": C.VALUE, "headerName": "Value", **money},
        *reasons[1:],
    ]
    cols = [c for c in cols if c["field"] in data.grid_fields]
    if plan:
        cols.insert(1, {"field": "expected_saving", "headerName": "Expected saving", **money})
    return cols


def value_note(data: DashboardData) -> str | None:
    if C.MONTHLY_REVENUE not in data.scored.columns:
        return (
            "Value views are off: not available because the data has no monthly_revenue "
            "column (map one with --map monthly_revenue=<column>)."
        )
    return None


def create_app(
    workspace: Workspace | None = None,
    *,
    data: Path | None = None,
    models_dir: Path | None = None,
    settings: Settings | None = None,
    mapping: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> Dash:
    """Build the dashboard. Without a workspace, load `data` (default: RETENTION_DATA, else the
    demo base) and its model, training one first when the models directory has none that fits
    this table."""
    if workspace is None:
        config = serve_settings_from_env(data=data, models_dir=models_dir)
        settings = settings or settings_from_env()
        workspace = load_or_train(
            config.data,
            settings,
            models_dir=config.models_dir,
            mapping=mapping if mapping is not None else (column_mapping(config) or None),
            drop=drop,
            progress=log.info,
        )
        log.info("%s", workspace.how)
    dash_data = DashboardData(workspace)
    schema = predict.input_schema(workspace.model.meta)

    app = Dash(
        __name__,
        title="Customer Retention",
        assets_folder=str(ASSETS),
        external_stylesheets=[],  # Bootstrap is served from assets/: no CDN
        suppress_callback_exceptions=False,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
        update_title=None,
    )
    app.layout = layout.page(
        dash_data,
        schema,
        grid_columns(dash_data),
        grid_columns(dash_data, plan=True),
        value_note(dash_data),
    )
    callbacks.register(app, dash_data, schema)
    app.server.config["DASHBOARD_DATA"] = dash_data
    api.register(app.server, dash_data)
    install(app)  # security headers, request ids + access log, RETENTION_BATCH_LIMIT
    return app
