"""A shared link reopens the same view: filters (shown as removable chips) and the view's
options (trend split, chosen factor, planner inputs, at-risk sort). The URL callback is called
as a plain function, as Dash would call it."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from dash import no_update

from analytics import columns as C
from analytics import filters
from analytics.services.base import ServedBase
from dashboard import ids
from dashboard.app import create_app, dash_app, grid_columns
from dashboard.callbacks import filters as filter_cb
from dashboard.layout import components_by_id, factor_options


@pytest.fixture(scope="module")
def demo(demo_workspace):
    return ServedBase(demo_workspace)


@pytest.fixture(scope="module")
def options(demo):
    return filter_cb.view_options(demo, grid_columns(demo))


def page(demo, search="", *, levels=None, tenure=None, view=None, stored=None, click=None):
    id_list = [{"type": ids.FILTER, "column": c} for c in demo.filter_columns]
    return filter_cb.PageState(
        search=search,
        levels=levels if levels is not None else [[] for _ in id_list],
        id_list=id_list,
        tenure=tenure if tenure is not None else list(demo.tenure_range),
        click=click,
        view=view or {},
        stored_query=stored,
    )


def chip_texts(chips) -> list[str]:
    return [chip.children[0].children for chip in chips]


def chip_ids(chips) -> list[dict]:
    return [chip.children[1].id for chip in chips]


def test_a_link_with_more_filters_shows_each_active_filter_as_a_chip(demo, options):
    # "payment_method" sits under "More filters", folded: the chips say it is active
    search = "?payment_method=Invoice&risk=High&tenure_min=3&tenure_max=12"
    out = filter_cb.sync(demo, options, None, page(demo, search))
    assert chip_texts(out["chips"]) == [
        "Payment method: Invoice",
        "Risk band: High",
        "Tenure ≥ 3 months",
        "Tenure ≤ 12 months",
    ]
    levels = dict(zip(demo.filter_columns, out["levels"], strict=True))
    assert levels["payment_method"] == ["Invoice"]
    assert out["tenure"] == [3, 12]


def test_clicking_a_chips_x_removes_that_filter_and_updates_the_url(demo, options):
    search = "?payment_method=Invoice&risk=High&tenure_max=12&split=segment"
    loaded = filter_cb.sync(demo, options, None, page(demo, search))
    removed = {"type": ids.FILTER_CHIP, "column": "payment_method", "value": "Invoice"}
    assert removed in chip_ids(loaded["chips"])

    out = filter_cb.sync(
        demo,
        options,
        removed,
        page(demo, search, levels=loaded["levels"], tenure=loaded["tenure"], stored=search),
    )
    assert out["search"] == "?risk=High&tenure_max=12&split=segment"  # the view option stays
    assert out["query"] == "?risk=High&tenure_max=12"
    assert "Payment method: Invoice" not in chip_texts(out["chips"])
    expected = demo.count("?risk=High&tenure_max=12")
    assert out["summary"].startswith(f"{expected:,} of")

    bound = {"type": ids.FILTER_CHIP, "column": filters.TENURE_MAX, "value": "12"}
    out = filter_cb.sync(demo, options, bound, page(demo, out["search"], stored=out["query"]))
    assert out["search"] == "?risk=High&split=segment"
    assert out["tenure"][1] == demo.tenure_range[1]


def test_a_link_restores_every_view_option(demo, options):
    factor = factor_options(demo)[2]
    search = (
        f"?risk=High&split=segment&factor={factor}&save_rate=0.4&cost_per_contact=5"
        f"&margin=0.5&discount=0.02&sort=-{C.P_CHURN}"
    )
    # Dash's first call on a page load names the URL's search as what changed
    out = filter_cb.sync(demo, options, ids.URL, page(demo, search))
    view = out["view"]
    assert view["split"] is True
    assert view["factor"] == factor
    assert (view["save_rate"], view["cost_per_contact"], view["margin"], view["discount"]) == (
        0.4,
        5,
        0.5,
        0.02,
    )
    # the grid's columns come back sorted by probability only, highest first
    sorted_columns = [(c["field"], c["sort"]) for c in view["sort"] if c["sort"]]
    assert sorted_columns == [(C.P_CHURN, "desc")]
    assert [c["field"] for c in view["sort"]] == [c["field"] for c in grid_columns(demo)]
    assert out["query"] == "?risk=High"  # the views' store holds the filters only
    assert out["search"] is no_update  # the URL was already in its canonical form


def test_changing_a_view_control_writes_it_into_the_url_and_keeps_the_filters(demo, options):
    search = "?risk=High"
    steps = [
        (ids.TREND_SPLIT, "split", True, "split=segment"),
        (ids.FACTOR, "factor", factor_options(demo)[1], f"factor={factor_options(demo)[1]}"),
        (ids.PLAN_SAVE_RATE, "save_rate", 0.3, "save_rate=0.3"),
        (ids.PLAN_COST, "cost_per_contact", 12.5, "cost_per_contact=12.5"),
        (ids.PLAN_MARGIN, "margin", 0.7, "margin=0.7"),
        (ids.PLAN_DISCOUNT, "discount", 0.02, "discount=0.02"),
    ]
    for component, name, value, text in steps:
        out = filter_cb.sync(
            demo, options, component, page(demo, search, view={name: value}, stored="?risk=High")
        )
        assert out["search"].startswith("?risk=High&"), out["search"]
        assert text in out["search"]
        assert out["query"] is no_update  # the filters did not change: no view recomputes
        search = out["search"]
    assert parse_qs(search.lstrip("?"))["risk"] == ["High"]


def test_sorting_the_grid_writes_the_sort_into_the_url(demo, options):
    column_state = [
        {"colId": C.EXPECTED_LOSS, "sort": None, "sortIndex": None, "width": 120},
        {"colId": C.TENURE, "sort": "asc", "sortIndex": 1, "width": 90},
        {"colId": C.P_CHURN, "sort": "desc", "sortIndex": 0, "width": 90},
    ]
    out = filter_cb.sync(
        demo, options, ids.AT_RISK_GRID, page(demo, "", view={"sort": column_state}, stored="")
    )
    assert parse_qs(out["search"].lstrip("?"))["sort"] == [f"-{C.P_CHURN},{C.TENURE}"]

    # resizing a column (same sort) leaves the URL alone
    again = filter_cb.sync(
        demo,
        options,
        ids.AT_RISK_GRID,
        page(demo, out["search"], view={"sort": column_state}, stored=""),
    )
    assert again["search"] is no_update


def test_defaults_and_nonsense_stay_out_of_the_url(demo, options):
    settings = demo.ws.settings
    out = filter_cb.sync(
        demo, options, ids.PLAN_SAVE_RATE, page(demo, "", view={"save_rate": settings.save_rate})
    )
    assert out["search"] is no_update
    out = filter_cb.sync(
        demo, options, None, page(demo, "?factor=nope&save_rate=abc&sort=-nope&split=x")
    )
    assert out["search"] == ""  # an old or mistyped link opens the defaults, cleanly
    assert out["view"]["factor"] in (no_update, factor_options(demo)[0])


def test_filter_change_keeps_the_view_options(demo, options):
    id_list = [{"type": ids.FILTER, "column": c} for c in demo.filter_columns]
    levels = [["High"] if c == C.RISK_BAND else [] for c in demo.filter_columns]
    trigger = {"type": ids.FILTER, "column": C.RISK_BAND}
    out = filter_cb.sync(
        demo, options, trigger, page(demo, "?split=segment&margin=0.5", levels=levels, stored="")
    )
    assert out["search"] == "?risk=High&split=segment&margin=0.5"
    assert id_list  # the controls keep their order
    assert out["query"] == "?risk=High"


def test_chips_rendered_again_do_not_recompute_the_views(demo, options):
    """Dash calls the callback when new chip buttons appear (trigger None here): with the URL
    and the store already agreeing nothing is sent, so the chips cannot loop."""
    out = filter_cb.sync(demo, options, None, page(demo, "?risk=High", stored="?risk=High"))
    assert out["query"] is no_update
    assert out["chips"] is no_update
    assert out["search"] is no_update


def test_chips_sit_above_the_kpis_where_a_folded_panel_cannot_hide_them(demo_workspace):
    app = dash_app(create_app(demo_workspace))
    found = components_by_id(app.layout())
    assert ids.ACTIVE_FILTERS in found
    # not inside the filter panel, which phones fold
    assert ids.ACTIVE_FILTERS not in components_by_id(found[ids.FILTERS_DETAILS])
