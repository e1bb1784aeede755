"""The REST API under /api/v1: JSON in and out, over the same services the dashboard calls.

Nothing is fitted in a request: the routes read the scored base, filter it with
analytics.filters (strict: an unknown filter is an error, not silently dropped), and score new
customers with analytics.predict, the functions the prediction card uses.

Status codes (documented in dashboard/api/openapi.py, generated from dashboard/api/models.py):
- 400: a query parameter is wrong (unknown filter or level, bad sort/limit/offset), the body is
  not JSON, or the content type is not application/json. Every problem is listed.
- 401: no user: log in (the session cookie) or send `Authorization: Bearer <token>`; or the
  token is unknown, expired or revoked (dashboard.auth answers it before any route).
- 403: the user's role lacks the right (the body names the role needed).
- 404: unknown customer id (or one outside a manager's scope), or no such route under /api/.
- 405: a route exists for this path but not for this method.
- 409: the at-risk list needs monthly_revenue and the data has none: the request is fine, the
  data set cannot answer it (the same request succeeds on data with revenue).
- 413: the body is larger than the byte limit (64 KiB + 2 KiB per customer of the batch limit,
  about 20 MB by default), or a batch holds more customers than the batch limit (the app's
  RETENTION_BATCH_LIMIT setting, default 10,000): too large, not invalid, so the client splits it.
- 422: the body is JSON but its customers are invalid (unknown or missing fields, wrong types,
  out-of-range numbers, unknown category levels); every problem is listed with its field path.
- 503: no data is loaded; or the route needs the churn model and the server has none yet (it
  started on data without one and trains it as a job): the body says how far training is
  ("status", "progress", "step") and GET /api/v1/health says "ready" once it is done. The routes
  that need no model (health, kpis, trend, cohorts, drivers) answer meanwhile, without the risk
  figures.
A client never sees a stack trace: unexpected errors are logged here and answered with a
generic JSON 500.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Flask, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from analytics import access, budget, filters
from analytics import columns as C
from analytics.definitions import KPI_DEFINITIONS, TERMS
from analytics.model import predict
from analytics.services import customers as customer_service
from analytics.services import history as history_service
from analytics.services import model as model_service
from analytics.services import overview, planner
from analytics.services import training as training_status
from analytics.services.base import ServedBase
from analytics.services.errors import InvalidInput, ModelPending
from analytics.store import accounts, artifacts
from dashboard import auth
from dashboard.api import history as history_routes
from dashboard.api import models, openapi
from dashboard.api.http import (
    SNAPSHOT,
    ApiError,
    batch_limit,
    error_response,
    filters_echo,
    json_response,
    max_body_bytes,
    parse_query,
    parse_request,
    parse_sort,
    query_error,
    query_pairs,
    read_json,
)

log = logging.getLogger("dashboard.api")

PREFIX = "/api/v1"
BLUEPRINT = "api_v1"
LIFECYCLE_BLUEPRINT = "api_lifecycle"  # dashboard/api/lifecycle.py, mounted by dashboard.live
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
NOT_FOUND = "not found: see /api/v1/openapi.json for the routes"
INTERNAL = "internal error: the server could not answer this request; it has been logged"


def not_ready_reason(data: ServedBase | None) -> str | None:
    """Why the API cannot answer at all; None when it can (without a model yet, it answers the
    routes that need none)."""
    if data is None or getattr(data, "ws", None) is None:
        return "no data loaded"
    if data.ws.model is not None and data.ws.model.pipeline is None:
        return "no model loaded"
    if data.scored is None or not len(data.scored):
        return "the loaded data has no customers in the current base"
    return None


def not_ready(reason: str):
    return json_response({"status": "not ready", "reason": reason, "error": "not ready"}, 503)


def created_at(meta, version: str) -> str | None:
    """The sidecar's created_at; a model trained in this process has only its version name."""
    if meta.get("created_at"):
        return str(meta["created_at"])
    try:
        stamp = datetime.strptime(version.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC, microsecond=0).isoformat()


# Rights beyond the customer views (analytics.access), by endpoint; health needs no user.
RIGHTS = {
    "model_view": access.MODEL,
    "curves_view": access.MODEL,
    "threshold_view": access.MODEL,
    "audit_view": access.ADMINISTER,
    "alert_rules": access.ALERTS,
    "alert_deliveries": access.ALERTS,
    "alert_rule_create": access.ADMINISTER,
    "alert_rule_delete": access.ADMINISTER,
    "alert_rule_test": access.ADMINISTER,
}
# Routes that need the churn model (its scores, segments or pipeline), with what they show: 503
# while the first model trains, after the login and rights checks.
NEEDS_MODEL = {
    "segments_view": "the segments",
    "scatter_view": "the value x risk view",
    "at_risk_list": "the at-risk list",
    "customer": "a customer's detail",
    "planner_view": "the retention planner",
    "curves_view": "the model's curves",
    "threshold_view": "the threshold view",
    "predict_view": "predictions",
    "model_view": "the model view",
    "movers_view": "movers",
    "campaign_create": "campaigns",
}
# Filters on the model's columns (analytics.filters.NAMED): the same 503 before the model.
MODEL_FILTERS = {"risk": "the risk band filter", "segment": "the segment filter"}
Training = Callable[[], dict | None]


def model_pending(status: training_status.ModelStatus, what: str):
    """The 503 of a route that needs the model before there is one; Retry-After while one is
    training."""
    headers = {"Retry-After": "10"} if status.status == training_status.TRAINING else {}
    body = {**status.as_dict(), "error": status.api_error(), "needs_model": what}
    return json_response(body, 503, headers)


def create_blueprint(data: ServedBase | None, training: Training | None = None) -> Blueprint:
    """The API over `data`. Without a model yet, `training()` is the current training job of
    the data (training_status.model_status reads it), asked per request."""
    bp = Blueprint(BLUEPRINT, __name__, url_prefix=PREFIX)
    ready_problem = not_ready_reason(data)
    has_model = ready_problem is None and data.has_model
    schema = predict.input_schema(data.meta) if has_model else {}
    # Table columns the model leaves out: a customer's profile carries them, /predict ignores them.
    unused = set(data.ws.table.features) - set(schema) if has_model else set()

    def status() -> training_status.ModelStatus:
        return training_status.model_status(has_model, training() if training else None)

    @functools.cache
    def data_hash() -> str:  # of the table, as the model's sidecar will record it
        return artifacts.frame_hash(data.ws.table.frame)

    @bp.before_request
    def _rights_limits_and_readiness():
        endpoint = (request.endpoint or "").rsplit(".", 1)[-1]
        limit = max_body_bytes(batch_limit())
        app_limit = current_app.config.get("MAX_CONTENT_LENGTH")  # RETENTION_MAX_BODY_MB
        request.max_content_length = min(limit, app_limit) if app_limit else limit
        if endpoint == "health":
            return None
        if ready_problem is not None and endpoint != "audit_view":
            return not_ready(ready_problem)
        # The login guard (dashboard.auth) has required a user already; this holds even on a
        # server built without it.
        user = auth.user()
        if user is None:
            return auth.unauthenticated()
        right = RIGHTS.get(endpoint, access.VIEWS)
        if not access.allowed(user.role, right):
            return auth.forbidden(right)
        if not has_model and endpoint in NEEDS_MODEL:
            return model_pending(status(), NEEDS_MODEL[endpoint])
        return None

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_response(exc.body, exc.status)

    @bp.errorhandler(InvalidInput)
    def _invalid(exc: InvalidInput):
        return json_response(
            {
                "error": "invalid query parameters",
                "errors": [{"field": exc.field, "message": exc.message}],
            },
            400,
        )

    @bp.errorhandler(ModelPending)
    def _model_pending(exc: ModelPending):  # an option of a route that needs the model
        return model_pending(status(), exc.what)

    @bp.errorhandler(budget.OverBudget)
    def _over_budget(exc: budget.OverBudget):
        log.warning("%s %s: %s", request.method, request.path, exc)
        return json_response({"error": str(exc)}, 503, {"Retry-After": "30"})

    @bp.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return http_error_json(exc)

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("API error on %s %s", request.method, request.path)
        return error_response(500, INTERNAL)

    def current() -> ServedBase:
        """The base this request reads: the snapshot ?snapshot=<as_of> names, else the live."""
        return history_service.pick(history_routes.history(), data, request.args.get(SNAPSHOT))

    def view(model=None, check=None, base: ServedBase | None = None):
        """(options, canonical filter query, filters echo) of this request."""
        if not has_model:
            for name, what in MODEL_FILTERS.items():
                if name in request.args:
                    raise ModelPending(what)
        options, state = parse_request(base or data, model, check)
        return options, filters.to_query(state), filters_echo(state)

    @bp.get("/health")
    def health():
        if ready_problem is not None:
            return not_ready(ready_problem)
        if not has_model:  # serving: 200, with how far the model is
            now = status()
            return json_response(
                {
                    **now.as_dict(),
                    "message": now.text(),
                    "rows": len(data.scored),
                    "model_version": None,
                    "data_hash": data_hash(),
                    "data": Path(data.ws.source).name,
                    "currency": data.ws.settings.currency,
                }
            )
        return json_response(
            {
                "status": "ready",
                "rows": len(data.scored),
                "model_version": data.ws.model.version,
                "data_hash": data.meta.get("data_hash"),
                "data": Path(data.ws.source).name,
                "currency": data.ws.settings.currency,
            }
        )

    @bp.get("/kpis")
    def kpi_view():
        base = current()
        _, query, echo = view(base=base)
        values = history_service.kpis_with_change(
            history_routes.history(), base, query, overview.kpis(base, query)
        )
        return json_response({**values, "filters": echo, "definitions": KPI_DEFINITIONS})

    @bp.get("/trend")
    def trend_view():
        options, query, echo = view(models.TrendQuery)
        return json_response({**overview.trend(data, query, split=options.split), "filters": echo})

    @bp.get("/cohorts")
    def cohorts_view():
        _, query, echo = view()
        return json_response({**overview.cohorts(data, query), "filters": echo})

    @bp.get("/segments")
    def segments_view():
        base = current()
        _, query, echo = view(base=base)
        return json_response({**overview.segments(base, query), "filters": echo})

    @bp.get("/drivers")
    def drivers_view():
        base = current()
        options, query, echo = view(models.DriversQuery, base=base)
        return json_response({**overview.drivers(base, query, options.factor), "filters": echo})

    @bp.get("/customers/value-risk")
    def scatter_view():
        base = current()
        _, query, echo = view(base=base)
        return json_response({**customer_service.scatter(base, query), "filters": echo})

    @bp.get("/customers/at-risk")
    def at_risk_list():
        base = current()
        sorts = []

        def check_sort(pairs, problems):
            sorts.extend(parse_sort(pairs.get("sort", []), base.grid_fields, problems))

        options, query, echo = view(models.AtRiskQuery, check_sort, base=base)
        sort = sorts
        try:
            page = customer_service.at_risk(
                base, query, sort=sort, offset=options.offset, limit=options.limit
            )
        except InvalidInput as exc:
            if exc.field == "list":  # the data cannot answer it (no revenue column)
                raise ApiError(409, exc.message) from None
            raise
        return json_response(
            {
                **page,
                "sort": [("" if asc else "-") + col for col, asc in sort],
                "filters": echo,
            }
        )

    history_routes.add_routes(bp, current, view)
    history_routes.add_alert_routes(bp)

    @bp.get("/customers/<customer_id>")
    def customer(customer_id: str):
        found = customer_service.customer(current(), customer_id)
        if found is None:
            raise ApiError(404, f"customer {customer_id!r} is not in the current base")
        return json_response(found)

    @bp.get("/planner")
    def planner_view():
        base = current()
        options, query, echo = view(models.PlannerQuery, base=base)
        measured = history_service.measured_save_rate(history_routes.history(), base)
        defaults = planner.Assumptions.defaults(data.ws.settings)
        if measured is not None:  # METRICS.md: the measured s when a campaign measured one
            defaults = dataclasses.replace(defaults, save_rate=measured["save_rate"])
        given = {k: getattr(options, k) for k in planner.Assumptions.LIMITS}
        assumptions = planner.Assumptions.checked(
            **{k: getattr(defaults, k) if v is None else v for k, v in given.items()}
        )
        result = planner.plan(base, query, assumptions, contacts=options.contacts)
        source = planner.save_rate_source(options.save_rate, measured)
        return json_response({**result, "save_rate_source": source, "filters": echo})

    @bp.get("/model/curves")
    def curves_view():
        _, query, echo = view()
        return json_response({**model_service.curves(data, query), "filters": echo})

    @bp.get("/model/threshold")
    def threshold_view():
        options, query, echo = view(models.ThresholdQuery)
        t = data.threshold if options.threshold is None else options.threshold
        return json_response({**model_service.threshold_view(data, query, t), "filters": echo})

    @bp.post("/predict")
    def predict_view():
        body = read_json()
        limit = batch_limit()
        batch = isinstance(body, dict) and "customers" in body
        problems: list[predict.Problem] = []
        if batch:
            records = body["customers"]
            problems += [
                predict.Problem(str(k), 'unknown field: a batch is {"customers": [...]}')
                for k in body
                if k != "customers"
            ]
            if not isinstance(records, list):
                raise ApiError(
                    422,
                    "invalid request body",
                    [{"field": "customers", "message": "expected an array of customer objects"}],
                )
            if len(records) > limit:
                raise ApiError(
                    413,
                    f"batch of {len(records):,} customers exceeds the limit of {limit:,}: "
                    "split it into smaller batches",
                    limit=limit,
                )
            if not records:
                problems.append(predict.Problem("customers", f"expected 1 to {limit:,} customers"))
            where = [f"customers[{i}]" for i in range(len(records))]
        elif isinstance(body, dict):
            records, where = [body], [""]
        else:
            raise ApiError(
                422,
                "invalid request body",
                [
                    {
                        "field": "body",
                        "message": 'expected a customer object or {"customers": [...]}',
                    }
                ],
            )
        clean = []
        for record, path in zip(records, where, strict=True):
            values, found = predict.check_record(schema, record, where=path, ignored=unused)
            if isinstance(record, dict) and C.CUSTOMER_ID in record:
                cid = record[C.CUSTOMER_ID]
                if not isinstance(cid, str | int) or isinstance(cid, bool):
                    prefix = f"{path}." if path else ""
                    found.append(
                        predict.Problem(f"{prefix}{C.CUSTOMER_ID}", "expected a string or integer")
                    )
            problems += found
            clean.append(values)
        if problems:
            raise ApiError(422, "invalid request body", [p.as_dict() for p in problems])
        rows = model_service.predict_records(data, clean)
        auth.count("predict", len(rows))
        version = data.ws.model.version
        if batch:
            return json_response(
                {"model_version": version, "count": len(rows), "predictions": rows}
            )
        return json_response({"model_version": version, **rows[0]})

    @bp.get("/model")
    def model_view():
        summary = model_service.summary(data)
        return json_response(
            {
                **summary,
                "created_at": created_at(data.meta, summary["version"]),
                "features": {name: {"type": spec["kind"], **spec} for name, spec in schema.items()},
                "definitions": {
                    k: TERMS[k] for k in ("p", "threshold", "risk_band", "clv", "value", "drivers")
                },
            }
        )

    @bp.get("/audit")
    def audit_view():
        pairs = query_pairs()
        problems = [
            {"field": k, "message": "unknown parameter: limit is the only one"}
            for k in pairs
            if k != "limit"
        ]
        options = parse_query(models.AuditQuery, pairs, problems)
        if problems:
            raise query_error(problems)
        return json_response(
            {
                "events": accounts.events(auth.state(), options.limit),
                "usage": accounts.usage(auth.state()),
                "limit": options.limit,
            }
        )

    @bp.get("/openapi.json")
    def openapi_document():
        mounted = LIFECYCLE_BLUEPRINT in current_app.blueprints  # the admin's routes too
        return json_response(
            openapi.document(data, schema, batch_limit=batch_limit(), lifecycle=mounted)
        )

    return bp


def allowed_methods(path: str) -> list[str]:
    """Methods an API route accepts for `path` (not counting the /api/ catch-all)."""
    adapter = current_app.url_map.bind("localhost")
    allowed = []
    for method in METHODS:
        try:
            endpoint, _ = adapter.match(path, method=method)
        except (HTTPException, RoutingException):
            continue
        if endpoint.startswith(BLUEPRINT + "."):
            allowed.append(method)
    return allowed


def not_found_or_wrong_method():
    """No API route answers this method here: 405 if one answers another method, else 404."""
    allowed = allowed_methods(request.path)
    if allowed:
        return json_response(
            {"error": f"method {request.method} not allowed; allowed: {', '.join(allowed)}"},
            405,
            {"Allow": ", ".join(allowed)},
        )
    return error_response(404, NOT_FOUND)


def http_error_json(exc: HTTPException):
    code = exc.code or 500
    if code in (404, 405):
        return not_found_or_wrong_method()
    if code == 413:
        limit = request.max_content_length
        shown = f" of {limit:,} bytes" if limit else ""
        return error_response(413, f"request body is larger than the limit{shown}")
    if code >= 500:
        log.error("API %s on %s %s: %s", code, request.method, request.path, exc)
        return error_response(code, INTERNAL)
    headers = {k: v for k, v in exc.get_headers() if k == "Allow"}
    return json_response({"error": exc.name.lower()}, code, headers)


def _app_error(exc: HTTPException):
    """App-level: JSON for /api/ paths, the default page elsewhere (the dashboard's own)."""
    if not request.path.startswith(("/api/", "/_dash-")):  # Dash's routes answer JSON too
        return exc
    original = getattr(exc, "original_exception", None)
    if original is not None:
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
        return error_response(500, INTERNAL)
    return http_error_json(exc)


def register(server: Flask, data: ServedBase | None, training: Training | None = None) -> None:
    """Add the API to the dashboard's Flask server (`training`: see create_blueprint)."""
    server.register_blueprint(create_blueprint(data, training))

    # Dash answers every other GET path with its page; under /api/ an unknown path is a JSON
    # 404 (or 405 when another method has a route there). Other methods fall to the handlers.
    def api_unknown(rest: str = ""):
        return not_found_or_wrong_method()

    for rule in ("/api/", "/api/<path:rest>"):
        server.add_url_rule(
            rule,
            "api_unknown",
            api_unknown,
            methods=["GET", "HEAD", "OPTIONS"],
            provide_automatic_options=False,
        )
    for code in (400, 404, 405, 413, 500):
        server.register_error_handler(code, _app_error)
