"""Retention planner: whom to contact first and what it is worth, under the user's assumptions."""

from __future__ import annotations

import math
from datetime import date

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics import export
from analytics.result import Unavailable
from dashboard import figures, ids
from dashboard.callbacks.customers import grid_rows
from dashboard.callbacks.overview import NO_MATCH

LIMITS = {
    "save rate": (0.0, 1.0),
    "cost per contact": (0.0, math.inf),
    "gross margin": (0.0, 1.0),
    "discount rate": (0.0, 1.0),
}


def check_inputs(save_rate, cost, margin, discount) -> tuple[dict | None, list[str]]:
    """Numbers from the form, or a message per bad field."""
    values = {
        "save rate": save_rate,
        "cost per contact": cost,
        "gross margin": margin,
        "discount rate": discount,
    }
    problems = []
    for name, raw in values.items():
        lo, hi = LIMITS[name]
        if raw is None or raw == "":
            problems.append(f"Enter a {name}.")
            continue
        try:
            x = float(raw)
        except (TypeError, ValueError):
            problems.append(f"The {name} must be a number.")
            continue
        if not math.isfinite(x) or x < lo or x > hi or (name == "gross margin" and x == 0):
            bound = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f"at least {lo:g}"
            if name == "gross margin":
                bound = "above 0 and at most 1"
            problems.append(f"The {name} must be {bound}; got {raw}.")
        values[name] = x
    return (None if problems else values), problems


GRID_ROWS = 500  # the grid shows the first rows; the export has every contact


def compute_plan(data, query, values: dict):
    """retention.plan of the selection under these assumptions (from the base's order)."""
    return data.cached(
        "plan",
        query,
        lambda: data.planner.plan(
            data.mask(query),
            save_rate=values["save rate"],
            cost_per_contact=values["cost per contact"],
            margin=values["gross margin"],
            discount=values["discount rate"],
        ),
        tuple(values.values()),
        large=True,
    )


def plan_outputs(data, query, save_rate, cost, margin, discount):
    """(error, summary, curve figure, contact rows)."""
    values, problems = check_inputs(save_rate, cost, margin, discount)
    if problems:
        alert = dbc.Alert([html.Div(p) for p in problems], color="danger", className="small")
        return alert, None, figures.message("Fix the assumptions to see the plan."), []
    if not data.count(query):
        return None, dbc.Alert(NO_MATCH, color="light"), figures.message(NO_MATCH), []
    result = compute_plan(data, query, values)
    if isinstance(result, Unavailable):
        return None, dbc.Alert(result.reason, color="secondary"), figures.message(result.reason), []
    summary = summary_cards(result)
    if result.best_n > GRID_ROWS:
        summary.children.append(
            html.Div(
                f"The contact list below shows the first {GRID_ROWS:,} of {result.best_n:,}; "
                "Export CSV has all of them.",
                className="small text-muted",
            )
        )
    fields = [*data.grid_fields, "expected_saving"]
    rows = grid_rows(result.first_contacts(GRID_ROWS, fields), fields)
    return None, summary, figures.planner_curve(result.curve, result.best_n), rows


def summary_cards(plan) -> dbc.Row:
    roi = "–" if plan.roi is None or math.isnan(plan.roi) else f"{plan.roi:.0%}"
    items = [
        ("Contact first", f"{plan.best_n:,} customers"),
        ("Expected saved value", f"{plan.saved_value:,.0f}"),
        ("Contact cost", f"{plan.cost:,.0f}"),
        ("Net benefit", f"{plan.net_benefit:,.0f}"),
        ("ROI", roi),
    ]
    if plan.best_n == 0:
        note = html.Div(
            "At these assumptions no contact pays for itself.", className="small text-muted"
        )
    else:
        note = None
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    html.Div(k, className="kpi-title"),
                                    html.Div(v, className="kpi-value"),
                                ]
                            ),
                            className="shadow-sm h-100",
                        ),
                        xs=6,
                        md=True,
                        className="mb-2",
                    )
                    for k, v in items
                ],
                className="g-2",
            ),
            note,
        ],
        className="mb-2",
    )


def register(app, data) -> None:
    if C.MONTHLY_REVENUE not in data.scored.columns:
        return

    @app.callback(
        Output(ids.PLAN_ERROR, "children"),
        Output(ids.PLAN_SUMMARY, "children"),
        Output(ids.PLAN_CURVE, "figure"),
        Output(ids.PLAN_GRID, "rowData"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.PLAN_SAVE_RATE, "value"),
        Input(ids.PLAN_COST, "value"),
        Input(ids.PLAN_MARGIN, "value"),
        Input(ids.PLAN_DISCOUNT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _plan(query, save_rate, cost, margin, discount, tab):
        if query is None or tab != "planner":
            raise PreventUpdate
        return plan_outputs(data, query, save_rate, cost, margin, discount)

    @app.callback(
        Output(ids.PLAN_DOWNLOAD, "data"),
        Input(ids.PLAN_EXPORT, "n_clicks"),
        State(ids.FILTER_QUERY, "data"),
        State(ids.PLAN_SAVE_RATE, "value"),
        State(ids.PLAN_COST, "value"),
        State(ids.PLAN_MARGIN, "value"),
        State(ids.PLAN_DISCOUNT, "value"),
        prevent_initial_call=True,
    )
    def _export(_n, query, save_rate, cost, margin, discount):
        return export_contacts(data, query, save_rate, cost, margin, discount)


def export_contacts(data, query, save_rate, cost, margin, discount):
    """Every customer the plan contacts, as a spreadsheet-safe CSV download."""
    values, problems = check_inputs(save_rate, cost, margin, discount)
    if problems:
        raise PreventUpdate
    result = compute_plan(data, query, values)
    if isinstance(result, Unavailable) or not len(result.contacts):
        raise PreventUpdate
    fields = [c for c in [*data.grid_fields, "expected_saving"] if c in result.contacts.columns]
    text = export.safe_csv(result.contacts[fields])
    return dcc.send_string(text, f"retention-contact-list-{date.today():%Y-%m-%d}.csv")
