"""Monitoring: realised performance over snapshots beside the expected ROC-AUC, calibration by
decile of the newest, and the drift table, from the service result GET /api/v1/monitoring
returns for the same filters. Every role sees it: a manager's realised figures are their
scope's (the service reads each snapshot through ServedBase); drift is the model's."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, html
from dash.exceptions import PreventUpdate

from analytics.formatting import display_name
from analytics.services import history as service
from dashboard import figures, ids
from dashboard.callbacks import snapshots

TAB = "monitoring"
LEVEL_COLOURS = {"stable": "success", "moderate": "warning", "large": "danger"}


def drift_table(drift: list[dict], as_of: str | None, model: str | None):
    """Feature, PSI and level, largest PSI first (the service's order, kept)."""
    if not drift:
        return html.P(
            "No drift measured yet: it needs a snapshot scored by a model on data it was not "
            "trained on.",
            className="small text-muted mb-0",
        )
    ranked = sorted(drift, key=lambda d: -(d["psi"] if d.get("psi") is not None else -1))
    rows = [
        html.Tr(
            [
                html.Td(display_name(d["feature"])),
                html.Td("–" if d.get("psi") is None else f"{d['psi']:.3f}", className="text-end"),
                html.Td(
                    dbc.Badge(
                        d.get("level") or "–", color=LEVEL_COLOURS.get(d.get("level"), "light")
                    )
                ),
            ]
        )
        for d in ranked
    ]
    head = html.Thead(
        html.Tr([html.Th("Feature"), html.Th("PSI", className="text-end"), html.Th("Level")])
    )
    caption = f"Training data of model {model} vs the snapshot of {as_of}."
    return html.Div(
        [
            html.P(caption, className="small text-muted mb-1"),
            dbc.Table([head, html.Tbody(rows)], size="sm", responsive=True, className="mb-0"),
        ],
        className="drift-table",
    )


def monitoring_outputs(found: service.History | None, data, query: str):
    """(performance figure, calibration figure, drift table, note) of
    services.history.monitoring for the live base `data`'s selection."""
    result = service.monitoring(found, data, query)
    rows = result["snapshots"]
    drift = drift_table(result["drift"], result.get("drift_as_of"), result.get("watched_model"))
    if not rows:
        empty = figures.message(result["note"] or service.NO_SNAPSHOTS)
        return empty, figures.message(""), drift, result["note"]
    performance = figures.realised_performance(rows)
    # the newest out-of-time check; an in-sample one only when there is no other
    newest = max(rows, key=lambda r: (not r.get("in_sample"), r["as_of"]))
    if newest.get("calibration"):
        calibration = figures.calibration_deciles(newest["calibration"], newest["as_of"])
    else:
        calibration = figures.message("No calibration: the newest snapshot has one class only.")
    decay = result.get("decay") or {}
    note = " ".join(t for t in (decay.get("message"), result.get("note")) if t)
    return performance, calibration, drift, note


def register(app, data) -> None:
    if not data.has_model:
        return  # the tab is a training panel until the model exists

    @app.callback(
        Output(ids.MONITOR_PERFORMANCE, "figure"),
        Output(ids.MONITOR_CALIBRATION, "figure"),
        Output(ids.MONITOR_DRIFT, "children"),
        Output(ids.MONITOR_NOTE, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.TABS, "active_tab"),
    )
    def _monitoring(query, tab):
        if query is None or tab != TAB:
            raise PreventUpdate
        # every snapshot whose window has passed, whichever one the picker shows
        return monitoring_outputs(snapshots.history(), data, query)
