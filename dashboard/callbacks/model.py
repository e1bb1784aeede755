"""Model view: candidates and their CV scores, ROC / PR / calibration / lift, threshold explorer."""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
import numpy as np
from dash import Input, Output, html
from dash.exceptions import PreventUpdate

from analytics import columns as C
from analytics.model import evaluation
from dashboard import figures, ids
from dashboard.callbacks.overview import NO_MATCH


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


def scores(data, query):
    """Labels and out-of-fold scores of the selection, in table order."""

    def make():
        frame = data.view(query, (C.CHURNED, C.P_CHURN))
        return frame[C.CHURNED].to_numpy(), frame[C.P_CHURN].to_numpy()

    return data.cached("scores", query, make, large=True)


def ranked_scores(data, query):
    """Labels and scores of the selection by score, descending (ties in table order): the
    base sorted once, restricted to the selection, so no sort per selection."""

    def make():
        rows = data.ranked(query, C.P_CHURN)
        return data.scored[C.CHURNED].to_numpy()[rows], data.scored[C.P_CHURN].to_numpy()[rows]

    return data.cached("ranked_scores", query, make, large=True)


def curve_figures(data, query):
    """ROC, precision-recall and calibration of the out-of-fold scores of the selection."""
    y, p = scores(data, query)
    if len(np.unique(y)) < 2:
        why = NO_MATCH if not len(y) else "The selection holds only one class: no curve."
        return (figures.message(why),) * 3

    def make():
        y_desc, p_desc = ranked_scores(data, query)
        r = evaluation.ranking(y_desc, p_desc)
        return evaluation.curves(y, p, r), r["roc_auc"], r["pr_auc"]

    curves, auc, ap = data.cached("curves", query, make)
    return (
        figures.roc_curve(curves["roc"], auc),
        figures.pr_curve(curves["pr"], ap, float(y.mean())),
        figures.calibration(curves["calibration"]),
    )


def threshold_outputs(data, query, threshold):
    """Confusion matrix, precision/recall/F1 and lift on the selected customers."""
    if threshold is None:
        raise PreventUpdate
    y, p = scores(data, query)
    if not len(y):
        empty = figures.message(NO_MATCH)
        return empty, dbc.Alert(NO_MATCH, color="light"), empty
    t = float(threshold)
    m = evaluation.at_threshold(y, p, t)

    def pct(x):
        return "–" if math.isnan(x) else f"{x:.1%}"

    items = [
        ("Flagged as churners", f"{m['flagged']:,} of {len(y):,}"),
        ("Precision", pct(m["precision"])),
        ("Recall", pct(m["recall"])),
        ("F1", "–" if math.isnan(m["f1"]) else f"{m['f1']:.3f}"),
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
        f"{len(y):,} selected customers.",
        className="small text-muted mt-2",
    )
    lift = figures.lift_bars(evaluation.lift_of_ranked(ranked_scores(data, query)[0]))
    return figures.confusion(m["tp"], m["fp"], m["fn"], m["tn"]), html.Div([body, note]), lift


def register(app, data) -> None:
    table = candidates_table(data.meta)

    @app.callback(
        Output(ids.MODEL_CANDIDATES, "children"),
        Output(ids.MODEL_ROC, "figure"),
        Output(ids.MODEL_PR, "figure"),
        Output(ids.MODEL_CALIBRATION, "figure"),
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
