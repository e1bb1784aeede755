"""The over-time routes of /api/v1: snapshots, movers, revenue retention, monitoring and
campaigns. Added to the API blueprint (dashboard/api/routes.py), so its login, rights,
readiness and error handling apply unchanged; the services (analytics/services/history.py) do
the work, and every answer is cut to a manager's scope there."""

from __future__ import annotations

from flask import current_app, request
from pydantic import ValidationError

from analytics.config import serve_settings_from_env
from analytics.services import alerts as alert_service
from analytics.services import history as service
from analytics.services.errors import InvalidInput
from analytics.store.alerts import AlertError
from dashboard import auth
from dashboard.api import history_models as hm
from dashboard.api.http import ApiError, json_response, read_json

EXTENSION = "retention_history"  # app.extensions key: the process's History (dashboard.live)
SERVE_CONFIG = "retention_serve_config"  # app.extensions key: ServeSettings (SMTP for alerts)


def history() -> service.History | None:
    return current_app.extensions.get(EXTENSION)


def add_routes(bp, current, view) -> None:
    """Add the routes to `bp`; current() is the request's base, view() its parsed query."""

    @bp.get("/snapshots")
    def snapshots_view():
        view()
        found = history()
        if found is None:
            return json_response({"snapshots": [], "note": service.NO_SNAPSHOTS})
        return json_response(service.snapshot_list(found, current()))

    @bp.get("/customers/movers")
    def movers_view():
        base = current()
        options, query, echo = view(hm.MoversQuery, base=base)
        found = service.movers(history(), base, query, limit=options.limit)
        return json_response({**found, "filters": echo})

    @bp.get("/revenue")
    def revenue_view():
        base = current()
        _, query, echo = view(base=base)
        return json_response({**service.revenue(history(), base, query), "filters": echo})

    @bp.get("/monitoring")
    def monitoring_view():
        base = current()
        _, query, echo = view(base=base)
        return json_response({**service.monitoring(history(), base, query), "filters": echo})

    @bp.get("/campaigns")
    def campaigns_view():
        view()
        return json_response(service.campaign_list(history(), current()))

    @bp.post("/campaigns")
    def campaign_create():
        if history() is None:  # before reading anything: nothing to draw a campaign from
            raise ApiError(409, service.NO_SNAPSHOTS)
        base = current()
        _, query, _echo = view(base=base)
        body = read_json()
        try:
            checked = hm.CampaignBody.model_validate(body)
        except ValidationError as exc:
            raise ApiError(422, "invalid request body", _problems(exc)) from None
        found = history()
        if found is None:
            raise ApiError(409, service.NO_SNAPSHOTS)
        user = auth.user()
        made = service.create_campaign(
            found, base, query, checked.model_dump(exclude_none=True), user.username,
            request.remote_addr,
        )  # fmt: skip
        return json_response(made, 201)


def add_alert_routes(bp) -> None:
    """Alert rules (admins define them; a manager reads the ones they own) and deliveries."""

    def who() -> dict:
        user = auth.user()
        return {"username": user.username, "role": user.role}

    def answer(work, status: int = 200):
        try:
            return json_response(work(), status)
        except AlertError as exc:
            raise ApiError(exc.status, str(exc)) from None
        except InvalidInput as exc:
            if request.method == "GET":
                raise  # a query parameter: the API's 400
            raise ApiError(422, "invalid request body",
                           [{"field": exc.field, "message": exc.message}]) from None  # fmt: skip

    @bp.get("/alerts/rules")
    def alert_rules():
        return answer(lambda: {"rules": alert_service.list_rules(auth.state(), **who())})

    @bp.post("/alerts/rules")
    def alert_rule_create():
        body = read_json()
        address = request.remote_addr
        return answer(
            lambda: alert_service.create_rule(auth.state(), body, **who(), address=address), 201
        )

    @bp.delete("/alerts/rules/<rule_id>")
    def alert_rule_delete(rule_id: str):
        return answer(lambda: alert_service.delete_rule(auth.state(), rule_id, **who(),
                                                        address=request.remote_addr))  # fmt: skip

    @bp.post("/alerts/rules/<rule_id>/test")
    def alert_rule_test(rule_id: str):
        # The server's delivery settings; an app built without them reads the environment.
        config = current_app.extensions.get(SERVE_CONFIG) or serve_settings_from_env()
        return answer(lambda: alert_service.send_rule_test(
            auth.state(), config, rule_id, **who(), address=request.remote_addr))  # fmt: skip

    @bp.get("/alerts/deliveries")
    def alert_deliveries():
        rule = request.args.get("rule_id")
        limit = request.args.get("limit", "100")
        return answer(lambda: {"deliveries": alert_service.list_deliveries(
            auth.state(), **who(), rule_id=rule, limit=limit)})  # fmt: skip


def _problems(exc: ValidationError) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors()
    ]
