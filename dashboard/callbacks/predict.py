"""Prediction card: a form built from the model's input schema -> probability, band, CLV, why."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, html, no_update
from dash.exceptions import PreventUpdate

from analytics.formatting import display_name, money, reason_text
from analytics.metrics.planner import recommend_action
from analytics.model import predict
from analytics.services import customers, model
from dashboard import auth, ids

BAND_COLORS = {"Low": "success", "Medium": "warning", "High": "danger"}


def result_card(data, schema, features: list[str], values: list):
    """Inline problems for bad input; otherwise the scored result."""
    record = dict(zip(features, values, strict=True))
    clean, problems = predict.check_record(schema, record)
    if problems:
        return dbc.Alert(
            [
                html.Strong("Please fix:"),
                html.Ul(
                    [html.Li(f"{display_name(p.field)}: {p.message}") for p in problems],
                    className="mb-0",
                ),
            ],
            color="danger",
        )
    settings = data.ws.settings
    currency = settings.currency
    row = model.predict_records(data, [clean], top=5)[0]
    auth.count("predict")
    band = row["risk_band"]
    stats = [("Churn probability", f"{row['probability']:.1%}"), ("Risk band", band)]
    if "clv" in row:
        stats += [
            (display_name(key), money(row[key], currency))
            for key in ("clv", "value", "expected_loss")
        ]
    # The same words as the scored base's reasons (formatting.reason_text).
    reasons = [
        reason_text(d["feature"], d["value"], d["change_in_probability"], currency)
        for d in row["drivers"]
    ]
    drivers = [html.Li(r) for r in reasons]
    reason = reasons[0] if reasons else ""
    action = recommend_action(
        {
            "risk_band": band,
            "p_churn": row["probability"],
            "value": row.get("value"),
            "reason_1": reason,
        },
        save_rate=settings.save_rate,
        cost_per_contact=settings.cost_per_contact,
        currency=currency,
    )
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        dbc.Badge(
                            f"{band} risk",
                            color=BAND_COLORS.get(band, "secondary"),
                            className="fs-6",
                        )
                    ],
                    className="mb-2",
                ),
                dbc.Row(
                    [
                        dbc.Col(
                            [
                                html.Div(k, className="small text-muted"),
                                html.Div(v, className="fs-5 fw-semibold", id=f"predict-{i}"),
                            ],
                            xs=6,
                            className="mb-2",
                        )
                        for i, (k, v) in enumerate(stats)
                    ]
                ),
                html.H6("Why", className="mt-2"),
                html.Ol(drivers)
                if drivers
                else html.P(
                    "Nothing in this profile raises the risk above a typical customer's.",
                    className="small",
                ),
                html.P(
                    f"Threshold t = {row['threshold']:.3f}: High if p >= t, Medium if p >= t/2.",
                    className="small text-muted",
                ),
                dbc.Alert(
                    [html.Strong("Recommended action: "), action], color="primary", className="mb-0"
                ),
            ]
        ),
        className="shadow-sm",
    )


def register(app, data, schema) -> None:
    if not data.has_model:
        return  # the tab is a training panel until the model exists

    @app.callback(
        Output(ids.PREDICT_RESULT, "children"),
        Input(ids.PREDICT_SUBMIT, "n_clicks"),
        State({"type": ids.PREDICT_FIELD, "feature": ALL}, "value"),
        State({"type": ids.PREDICT_FIELD, "feature": ALL}, "id"),
        prevent_initial_call=True,
    )
    def _predict(n_clicks, values, id_list):
        if not n_clicks:
            raise PreventUpdate
        return result_card(data, schema, [i["feature"] for i in id_list], values)

    register_load(app, data, schema)


def loaded_values(data, schema, customer_id, features: list[str]):
    """The form's values from a real customer's profile (services.customers.customer), and a
    note; unknown ids leave the form as it is."""
    cid = (customer_id or "").strip()
    if not cid:
        return [no_update] * len(features), "Enter a customer id."
    found = customers.customer(data, cid)
    if found is None:
        return [no_update] * len(features), f"Customer {cid} is not in the current base."
    profile = found["profile"]
    values = [profile.get(f, no_update) for f in features]
    # The lists hold out-of-fold probabilities for the customers the model was trained on (a
    # model that never saw them); Predict uses the final model, so the two may differ a little.
    return values, (
        f"Loaded {cid}: p = {found['probability']:.1%} in the lists (out-of-fold for customers "
        "the model was trained on); Predict scores the form with the final model."
    )


def register_load(app, data, schema) -> None:
    @app.callback(
        Output({"type": ids.PREDICT_FIELD, "feature": ALL}, "value"),
        Output(ids.PREDICT_LOAD_NOTE, "children"),
        Input(ids.PREDICT_LOAD, "n_clicks"),
        State(ids.PREDICT_LOAD_ID, "value"),
        State({"type": ids.PREDICT_FIELD, "feature": ALL}, "id"),
        prevent_initial_call=True,
    )
    def _load(n_clicks, customer_id, id_list):
        if not n_clicks:
            raise PreventUpdate
        return loaded_values(data, schema, customer_id, [i["feature"] for i in id_list])
