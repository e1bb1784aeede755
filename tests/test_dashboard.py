"""The dashboard without a browser: layout ids, callbacks called as functions, figures."""

from __future__ import annotations

import io as stdio
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from dash import no_update
from sklearn.metrics import roc_auc_score

from analytics import columns as C
from analytics import filters
from analytics.formatting import export_header
from analytics.metrics import kpis, trend, value
from analytics.metrics import planner as planner_rules
from analytics.model import evaluation
from analytics.services import customers as customer_service
from analytics.services import planner as planner_service
from analytics.services.base import ServedBase
from dashboard import figures, ids
from dashboard.app import create_app, dash_app
from dashboard.callbacks import customers, drivers, model, overview, planner, predict
from dashboard.callbacks import filters as filter_cb
from dashboard.layout import KPI_ORDER, components_by_id


@pytest.fixture(scope="module")
def demo(demo_workspace):
    return ServedBase(demo_workspace)


@pytest.fixture(scope="module")
def app(demo_workspace):
    return dash_app(create_app(demo_workspace))


def _layout_ids(component) -> set[str]:
    return set(components_by_id(component))


def _callback_ids(app) -> set[str]:
    """Every component id a callback reads or writes (pattern-matching ids as JSON)."""
    names = set()
    for spec in app._callback_list:
        for dep in spec["inputs"] + spec["state"]:
            dep_id = dep["id"]
            names.add(json.dumps(dep_id, sort_keys=True) if isinstance(dep_id, dict) else dep_id)
        if not spec.get("no_output"):
            # "..id.prop...id2.prop2.." for several outputs, "id.prop" for one
            for part in spec["output"].strip(".").split("..."):
                names.add(part.rsplit(".", 1)[0])
    return names


@pytest.mark.parametrize("fixture", ["demo_workspace", "telco_workspace", "no_revenue_workspace"])
def test_every_callback_id_exists_in_the_layout(request, fixture):
    app = dash_app(create_app(request.getfixturevalue(fixture)))
    in_layout = _layout_ids(app.layout())
    pattern_types = {json.loads(i)["type"] for i in in_layout if i.startswith("{")}
    pattern_types.add(ids.FILTER_CHIP)  # chips are drawn by the URL callback, one per filter
    for name in _callback_ids(app):
        if name.startswith("{"):
            assert json.loads(name)["type"] in pattern_types, name
        else:
            assert name in in_layout, name


def _page(demo, search, values, tenure=None, click=None, stored=None):
    id_list = [{"type": ids.FILTER, "column": c} for c in demo.filter_columns]
    return filter_cb.PageState(search, values, id_list, tenure, click, stored_query=stored)


def test_filter_change_writes_the_url_and_the_store(demo):
    values = [["High"] if c == C.RISK_BAND else [] for c in demo.filter_columns]
    trigger = {"type": ids.FILTER, "column": C.RISK_BAND}
    options = filter_cb.view_options(demo, [])
    out = filter_cb.sync(demo, options, trigger, _page(demo, "", values, list(demo.tenure_range)))
    assert out["search"] == out["query"] == "?risk=High"
    expected = int((demo.scored[C.RISK_BAND] == "High").sum())
    assert out["summary"].startswith(f"{expected:,} of {len(demo.scored):,} customers selected (")
    # reopening the link restores the controls
    again = filter_cb.sync(demo, options, None, _page(demo, out["search"], values))
    assert again["query"] == out["query"]
    assert again["levels"] == out["levels"]


def test_doughnut_click_filters_to_the_segment(demo):
    segment = str(demo.scored[C.SEGMENT].iloc[0])
    click = {"points": [{"label": segment}]}
    empty = [[] for _ in demo.filter_columns]
    options = filter_cb.view_options(demo, [])
    out = filter_cb.sync(demo, options, ids.DOUGHNUT, _page(demo, "", empty, click=click))
    assert filters.from_query(out["query"], demo.allowed).levels[C.SEGMENT] == (segment,)
    assert out["levels"][demo.filter_columns.index(C.SEGMENT)] == [segment]


def test_reset_clears_everything(demo):
    empty = [[] for _ in demo.filter_columns]
    options = filter_cb.view_options(demo, [])
    page = _page(demo, "?risk=High", empty, [3, 10], stored="?risk=High")
    out = filter_cb.sync(demo, options, ids.RESET, page)
    assert out["search"] == out["query"] == ""
    assert all(v == [] for v in out["levels"])
    assert out["tenure"] == list(demo.tenure_range)


def test_tab_lives_in_the_url_hash():
    assert filter_cb.sync_tab(None, "#planner", "overview") == (no_update, "planner")
    assert filter_cb.sync_tab(None, "#nonsense", "overview") == (no_update, "overview")
    assert filter_cb.sync_tab(ids.TABS, "", "model") == ("#model", no_update)


def test_kpis_change_with_the_filter_and_show_the_delta(demo):
    whole, _ = overview.kpi_outputs(demo, "")
    high, deltas = overview.kpi_outputs(demo, "?risk=High")
    n = KPI_ORDER.index("customers")
    assert whole[n] == f"{len(demo.scored):,}"
    assert high[n] != whole[n]
    assert "of all" in deltas[n]
    assert "pts vs all" in deltas[KPI_ORDER.index("churn_rate")]


def test_a_filter_matching_nobody_says_so(demo):
    query = "?risk=High&tenure_min=100000"
    values, deltas = overview.kpi_outputs(demo, query)
    assert values[KPI_ORDER.index("customers")] == "0"
    assert "No customers match" in deltas[KPI_ORDER.index("customers")]
    fig, _ = overview.trend_figure(demo, query, split=False)
    assert isinstance(fig, go.Figure)
    doughnut, _bars, _table = overview.segment_outputs(demo, query)
    assert "No customers match" in doughnut.layout.annotations[0].text
    fig = drivers.factor_figure(demo, query, "contract")
    assert "No customers match" in fig.layout.annotations[0].text
    assert customers.grid_page(demo, query, {"startRow": 0, "endRow": 50})["rowCount"] == 0


def test_trend_with_dates_is_monthly_and_splits_by_segment(demo):
    fig, note = overview.trend_figure(demo, "", split=False)
    assert fig.layout.title.text == "Monthly churn and retention"
    assert [t.name for t in fig.data] == ["Churn rate", "Retention rate"]
    split, _ = overview.trend_figure(demo, "", split=True)
    assert len(split.data) == demo.scored[C.SEGMENT].nunique()
    _, note = overview.trend_figure(demo, "?risk=High", split=False)
    assert "risk band" in note
    assert overview.cohort_figure(demo, "").data[0].type == "heatmap"


def test_trend_without_dates_is_kaplan_meier(telco_workspace):
    data = ServedBase(telco_workspace)
    fig, note = overview.trend_figure(data, "", split=False)
    assert "Kaplan-Meier" in fig.layout.title.text
    assert "no dates" in note
    assert "signup_date" in overview.cohort_figure(data, "").layout.annotations[0].text


def test_segment_views(demo):
    doughnut, bars, table = overview.segment_outputs(demo, "")
    assert doughnut.data[0].type == "pie"
    assert sum(doughnut.data[0].values) == len(demo.scored)
    assert len(bars.data[0].y) == demo.scored[C.SEGMENT].nunique()
    assert "Defined by" in str(table)


def test_factor_bars_have_intervals_and_counts(demo):
    fig = drivers.factor_figure(demo, "", "contract")
    bar = fig.data[0]
    assert set(bar.y) == {"Monthly", "Annual", "Two-year"}
    assert bar.error_x.array is not None
    assert all("n=" in t for t in fig.data[1].text)


def test_at_risk_grid_pages_on_the_server_sorted_by_expected_loss(demo):
    request = {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": {}}
    page = customers.grid_page(demo, "", request)
    assert len(page["rowData"]) == 50
    assert page["rowCount"] > 50
    losses = [r[C.EXPECTED_LOSS] for r in page["rowData"]]
    assert losses == sorted(losses, reverse=True)
    assert all(r[C.RISK_BAND] == "High" for r in page["rowData"])
    second = customers.grid_page(demo, "", {**request, "startRow": 50, "endRow": 100})
    assert {r[C.CUSTOMER_ID] for r in second["rowData"]}.isdisjoint(
        {r[C.CUSTOMER_ID] for r in page["rowData"]}
    )


def test_export_is_the_whole_selection_and_formula_safe(demo):
    download = customers.export_csv(
        demo, "?segment=" + str(demo.scored[C.SEGMENT].iloc[0]), None, None
    )
    frame = pd.read_csv(stdio.StringIO(download["content"]))
    assert list(frame.columns) == [export_header(c, "$") for c in demo.grid_fields]
    assert frame["Expected loss ($)"].is_monotonic_decreasing
    assert download["filename"].endswith(".csv")


def test_detail_view_has_profile_drivers_and_an_action(demo):
    customer = demo.scored.loc[demo.scored[C.RISK_BAND] == "High", C.CUSTOMER_ID].iloc[0]
    body = str(customers.detail_body(demo, customer))
    for needle in ("Churn probability", "Why at risk", "Recommended action", "Profile"):
        assert needle in body
    assert "not in the current base" in str(customers.detail_body(demo, "nobody"))


def test_planner_best_n_and_bad_inputs(demo):
    error, summary, fig, rows = planner.plan_outputs(demo, "", 0.25, 10, 1.0, 0.01)
    assert error is None
    assert "Contact first" in str(summary)
    assert fig.data[0].name == "net benefit"
    assert 0 < len(rows) <= planner.GRID_ROWS
    error, _, _, rows = planner.plan_outputs(demo, "", 1.5, -3, None, "x")
    text = str(error)
    for needle in ("save rate", "cost per contact", "gross margin", "discount rate"):
        assert needle in text
    assert rows == []


def test_planner_export_has_every_contact(demo):
    download = planner.export_contacts(demo, "", 0.25, 10, 1.0, 0.01)
    frame = pd.read_csv(stdio.StringIO(download["content"]))
    _, summary, _, _ = planner.plan_outputs(demo, "", 0.25, 10, 1.0, 0.01)
    assert f"{len(frame):,} customers" in str(summary)


def test_model_view_threshold_updates_the_confusion_matrix(demo):
    at_t, metrics_t, lift = model.threshold_outputs(demo, "", demo.threshold)
    low, _metrics_low, _ = model.threshold_outputs(demo, "", 0.01)
    flagged_t = at_t.data[0].z[0][0] + at_t.data[0].z[1][0]
    flagged_low = low.data[0].z[0][0] + low.data[0].z[1][0]
    assert flagged_low > flagged_t
    assert "Precision" in str(metrics_t)
    assert len(lift.data[0].x) == 10
    assert "chosen" in str(model.candidates_table(demo.meta))


def test_model_curves_follow_the_filters(demo):
    roc_all, _, _, _ = model.curve_figures(demo, "")
    roc_high, _, _, _ = model.curve_figures(demo, "?risk=High")
    assert roc_all.layout.title.text != roc_high.layout.title.text  # AUC of the selection
    *empty, warning = model.curve_figures(demo, "?tenure_min=100000")
    assert all("No customers match" in f.layout.annotations[0].text for f in empty)
    assert warning == ""


def test_prediction_card_good_and_bad_input(demo):
    from analytics.model.predict import input_schema

    schema = input_schema(demo.meta)
    features = list(schema)
    values = [spec["default"] for spec in schema.values()]
    good = str(predict.result_card(demo, schema, features, values))
    assert "Churn probability" in good
    assert "Recommended action" in good
    values[features.index(C.TENURE)] = None
    values[features.index("contract")] = "Forever"
    bad = str(predict.result_card(demo, schema, features, values))
    assert "Please fix" in bad
    assert "missing" in bad
    assert "Forever" in bad


def test_value_views_explain_why_they_are_off_without_revenue(no_revenue_workspace):
    app = dash_app(create_app(no_revenue_workspace))
    text = json.dumps(app.layout().to_plotly_json(), default=str)
    assert "not available because the data has no monthly_revenue column" in text


def test_figures_say_why_they_are_empty():
    fig = figures.message("No customers match these filters.")
    assert fig.layout.annotations[0].text == "No customers match these filters."
    assert not fig.data


def test_html_in_customer_fields_is_text(demo_workspace):
    """Dash renders strings as text: a customer id holding markup stays inert."""
    data = ServedBase(demo_workspace)
    body = customers.detail_body(data, "<script>alert(1)</script>")
    assert "<script>" in str(body)  # the string is a child, rendered as text by React


def test_kpis_without_revenue_say_why(no_revenue_workspace):
    values, deltas = overview.kpi_outputs(ServedBase(no_revenue_workspace), "")
    for name in ("mrr", "avg_clv", "mrr_at_risk"):
        assert values[KPI_ORDER.index(name)] == "–"
        assert deltas[KPI_ORDER.index(name)] == "not available: no monthly_revenue column"


def test_probability_filter_is_typed_in_percent(demo):
    """The grid shows 46.9%; "greater than 30" means p > 0.3 (a cut inside the list: its
    median, in whole percent)."""
    hv = demo.scored[
        (demo.scored[C.RISK_BAND] == "High")
        & demo.scored[C.HIGH_VALUE]
        & (demo.scored[C.CHURNED] == 0)
    ]
    cut = int(hv[C.P_CHURN].median() * 100)
    request = {
        "startRow": 0,
        "endRow": 1000,
        "sortModel": [],
        "filterModel": {C.P_CHURN: {"filterType": "number", "type": "greaterThan", "filter": cut}},
    }
    page = customers.grid_page(demo, "", request)
    assert page["rowCount"] == int((hv[C.P_CHURN] > cut / 100).sum()) > 0
    assert all(r[C.P_CHURN] > cut / 100 for r in page["rowData"])


FILTERS = ("", "?contract=Monthly", "?risk=High&segment={seg}", "?tenure_min=12&value_tier=High")


def test_precomputed_views_equal_the_analytics_of_the_filtered_frames(demo):
    """Masks, narrow views and the history's codes give what the filtered copies gave."""
    seg = demo.allowed[C.SEGMENT][0]
    for query in (q.format(seg=seg) for q in FILTERS):
        state = demo.state(query)
        frame = filters.apply(demo.scored, state)
        history = filters.apply(demo.history, filters.FilterState(state.levels))
        tenure = demo.tenure(query)
        assert demo.kpis(query) == kpis.kpis(frame)
        selection = demo.history_selection(query)
        assert selection.customers == len(history)
        for by in (None, C.SEGMENT):
            want = trend.monthly_trend(history, by=by, tenure=tenure)
            pd.testing.assert_frame_equal(selection.monthly_trend(by=by, tenure=tenure), want)
        fig, _ = overview.trend_figure(demo, query, split=False)
        want = trend.monthly_trend(history, tenure=tenure)["churn_rate"]
        if demo.score_filters(query):  # today's scores: the current window only
            want = want.iloc[-1:]
        np.testing.assert_array_equal(fig.data[0].y, want)
        cohorts = trend.cohort_retention(history, tenure=tenure)
        if len(cohorts):
            np.testing.assert_array_equal(
                overview.cohort_figure(demo, query).data[0].z, cohorts.drop(columns="customers")
            )
        else:  # a filter on today's scores: no past departures, and the card says why
            assert demo.score_filters(query)
            assert "Clear it" in overview.cohort_figure(demo, query).layout.annotations[0].text
        pd.testing.assert_frame_equal(demo.at_risk(query), value.high_value_at_risk(frame))
        y, p = frame[C.CHURNED].to_numpy(), frame[C.P_CHURN].to_numpy()
        roc, pr, calibration, _ = model.curve_figures(demo, query)
        want = evaluation.curves(y, p)
        assert list(roc.data[0].x) == want["roc"]["fpr"]
        assert list(pr.data[0].y) == want["pr"]["precision"]
        assert list(calibration.data[1].y) == want["calibration"]["prob_true"]
        assert f"{roc_auc_score(y, p):.3f}" in roc.layout.title.text
        _, _, lift = model.threshold_outputs(demo, query, 0.3)
        np.testing.assert_array_equal(lift.data[0].y, evaluation.lift_by_decile(y, p)["lift"])
        plan = planner_service.plan(demo, query, planner_service.Assumptions(**PLAN_ARGS))
        want = planner_rules.plan(
            frame, threshold=demo.threshold, **PLAN_ARGS, base_churn_rate=demo.base_churn_rate
        )
        assert (plan["best_n"], plan["net_benefit"]) == (want.best_n, want.net_benefit)
        pd.testing.assert_frame_equal(pd.DataFrame(plan["curve"]), want.curve, check_dtype=False)


PLAN_ARGS = {"save_rate": 0.3, "cost_per_contact": 5.0, "margin": 0.8, "discount": 0.02}


def test_scatter_is_a_stable_sample_that_says_so(demo):
    fig = customers.scatter_figure(demo, "")
    active = int((demo.scored[C.CHURNED] == 0).sum())
    shown = sum(len(t.x) for t in fig.data)
    assert shown == customer_service.SCATTER_SAMPLE < active
    assert f"a sample of {shown:,} of {active:,}" in fig.layout.title.text
    again = customers.scatter_figure(demo, "")
    assert [list(t.text) for t in fig.data] == [list(t.text) for t in again.data]
    small = customers.scatter_figure(demo, "?risk=High&tenure_min=40")
    assert "sample" not in small.layout.title.text


def test_a_segment_keeps_its_colour_in_every_chart_whatever_is_selected():
    from dashboard import figures

    colours = figures.colour_map(["Loyal high-spend", "New low-spend", "New mid-spend"])
    only = pd.DataFrame({"level": ["New mid-spend"], "customers": [10], "churn_rate": [0.1]})
    pie = figures.segment_doughnut(only, colours)
    assert list(pie.data[0].marker.colors) == [colours["New mid-spend"]]
    trend = pd.DataFrame(
        {
            "month": pd.to_datetime(["2026-01-01", "2026-02-01"] * 2),
            "segment": ["New mid-spend"] * 2 + ["Loyal high-spend"] * 2,
            "churn_rate": [0.1, 0.2, 0.01, 0.02],
        }
    )
    lines = figures.monthly_trend(trend, by="segment", colours=colours).data
    assert {t.name: t.line.color for t in lines} == {
        "New mid-spend": colours["New mid-spend"],
        "Loyal high-spend": colours["Loyal high-spend"],
    }


def test_retention_axis_mirrors_the_churn_axis():
    from dashboard import figures

    trend = pd.DataFrame(
        {
            "month": pd.to_datetime(["2026-01-01", "2026-02-01"]),
            "churn_rate": [0.05, 0.08],
            "retention_rate": [0.95, 0.92],
            "churned": [5, 8],
            "active_start": [100, 100],
        }
    )
    layout = figures.monthly_trend(trend).layout
    low, high = layout.yaxis.range
    assert low == 0
    assert list(layout.yaxis2.range) == pytest.approx([1 - high, 1])


def test_the_count_line_follows_the_grids_column_filters(demo):
    whole = customers.count_text(demo, "")
    assert whole == customers.count_text(demo, "", {})
    total = int(whole.split()[0].replace(",", ""))
    # The grid shows percentages: "greater than 30" means p > 0.3, as in grid_page.
    model = {C.P_CHURN: {"filterType": "number", "type": "greaterThan", "filter": 30}}
    request = {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": model}
    shown = customers.grid_page(demo, "", request)["rowCount"]
    text = customers.count_text(demo, "", model)
    assert 0 < shown < total
    assert text.startswith(f"{shown:,} of {total:,} customers with the column filters")
    export = customers.export_csv(demo, "", model, None)
    assert len(pd.read_csv(stdio.StringIO(export["content"]))) == shown


# -- issue 9: formatting -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def euro(demo_workspace):
    from dataclasses import replace

    from analytics.config import Settings

    return ServedBase(replace(demo_workspace, settings=Settings(currency="EUR")))


def test_money_is_shown_with_the_currency_everywhere(euro):
    values, _ = overview.kpi_outputs(euro, "")
    for name in ("mrr", "avg_clv", "mrr_at_risk"):
        assert values[KPI_ORDER.index(name)].endswith(" EUR")
    from dashboard.app import grid_columns

    for cols in (grid_columns(euro), grid_columns(euro, plan=True)):
        money_cols = [c for c in cols if c["field"] in (C.EXPECTED_LOSS, C.CLV, C.VALUE)]
        assert money_cols
        assert all("' EUR'" in c["valueFormatter"]["function"] for c in money_cols)
    _, summary, curve, _ = planner.plan_outputs(euro, "", 0.25, 10, 1.0, 0.01)
    assert str(summary).count(" EUR") >= 3  # saved value, cost, net benefit
    assert " EUR" in curve.data[0].hovertemplate
    assert curve.layout.yaxis.ticksuffix == " EUR"
    scatter = customers.scatter_figure(euro, "")
    assert " EUR" in scatter.data[0].hovertemplate
    assert scatter.layout.yaxis.ticksuffix == " EUR"
    assert " EUR." in customers.count_text(euro, "")
    card = str(predict.result_card(euro, *_typical_form(euro)))
    assert card.count(" EUR") >= 3  # CLV, value, expected loss


def _typical_form(data):
    from analytics.model import predict as predict_rules

    schema = predict_rules.input_schema(data.ws.model.meta)
    return schema, list(schema), [spec["default"] for spec in schema.values()]


def test_grid_headers_and_factor_titles_use_the_display_names(demo, app):
    from dashboard.app import grid_columns

    headers = {c["field"]: c["headerName"] for c in grid_columns(demo)}
    assert headers[C.TENURE] == "Tenure (months)"
    assert headers[C.CUSTOMER_ID] == "Customer"
    fig = drivers.factor_figure(demo, "", C.TENURE)
    assert fig.layout.title.text == "Churn rate by Tenure"
    dropdown = components_by_id(app.layout())[ids.FACTOR]
    assert "tenure_months" not in {o["label"] for o in dropdown.options}


def test_reasons_read_in_words_in_the_grid_and_the_prediction_card(demo):
    reasons = demo.scored[list(C.REASONS)].to_numpy().ravel()
    shown = [r for r in reasons if r]
    assert shown
    assert not any(" = " in r or ".0 " in r.split("(")[0] for r in shown)
    assert any(r.startswith("Tenure: ") and " month" in r for r in shown)
    card = str(predict.result_card(demo, *_typical_form(demo)))
    assert card.count(" = ") == card.count("Threshold t = ")  # no "feature = value" drivers


def test_a_tiny_share_is_not_zero_percent_of_all():
    assert filter_cb.selection_summary(1, 100_000).endswith("(<0.1% of all)")
    assert overview.fmt_delta("customers", 1, 100_000) == "<0.1% of all"
    assert overview.fmt_delta("customers", 99_999, 100_000) == ">99.9% of all"
    assert overview.fmt_delta("customers", 100, 100) == "all customers"


def test_export_and_grid_agree_on_percent(demo):
    download = customers.export_csv(demo, "", None, None)
    frame = pd.read_csv(stdio.StringIO(download["content"]))
    assert "Churn probability (%)" in frame.columns
    page = customers.grid_page(demo, "", {"startRow": 0, "endRow": 1})
    first = page["rowData"][0]
    assert frame["Churn probability (%)"].iloc[0] == pytest.approx(100 * first[C.P_CHURN], abs=0.01)
    contacts = planner.export_contacts(demo, "", 0.25, 10, 1.0, 0.01)
    plan = pd.read_csv(stdio.StringIO(contacts["content"]))
    assert plan["Churn probability (%)"].between(0, 100).all()
    assert plan["Churn probability (%)"].max() > 1  # percent, not a fraction


def test_value_tier_is_shown_against_value(demo, app):
    from dashboard.app import grid_columns

    text = str(app.layout())
    assert "High (Value ≥ $" in text
    assert "Cut on Value" in text
    value_col = next(c for c in grid_columns(demo) if c["field"] == C.VALUE)
    assert "cut on Value" in value_col["headerTooltip"]
    customer = demo.scored.loc[demo.scored[C.VALUE_TIER] == "High", C.CUSTOMER_ID].iloc[0]
    body = str(customers.detail_body(demo, customer))
    assert "High tier)" in body


def test_a_fraction_in_a_whole_number_field_says_so(demo):
    schema, features, values = _typical_form(demo)
    values[features.index(C.TENURE)] = 2.5
    text = str(predict.result_card(demo, schema, features, values))
    assert "Tenure: a whole number is required, got 2.5" in text
    assert "missing" not in text


def test_drivers_draw_the_base_as_all_customers_and_the_selection_beside_it(demo):
    """The walkthrough found "all customers 54.6%" on a selection whose base rate was 26.5%."""
    query = "?contract=Monthly&tenure_max=6"
    fig = drivers.factor_figure(demo, query, "plan")
    lines = {s.line.dash: s.x0 for s in fig.layout.shapes}
    labels = {a.text: (a.x, a.yanchor) for a in fig.layout.annotations if "%" in a.text}
    base, selection = demo.base_churn_rate, demo.kpis(query)["churn_rate"]
    assert lines == {"dash": pytest.approx(base), "dot": pytest.approx(selection)}
    assert f"all customers {base:.1%}" in labels
    assert f"this selection {selection:.1%}" in labels
    # both above the bars, not on the axis's numbers
    assert {y for _, y in labels.values()} == {"bottom"}
    whole = drivers.factor_figure(demo, "", "plan")
    assert [a.text for a in whole.layout.annotations if "%" in a.text] == [
        f"all customers {base:.1%}"
    ]


def test_load_customer_fills_the_prediction_card_with_their_profile(demo, demo_workspace):
    from analytics.model.predict import check_record, input_schema

    schema = input_schema(demo_workspace.model.meta)
    features = list(schema)
    cid = str(demo.scored[C.CUSTOMER_ID].iloc[3])
    values, note = predict.loaded_values(demo, schema, cid, features)
    row = demo.scored.iloc[3]
    for feature, shown in zip(features, values, strict=True):
        want = row[feature]
        assert shown == (want.item() if hasattr(want, "item") else want), feature
    assert f"p = {row[C.P_CHURN]:.1%} in the lists" in note
    assert "final model" in note
    assert check_record(schema, dict(zip(features, values, strict=True)))[1] == []
    unchanged, note = predict.loaded_values(demo, schema, "no-such-id", features)
    assert all(v is no_update for v in unchanged)
    assert "not in the current base" in note
    assert predict.loaded_values(demo, schema, "  ", features)[1] == "Enter a customer id."
