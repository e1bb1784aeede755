"""The page as functions of what the data offers. No data work here: options and ranges come in
as arguments, figures arrive through callbacks."""

from __future__ import annotations

import json
from pathlib import Path

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from analytics import access
from analytics import columns as C
from analytics.definitions import KPI_DEFINITIONS, KPI_TITLES, TERMS
from analytics.formatting import display_name, money, money_js
from analytics.services import customers
from analytics.services import training as training_status
from dashboard import ids

GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"scale": 2}}
KPI_ORDER = tuple(KPI_TITLES)
TABS = (
    ("overview", "Overview"),
    ("drivers", "Drivers"),
    ("customers", "At-risk customers"),
    ("changes", "Changes"),
    ("planner", "Retention planner"),
    ("campaigns", "Campaigns"),
    ("model", "Model"),
    ("monitoring", "Monitoring"),
    ("predict", "Predict"),
)
# The snapshot picker's value for the live base (the default, kept out of the URL).
LIVE = "live"
LIVE_LABEL = "latest (live)"
# Tabs that need more than the customer views' right (analytics.access): not built for others.
TAB_RIGHTS = {"model": access.MODEL}


def tabs_for(role: str | None) -> list[str]:
    """The tab keys `role` sees, in order."""
    return [k for k, _ in TABS if access.allowed(role, TAB_RIGHTS.get(k, access.VIEWS))]


def factor_options(data) -> list[str]:
    """The drivers tab's factors, the first one shown by default."""
    return list(data.ws.table.features) + [c for c in (C.SEGMENT,) if c in data.scored]


def graph(graph_id: str, height: int = 340) -> dcc.Graph:
    return dcc.Graph(
        id=graph_id,
        config=GRAPH_CONFIG,
        style={"minHeight": f"{height}px"},
        className="dash-graph",
    )


def card(title: str, *children, help_text: str | None = None, card_id: str | None = None):
    header = [html.Span(title, className="fw-semibold")]
    if help_text:
        header.append(html.Small(help_text, className="text-muted d-block"))
    kwargs = {"id": card_id} if card_id else {}
    return dbc.Card(
        [dbc.CardHeader(header), dbc.CardBody(list(children))], className="mb-3 shadow-sm", **kwargs
    )


def kpi_card(name: str, period: str | None = None) -> dbc.Col:
    """A KPI card; `period` (e.g. "1-month window") says what a rate is measured over."""
    target = f"kpi-title-{name}"
    title = [KPI_TITLES[name], html.Span("i", className="info-dot")]
    return dbc.Col(
        dbc.Card(
            dbc.CardBody(
                [
                    html.Div(title, id=target, className="kpi-title"),
                    html.Div("–", id={"type": ids.KPI, "name": name}, className="kpi-value"),
                    html.Div(f"per {period}", className="kpi-period") if period else None,
                    html.Div(
                        "", id={"type": ids.KPI, "name": f"{name}-delta"}, className="kpi-delta"
                    ),
                    html.Div(
                        "", id={"type": ids.KPI, "name": f"{name}-change"}, className="kpi-change"
                    ),
                    dbc.Tooltip(KPI_DEFINITIONS[name], target=target, placement="bottom"),
                ]
            ),
            className="kpi-card shadow-sm h-100",
        ),
        xs=6,
        md=4,
        xl=True,
        className="mb-3",
    )


TIER_HELP = "Cut on Value (size at the average risk), not on CLV."


def value_tier_labels(cuts: tuple[float, float] | None, currency: str) -> dict[str, str]:
    """Each value tier with the Value range it stands for: "High (Value ≥ $1,234)"."""
    if cuts is None:
        return {}
    low, high = (money(c, currency) for c in cuts)
    return {
        "Low": f"Low (Value < {low})",
        "Mid": f"Mid (Value {low}–{high})",
        "High": f"High (Value ≥ {high})",
    }


def filters_panel(
    options: dict[str, list[str]],
    tenure_range: tuple[float, float],
    level_labels: dict[str, dict[str, str]] | None = None,
):
    """The filter controls; `level_labels` (column -> level -> text) says more than the level
    name where a level needs it (value tiers: the Value range)."""
    lo, hi = int(tenure_range[0]), int(max(tenure_range[1], tenure_range[0] + 1))
    fixed = [c for c in (C.SEGMENT, C.RISK_BAND, C.VALUE_TIER) if c in options]
    more = [c for c in options if c not in fixed]
    level_labels = level_labels or {}

    def dropdown(column: str):
        shown = level_labels.get(column, {})
        return html.Div(
            [
                dbc.Label(display_name(column), className="small mb-1"),
                dcc.Dropdown(
                    id={"type": ids.FILTER, "column": column},
                    options=[{"label": shown.get(v, v), "value": v} for v in options[column]],
                    multi=True,
                    placeholder="All",
                    value=[],
                ),
                dbc.FormText(TIER_HELP) if column == C.VALUE_TIER else None,
            ],
            className="mb-2",
        )

    return html.Div(
        [
            html.Div(
                [
                    html.Span("Filters", className="fw-semibold d-none d-lg-inline"),
                    dbc.Button(
                        "Reset",
                        id=ids.RESET,
                        size="sm",
                        color="secondary",
                        outline=True,
                        className="ms-auto",
                    ),
                ],
                className="d-flex align-items-center mb-2",
            ),
            *[dropdown(c) for c in fixed],
            html.Div(
                [
                    dbc.Label("Tenure (months)", className="small mb-1"),
                    dcc.RangeSlider(
                        id=ids.TENURE,
                        min=lo,
                        max=hi,
                        value=[lo, hi],
                        step=1,
                        marks={lo: str(lo), hi: str(hi)},
                        allowCross=False,
                        tooltip={"placement": "bottom", "always_visible": False},
                    ),
                ],
                className="mb-3",
            ),
            html.Details(
                [
                    html.Summary(f"More filters ({len(more)})", className="small fw-semibold mb-2"),
                    *[dropdown(c) for c in more],
                ],
                open=False,
            )
            if more
            else None,
            html.Div(id=ids.SELECTION_SUMMARY, className="small text-muted mt-2"),
        ],
        className="filters-panel",
    )


def snapshot_picker() -> html.Div:
    """The as_of dates to read the customer views at (newest first, filled by a callback),
    "latest (live)" by default. Outside the folded filter panel: a phone sees it too."""
    return html.Div(
        [
            dbc.Label("Snapshot", html_for=ids.SNAPSHOT, className="small fw-semibold mb-1"),
            dcc.Dropdown(
                id=ids.SNAPSHOT,
                options=[{"label": LIVE_LABEL, "value": LIVE}],
                value=LIVE,
                clearable=False,
                searchable=False,
            ),
            dbc.FormText('The scoring every customer view reads; "vs last month" is its change.'),
        ],
        className="snapshot-picker mb-2",
    )


def user_menu(username: str, role: str, scope: str | None, csrf_token: str) -> html.Div:
    """Who is logged in (role and scope), the admin pages for an admin, and a log-out form
    (a POST with its CSRF token, so no other site can log a user out)."""
    who = f"{username} · {role}" + (f" · {scope}" if scope else "")
    links = []
    if access.allowed(role, access.ADMINISTER):
        links = [
            html.A(text, href=href, className="nav-link px-1 text-white-50 small")
            for text, href in (
                ("Users", "/admin/users"),
                ("Tokens", "/admin/tokens"),
                ("Audit log", "/admin/audit"),
            )
        ]
    return html.Div(
        [
            *links,
            html.Span(who, id=ids.USER_NAME, className="navbar-text small text-white-50"),
            html.Form(
                [
                    dcc.Input(type="hidden", name="csrf_token", value=csrf_token),
                    html.Button(
                        "Log out",
                        type="submit",
                        id=ids.LOGOUT,
                        className="btn btn-sm btn-outline-light",
                    ),
                ],
                method="post",
                action="/logout",
                className="m-0",
            ),
        ],
        className="d-flex align-items-center gap-2 flex-wrap ms-auto user-menu",
    )


# The first model is training: views that need it show a training panel. assets/training.js
# keeps every panel's text and bar current from GET /api/v1/health (its "message" is
# ModelStatus.text()) and reloads the page when the model is ready; the classes below are what
# it looks for.
PANEL = "training-panel"
PANEL_COLORS = {"training": "info", "failed": "danger"}


def training_panel(headline: str, status: training_status.ModelStatus) -> html.Div:
    """One panel in place of a view that needs the churn model: what the view needs
    (`headline`), how far training is (a progress bar while a job runs), and that the page
    switches by itself."""
    color = PANEL_COLORS.get(
        status.state if status.state == "failed" else status.status, "secondary"
    )
    training = status.status == training_status.TRAINING
    return html.Div(
        [
            html.Div(headline, className="fw-semibold mb-1"),
            html.Div(status.text(), className="training-text"),
            html.Div(
                html.Div(
                    className="progress-bar progress-bar-striped progress-bar-animated",
                    style={"width": f"{status.percent}%"},
                ),
                className="progress training-progress my-2",
                role="progressbar",
                hidden=not training,
                **{
                    "aria-label": "Training progress",
                    "aria-valuemin": 0,
                    "aria-valuemax": 100,
                    "aria-valuenow": status.percent,
                },
            ),
            html.Small(
                "This page follows the training and switches to the full dashboard by itself "
                "when the model is ready.",
                className="text-body-secondary",
            ),
        ],
        className=f"alert alert-{color} {PANEL}",
        role="status",
        **{"aria-live": "polite"},
    )


def model_text(ws, status: training_status.ModelStatus | None) -> str:
    """The navbar's model: its version, or how far the first one is."""
    if ws.model is not None:
        return f"Model: {ws.model.version}"
    if status is not None and status.status == training_status.TRAINING:
        return f"Model: training {status.percent}%"
    return "Model: none yet"


def navbar(source: str, model: str, user_menu=None) -> dbc.Navbar:
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("Customer Retention", className="fw-bold"),
                html.Span(
                    [
                        f"Data: {Path(source).name}",
                        html.Span(" · ", className="mx-1"),
                        html.Span(model, className="model-status-short"),
                    ],
                    id=ids.STATUS,
                    className="navbar-text small text-white-50 text-truncate",
                ),
                *([user_menu] if user_menu is not None else []),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-3",
    )


def overview_tab(has_dates: bool, status: training_status.ModelStatus | None = None) -> list:
    """The overview; without a model yet (`status`), the segments (k-means, fitted with the
    model) are one training panel and the trend cannot be split by them."""
    trend_help = TERMS["monthly_churn"] if has_dates else TERMS["kaplan_meier"]
    segments = [
        dbc.Col(
            card(
                "Segments",
                graph(ids.DOUGHNUT, 380),
                help_text="Click a slice to filter to that segment.",
            ),
            lg=4,
        )
    ]
    if status is not None:
        panel = training_panel("The segments are fitted with the churn model.", status)
        segments = [dbc.Col(card("Segments", panel), lg=4)]
    return [
        dbc.Row(
            [
                dbc.Col(
                    card(
                        "Churn and retention trend",
                        dbc.Switch(
                            id=ids.TREND_SPLIT,
                            label="Split by segment"
                            + (" (once the model is trained)" if status is not None else ""),
                            value=False,
                            disabled=status is not None,
                            className="small",
                        ),
                        html.Div(id=ids.TREND_NOTE, className="small text-muted"),
                        graph(ids.TREND, 380),
                        help_text=trend_help,
                    ),
                    lg=8,
                ),
                *segments,
            ]
        ),
        None
        if status is not None
        else dbc.Row(
            [
                dbc.Col(
                    card(
                        "Churn rate by segment",
                        graph(ids.SEGMENT_CHURN, 320),
                        help_text="With Wilson 95% intervals.",
                    ),
                    lg=6,
                ),
                dbc.Col(
                    card(
                        "What defines each segment",
                        html.Div(id=ids.SEGMENT_PROFILE),
                        help_text=TERMS["segments"],
                    ),
                    lg=6,
                ),
            ]
        ),
        card(
            "Cohort retention",
            graph(ids.COHORT, 460),
            help_text=TERMS["cohort"],
            card_id=ids.COHORT_CARD,
        )
        if has_dates
        else None,
    ]


def drivers_tab(factors: list[str], status: training_status.ModelStatus | None = None) -> list:
    """Churn by factor (no model needed) and the model's importance (a training panel without
    a model yet: `status`)."""
    importance = (
        graph(ids.IMPORTANCE, 470)
        if status is None
        else training_panel("Importance is measured on the churn model.", status)
    )
    return [
        dbc.Row(
            [
                dbc.Col(
                    card(
                        "Churn rate by factor",
                        dcc.Dropdown(
                            id=ids.FACTOR,
                            options=[{"label": display_name(f), "value": f} for f in factors],
                            value=factors[0] if factors else None,
                            clearable=False,
                        ),
                        graph(ids.FACTOR_GRAPH, 420),
                        help_text=TERMS["churn_by_factor"],
                    ),
                    lg=7,
                ),
                dbc.Col(
                    card(
                        "Model importance",
                        importance,
                        help_text=TERMS["importance"],
                    ),
                    lg=5,
                ),
            ]
        ),
    ]


GRID_STYLE = {"height": "480px", "width": "100%"}


def at_risk_grid(grid_id: str, columns: list[dict], *, infinite: bool) -> dag.AgGrid:
    options = {
        "pagination": True,
        "paginationPageSize": 50,
        "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
        "enableCellTextSelection": True,
        "ensureDomOrder": True,
        "tooltipShowDelay": 300,  # a cut reason shows in full on hover
    }
    if infinite:
        options.update(
            {
                "rowBuffer": 0,
                "maxBlocksInCache": 2,
                "cacheBlockSize": 50,
                "infiniteInitialRowCount": 50,
                "paginationPageSizeSelector": False,
            }
        )
    return dag.AgGrid(
        id=grid_id,
        columnDefs=columns,
        # Filters are typed in a row under the headers, so a header's width goes to its words
        # (wrapped, never "Exp... loss") rather than to menu and filter buttons.
        defaultColDef={
            "sortable": True,
            "resizable": True,
            "wrapHeaderText": True,
            "autoHeaderHeight": True,
            "filter": "agTextColumnFilter",
            "floatingFilter": True,
            "suppressHeaderMenuButton": True,
            "suppressHeaderFilterButton": True,
            "minWidth": 72,
            "flex": 1,
        },
        className="retention-grid",
        rowModelType="infinite" if infinite else "clientSide",
        getRowId=f"params.data.{C.CUSTOMER_ID}",
        dashGridOptions=options,
        style=GRID_STYLE,
    )


def customers_tab(grid_columns: list[dict], value_note: str | None) -> list:
    if value_note:
        return [dbc.Alert(value_note, color="secondary")]
    return [
        card(
            "Value x risk",
            graph(ids.SCATTER, 420),
            help_text=f"{TERMS['value']} {TERMS['high_value']}",
        ),
        card(
            "High-value at-risk customers",
            html.Div(
                [
                    html.Span(id=ids.AT_RISK_COUNT, className="me-auto small"),
                    dbc.Button("Export CSV", id=ids.AT_RISK_EXPORT, size="sm", color="primary"),
                    dcc.Download(id=ids.AT_RISK_DOWNLOAD),
                ],
                className="d-flex align-items-center mb-2 gap-2",
            ),
            at_risk_grid(ids.AT_RISK_GRID, grid_columns, infinite=True),
            help_text=TERMS["at_risk_list"] + " Click a row for details.",
        ),
        dbc.Offcanvas(
            id=ids.DETAIL,
            title="Customer",
            is_open=False,
            placement="end",
            children=html.Div(id=ids.DETAIL_BODY),
            style={"width": "min(480px, 100vw)"},
        ),
    ]


def _number(input_id: str, text: str, value: float, *, help_text: str):
    """A number field without min/max: the browser would send an out-of-range value as empty,
    hiding the server's message that names the allowed range."""
    return html.Div(
        [
            dbc.Label(text, html_for=input_id, className="small mb-1"),
            dbc.Input(
                id=input_id,
                type="number",
                value=value,
                step="any",
                debounce=True,
                inputmode="decimal",
            ),
            dbc.FormText(help_text),
        ],
        className="mb-2",
    )


def planner_tab(settings, grid_columns: list[dict], value_note: str | None) -> list:
    if value_note:
        return [dbc.Alert(value_note, color="secondary")]
    inputs = card(
        "Assumptions",
        _number(
            ids.PLAN_SAVE_RATE,
            "Save rate s",
            settings.save_rate,
            help_text="Share of would-be churners an offer keeps (0–1).",
        ),
        html.Div(id=ids.PLAN_SAVE_RATE_SOURCE, className="small save-rate-source mb-2"),
        _number(
            ids.PLAN_COST,
            "Cost per contact c",
            settings.cost_per_contact,
            help_text="Cost of one retention contact or offer.",
        ),
        _number(
            ids.PLAN_MARGIN,
            "Gross margin m",
            settings.margin,
            help_text="Share of revenue that is profit (0–1].",
        ),
        _number(
            ids.PLAN_DISCOUNT,
            "Monthly discount rate d",
            settings.discount,
            help_text="Time value of money per month (0–1).",
        ),
        html.Div(id=ids.PLAN_ERROR),
        help_text=TERMS["net_benefit"],
    )
    return [
        dbc.Row(
            [
                dbc.Col(inputs, lg=3),
                dbc.Col(
                    [html.Div(id=ids.PLAN_SUMMARY), card("Net benefit", graph(ids.PLAN_CURVE))],
                    lg=9,
                ),
            ]
        ),
        card(
            "Whom to contact first",
            html.Div(
                [
                    html.Span("Highest expected loss first.", className="me-auto small text-muted"),
                    dbc.Button("Export CSV", id=ids.PLAN_EXPORT, size="sm", color="primary"),
                    dcc.Download(id=ids.PLAN_DOWNLOAD),
                ],
                className="d-flex align-items-center mb-2 gap-2",
            ),
            at_risk_grid(ids.PLAN_GRID, grid_columns, infinite=False),
        ),
        campaign_form(),
    ]


def _campaign_size() -> list:
    """Whom the campaign takes: the plan's best N, or the first N the user gives."""
    return [
        dbc.Label("Whom", className="small mb-1"),
        dbc.RadioItems(
            id=ids.CAMPAIGN_SIZE,
            options=[
                {"label": "the plan's best N", "value": "best"},
                {"label": "the first N by expected loss:", "value": "given"},
            ],
            value="best",
            className="small",
        ),
        dbc.Input(
            id=ids.CAMPAIGN_LIMIT,
            type="number",
            placeholder="N",
            step=1,
            inputmode="numeric",
            size="sm",
            className="campaign-limit",
        ),
        dbc.Label("Number of customers", html_for=ids.CAMPAIGN_LIMIT, className="visually-hidden"),
    ]


def campaign_form():
    """A campaign from the plan's contact list: a random control group (stratified by risk
    band) is held out and only the treated customers are downloaded for contact."""
    name = [
        dbc.Label("Name", html_for=ids.CAMPAIGN_NAME, className="small mb-1"),
        dbc.Input(
            id=ids.CAMPAIGN_NAME, type="text", maxLength=200, placeholder="e.g. Spring save offer"
        ),
    ]
    share = [
        dbc.Label("Control group (%)", html_for=ids.CAMPAIGN_SHARE, className="small mb-1"),
        dbc.Input(id=ids.CAMPAIGN_SHARE, type="number", value=10, step="any", inputmode="decimal"),
        dbc.FormText("Held out, not contacted: up to 50%."),
    ]
    create = dbc.Button(
        "Create campaign and download the treated list",
        id=ids.CAMPAIGN_CREATE,
        color="primary",
        className="w-100",
    )
    return card(
        "Create a campaign from this plan",
        dbc.Row(
            [
                dbc.Col(name, md=4, className="mb-2"),
                dbc.Col(share, md=2, className="mb-2"),
                dbc.Col(_campaign_size(), md=3, className="mb-2"),
                dbc.Col(create, md=3, className="mb-2 d-flex align-items-end"),
            ],
            className="g-2",
        ),
        dcc.Download(id=ids.CAMPAIGN_DOWNLOAD),
        html.Div(id=ids.CAMPAIGN_HINT, className="small text-muted"),
        html.Div(id=ids.CAMPAIGN_RESULT, className="mt-2"),
        help_text="For the current filters, from the latest scoring. When a later snapshot says "
        "who left, the Campaigns tab measures the save rate against the control group.",
    )


def model_tab(threshold: float) -> list:
    return [
        card(
            "Candidates (5-fold stratified cross-validation)",
            html.Div(id=ids.MODEL_CANDIDATES),
            html.Div(id=ids.MODEL_WARNING, className="small text-warning-emphasis mt-2"),
            help_text="The model with the best mean ROC-AUC is used. These scores are for the "
            "whole base; the curves, lift and threshold views follow the filters.",
        ),
        dbc.Row(
            [
                dbc.Col(card("ROC", graph(ids.MODEL_ROC)), lg=6),
                dbc.Col(card("Precision-recall", graph(ids.MODEL_PR)), lg=6),
                dbc.Col(card("Calibration", graph(ids.MODEL_CALIBRATION)), lg=6),
                dbc.Col(card("Lift", graph(ids.MODEL_LIFT)), lg=6),
            ]
        ),
        card(
            "Threshold",
            dcc.Slider(
                id=ids.THRESHOLD,
                min=0.01,
                max=0.99,
                step=0.001,  # fine enough to start exactly at the saved t
                value=round(threshold, 3),
                marks={round(threshold, 3): "t"},
                tooltip={"placement": "bottom", "always_visible": True},
            ),
            dbc.Row(
                [
                    dbc.Col(graph(ids.CONFUSION, 300), md=6),
                    dbc.Col(html.Div(id=ids.THRESHOLD_METRICS), md=6),
                ],
                className="mt-3",
            ),
            help_text=TERMS["threshold"] + " The slider explores other thresholds on the "
            "out-of-fold predictions; the saved t is marked.",
        ),
    ]


MOVERS_HEIGHT = {"height": "420px", "width": "100%"}


def movers_columns(currency: str) -> list[dict]:
    """The movers lists: who, risk then and now, the rise, band then and now, what is at stake,
    and the reasons then and now (whole text on hover)."""
    number = {"type": "numericColumn", "filter": "agNumberColumnFilter"}
    percent = {**number, "valueFormatter": {"function": "d3.format('.1%')(params.value)"}}
    money = {**number, "valueFormatter": {"function": money_js(currency)}}
    reasons = {"filter": "agTextColumnFilter", "flex": 2, "minWidth": 180, "wrapText": False}

    def column(field: str, name: str, **extra) -> dict:
        return {"field": field, "headerName": name, **extra}

    # The rise first after who: on a phone the grid shows the customer, the rise and p then.
    return [
        column(C.CUSTOMER_ID, "Customer", pinned="left", width=100, flex=None),
        column(
            "rise",
            "Rise (pts)",
            **number,
            sort="desc",
            minWidth=80,
            valueFormatter={"function": "d3.format('+.1f')(100 * params.value)"},
        ),
        column("p_churn_previous", "Churn probability then", **percent, minWidth=100),
        column(C.P_CHURN, "Churn probability now", **percent, minWidth=100),
        column("risk_band_previous", "Band then", minWidth=80),
        column(C.RISK_BAND, "Band now", minWidth=80),
        column(C.EXPECTED_LOSS, "Expected loss", **money, minWidth=96),
        column("reasons_previous", "Reasons then", tooltipField="reasons_previous", **reasons),
        column("reasons", "Reasons now", tooltipField="reasons", **reasons),
    ]


def movers_grid(grid_id: str, currency: str) -> dag.AgGrid:
    grid = at_risk_grid(grid_id, movers_columns(currency), infinite=False)
    grid.style = MOVERS_HEIGHT
    grid.dashGridOptions = {**grid.dashGridOptions, "paginationPageSize": 20,
                            "paginationPageSizeSelector": False}  # fmt: skip
    return grid


def changes_tab(currency: str, value_note: str | None) -> list:
    """What changed since the previous snapshot: movers, the newly high-value at-risk customers
    and the revenue movements per month."""
    revenue = (
        card("Revenue retention", dbc.Alert(value_note, color="secondary"))
        if value_note
        else card(
            "Revenue retention",
            html.Div(id=ids.REVENUE_NOTE, className="small text-muted"),
            graph(ids.REVENUE_GRAPH, 380),
            graph(ids.REVENUE_RATES, 300),
            html.Div(id=ids.REVENUE_TABLE),
            help_text=REVENUE_HELP,
        )
    )
    return [
        card(
            "Risk rose most since the previous snapshot",
            html.Div(id=ids.MOVERS_NOTE, className="small mb-2"),
            movers_grid(ids.MOVERS_GRID, currency),
            help_text="Customers in both snapshots and still active, ranked by the rise in their "
            "churn probability, with their reasons then and now.",
        ),
        card(
            "Newly high-value at risk",
            html.Div(id=ids.NEWLY_NOTE, className="small mb-2"),
            movers_grid(ids.NEWLY_GRID, currency),
            help_text="In the high-value at-risk list now and not in the previous snapshot's.",
        ),
        revenue,
    ]


REVENUE_HELP = (
    "Per month, from each customer's MRR at the month's start and end: new, reactivation and "
    "expansion add; contraction and churned take away. Gross revenue retention (GRR) leaves out "
    "expansion, net (NRR) counts it; both over the customers present at the month's start."
)
CAMPAIGN_HELP = (
    "A campaign holds out a random control group (stratified by risk band) and contacts the "
    "rest. Once a later snapshot says who left: measured save rate s = (churn of control - "
    "churn of treated) / churn of control, with a Newcombe 95% interval."
)


def campaigns_tab() -> list:
    return [
        card(
            "Campaigns",
            html.Div(id=ids.CAMPAIGN_LIST),
            help_text=CAMPAIGN_HELP + " Create one from the Retention planner.",
        )
    ]


MONITOR_HELP = (
    "Once a snapshot's window has passed, its scores are checked against who actually left "
    "(realised), beside the ROC-AUC the model expected from cross-validation."
)
DRIFT_HELP = (
    "Population stability index of each feature between the model's training data and the "
    "newest data: below 0.1 stable, 0.1-0.25 moderate, above 0.25 large."
)


def monitoring_tab() -> list:
    return [
        html.Div(id=ids.MONITOR_NOTE, className="small text-muted mb-2"),
        card(
            "Realised performance over snapshots",
            graph(ids.MONITOR_PERFORMANCE, 360),
            help_text=MONITOR_HELP,
        ),
        dbc.Row(
            [
                dbc.Col(
                    card(
                        "Calibration of the newest snapshot",
                        graph(ids.MONITOR_CALIBRATION, 340),
                        help_text="Mean predicted p beside the realised churn rate, by score "
                        "decile (1 = highest scores).",
                    ),
                    lg=6,
                ),
                dbc.Col(card("Drift", html.Div(id=ids.MONITOR_DRIFT), help_text=DRIFT_HELP), lg=6),
            ]
        ),
    ]


def predict_field(feature: str, spec: dict):
    """One form control from the model's input schema: levels -> dropdown, number -> input."""
    fid = {"type": ids.PREDICT_FIELD, "feature": feature}
    if spec["kind"] == "categorical":
        control = dcc.Dropdown(
            id=fid,
            options=[{"label": v, "value": v} for v in spec["levels"]],
            value=spec["default"],
            clearable=True,
            placeholder="choose…",
        )
        hint = f"{len(spec['levels'])} known levels"
    else:
        lo, hi = spec["min"], spec["max"]
        control = dbc.Input(
            id=fid,
            type="number",
            value=spec["default"],
            # No min/max and no step: the browser would send an out-of-range number or 2.5 in
            # a whole-number field as None ("missing"); the server's check says what is wrong.
            step="any",
            inputmode="numeric" if spec.get("whole") else "decimal",
        )
        hint = f"observed {lo:g} to {hi:g}" + (", whole numbers" if spec.get("whole") else "")
    return dbc.Col(
        html.Div(
            [
                dbc.Label(display_name(feature), className="small mb-1"),
                control,
                dbc.FormText(hint),
            ],
            className="mb-2",
        ),
        md=6,
    )


def predict_tab(schema: dict[str, dict]) -> list:
    return [
        dbc.Row(
            [
                dbc.Col(
                    card(
                        "Customer",
                        dbc.InputGroup(
                            [
                                dbc.Input(
                                    id=ids.PREDICT_LOAD_ID,
                                    placeholder="customer id, e.g. from the at-risk list",
                                    type="text",
                                ),
                                dbc.Button("Load customer", id=ids.PREDICT_LOAD, color="secondary"),
                            ],
                            size="sm",
                            className="mb-1",
                        ),
                        html.Div(id=ids.PREDICT_LOAD_NOTE, className="small text-muted mb-2"),
                        dbc.Row([predict_field(f, spec) for f, spec in schema.items()]),
                        dbc.Button(
                            "Predict", id=ids.PREDICT_SUBMIT, color="primary", className="mt-2"
                        ),
                        help_text="Defaults are the base's typical values (median or most "
                        "common); load a real customer to ask what-if questions about them.",
                    ),
                    lg=7,
                ),
                dbc.Col(html.Div(id=ids.PREDICT_RESULT), lg=5),
            ]
        ),
    ]


RATES = ("churn_rate", "retention_rate")


def _period(data) -> str | None:
    """The observation window a churn rate covers, when the data has dates to say it."""
    months = data.window_months if data.ws.table.has_dates else None
    return f"{months}-month window" if months else None


# Without a model yet, what each tab that needs one shows in its training panel.
NEEDS_MODEL = {
    "customers": "The value x risk view and the at-risk list need the churn model.",
    "planner": "The retention planner needs the churn model.",
    "model": "The model view shows the churn model.",
    "predict": "Predictions need the churn model.",
    "changes": "Changes between snapshots need the churn model's scores.",
    "campaigns": "Campaigns are drawn from the churn model's contact list.",
    "monitoring": "Monitoring watches the churn model.",
}


def page(
    data,
    schema: dict[str, dict],
    grid_columns: list[dict],
    plan_columns: list[dict],
    value_note: str | None,
    *,
    role: str | None = access.ADMIN,
    levels: dict[str, list[str]] | None = None,
    user_menu=None,
    model_status: training_status.ModelStatus | None = None,
):
    """The page as `role` sees it: only the tabs its rights allow (their components are not
    sent at all), filter levels cut to the user's scope (`levels`), and the user's menu.
    Without a model yet the views that need one show a training panel (`model_status`: how far
    the first model is), tabs and role rules unchanged."""
    ws = data.ws
    pending = None
    if not data.has_model:
        pending = model_status or training_status.model_status(False, None)
    makers = {
        "overview": lambda: overview_tab(ws.table.has_dates, pending),
        "drivers": lambda: drivers_tab(factor_options(data), pending),
        "customers": lambda: customers_tab(grid_columns, value_note),
        "planner": lambda: planner_tab(ws.settings, plan_columns, value_note),
        "model": lambda: model_tab(data.threshold),
        "predict": lambda: predict_tab(schema),
        "changes": lambda: changes_tab(ws.settings.currency, value_note),
        "campaigns": campaigns_tab,
        "monitoring": monitoring_tab,
    }
    if pending is not None:
        for key, what in NEEDS_MODEL.items():
            if key in ("customers", "planner") and value_note:
                continue  # no revenue: the value views are off whatever the model
            makers[key] = lambda what=what: [training_panel(what, pending)]
    shown = tabs_for(role)
    tabs = {key: makers[key]() for key in shown}
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Store(id=ids.FILTER_QUERY),
            navbar(ws.source, model_text(ws, pending), user_menu),
            dbc.Container(
                [
                    html.Div(id=ids.MONITOR_BANNER, role="status"),
                    dbc.Row(
                        [
                            dbc.Col(
                                [
                                    snapshot_picker(),
                                    html.Details(
                                        [
                                            html.Summary("Filters", className="fw-semibold mb-2"),
                                            filters_panel(
                                                data.allowed if levels is None else levels,
                                                data.tenure_range,
                                                {
                                                    C.VALUE_TIER: value_tier_labels(
                                                        customers.value_tier_cuts(data),
                                                        ws.settings.currency,
                                                    )
                                                },
                                            ),
                                        ],
                                        id=ids.FILTERS_DETAILS,
                                        open=False,
                                        className="filters-details",
                                    ),
                                ],
                                xs=12,
                                lg=3,
                                xxl=2,
                                className="mb-3",
                            ),
                            dbc.Col(
                                [
                                    html.Div(id=ids.SNAPSHOT_NOTE, className="snapshot-note"),
                                    html.Div(
                                        id=ids.ACTIVE_FILTERS,
                                        className="active-filters",
                                        **{"aria-label": "Active filters"},
                                    ),
                                    dbc.Row(
                                        [
                                            kpi_card(name, _period(data) if name in RATES else None)
                                            for name in KPI_ORDER
                                        ],
                                        id=ids.KPI_ROW,
                                        className="g-2",
                                    ),
                                    html.Div(id=ids.KPI_CHANGE_NOTE, className="kpi-change-note"),
                                    dbc.Tabs(
                                        [
                                            dbc.Tab(
                                                html.Div(tabs[key], className="pt-3"),
                                                label=text,
                                                tab_id=key,
                                            )
                                            for key, text in TABS
                                            if key in tabs
                                        ],
                                        id=ids.TABS,
                                        active_tab="overview",
                                    ),
                                ],
                                xs=12,
                                lg=9,
                                xxl=10,
                            ),
                        ]
                    ),
                ],
                fluid=True,
            ),
        ]
    )


def components_by_id(root) -> dict:
    """Every component with an id in a layout tree: id (pattern-matching ids as sorted JSON,
    the form Dash uses) -> component. For tests and benchmarks that reason about the page."""
    found = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            stack.extend(node)
            continue
        if not hasattr(node, "to_plotly_json"):
            continue
        cid = getattr(node, "id", None)
        if cid is not None:
            found[json.dumps(cid, sort_keys=True) if isinstance(cid, dict) else cid] = node
        child = getattr(node, "children", None)
        if child is not None:
            stack.append(child)
    return found
