"""Value x risk, the high-value at-risk list (paged on the server), its export and the detail."""

from __future__ import annotations

import math
from datetime import date

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics import paging
from analytics.formatting import display_name, money, value_text
from analytics.services import customers
from analytics.services.errors import InvalidInput
from dashboard import auth, figures, ids
from dashboard.callbacks import snapshots


def scatter_figure(data, query):
    """The value x risk figure of services.customers.scatter."""
    found = customers.scatter(data, query)
    if not found["points"]:
        return figures.message(found["note"])
    return figures.value_risk_scatter(
        pd.DataFrame(found["points"]),
        threshold=found["threshold"],
        value_cut=found["value_cut"],
        total=found["total"],
        currency=data.ws.settings.currency,
    )


# The grid shows probabilities as percentages, so a user filters "greater than 50": the server
# compares against the stored fraction.
PERCENT_COLUMNS = {C.P_CHURN: 100.0}


def grid_query(sort_model, filter_model):
    """AG Grid's sort and filter models in the data's own units."""
    sort, conditions = paging.from_ag_grid(sort_model, filter_model)

    def unscale(cond):
        if isinstance(cond, tuple):
            return tuple(unscale(c) for c in cond)
        factor = PERCENT_COLUMNS.get(cond.column)
        if factor is None or cond.op in paging.BLANK_OPS:
            return cond
        try:
            value = float(cond.value) / factor
            value_to = None if cond.value_to is None else float(cond.value_to) / factor
        except (TypeError, ValueError):
            return cond  # paging reports the bad number
        return paging.Condition(cond.column, cond.op, value, value_to)

    return sort, [unscale(c) for c in conditions]


def grid_page(data, query, request):
    """Answer an AG Grid infinite-model request: one page of services.customers.at_risk."""
    sort, conditions = grid_query(request.get("sortModel"), request.get("filterModel"))
    start = max(0, int(request.get("startRow", 0)))
    end = max(start + 1, int(request.get("endRow", 50)))
    found = customers.at_risk(
        data,
        query,
        sort=sort,
        conditions=conditions,
        offset=start,
        limit=min(end - start, customers.MAX_PAGE),
    )
    return {"rowData": found["items"], "rowCount": found["total"]}


def count_text(data, query, filter_model=None) -> str:
    """How many customers the list holds and their expected loss; with the grid's own column
    filters on, how many of them the grid (and its export) shows."""
    try:
        whole = customers.summary(data, query)
    except InvalidInput as exc:
        return exc.message
    currency = data.ws.settings.currency
    n, loss = whole["list_customers"], money(whole["list_expected_loss"], currency)
    if not n:
        return "No high-value customers at high risk in this selection."
    text = f"{n:,} customers, total expected loss {loss}."
    try:
        _, conditions = grid_query(None, filter_model)
        if not conditions:
            return text
        shown = customers.at_risk(data, query, conditions=conditions, limit=1)
    except (paging.PagingError, InvalidInput):
        return text
    return (
        f"{shown['total']:,} of {n:,} customers with the column filters, total expected "
        f"loss {money(shown['total_expected_loss'], currency)} (all {n:,}: {loss})."
    )


def export_csv(data, query, filter_model, sort_model, snapshot: str | None = None):
    """The list as CSV; `snapshot`: the as_of it was read at (the audit log says so)."""
    sort, conditions = grid_query(sort_model, filter_model)
    try:
        text, rows = customers.at_risk_csv(data, query, sort=sort, conditions=conditions)
    except InvalidInput:
        raise PreventUpdate from None
    picked = {"snapshot": snapshot} if snapshot else {}
    auth.audit_export("high-value at-risk list", query, rows, sort=sort_model or None, **picked)
    return dcc.send_string(text, f"high-value-at-risk-{date.today():%Y-%m-%d}.csv")


def detail_body(data, customer_id: str):
    """Profile, probability, band, CLV, drivers and a recommended action for one customer, from
    services.customers.customer (what GET /api/v1/customers/<id> returns)."""
    found = customers.customer(data, customer_id)
    if found is None:
        return dbc.Alert(f"Customer {customer_id} is not in the current base.", color="warning")
    stats = [
        ("Churn probability", f"{found['probability']:.1%}"),
        ("Risk band", str(found["risk_band"])),
        ("Segment", str(found["segment"] or "–")),
    ]
    currency = data.ws.settings.currency
    stats += money_stats(found, currency)
    reasons = found["drivers"]
    profile = [
        html.Tr([html.Td(display_name(f), className="text-muted"), html.Td(_show(f, v, currency))])
        for f, v in found["profile"].items()
    ]
    return html.Div(
        [
            html.H5(str(customer_id), className="mb-3"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.Div(k, className="small text-muted"),
                            html.Div(v, className="fw-semibold"),
                        ],
                        xs=6,
                        className="mb-2",
                    )
                    for k, v in stats
                ]
            ),
            html.H6("Why at risk", className="mt-3"),
            html.Ol([html.Li(r) for r in reasons])
            if reasons
            else html.P(
                "No feature raises this customer's risk above a typical customer's.",
                className="small",
            ),
            dbc.Alert(
                [html.Strong("Recommended action: "), found["recommended_action"]],
                color="primary",
                className="mt-2",
            ),
            html.H6("Profile", className="mt-3"),
            dbc.Table(html.Tbody(profile), size="sm", className="small"),
        ]
    )


def money_stats(found: dict, currency: str) -> list[tuple[str, str]]:
    """(label, text) of a customer's money figures. The value tier sits beside Value, the
    quantity it is cut on, never beside CLV (risk-adjusted, so a High-tier customer's CLV can be
    below a Low-tier one's)."""
    stats = []
    for key in (C.MONTHLY_REVENUE, C.VALUE, C.CLV, C.EXPECTED_LOSS):
        if found.get(key) is None:
            continue
        text = money(found[key], currency, decimals=2 if key == C.MONTHLY_REVENUE else 0)
        if key == C.VALUE and found.get("value_tier"):
            text = f"{text} ({found['value_tier']} tier)"
        stats.append((display_name(key), text))
    return stats


def _nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _show(column: str, x, currency: str) -> str:
    if x is None or _nan(x):
        return "–"
    return value_text(column, x, currency)


def register(app, data) -> None:
    if C.MONTHLY_REVENUE not in data.scored.columns or not data.has_model:
        return  # the tab says why value views are off, or that the model is training

    @app.callback(
        Output(ids.SCATTER, "figure"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _scatter(query, snapshot, tab):
        if query is None or tab != "customers":
            raise PreventUpdate
        return scatter_figure(snapshots.base_for(data, snapshot), query)

    @app.callback(
        Output(ids.AT_RISK_COUNT, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
        Input(ids.AT_RISK_GRID, "filterModel"),
    )
    def _count(query, snapshot, tab, filter_model):
        if query is None or tab != "customers":
            raise PreventUpdate
        return count_text(snapshots.base_for(data, snapshot), query, filter_model)

    @app.callback(
        Output(ids.AT_RISK_GRID, "getRowsResponse"),
        Input(ids.AT_RISK_GRID, "getRowsRequest"),
        State(ids.FILTER_QUERY, "data"),
        State(ids.SNAPSHOT, "value"),
    )
    def _rows(request, query, snapshot):
        if not request:
            raise PreventUpdate
        try:
            return grid_page(snapshots.base_for(data, snapshot), query, request)
        except (paging.PagingError, InvalidInput, TypeError, ValueError):
            return {"rowData": [], "rowCount": 0}

    # A new selection or snapshot must restart paging from the first row (pure UI glue, so
    # clientside).
    app.clientside_callback(
        "function(query, snapshot) {"
        f" dash_ag_grid.getApiAsync('{ids.AT_RISK_GRID}').then(api => api.purgeInfiniteCache());"
        " }",
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.SNAPSHOT, "value"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.AT_RISK_DOWNLOAD, "data"),
        Input(ids.AT_RISK_EXPORT, "n_clicks"),
        State(ids.FILTER_QUERY, "data"),
        State(ids.AT_RISK_GRID, "filterModel"),
        State(ids.AT_RISK_GRID, "getRowsRequest"),
        State(ids.SNAPSHOT, "value"),
        prevent_initial_call=True,
    )
    def _export(_n, query, filter_model, request, snapshot):
        sort_model = (request or {}).get("sortModel")
        try:
            base = snapshots.base_for(data, snapshot)
            return export_csv(base, query, filter_model, sort_model, snapshots.as_of_text(snapshot))
        except paging.PagingError:
            raise PreventUpdate from None

    @app.callback(
        Output(ids.DETAIL, "is_open"),
        Output(ids.DETAIL_BODY, "children"),
        Output(ids.DETAIL, "title"),
        Input(ids.AT_RISK_GRID, "cellClicked"),
        State(ids.SNAPSHOT, "value"),
        prevent_initial_call=True,
    )
    def _detail(cell, snapshot):
        if not cell or cell.get("rowId") is None:
            return no_update, no_update, no_update
        base = snapshots.base_for(data, snapshot)
        return True, detail_body(base, cell["rowId"]), "Customer detail"
