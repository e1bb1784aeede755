"""Retention planner: whom to contact first and what it is worth, under the user's assumptions."""

from __future__ import annotations

import math
from datetime import date

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics import export
from analytics.formatting import money
from analytics.services import planner
from analytics.services.errors import InvalidInput
from analytics.services.overview import NO_MATCH
from dashboard import auth, figures, ids
from dashboard.callbacks import snapshots

FIELDS = {  # form field -> the planner's assumption
    "save rate": "save_rate",
    "cost per contact": "cost_per_contact",
    "gross margin": "margin",
    "discount rate": "discount",
}


def check_inputs(save_rate, cost, margin, discount) -> tuple[planner.Assumptions | None, list]:
    """The assumptions from the form, or a message per bad field."""
    found, problems = planner.Assumptions.parse(
        save_rate=save_rate, cost_per_contact=cost, margin=margin, discount=discount
    )
    names = {v: k for k, v in FIELDS.items()}
    return found, [f"The {names[p.field]}: {p.message}." for p in problems]


GRID_ROWS = planner.CONTACT_ROWS  # the grid shows the first rows; the export has every contact


def plan_outputs(data, query, save_rate, cost, margin, discount):
    """(error, summary, curve figure, contact rows) from services.planner.plan."""
    assumptions, problems = check_inputs(save_rate, cost, margin, discount)
    if problems:
        alert = dbc.Alert([html.Div(p) for p in problems], color="danger", className="small")
        return alert, None, figures.message("Fix the assumptions to see the plan."), []
    found = planner.plan(data, query, assumptions)
    if not found["curve"]:
        color = "light" if found["note"] == NO_MATCH else "secondary"
        return None, dbc.Alert(found["note"], color=color), figures.message(found["note"]), []
    currency = data.ws.settings.currency
    summary = summary_cards(found, currency)
    if found["best_n"] > GRID_ROWS:
        summary.children.append(
            html.Div(
                f"The contact list below shows the first {GRID_ROWS:,} of {found['best_n']:,}; "
                "Export CSV has all of them.",
                className="small text-muted",
            )
        )
    curve = pd.DataFrame(found["curve"])
    return None, summary, figures.planner_curve(curve, found["best_n"], currency), found["contacts"]


def save_rate_note(data, base, save_rate):
    """Which save rate the plan uses (services.planner.save_rate_source, as GET
    /api/v1/planner says): the one a campaign measured, with its interval, is the input's
    default when there is one; the input at that default is "measured" (or "assumed")."""
    default, measured = snapshots.save_rate_default(data, base)
    given = None
    if isinstance(save_rate, int | float) and not math.isclose(save_rate, default, abs_tol=1e-9):
        given = float(save_rate)
    found = planner.save_rate_source(given, measured)
    badge = {"measured": "success", "assumed": "secondary", "given": "primary"}[found["used"]]
    parts = [dbc.Badge(found["used"], color=badge, className="me-1"), found["text"]]
    if found["used"] == "given" and measured is not None:
        parts.append(
            f" The campaign '{measured['campaign']}' measured {measured['save_rate']:.0%}."
        )
    return html.Div(parts)


def summary_cards(plan: dict, currency: str) -> dbc.Row:
    roi = "–" if plan["roi"] is None else f"{plan['roi']:.0%}"
    items = [
        ("Contact first", f"{plan['best_n']:,} customers"),
        ("Expected saved value", money(plan["saved_value"], currency)),
        ("Contact cost", money(plan["cost"], currency)),
        ("Net benefit", money(plan["net_benefit"], currency)),
        ("ROI", roi),
    ]
    if plan["best_n"] == 0:
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
    if C.MONTHLY_REVENUE not in data.scored.columns or not data.has_model:
        return  # the tab says why value views are off, or that the model is training

    @app.callback(
        Output(ids.PLAN_ERROR, "children"),
        Output(ids.PLAN_SUMMARY, "children"),
        Output(ids.PLAN_CURVE, "figure"),
        Output(ids.PLAN_GRID, "rowData"),
        Output(ids.PLAN_SAVE_RATE_SOURCE, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.PLAN_SAVE_RATE, "value"),
        Input(ids.PLAN_COST, "value"),
        Input(ids.PLAN_MARGIN, "value"),
        Input(ids.PLAN_DISCOUNT, "value"),
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _plan(query, save_rate, cost, margin, discount, snapshot, tab):
        if query is None or tab != "planner":
            raise PreventUpdate
        base = snapshots.base_for(data, snapshot)
        found = plan_outputs(base, query, save_rate, cost, margin, discount)
        return *found, save_rate_note(data, base, save_rate)

    @app.callback(
        Output(ids.PLAN_DOWNLOAD, "data"),
        Input(ids.PLAN_EXPORT, "n_clicks"),
        State(ids.FILTER_QUERY, "data"),
        State(ids.PLAN_SAVE_RATE, "value"),
        State(ids.PLAN_COST, "value"),
        State(ids.PLAN_MARGIN, "value"),
        State(ids.PLAN_DISCOUNT, "value"),
        State(ids.SNAPSHOT, "value"),
        prevent_initial_call=True,
    )
    def _export(_n, query, save_rate, cost, margin, discount, snapshot):
        base = snapshots.base_for(data, snapshot)
        return export_contacts(base, query, save_rate, cost, margin, discount)


def export_contacts(data, query, save_rate, cost, margin, discount):
    """Every customer the plan contacts, as a spreadsheet-safe CSV download."""
    assumptions, problems = check_inputs(save_rate, cost, margin, discount)
    if problems:
        raise PreventUpdate
    try:
        contacts = planner.contacts_frame(data, query, assumptions)
    except InvalidInput:
        raise PreventUpdate from None
    if not len(contacts):
        raise PreventUpdate
    text = export.list_csv(contacts, data.ws.settings.currency)
    auth.audit_export("retention contact list", query, len(contacts))
    return dcc.send_string(text, f"retention-contact-list-{date.today():%Y-%m-%d}.csv")
