"""Drivers: churn rate by a chosen factor with intervals, and the model's global importance."""

from __future__ import annotations

import pandas as pd
from dash import Input, Output
from dash.exceptions import PreventUpdate

from analytics.formatting import display_name
from analytics.services import overview
from dashboard import figures, ids
from dashboard.callbacks import snapshots


def factor_figure(data, query, factor):
    """Churn by the factor's levels (services.overview.drivers): the dashed line is all
    customers' rate, the dotted one the selection's."""
    if not factor or factor not in overview.factors(data):
        return figures.message("Choose a factor.")
    found = overview.drivers(data, query, factor)
    if not found["levels"]:
        return figures.message(found["note"])
    return figures.rate_bars(
        pd.DataFrame(found["levels"]),
        f"Churn rate by {display_name(factor)}",
        base_rate=found["base_churn_rate"],
        selection_rate=found["selection_churn_rate"],
    )


def register(app, data) -> None:
    if not data.has_model:  # importance is a training panel until the model exists

        @app.callback(
            Output(ids.FACTOR_GRAPH, "figure"),
            Input(ids.FILTER_QUERY, "data"),
            Input(ids.FACTOR, "value"),
            Input(ids.TABS, "active_tab"),
        )
        def _factor(query, factor, tab):
            if query is None or tab != "drivers":
                raise PreventUpdate
            return factor_figure(data, query, factor)

        return

    named = data.ws.model.importance.assign(feature=lambda f: f["feature"].map(display_name))
    importance = figures.importance_bars(named)

    @app.callback(
        Output(ids.FACTOR_GRAPH, "figure"),
        Output(ids.IMPORTANCE, "figure"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.FACTOR, "value"),
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _drivers(query, factor, snapshot, tab):
        if query is None or tab != "drivers":
            raise PreventUpdate
        # churn by factor is the picked snapshot's; importance is the live model's own
        return factor_figure(snapshots.base_for(data, snapshot), query, factor), importance
