"""Filter and view state <-> URL: a copied link reopens the same view, reload keeps it, Reset
clears the filters.

The URL's query holds the filters (`?risk=High&tenure_max=6`), then the view's options
(`&split=segment&factor=contract_type&save_rate=0.3&sort=-p_churn`): the same names the API
takes. One callback owns the URL's query, the filter controls, the chips naming the active
filters, the view controls and the store the views listen to, so they can never disagree
(Dash allows a circular dependency inside a single callback).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlencode

from dash import ALL, Input, Output, State, ctx, html, no_update

from analytics import columns as C
from analytics import filters
from analytics.formatting import display_name, share_of_all
from dashboard import auth, ids, layout
from dashboard.callbacks import snapshots
from dashboard.layout import LIVE, components_by_id, factor_options

# -- view options kept in the URL -------------------------------------------------------------


@dataclass(frozen=True)
class ViewOption:
    """One view control kept in the URL under `name`.

    `to_url` reads the control's (component, prop) value as URL text, None for the default (a
    view at its defaults keeps a short URL); `normalise` turns the URL's own text into that
    canonical form (None for the default or for nonsense); `restore` turns canonical text into
    the value written to (component, restore_prop) when a link is opened."""

    name: str
    component: str
    prop: str
    to_url: Callable[[Any], str | None]
    normalise: Callable[[str | None], str | None]
    restore: Callable[[str | None], Any]
    restore_prop: str = "value"


def value_option(name: str, component: str, to_url, from_url) -> ViewOption:
    """A control whose `value` is both read and restored (from_url(None) is the default)."""
    return ViewOption(name, component, "value", to_url, lambda t: to_url(from_url(t)), from_url)


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _as_number(x) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def number_option(name: str, component: str, default: float) -> ViewOption:
    """A number field. An out-of-range number is kept: the planner names the allowed range."""

    def to_url(value) -> str | None:
        number = _as_number(value)
        return None if number is None or number == default else _number_text(number)

    def from_url(text: str | None) -> float:
        number = _as_number(text)
        return default if number is None else number

    return value_option(name, component, to_url, from_url)


def choice_option(name: str, component: str, choices: Sequence[str]) -> ViewOption:
    """A dropdown whose first choice is the default; an unknown choice opens the default."""
    default = choices[0] if choices else None

    def to_url(value) -> str | None:
        return None if value == default or value not in choices else str(value)

    def from_url(text: str | None):
        return text if text in choices else default

    return value_option(name, component, to_url, from_url)


def switch_option(name: str, component: str, on_text: str) -> ViewOption:
    return value_option(name, component, lambda v: on_text if v else None, lambda t: t == on_text)


def grid_sort_option(name: str, component: str, columns: Sequence[dict]) -> ViewOption:
    """The grid's sort as the API writes it (`-expected_loss,p_churn`): read from the grid's
    columnState when the user sorts; restored through its columnDefs, which (unlike
    columnState) the grid also takes before it has finished starting."""
    fields = [c["field"] for c in columns]
    default = pairs_text((c["field"], c["sort"] == "asc") for c in columns if c.get("sort"))

    def to_url(column_state) -> str | None:
        ranked = sorted(
            (s for s in column_state or () if s.get("sort") in ("asc", "desc")),
            key=lambda s: s.get("sortIndex") or 0,
        )
        text = pairs_text((s["colId"], s["sort"] == "asc") for s in ranked)
        return None if text in ("", default) else text

    def parse(text: str | None) -> list[tuple[str, bool]]:
        pairs: dict[str, bool] = {}
        for part in (text or "").split(","):
            column = part.strip().lstrip("+-")
            if column in fields and column not in pairs:
                pairs[column] = not part.strip().startswith("-")
        return list(pairs.items())

    def normalise(text: str | None) -> str | None:
        canonical = pairs_text(parse(text))
        return None if canonical in ("", default) else canonical

    def restore(text: str | None) -> list[dict]:
        rank = {col: (i, asc) for i, (col, asc) in enumerate(parse(text or default))}
        return [
            {
                **col,
                "sort": None if f not in rank else ("asc" if rank[f][1] else "desc"),
                "sortIndex": rank[f][0] if f in rank else None,
            }
            for col, f in zip(columns, fields, strict=True)
        ]

    return ViewOption(name, component, "columnState", to_url, normalise, restore, "columnDefs")


def pairs_text(pairs) -> str:
    return ",".join(("" if asc else "-") + col for col, asc in pairs)


def snapshot_option(data) -> ViewOption:
    """The snapshot picker, under the API's name (`?snapshot=2025-03-31`): a date a snapshot
    has, else the live base (the default, kept out of the URL)."""

    def to_url(value) -> str | None:
        return snapshots.as_of_text(value)

    def normalise(text: str | None) -> str | None:
        return snapshots.known_as_of(data, text)

    return ViewOption(SNAPSHOT, ids.SNAPSHOT, "value", to_url, normalise, lambda t: t or LIVE)


def save_rate_option(data) -> ViewOption:
    """The planner's save rate: its default is the one a campaign measured when there is one
    (services.history.measured_save_rate, METRICS.md), else RETENTION_SAVE_RATE."""

    def default() -> float:
        return snapshots.save_rate_default(data, data)[0]

    def to_url(value) -> str | None:
        number = _as_number(value)
        return None if number is None or number == default() else _number_text(number)

    def from_url(text: str | None) -> float:
        number = _as_number(text)
        return default() if number is None else number

    return value_option("save_rate", ids.PLAN_SAVE_RATE, to_url, from_url)


SNAPSHOT = "snapshot"


def view_options(data, grid_columns: Sequence[dict]) -> tuple[ViewOption, ...]:
    """The view controls a link keeps, for the components this data's page has."""
    options = [
        snapshot_option(data),
        switch_option("split", ids.TREND_SPLIT, "segment"),
        choice_option("factor", ids.FACTOR, factor_options(data)),
    ]
    # Else no planner and no at-risk grid: no revenue, or no model yet (training panels).
    if C.MONTHLY_REVENUE in data.scored.columns and data.has_model:
        settings = data.ws.settings
        options += [
            save_rate_option(data),
            number_option("cost_per_contact", ids.PLAN_COST, settings.cost_per_contact),
            number_option("margin", ids.PLAN_MARGIN, settings.margin),
            number_option("discount", ids.PLAN_DISCOUNT, settings.discount),
            grid_sort_option("sort", ids.AT_RISK_GRID, grid_columns),
        ]
    return tuple(options)


def split_search(search: str | None, names: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The URL query -> (the filter query, {view option name: its text})."""
    pairs = parse_qsl((search or "").lstrip("?"), keep_blank_values=False)
    view = {k: v for k, v in pairs if k in names}
    rest = [(k, v) for k, v in pairs if k not in names]
    return ("?" + urlencode(rest)) if rest else "", view


def join_search(filter_query: str, view_text: Mapping[str, str | None], names: Sequence[str]):
    """Filters first, then the view options in a fixed order: equal views give equal URLs."""
    pairs = [(n, view_text[n]) for n in names if view_text.get(n)]
    tail = urlencode(pairs)
    if not tail:
        return filter_query
    return f"{filter_query}&{tail}" if filter_query else f"?{tail}"


# -- filters -----------------------------------------------------------------------------------


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


def without(state: filters.FilterState, column: str, value: str) -> filters.FilterState:
    """The state without one chip's filter: a level of a column, or a tenure bound."""
    if column == filters.TENURE_MIN:
        return replace(state, tenure_min=None)
    if column == filters.TENURE_MAX:
        return replace(state, tenure_max=None)
    levels = {c: tuple(v for v in vs if v != value) for c, vs in state.levels.items()}
    return replace(state, levels={c: vs for c, vs in levels.items() if vs})


def _chip(text: str, column: str, value: str) -> html.Span:
    return html.Span(
        [
            html.Span(text),
            html.Button(
                "×",
                id={"type": ids.FILTER_CHIP, "column": column, "value": value},
                className="filter-chip-remove",
                title=f"Remove the filter {text}",
                **{"aria-label": f"Remove the filter {text}"},
            ),
        ],
        className="filter-chip",
    )


def chips(state: filters.FilterState) -> list[html.Span]:
    """One removable chip per active level and tenure bound, so a shared link says what it
    filters even when the control sits folded under "More filters" or on a phone."""
    out = [
        _chip(f"{display_name(column)}: {level}", column, level)
        for column, levels in state.levels.items()
        for level in levels
    ]
    if state.tenure_min is not None:
        low = _number_text(state.tenure_min)
        out.append(_chip(f"Tenure ≥ {low} months", filters.TENURE_MIN, low))
    if state.tenure_max is not None:
        high = _number_text(state.tenure_max)
        out.append(_chip(f"Tenure ≤ {high} months", filters.TENURE_MAX, high))
    return out


# -- the one callback --------------------------------------------------------------------------


@dataclass(frozen=True)
class PageState:
    """What the URL callback reads: the URL's query, the filter controls, the view controls
    (option name -> control value) and the filter query the views last received."""

    search: str | None
    levels: list
    id_list: list[dict]
    tenure: list | None = None
    click: dict | None = None
    view: Mapping[str, Any] = field(default_factory=dict)
    stored_query: str | None = None


def filter_state(data, trigger, page: PageState, url_query: str) -> filters.FilterState:
    """The filter state after `trigger` (the id of the input that fired; None on page load)."""
    if trigger == ids.RESET:
        return filters.FilterState()
    current = controls_state(data, page.levels, page.id_list, page.tenure)
    if trigger == ids.DOUGHNUT and page.click and page.click.get("points"):
        # the doughnut's labels are escaped for display (figures.plain_text)
        return with_segment(current, unescape(str(page.click["points"][0]["label"])))
    if isinstance(trigger, dict) and trigger.get("type") == ids.FILTER_CHIP:
        return without(data.requested(url_query), trigger["column"], trigger["value"])
    if isinstance(trigger, dict) or trigger == ids.TENURE:
        return current
    return data.requested(url_query)  # page load, reload, back/forward: the URL is the truth


def sync(data, options: Sequence[ViewOption], trigger, page: PageState) -> dict:
    """The callback's outputs: url search, filter query, control values, tenure, summary,
    chips, and the view controls (option name -> value). What did not change is no_update,
    so re-rendered chips or a resized grid column do not recompute every view."""
    names = [o.name for o in options]
    url_query, url_view = split_search(page.search, names)
    view_text = {o.name: o.normalise(url_view.get(o.name)) for o in options}
    view_out = dict.fromkeys(names, no_update)
    for option in options:
        shown = option.to_url(page.view.get(option.name))
        if trigger == option.component:  # the user changed this view control
            view_text[option.name] = shown
        elif trigger in (None, ids.URL) and shown != view_text[option.name]:  # a link opened
            view_out[option.name] = option.restore(view_text[option.name])

    state = filter_state(data, trigger, page, url_query)
    query = filters.to_query(state)
    search = join_search(query, view_text, names)
    out = {
        "search": search if search != (page.search or "") else no_update,
        "query": no_update,
        "levels": [no_update] * len(page.id_list),
        "tenure": no_update,
        "summary": no_update,
        "chips": no_update,
        "view": view_out,
    }
    # The selection's counts are the snapshot's the views read.
    base = snapshots.base_or_live(data, view_text.get(SNAPSHOT))
    if query == page.stored_query and not isinstance(trigger, dict) and trigger != ids.TENURE:
        if trigger in (ids.SNAPSHOT, ids.URL):  # a snapshot picked, or back / forward
            out["summary"] = selection_summary(base.count(query), base.count(""))
        return out
    lo, hi = data.tenure_range
    out.update(
        query=query,
        levels=[list(state.levels.get(i["column"], ())) for i in page.id_list],
        tenure=[
            lo if state.tenure_min is None else state.tenure_min,
            hi if state.tenure_max is None else state.tenure_max,
        ],
        summary=selection_summary(base.count(query), base.count("")),  # of the user's scope
        chips=chips(state),
    )
    return out


def selection_summary(selected: int, total: int) -> str:
    """ "812 of 7,043 customers selected (12% of all)": a share that rounds to 0 reads "<0.1%
    of all", and only the whole base reads as all."""
    share = share_of_all(selected, total)
    if not total or share == "all customers":
        return f"{selected:,} of {total:,} customers selected"
    return f"{selected:,} of {total:,} customers selected ({share})"


def register(app, data) -> None:
    # The layout is built per user; called outside a request it is the whole page.
    page = app.layout() if callable(app.layout) else app.layout
    components = components_by_id(page)
    grid = components.get(ids.AT_RISK_GRID)
    options = view_options(data, grid.columnDefs if grid is not None else ())
    filter_ids = {"type": ids.FILTER, "column": ALL}
    chip_ids = {"type": ids.FILTER_CHIP, "column": ALL, "value": ALL}
    # A doughnut slice filters to its segment; without a model yet there is no doughnut.
    click = {"click": Input(ids.DOUGHNUT, "clickData")} if ids.DOUGHNUT in components else {}

    @app.callback(
        output={
            "search": Output(ids.URL, "search"),
            "query": Output(ids.FILTER_QUERY, "data"),
            "levels": Output(filter_ids, "value"),
            "tenure": Output(ids.TENURE, "value"),
            "summary": Output(ids.SELECTION_SUMMARY, "children"),
            "chips": Output(ids.ACTIVE_FILTERS, "children"),
            "view": {o.name: Output(o.component, o.restore_prop) for o in options},
        },
        inputs={
            "search": Input(ids.URL, "search"),
            "levels": Input(filter_ids, "value"),
            "tenure": Input(ids.TENURE, "value"),
            "_reset": Input(ids.RESET, "n_clicks"),
            **click,
            "chip_clicks": Input(chip_ids, "n_clicks"),
            "view": {o.name: Input(o.component, o.prop) for o in options},
        },
        state={
            "id_list": State(filter_ids, "id"),
            "stored_query": State(ids.FILTER_QUERY, "data"),
        },
    )
    def _sync(search, levels, tenure, _reset, chip_clicks, view, id_list, stored_query, click=None):
        trigger = ctx.triggered_id
        chip = isinstance(trigger, dict) and trigger.get("type") == ids.FILTER_CHIP
        if chip and not ctx.triggered[0]["value"]:  # a chip just rendered, not clicked
            trigger = None
        page = PageState(search, levels, id_list, tenure, click, view, stored_query)
        return sync(data, options, trigger, page)

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
        user = auth.user()
        return sync_tab(ctx.triggered_id, url_hash, active, layout.tabs_for(user and user.role))


def sync_tab(trigger, url_hash, active, shown=None):
    """The open tab lives in the URL's #fragment, so a shared link opens the same tab (one the
    user's role sees: `shown`, default every tab)."""
    if trigger == ids.TABS:
        return f"#{active}", no_update
    wanted = (url_hash or "").lstrip("#")
    shown = [k for k, _ in layout.TABS] if shown is None else shown
    return no_update, wanted if wanted in shown else "overview"
