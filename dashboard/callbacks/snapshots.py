"""The snapshot the customer views read (the picker, kept in the URL as ?snapshot=<as_of>, the
name the API takes), the picker's dates and the monitoring banner shown on every tab.

Every view callback turns the picker's value into a base with `base_for`, which is
services.history.pick, the API's own choice: a manager's scope then applies to a snapshot
exactly as to the live base (ServedBase cuts every selection to the request's scope).
"""

from __future__ import annotations

import re
from datetime import date

import dash_bootstrap_components as dbc
from dash import Input, Output, html
from dash.exceptions import PreventUpdate
from flask import current_app, g, has_app_context, has_request_context

from analytics.services import history as service
from analytics.services.base import ServedBase
from analytics.services.errors import InvalidInput
from dashboard import ids
from dashboard.layout import LIVE, LIVE_LABEL

# app.extensions key of the process's History (set by dashboard.live; the API's
# dashboard.api.history.EXTENSION, which callbacks may not import): None without a state
# database, and then the over-time views say there are no snapshots yet.
HISTORY = "retention_history"
AS_OF = re.compile(r"\d{4}-\d{2}-\d{2}")


def history() -> service.History | None:
    return current_app.extensions.get(HISTORY) if has_app_context() else None


def as_of_text(value) -> str | None:
    """The picker's value as services.history.pick takes it: None for the live base."""
    return None if value in (None, "", LIVE) else str(value)


def base_for(data: ServedBase, value) -> ServedBase:
    """The base a view reads for the picker's `value`. The picker offers only known dates and
    the URL callback drops unknown ones, so an unknown date here is a forged request: no
    update."""
    try:
        return service.pick(history(), data, as_of_text(value))
    except InvalidInput:
        raise PreventUpdate from None


def base_or_live(data: ServedBase, text: str | None) -> ServedBase:
    """The snapshot `text` names, else the live base (for a date that is not, or no more, a
    snapshot's: known_as_of has already dropped it from the URL)."""
    try:
        return service.pick(history(), data, text)
    except InvalidInput:
        return data


def measured_save_rate(base: ServedBase) -> dict | None:
    """services.history.measured_save_rate, once per request (the URL callback asks for the
    save rate's default on every change)."""
    if not has_request_context():
        return service.measured_save_rate(history(), base)
    cache = g.setdefault("measured_save_rates", {})
    key = id(base)
    if key not in cache:
        cache[key] = service.measured_save_rate(history(), base)
    return cache[key]


SAVE_RATE_DECIMALS = 3  # the measured rate as the planner's input shows it: 0.367


def save_rate_default(data: ServedBase, base: ServedBase) -> tuple[float, dict | None]:
    """(the planner's save-rate default, the measured save rate or None): the one a campaign
    measured (rounded for the input) when there is one, else RETENTION_SAVE_RATE."""
    measured = measured_save_rate(base)
    if measured is None:
        return data.ws.settings.save_rate, None
    return round(float(measured["save_rate"]), SAVE_RATE_DECIMALS), measured


def known_as_of(data: ServedBase, text: str | None) -> str | None:
    """`text` when it names a snapshot there is (a link's ?snapshot=), else None (live)."""
    if text is None or not AS_OF.fullmatch(text):
        return None
    found = history()
    if found is None:
        return None
    try:
        found.resolve(text, data)
    except InvalidInput:
        return None
    return text


def picker_options(found: service.History | None, data: ServedBase) -> list[dict]:
    """ "latest (live)", then every as_of, newest first (services.history.snapshot_list)."""
    options = [{"label": LIVE_LABEL, "value": LIVE}]
    if found is None:
        return options
    for item in service.snapshot_list(found, data)["snapshots"]:
        label = item["as_of"] + (" (the live model's)" if item.get("current") else "")
        options.append({"label": label, "value": item["as_of"]})
    return options


def snapshot_note(found: service.History | None, base: ServedBase, value) -> object:
    """Above the KPIs when a snapshot is picked: which one the views read."""
    if as_of_text(value) is None or found is None:
        return None
    info = found.current(base)
    if info is None:
        return None
    return dbc.Alert(
        [
            html.Strong(f"Snapshot of {info.label}"),
            f" (model {info.model_version}): the customer views read this scoring; the "
            "trend and cohorts stay live.",
        ],
        color="info",
        className="py-2 px-3 small mb-2",
    )


def banner(text: str | None):
    """The monitoring banner (services.history.monitoring's `banner`), on every tab."""
    if not text:
        return None
    return dbc.Alert(
        [html.Strong("Model check: "), text, " See the Monitoring tab."],
        color="warning",
        className="py-2 small mb-3 monitor-banner",
        dismissable=True,
    )


def since_text(as_of: str | None, previous: str | None) -> str:
    """'last month' when the previous snapshot is about a month earlier, else its date."""
    try:
        days = (date.fromisoformat(as_of) - date.fromisoformat(previous)).days
    except (TypeError, ValueError):
        return f"the snapshot of {previous}" if previous else "the previous snapshot"
    return "last month" if 20 <= days <= 45 else previous


def register(app, data: ServedBase) -> None:
    @app.callback(Output(ids.SNAPSHOT, "options"), Input(ids.URL, "pathname"))
    def _snapshots(_path):
        return picker_options(history(), data)

    @app.callback(Output(ids.MONITOR_BANNER, "children"), Input(ids.URL, "pathname"))
    def _banner(_path):
        if not data.has_model:
            return None
        # The user's whole scope: drift is the model's, realised figures the scope's.
        return banner(service.monitoring(history(), data, "").get("banner"))
