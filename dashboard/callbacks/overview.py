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
from analytics.services import history as service_history
from analytics.services import overview
from analytics.services.overview import NO_MATCH
from dashboard import figures, ids
from dashboard.callbacks import snapshots
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


# A rise is good news for these KPIs and bad for the others (churn rate, MRR at risk).
HIGHER_IS_BETTER = ("customers", "active_customers", "retention_rate", "mrr", "avg_clv")


def change_text(name: str, change: dict | None) -> tuple[str, str]:
    """(text, tone) of a KPI's change since the previous snapshot (kpi_change: points for
    rates, relative for amounts); tone "better", "worse" or "" for no telling."""
    value = (change or {}).get("change")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–", ""
    if change.get("kind") == "points":
        diff = 100 * value
        if abs(diff) < 0.05:
            return "no change", ""
        text = f"{diff:+.1f} pts"
    else:
        if abs(value) < 0.0005:
            return "no change", ""
        text = f"{value:+.1%}" if abs(value) < 0.1 else f"{value:+.0%}"
    arrow = "▲" if value > 0 else "▼"
    better = (value > 0) == (name in HIGHER_IS_BETTER)
    return f"{arrow} {text}", "better" if better else "worse"


def change_outputs(found: dict, currency: str) -> tuple[list, object]:
    """Each KPI card's "vs last month" line and the note under the cards, from
    services.history.kpis_with_change (what GET /api/v1/kpis returns): the previous snapshot's
    date and value in the line's tooltip."""
    changes = found.get("vs_previous")
    if not changes:
        note = found.get("vs_previous_note") or ""
        return [""] * len(KPI_ORDER), html.Span(f"vs last month: {note}") if note else None
    since = snapshots.since_text(found.get("as_of"), found.get("previous_as_of"))
    previous = found.get("previous") or {}
    lines = []
    for name in KPI_ORDER:
        text, tone = change_text(name, changes.get(name))
        before = fmt_kpi(name, previous.get(name), currency)
        tip = f"Change since the snapshot of {found['previous_as_of']} (then {before})."
        lines.append(
            html.Span(f"{text} vs {since}", title=tip, className=f"kpi-change-{tone or 'flat'}")
        )
    return lines, None


def _short_reason(reason: str) -> str:
    """'Not available because the data has no monthly_revenue column (map ...).' -> 'no
    monthly_revenue column'; 'Not available until the churn model is trained.' -> 'once the
    churn model is trained'."""
    text = reason.split(" (")[0].rstrip(".")
    text = text.replace("Not available until ", "once ")
    return text.replace("Not available because the data has ", "not available: ")


def trend_figure(data, query, split: bool, snapshot_churn: list[dict] | None = None):
    """The figure of services.overview.trend: monthly churn and retention with dates,
    Kaplan-Meier over tenure without. Without a model there are no segments to split by (the
    switch is off and disabled; a link's split waits for the model). `snapshot_churn`: each
    snapshot's predicted beside realised churn, drawn on the monthly churn axis."""
    split = split and data.has_model
    found = overview.trend(data, query, split=split)
    if not found["points"]:
        return figures.message(found["note"]), ""
    by = C.SEGMENT if split else None
    points = pd.DataFrame(found["points"])
    if found["kind"] == "monthly":
        points = points.rename(columns={"customers": "active_start"})
        fig = figures.monthly_trend(
            points, by=by, colours=_colours(data), snapshots=None if split else snapshot_churn
        )
        return fig, found["note"]
    return figures.kaplan_meier(points, by=by, colours=_colours(data)), found["note"]


def snapshot_churn(found, data, query) -> tuple[list[dict], str]:
    """(points, note) of each snapshot's predicted churn (mean p) beside its realised churn,
    from services.history.snapshot_list: the whole base's, or a manager's scope's, so they are
    drawn beside an unfiltered trend only."""
    if found is None or not data.ws.table.has_dates:
        return [], ""
    points = [
        s
        for s in service_history.snapshot_list(found, data)["snapshots"]
        if s.get("predicted_churn") is not None
    ]
    if points and query:
        return [], "Each snapshot's predicted beside realised churn is shown without filters."
    return points, ""


def _colours(data) -> dict[str, str]:
    # A snapshot's base has no segmentation model: its segments take the live model's colours.
    segments = getattr(data.ws.model, "segments", None)
    return figures.colour_map(segments.order) if segments is not None else {}


def cohort_figure(data, query):
    """The heatmap of services.overview.cohorts."""
    found = overview.cohorts(data, query)
    if not found["cohorts"]:
        return figures.message(found["note"])
    return figures.cohort_heatmap(found["cohorts"], found["months"])


def segment_outputs(data, query, colours: dict[str, str] | None = None):
    """Doughnut of sizes, churn per segment with intervals, and the profile table, from
    services.overview.segments (`colours`: the segments' colours, default `data`'s)."""
    found = overview.segments(data, query)
    if not found["segments"]:
        empty = figures.message(found["note"])
        return empty, empty, dbc.Alert(found["note"], color="light")
    rates = pd.DataFrame(found["segments"]).rename(columns={"name": "level"})
    colours = _colours(data) if colours is None else colours
    if not set(rates["level"].astype(str)) <= set(colours):  # another model's segments
        colours = figures.colour_map(rates["level"])
    doughnut = figures.segment_doughnut(rates, colours)
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


def kpi_cards(data, query, snapshot) -> tuple[list, object, object]:
    """(children of every KPI id by name, the note under the cards, the snapshot note) for the
    picked snapshot's base."""
    found = snapshots.history()
    base = snapshots.base_for(data, snapshot)
    values, deltas = kpi_outputs(base, query)
    change = service_history.kpis_with_change(found, base, query, overview.kpis(base, query))
    lines, note = change_outputs(change, base.ws.settings.currency)
    by_name = dict(zip(KPI_ORDER, values, strict=True))
    by_name.update({f"{n}-delta": d for n, d in zip(KPI_ORDER, deltas, strict=True)})
    by_name.update({f"{n}-change": c for n, c in zip(KPI_ORDER, lines, strict=True)})
    return by_name, note, snapshots.snapshot_note(found, base, snapshot)


def register(app, data) -> None:
    @app.callback(
        Output({"type": ids.KPI, "name": ALL}, "children"),
        Output(ids.KPI_CHANGE_NOTE, "children"),
        Output(ids.SNAPSHOT_NOTE, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.SNAPSHOT, "value"),
        State({"type": ids.KPI, "name": ALL}, "id"),
    )
    def _kpis(query, snapshot, id_list):
        if query is None:
            raise PreventUpdate
        by_name, note, picked = kpi_cards(data, query, snapshot)
        return [by_name.get(i["name"], "") for i in id_list], note, picked

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
        points, extra = snapshot_churn(snapshots.history(), data, query)
        fig, note = trend_figure(data, query, bool(split), points)
        return fig, " ".join(t for t in (note, extra) if t)

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
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _segments(query, snapshot, tab):
        if query is None or tab != "overview":
            raise PreventUpdate
        return segment_outputs(snapshots.base_for(data, snapshot), query, _colours(data))
