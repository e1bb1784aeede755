"""Value x risk, the high-value at-risk list (paged on the server), its export and the detail."""

from __future__ import annotations

import math
from datetime import date

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics import export, filters, paging
from analytics.metrics.planner import recommend_action
from analytics.result import Unavailable
from dashboard import figures, ids
from dashboard.callbacks.overview import NO_MATCH
from dashboard.layout import label

SCATTER_SAMPLE = 5000
SCATTER_COLUMNS = (C.CUSTOMER_ID, C.P_CHURN, C.VALUE, C.EXPECTED_LOSS, C.RISK_BAND)


def at_risk(data, query) -> pd.DataFrame | Unavailable:
    return data.cached("at_risk", query, lambda: data.at_risk(query), large=True)


def scatter_figure(data, query):
    active = data.mask(query) & data.active
    total = int(np.count_nonzero(active))
    if not total:
        return figures.message(NO_MATCH)
    # The selection's first customers in a fixed random order: a random sample that is the
    # same every time, drawn without copying the selection.
    rows = np.sort(filters.first_in(data.random_order, active, SCATTER_SAMPLE))
    sample = data.scored[list(SCATTER_COLUMNS)].iloc[rows]
    return figures.value_risk_scatter(
        sample, threshold=data.threshold, value_cut=data.value_cut, total=total
    )


def grid_rows(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    """JSON-ready rows; NaN becomes null."""
    part = frame[[c for c in columns if c in frame.columns]]
    rows = part.astype(object).where(part.notna(), None).to_dict("records")
    for row in rows:
        for key, val in row.items():
            if isinstance(val, np.generic):
                row[key] = val.item()
    return rows


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


def grid_page(data, query, request, columns: list[str]):
    """Answer an AG Grid infinite-model request: one page of the sorted, filtered list."""
    hv = at_risk(data, query)
    if isinstance(hv, Unavailable):
        return {"rowData": [], "rowCount": 0}
    sort, conditions = grid_query(request.get("sortModel"), request.get("filterModel"))
    key = (repr(sort), repr(conditions))
    selected = data.cached(
        "at_risk_sel",
        query,
        lambda: paging.select(hv, conditions=conditions, sort=sort),
        key,
        large=True,
    )
    rows, total = paging.page(selected, request.get("startRow", 0), request.get("endRow", 50))
    return {"rowData": grid_rows(rows, columns), "rowCount": total}


def count_text(data, query, filter_model=None) -> str:
    """How many customers the list holds and their expected loss; with the grid's own column
    filters on, how many of them the grid (and its export) shows."""
    # From the list's positions: the whole list (every column) is built for the grid only.
    rows = data.cached("at_risk_rows", query, lambda: data.at_risk_rows(query))
    if isinstance(rows, Unavailable):
        return rows.reason
    if not len(rows):
        return "No high-value customers at high risk in this selection."
    loss = data.scored[C.EXPECTED_LOSS].iloc[rows].sum()
    whole = f"{len(rows):,} customers, total expected loss {loss:,.0f}."
    try:
        _, conditions = grid_query(None, filter_model)
    except paging.PagingError:
        return whole
    if not conditions:
        return whole
    hv = at_risk(data, query)
    try:
        shown = paging.select(hv, conditions=conditions)
    except paging.PagingError:
        return whole
    return (
        f"{len(shown):,} of {len(rows):,} customers with the column filters, total expected "
        f"loss {shown[C.EXPECTED_LOSS].sum():,.0f} (all {len(rows):,}: {loss:,.0f})."
    )


def export_csv(data, query, filter_model, sort_model, columns: list[str]):
    hv = at_risk(data, query)
    if isinstance(hv, Unavailable):
        raise PreventUpdate
    sort, conditions = grid_query(sort_model, filter_model)
    selected = paging.select(hv, conditions=conditions, sort=sort)
    text = export.safe_csv(selected[[c for c in columns if c in selected.columns]])
    return dcc.send_string(text, f"high-value-at-risk-{date.today():%Y-%m-%d}.csv")


def detail_body(data, customer_id: str):
    """Profile, probability, band, CLV, drivers and a recommended action for one customer."""
    frame = data.scored
    match = frame[frame[C.CUSTOMER_ID].astype(str) == str(customer_id)]
    if match.empty:
        return dbc.Alert(f"Customer {customer_id} is not in the current base.", color="warning")
    row = match.iloc[0]
    settings = data.ws.settings
    action = recommend_action(
        row, save_rate=settings.save_rate, cost_per_contact=settings.cost_per_contact
    )
    stats = [
        ("Churn probability", f"{row[C.P_CHURN]:.1%}"),
        ("Risk band", str(row[C.RISK_BAND])),
        ("Segment", str(row.get(C.SEGMENT, "–"))),
    ]
    for col, text in (
        (C.CLV, "CLV"),
        (C.VALUE, "Value"),
        (C.EXPECTED_LOSS, "Expected loss"),
        (C.MONTHLY_REVENUE, "Monthly revenue"),
    ):
        if col in row and not _nan(row[col]):
            stats.append((text, f"{row[col]:,.2f}"))
    reasons = [str(row[r]) for r in C.REASONS if r in row and isinstance(row[r], str) and row[r]]
    profile = [
        html.Tr([html.Td(label(f), className="text-muted"), html.Td(_show(row[f]))])
        for f in data.ws.table.features
        if f in row
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
                [html.Strong("Recommended action: "), action], color="primary", className="mt-2"
            ),
            html.H6("Profile", className="mt-3"),
            dbc.Table(html.Tbody(profile), size="sm", className="small"),
        ]
    )


def _nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _show(x) -> str:
    if x is None or _nan(x):
        return "–"
    if isinstance(x, float):
        return f"{x:,.2f}".rstrip("0").rstrip(".")
    return str(x)


def register(app, data) -> None:
    columns = data.grid_fields
    if C.MONTHLY_REVENUE not in data.scored.columns:
        return  # the tab shows why value views are off; no components to update

    @app.callback(
        Output(ids.SCATTER, "figure"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.TABS, "active_tab"),
    )
    def _scatter(query, tab):
        if query is None or tab != "customers":
            raise PreventUpdate
        return scatter_figure(data, query)

    @app.callback(
        Output(ids.AT_RISK_COUNT, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.TABS, "active_tab"),
        Input(ids.AT_RISK_GRID, "filterModel"),
    )
    def _count(query, tab, filter_model):
        if query is None or tab != "customers":
            raise PreventUpdate
        return count_text(data, query, filter_model)

    @app.callback(
        Output(ids.AT_RISK_GRID, "getRowsResponse"),
        Input(ids.AT_RISK_GRID, "getRowsRequest"),
        State(ids.FILTER_QUERY, "data"),
    )
    def _rows(request, query):
        if not request:
            raise PreventUpdate
        try:
            return grid_page(data, query, request, columns)
        except paging.PagingError:
            return {"rowData": [], "rowCount": 0}

    # A new selection must restart paging from the first row (pure UI glue, so clientside).
    app.clientside_callback(
        "function(query) {"
        f" dash_ag_grid.getApiAsync('{ids.AT_RISK_GRID}').then(api => api.purgeInfiniteCache());"
        " }",
        Input(ids.FILTER_QUERY, "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.AT_RISK_DOWNLOAD, "data"),
        Input(ids.AT_RISK_EXPORT, "n_clicks"),
        State(ids.FILTER_QUERY, "data"),
        State(ids.AT_RISK_GRID, "filterModel"),
        State(ids.AT_RISK_GRID, "getRowsRequest"),
        prevent_initial_call=True,
    )
    def _export(_n, query, filter_model, request):
        sort_model = (request or {}).get("sortModel")
        try:
            return export_csv(data, query, filter_model, sort_model, columns)
        except paging.PagingError:
            raise PreventUpdate from None

    @app.callback(
        Output(ids.DETAIL, "is_open"),
        Output(ids.DETAIL_BODY, "children"),
        Output(ids.DETAIL, "title"),
        Input(ids.AT_RISK_GRID, "cellClicked"),
        prevent_initial_call=True,
    )
    def _detail(cell):
        if not cell or cell.get("rowId") is None:
            return no_update, no_update, no_update
        return True, detail_body(data, cell["rowId"]), "Customer detail"
