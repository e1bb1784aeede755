"""Model view: candidates and their CV scores, ROC / PR / calibration / lift, threshold explorer."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, html
from dash.exceptions import PreventUpdate

from analytics.services import model
from analytics.services.overview import NO_MATCH
from dashboard import figures, ids


def candidates_table(meta: dict):
    head = html.Thead(
        html.Tr(
            [
                html.Th("Model"),
                html.Th("ROC-AUC (mean ± sd)"),
                html.Th("PR-AUC"),
                html.Th("Fit time"),
            ]
        )
    )
    rows = []
    for cand in sorted(meta["candidates"], key=lambda c: -c["roc_auc_mean"]):
        chosen = cand["name"] == meta["chosen"]
        rows.append(
            html.Tr(
                [
                    html.Td(
                        [
                            cand["name"],
                            dbc.Badge("chosen", color="success", className="ms-2")
                            if chosen
                            else None,
                        ]
                    ),
                    html.Td(f"{cand['roc_auc_mean']:.4f} ± {cand['roc_auc_std']:.4f}"),
                    html.Td(f"{cand['pr_auc_mean']:.4f}"),
                    html.Td(f"{cand['fit_seconds']:.1f} s"),
                ],
                className="table-success" if chosen else None,
            )
        )
    met = meta["metrics"]
    summary = html.P(
        f"Chosen: {meta['chosen']}; t = {meta['threshold']:.3f}. Honest figures (each fold "
        f"scored at a threshold chosen on the other folds, mean over folds; the panel below "
        f"uses one t on all the selection's out-of-fold scores instead): precision "
        f"{met['precision']:.1%}, recall {met['recall']:.1%}, F1 {met['f1']:.3f}; top-decile "
        f"lift {met['lift_top_decile']:.2f}x; Brier {met['brier']:.4f}.",
        className="small mt-2 mb-0",
    )
    holdout = meta.get("holdout")
    extra = None
    if holdout:
        extra = html.P(
            f"Time-ordered holdout (test {holdout.get('test_window', '')}): ROC-AUC "
            f"{holdout['roc_auc']:.4f}, PR-AUC {holdout['pr_auc']:.4f}.",
            className="small mb-0",
        )
    return html.Div(
        [
            dbc.Table([head, html.Tbody(rows)], size="sm", responsive=True, className="mb-0"),
            summary,
            extra,
        ]
    )


def curve_figures(data, query):
    """ROC, precision-recall and calibration of services.model.curves, and its warning."""
    found = model.curves(data, query)
    if found["note"]:
        return (figures.message(found["note"]),) * 3 + ("",)
    low, high = found["roc_auc_ci"]
    warning = found["warning"]
    if warning:
        warning = f"{warning} ROC-AUC {found['roc_auc']:.3f} (95% CI {low:.3f}-{high:.3f})."
    return (
        figures.roc_curve(found["roc"], found["roc_auc"]),
        figures.pr_curve(found["pr"], found["pr_auc"], found["base_rate"]),
        figures.calibration(found["calibration"]),
        warning,
    )


def threshold_outputs(data, query, threshold):
    """Confusion matrix, precision/recall/F1 and lift on the selected customers."""
    if threshold is None:
        raise PreventUpdate
    m = model.threshold_view(data, query, float(threshold))
    if not m["customers"]:
        empty = figures.message(NO_MATCH)
        return empty, dbc.Alert(NO_MATCH, color="light"), empty

    def pct(x):
        return "–" if x is None else f"{x:.1%}"

    items = [
        ("Flagged as churners", f"{m['flagged']:,} of {m['customers']:,}"),
        ("Precision", pct(m["precision"])),
        ("Recall", pct(m["recall"])),
        ("F1", "–" if m["f1"] is None else f"{m['f1']:.3f}"),
    ]
    body = dbc.ListGroup(
        [
            dbc.ListGroupItem(
                [
                    html.Span(k, className="text-muted"),
                    html.Span(v, className="float-end fw-semibold"),
                ]
            )
            for k, v in items
        ],
        flush=True,
    )
    note = html.P(
        f"Saved threshold t = {data.threshold:.3f}. Out-of-fold predictions on the "
        f"{m['customers']:,} selected customers.",
        className="small text-muted mt-2",
    )
    curves = model.curves(data, query)
    lift = (
        figures.lift_bars(pd.DataFrame(curves["lift"]))
        if curves.get("lift")
        else figures.message(curves["note"] or NO_MATCH)
    )
    return figures.confusion(m["tp"], m["fp"], m["fn"], m["tn"]), html.Div([body, note]), lift


def register(app, data) -> None:
    if not data.has_model:
        return  # the tab is a training panel until the model exists
    table = candidates_table(data.meta)

    @app.callback(
        Output(ids.MODEL_CANDIDATES, "children"),
        Output(ids.MODEL_ROC, "figure"),
        Output(ids.MODEL_PR, "figure"),
        Output(ids.MODEL_CALIBRATION, "figure"),
        Output(ids.MODEL_WARNING, "children"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.TABS, "active_tab"),
    )
    def _curves(query, tab):
        if tab != "model":
            raise PreventUpdate
        return (table, *curve_figures(data, query))

    @app.callback(
        Output(ids.CONFUSION, "figure"),
        Output(ids.THRESHOLD_METRICS, "children"),
        Output(ids.MODEL_LIFT, "figure"),
        Input(ids.FILTER_QUERY, "data"),
        Input(ids.THRESHOLD, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _threshold(query, threshold, tab):
        if tab != "model":
            raise PreventUpdate
        return threshold_outputs(data, query, threshold)
