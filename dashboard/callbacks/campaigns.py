"""Campaigns: created from the planner's contact list (services.history.create_campaign, as
POST /api/v1/campaigns), only the treated customers downloaded; listed with churn in each group
and the measured save rate once a later snapshot says who left (GET /api/v1/campaigns)."""

from __future__ import annotations

import json
import math
import re
from datetime import date

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from analytics import access, export
from analytics import columns as C
from analytics.services import history as service
from analytics.services.errors import InvalidInput
from dashboard import auth, ids
from dashboard.callbacks import snapshots
from dashboard.layout import LIVE

TAB = "campaigns"
PAST_SNAPSHOT = 'Pick "latest (live)" to create a campaign: it contacts customers now.'
PLAN_FIELDS = ("save_rate", "cost_per_contact", "margin", "discount")


def campaign_body(name, share_percent, size, limit, plan: tuple) -> dict:
    """POST /api/v1/campaigns's body from the form: the control share in percent as a share,
    the plan's assumptions, and `limit` when the user gives N. A bad N raises InvalidInput."""
    body = {"name": name or "", **dict(zip(PLAN_FIELDS, plan, strict=True))}
    if share_percent is not None:
        body["control_share"] = share_percent / 100
    if size == "given":
        whole = isinstance(limit, int | float) and math.isfinite(limit) and limit == int(limit)
        if not whole or limit < 1:
            raise InvalidInput("limit", "enter how many customers: a whole number, at least 1")
        body["limit"] = int(limit)
    return {k: v for k, v in body.items() if v is not None}


def treated_csv(base, treated_ids: list[str]) -> tuple[str, int]:
    """The treated customers' rows (the at-risk list's columns), in the contact list's order."""
    rows = base.id_positions.reindex(treated_ids).dropna().astype(int).to_numpy()
    frame = base.scored.iloc[rows][base.grid_fields]
    return export.list_csv(frame, base.ws.settings.currency), len(frame)


def _file_name(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "campaign"
    return f"campaign-{slug}-treated-{date.today():%Y-%m-%d}.csv"


def create(data, query, snapshot, form: tuple, plan: tuple):
    """(result, download) for the Create button: a campaign for the selection from the live
    scoring (a campaign contacts customers now), or why not."""
    user = auth.user()
    if user is None or not access.allowed(user.role, access.VIEWS):
        raise PreventUpdate  # the guard refuses these before Dash runs; kept as a backstop
    if snapshots.as_of_text(snapshot) is not None:
        return dbc.Alert(PAST_SNAPSHOT, color="warning", className="small mb-0"), no_update
    found = snapshots.history()
    if found is None:
        return dbc.Alert(service.NO_SNAPSHOTS, color="secondary", className="small"), no_update
    try:
        body = campaign_body(*form, plan)
        made = service.create_campaign(
            found, data, query, body, user.username, auth.client_address()
        )
    except InvalidInput as exc:
        return dbc.Alert(exc.message, color="danger", className="small mb-0"), no_update
    text, rows = treated_csv(data, made["treated_ids"])
    auth.audit_export("campaign treated list", query, rows, campaign=made["campaign_id"])
    result = dbc.Alert(
        [
            html.Strong(f"Campaign '{made['name']}' created"),
            f" from the snapshot of {made['as_of']}: {made['treated']:,} customers to contact "
            f"(their list is downloading) and {made['control']:,} held out as the control "
            "group, not to be contacted. The Campaigns tab measures the save rate once a later "
            "snapshot says who left.",
        ],
        color="success",
        className="small mb-0 campaign-made",
    )
    return result, dcc.send_string(text, _file_name(made["name"]))


def _group(item: dict, name: str) -> tuple[int | None, dict | None]:
    """(members, measured outcome {n, churned, churn_rate, unknown} or None) of a campaign's
    treated or control group."""
    return item.get(name), item.get(f"{name}_outcome")


def _churn(tally: dict | None) -> str:
    if not tally or tally.get("churn_rate") is None:
        return "–"
    return f"{tally['churn_rate']:.1%} ({tally['churned']:,} of {tally['n']:,})"


def _save_rate(item: dict):
    s = item.get("measured_save_rate")
    if s is None:
        return html.Span(item.get("note") or "Waiting for a later snapshot.", className="small")
    low, high = item.get("ci_low"), item.get("ci_high")
    interval = f" (95% interval {low:.0%} to {high:.0%})" if low is not None else ""
    return html.Span([html.Strong(f"{s:.0%}"), interval])


def campaign_rows(items: list[dict]) -> list:
    rows = []
    for item in items:
        treated, treated_out = _group(item, "treated")
        control, control_out = _group(item, "control")
        who = f"as of {item['as_of']}" + (
            f", by {item['created_by']}" if item.get("created_by") else ""
        )
        rows.append(
            html.Tr(
                [
                    html.Td(
                        [
                            html.Div(item["name"], className="fw-semibold"),
                            html.Div(who, className="small text-muted"),
                        ]
                    ),
                    html.Td(f"{treated:,}" if treated is not None else "–", className="text-end"),
                    html.Td(f"{control:,}" if control is not None else "–", className="text-end"),
                    html.Td(_churn(treated_out), className="text-end"),
                    html.Td(_churn(control_out), className="text-end"),
                    html.Td(_save_rate(item)),
                ]
            )
        )
    return rows


def campaign_table(result: dict):
    """The campaigns of services.history.campaign_list, newest first as it lists them."""
    if not result["campaigns"]:
        text = result.get("note") or "No campaigns yet."
        return dbc.Alert(f"{text} Create one from the Retention planner.", color="light")
    head = html.Thead(
        html.Tr(
            [
                html.Th("Campaign"),
                html.Th("Treated", className="text-end"),
                html.Th("Control", className="text-end"),
                html.Th("Churn, treated", className="text-end"),
                html.Th("Churn, control", className="text-end"),
                html.Th("Measured save rate"),
            ]
        )
    )
    body = html.Tbody(campaign_rows(result["campaigns"]))
    return dbc.Table(
        [head, body], size="sm", hover=True, responsive=True, className="mb-0 campaign-table"
    )


def register(app, data) -> None:
    if not data.has_model:
        return  # the tab is a training panel until the model exists

    @app.callback(
        Output(ids.CAMPAIGN_LIST, "children"),
        Input(ids.SNAPSHOT, "value"),
        Input(ids.TABS, "active_tab"),
    )
    def _campaigns(snapshot, tab):
        if tab != TAB:
            raise PreventUpdate
        base = snapshots.base_for(data, snapshot)
        found = snapshots.history()
        if found is None:
            return campaign_table({"campaigns": [], "note": service.NO_SNAPSHOTS})
        return campaign_table(service.campaign_list(found, base))

    if C.MONTHLY_REVENUE not in data.scored.columns:
        return  # no planner, so no form: the planner tab says why value views are off

    # A campaign contacts customers now: off while a past snapshot is picked (pure UI glue;
    # create() refuses such a request on the server too).
    app.clientside_callback(
        f"function(s) {{ const past = !!s && s !== '{LIVE}';"
        f" return [past, past ? {json.dumps(PAST_SNAPSHOT)} : '']; }}",
        Output(ids.CAMPAIGN_CREATE, "disabled"),
        Output(ids.CAMPAIGN_HINT, "children"),
        Input(ids.SNAPSHOT, "value"),
    )

    @app.callback(
        Output(ids.CAMPAIGN_RESULT, "children"),
        Output(ids.CAMPAIGN_DOWNLOAD, "data"),
        Input(ids.CAMPAIGN_CREATE, "n_clicks"),
        State(ids.FILTER_QUERY, "data"),
        State(ids.SNAPSHOT, "value"),
        State(ids.CAMPAIGN_NAME, "value"),
        State(ids.CAMPAIGN_SHARE, "value"),
        State(ids.CAMPAIGN_SIZE, "value"),
        State(ids.CAMPAIGN_LIMIT, "value"),
        State(ids.PLAN_SAVE_RATE, "value"),
        State(ids.PLAN_COST, "value"),
        State(ids.PLAN_MARGIN, "value"),
        State(ids.PLAN_DISCOUNT, "value"),
        prevent_initial_call=True,
    )
    def _create(clicks, query, snapshot, name, share, size, limit, *plan):
        if not clicks or query is None:
            raise PreventUpdate
        return create(data, query, snapshot, (name, share, size, limit), plan)
