"""Drivers: churn rate by a chosen factor with intervals, and the model's global importance."""

from __future__ import annotations

from dash import Input, Output
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics.metrics.rates import churn_by_factor
from analytics.result import Unavailable
from dashboard import figures, ids
from dashboard.callbacks.overview import NO_MATCH
from dashboard.layout import label


def factor_figure(data, query, factor):
    if not factor or factor not in data.scored.columns:
        return figures.message("Choose a factor.")
    frame = data.view(query, (C.CHURNED, factor))
    if not len(frame):
        return figures.message(NO_MATCH)
    rates = data.cached("factor", query, lambda: churn_by_factor(frame, factor), factor)
    if isinstance(rates, Unavailable):
        return figures.message(rates.reason)
    base = data.kpis(query)["churn_rate"]
    return figures.rate_bars(rates, f"Churn rate by {label(factor)}", base_rate=base)


def register(app, data) -> None:
    importance = figures.importance_bars(data.ws.model.importance)

    @app.callback(
        Output(ids.FACTOR_GRAPH, "figure"),
        Output(ids.IMPORTANCE, "figure"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.FACTOR, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _drivers(query, factor, tab):
        if query is None or tab != "drivers":
            raise PreventUpdate
        return factor_figure(data, query, factor), importance
