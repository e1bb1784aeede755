"""Overview: KPI cards, trend, cohorts and segments. Each callback: parse, one analytics call,
build outputs."""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, html
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics.formatting import money, share_of_all
from analytics.services import overview
from analytics.services.overview import NO_MATCH
from dashboard import figures, ids
from dashboard.layout import KPI_ORDER

RATES = ("churn_rate", "retention_rate")
MONEY = ("mrr", "avg_clv", "mrr_at_risk")


def fmt_kpi(name: str, value, currency: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if name in RATES:
        return f"{value:.1%}"
    if name in MONEY:
        return money(value, currency, compact=True)
    return f"{int(value):,}"


def fmt_delta(name: str, value, whole) -> str:
    """Change versus the whole base, in the unit that reads naturally for the KPI."""
    if (
        value is None
        or whole is None
        or any(isinstance(v, float) and math.isnan(v) for v in (value, whole))
    ):
        return ""
    if name in RATES:
        diff = 100 * (value - whole)
        return "same as all customers" if abs(diff) < 0.05 else f"{diff:+.1f} pts vs all"
    if name == "avg_clv":
        if not whole:
            return ""
        rel = 100 * (value / whole - 1)
        return "same as all customers" if abs(rel) < 0.5 else f"{rel:+.0f}% vs all"
    return share_of_all(value, whole)


def kpi_outputs(data, query):
    """Values and deltas for every KPI card, in layout order (services.overview.kpis)."""
    current = overview.kpis(data, query)
    whole = overview.kpis(data, "")
    currency = data.ws.settings.currency
    values = [fmt_kpi(n, current.get(n), currency) for n in KPI_ORDER]
    if not current["customers"]:
        deltas = [NO_MATCH if n == "customers" else "" for n in KPI_ORDER]
    else:
        deltas = [fmt_delta(n, current.get(n), whole.get(n)) for n in KPI_ORDER]
    # A KPI the data cannot give (no revenue column) says why instead of a bare dash.
    reasons = current.get("reasons") or {}
    deltas = [
        _short_reason(reasons[n]) if current.get(n) is None and n in reasons else d
        for n, d in zip(KPI_ORDER, deltas, strict=True)
    ]
    return values, deltas


def _short_reason(reason: str) -> str:
    """'Not available because the data has no monthly_revenue column (map ...).' -> 'no
    monthly_revenue column'; 'Not available until the churn model is trained.' -> 'once the
    churn model is trained'."""
    text = reason.split(" (")[0].rstrip(".")
    text = text.replace("Not available until ", "once ")
    return text.replace("Not available because the data has ", "not available: ")


def trend_figure(data, query, split: bool):
    """The figure of services.overview.trend: monthly churn and retention with dates,
    Kaplan-Meier over tenure without. Without a model there are no segments to split by (the
    switch is off and disabled; a link's split waits for the model)."""
    split = split and data.has_model
    found = overview.trend(data, query, split=split)
    if not found["points"]:
        return figures.message(found["note"]), ""
    by = C.SEGMENT if split else None
    points = pd.DataFrame(found["points"])
    if found["kind"] == "monthly":
        points = points.rename(columns={"customers": "active_start"})
        return figures.monthly_trend(points, by=by, colours=_colours(data)), found["note"]
    return figures.kaplan_meier(points, by=by, colours=_colours(data)), found["note"]


def _colours(data) -> dict[str, str]:
    return figures.colour_map(data.ws.model.segments.order) if data.has_model else {}


def cohort_figure(data, query):
    """The heatmap of services.overview.cohorts."""
    found = overview.cohorts(data, query)
    if not found["cohorts"]:
        return figures.message(found["note"])
    return figures.cohort_heatmap(found["cohorts"], found["months"])


def segment_outputs(data, query):
    """Doughnut of sizes, churn per segment with intervals, and the profile table, from
    services.overview.segments."""
    found = overview.segments(data, query)
    if not found["segments"]:
        empty = figures.message(found["note"])
        return empty, empty, dbc.Alert(found["note"], color="light")
    rates = pd.DataFrame(found["segments"]).rename(columns={"name": "level"})
    doughnut = figures.segment_doughnut(rates, _colours(data))
    bars = figures.rate_bars(rates, "Churn rate by segment", base_rate=found["base_churn_rate"])
    return doughnut, bars, profile_table(found["segments"])


def profile_table(segments: list[dict]):
    """Each segment's name, size in the selection, churn and what defines it."""
    rows = [
        html.Tr(
            [
                html.Td(seg["name"], className="fw-semibold"),
                html.Td(f"{seg['customers']:,}", className="text-end"),
                html.Td(
                    "–" if seg["churn_rate"] is None else f"{seg['churn_rate']:.1%}",
                    className="text-end",
                ),
                html.Td(str(seg["defined_by"]), className="small segment-defined-by"),
            ]
        )
        for seg in segments
    ]
    head = html.Thead(
        html.Tr(
            [
                html.Th("Segment"),
                html.Th("Customers", className="text-end"),
                html.Th("Churn", className="text-end"),
                html.Th("Defined by"),
            ]
        )
    )
    return dbc.Table(
        [head, html.Tbody(rows)], size="sm", hover=True, responsive=True, className="mb-0"
    )


def register(app, data) -> None:
    @app.callback(
        Output({"type": ids.KPI, "name": ALL}, "children"),
        Input(ids.FILTER_QUERY, "data"),
        State({"type": ids.KPI, "name": ALL}, "id"),
    )
    def _kpis(query, id_list):
        if query is None:
            raise PreventUpdate
        values, deltas = kpi_outputs(data, query)
        by_name = dict(zip(KPI_ORDER, values, strict=True))
        by_name.update({f"{n}-delta": d for n, d in zip(KPI_ORDER, deltas, strict=True)})
        return [by_name.get(i["name"], "") for i in id_list]

    @app.callback(
        Output(ids.TREND, "figure"),
        Output(ids.TREND_NOTE, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.TREND_SPLIT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _trend(query, split, tab):
        if query is None or tab != "overview":
            raise PreventUpdate
        return trend_figure(data, query, bool(split))

    if data.history is not None:  # the cohort card exists only for dated tables

        @app.callback(
            Output(ids.COHORT, "figure"),
            Input(ids.FILTER_QUERY, "data"),
            Input(ids.TABS, "active_tab"),
        )
        def _cohort(query, tab):
            if query is None or tab != "overview":
                raise PreventUpdate
            return cohort_figure(data, query)

    if not data.has_model:
        return  # the segments are a training panel until the model (and its k-means) exists

    @app.callback(
        Output(ids.DOUGHNUT, "figure"),
        Output(ids.SEGMENT_CHURN, "figure"),
        Output(ids.SEGMENT_PROFILE, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.TABS, "active_tab"),
    )
    def _segments(query, tab):
        if query is None or tab != "overview":
            raise PreventUpdate
        return segment_outputs(data, query)
