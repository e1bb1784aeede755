"""Changes since the previous snapshot: the movers (risk rose most), the newly high-value at-risk
customers and the revenue movements per month, each drawn from the service result GET
/api/v1/customers/movers and GET /api/v1/revenue return for the same filters and snapshot."""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
from dash import Input, Output, html
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics.formatting import money
from analytics.services import history as service
from dashboard import figures, ids
from dashboard.callbacks import snapshots

TAB = "changes"
GRID_FIELDS = (
    C.CUSTOMER_ID,
    "p_churn_previous",
    C.P_CHURN,
    "rise",
    "risk_band_previous",
    C.RISK_BAND,
    C.EXPECTED_LOSS,
    "reasons_previous",
    "reasons",
)


def grid_rows(items: list[dict]) -> list[dict]:
    """The movers' rows as the grid shows them: reasons as one line each."""
    rows = []
    for item in items:
        row = {k: item.get(k) for k in GRID_FIELDS}
        for key in ("reasons", "reasons_previous"):
            row[key] = "; ".join(item.get(key) or []) or "–"
        rows.append(row)
    return rows


def movers_outputs(found: service.History | None, base, query: str):
    """(movers rows, their note, newly at-risk rows, their note) of services.history.movers."""
    result = service.movers(found, base, query)
    if result["previous_as_of"] is None:
        note = dbc.Alert(result["note"], color="light", className="mb-0 py-2")
        return [], note, [], None
    span = f"from the snapshot of {result['previous_as_of']} to that of {result['as_of']}"
    items, newly = result["items"], result["newly_at_risk"]
    total, newly_total = result.get("total", len(items)), result.get("newly_at_risk_total", 0)
    if items:
        shown = f"the {len(items):,} of {total:,}" if total > len(items) else f"all {total:,}"
        movers_note = f"Risk {span}: {shown} customers in both snapshots with the largest rises."
    else:
        movers_note = result["note"]
    if newly:
        more = f" (the first {len(newly):,} shown)" if newly_total > len(newly) else ""
        newly_note = f"{newly_total:,} customers joined the high-value at-risk list {span}{more}."
    else:
        newly_note = f"Nobody joined the high-value at-risk list {span}."
    return grid_rows(items), movers_note, grid_rows(newly), newly_note


def revenue_outputs(found: service.History | None, base, query: str):
    """(movements figure, GRR / NRR figure, table, note) of services.history.revenue."""
    result = service.revenue(found, base, query)
    months = result["months"]
    if not months:
        empty = figures.message(result["note"])
        return empty, figures.message(""), None, result["note"]
    currency = base.ws.settings.currency
    return (
        figures.revenue_movements(months, currency),
        figures.revenue_rates(months),
        revenue_table(months, currency),
        "",
    )


def _share(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def revenue_table(months: list[dict], currency: str):
    """Month by month, newest first: MRR at the start, the net movement, GRR, NRR and revenue
    churn (the figures' exact values, for reading and for screen readers)."""
    wide = "text-end d-none d-md-table-cell"  # a phone keeps month, net, GRR and NRR
    head = html.Thead(
        html.Tr(
            [
                html.Th("Month"),
                html.Th("MRR at start", className=wide),
                html.Th("Net movement", className="text-end"),
                html.Th("GRR", className="text-end"),
                html.Th("NRR", className="text-end"),
                html.Th("Revenue churn", className=wide),
            ]
        )
    )
    rows = [
        html.Tr(
            [
                html.Td(m["month"]),
                html.Td(money(m["mrr_start"], currency), className=wide),
                html.Td(money(m.get("net"), currency), className="text-end"),
                html.Td(_share(m.get("grr")), className="text-end"),
                html.Td(_share(m.get("nrr")), className="text-end"),
                html.Td(_share(m.get("revenue_churn_rate")), className=wide),
            ]
        )
        for m in reversed(months)
    ]
    return dbc.Table(
        [head, html.Tbody(rows)],
        size="sm",
        hover=True,
        responsive=True,
        className="mb-0 small revenue-table",
    )


def register(app, data) -> None:
    if not data.has_model:
        return  # the tab is a training panel until the model exists

    @app.callback(
        Output(ids.MOVERS_GRID, "rowData"),
        Output(ids.MOVERS_NOTE, "children"),
        Output(ids.NEWLY_GRID, "rowData"),
        Output(ids.NEWLY_NOTE, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _movers(query, snapshot, tab):
        if query is None or tab != TAB:
            raise PreventUpdate
        base = snapshots.base_for(data, snapshot)
        return movers_outputs(snapshots.history(), base, query)

    if C.MONTHLY_REVENUE not in data.scored.columns:
        return  # the revenue card says why value views are off

    @app.callback(
        Output(ids.REVENUE_GRAPH, "figure"),
        Output(ids.REVENUE_RATES, "figure"),
        Output(ids.REVENUE_TABLE, "children"),
        Output(ids.REVENUE_NOTE, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _revenue(query, snapshot, tab):
        if query is None or tab != TAB:
            raise PreventUpdate
        base = snapshots.base_for(data, snapshot)
        return revenue_outputs(snapshots.history(), base, query)
