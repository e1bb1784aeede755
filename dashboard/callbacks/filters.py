"""Filter state <-> URL: a copied link reopens the same view, reload keeps it, Reset clears it.

One callback owns the URL's query, the filter controls and the store the views listen to, so
they can never disagree (Dash allows a circular dependency inside a single callback).
"""

from __future__ import annotations

from dash import ALL, Input, Output, State, ctx, no_update

from analytics import columns as C
from analytics import filters
from dashboard import ids


def controls_state(data, values, id_list, tenure) -> filters.FilterState:
    """Filter state from the sidebar's controls."""
    levels = {i["column"]: tuple(v) for i, v in zip(id_list, values, strict=True) if v}
    lo, hi = data.tenure_range
    tmin = tmax = None
    if tenure and len(tenure) == 2:
        tmin = float(tenure[0]) if tenure[0] > lo else None
        tmax = float(tenure[1]) if tenure[1] < hi else None
    return filters.FilterState(levels=levels, tenure_min=tmin, tenure_max=tmax)


def with_segment(state: filters.FilterState, segment: str) -> filters.FilterState:
    levels = dict(state.levels)
    levels[C.SEGMENT] = (segment,)
    return filters.FilterState(levels, state.tenure_min, state.tenure_max)


def sync(data, trigger, search, values, tenure, click, id_list):
    """Return (url search, store query, control values, tenure value, summary).

    `trigger` is the id of the input that fired (None on page load).
    """
    if trigger == ids.RESET:
        state = filters.FilterState()
    elif trigger == ids.DOUGHNUT and click and click.get("points"):
        current = controls_state(data, values, id_list, tenure)
        state = with_segment(current, str(click["points"][0]["label"]))
    elif isinstance(trigger, dict) or trigger == ids.TENURE:
        state = controls_state(data, values, id_list, tenure)
    else:  # page load, reload, back/forward: the URL is the truth
        state = data.state(search)
    query = filters.to_query(state)
    lo, hi = data.tenure_range
    control_values = [list(state.levels.get(i["column"], ())) for i in id_list]
    tenure_value = [
        lo if state.tenure_min is None else state.tenure_min,
        hi if state.tenure_max is None else state.tenure_max,
    ]
    selected = data.count(query)
    summary = f"{selected:,} of {len(data.scored):,} customers selected"
    url_search = query if query != (search or "") else no_update
    return url_search, query, control_values, tenure_value, summary


def register(app, data) -> None:
    @app.callback(
        Output(ids.URL, "search"),
        Output(ids.FILTER_QUERY, "data"),
        Output({"type": ids.FILTER, "column": ALL}, "value"),
        Output(ids.TENURE, "value"),
        Output(ids.SELECTION_SUMMARY, "children"),
        Input(ids.URL, "search"),
        Input({"type": ids.FILTER, "column": ALL}, "value"),
        Input(ids.TENURE, "value"),
        Input(ids.RESET, "n_clicks"),
        Input(ids.DOUGHNUT, "clickData"),
        State({"type": ids.FILTER, "column": ALL}, "id"),
    )
    def _sync(search, values, tenure, _reset, click, id_list):
        return sync(data, ctx.triggered_id, search, values, tenure, click, id_list)

    # Wide screens show the filter panel open; phones start with it folded (pure UI glue).
    app.clientside_callback(
        "function(_) { return window.innerWidth >= 992; }",
        Output(ids.FILTERS_DETAILS, "open"),
        Input(ids.URL, "pathname"),
    )

    @app.callback(
        Output(ids.URL, "hash"),
        Output(ids.TABS, "active_tab"),
        Input(ids.URL, "hash"),
        Input(ids.TABS, "active_tab"),
    )
    def _tab(url_hash, active):
        return sync_tab(ctx.triggered_id, url_hash, active)


TAB_KEYS = ("overview", "drivers", "customers", "planner", "model", "predict")


def sync_tab(trigger, url_hash, active):
    """The open tab lives in the URL's #fragment, so a shared link opens the same tab."""
    if trigger == ids.TABS:
        return f"#{active}", no_update
    wanted = (url_hash or "").lstrip("#")
    return no_update, wanted if wanted in TAB_KEYS else "overview"
