"""The REST API under /api/v1: JSON in and out, over the same DashboardData the dashboard uses.

Nothing is fitted in a request: the routes read the scored base, filter it with
analytics.filters (strict: an unknown filter is an error, not silently dropped), and score new
customers with analytics.model.predict, the functions the prediction card uses.

Status codes (documented in dashboard/openapi.py):
- 400: a query parameter is wrong (unknown filter or level, bad sort/limit/offset), the body is
  not JSON, or the content type is not application/json. Every problem is listed.
- 404: unknown customer id, or no such route under /api/.
- 405: a route exists for this path but not for this method.
- 409: the at-risk list needs monthly_revenue and the data has none: the request is fine, the
  data set cannot answer it (the same request succeeds on data with revenue).
- 413: the body is larger than the byte limit (64 KiB + 2 KiB per customer of the batch limit,
  about 20 MB by default), or a batch holds more customers than the batch limit (the app's
  RETENTION_BATCH_LIMIT setting, default 10,000): too large, not invalid, so the client splits it.
- 422: the body is JSON but its customers are invalid (unknown or missing fields, wrong types,
  out-of-range numbers, unknown category levels); every problem is listed with its field path.
- 503: no data or model is loaded.
A client never sees a stack trace: unexpected errors are logged here and answered with a
generic JSON 500.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import RoutingException

from analytics import columns as C
from analytics import filters, paging
from analytics.definitions import KPI_DEFINITIONS, TERMS
from analytics.metrics.planner import recommend_action
from analytics.model import predict
from analytics.result import Unavailable
from dashboard import openapi
from dashboard.callbacks.customers import at_risk, grid_rows
from dashboard.data import DashboardData

log = logging.getLogger("dashboard.api")

PREFIX = "/api/v1"
BLUEPRINT = "api_v1"
DEFAULT_BATCH_LIMIT = 10_000
BATCH_LIMIT_KEY = "RETENTION_BATCH_LIMIT"
# Body size limit: a generous allowance per customer object plus room for the envelope, so a
# full batch of ordinary records fits and a body far beyond it is refused before parsing.
BYTES_PER_CUSTOMER = 2048
ENVELOPE_BYTES = 64 * 1024
MAX_LIMIT = openapi.MAX_LIMIT
DEFAULT_LIMIT = openapi.DEFAULT_LIMIT
PAGING_PARAMS = ("sort", "limit", "offset")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
NOT_FOUND = "not found: see /api/v1/openapi.json for the routes"
INTERNAL = "internal error: the server could not answer this request; it has been logged"


class ApiError(Exception):
    """An answer other than 200, with a JSON body."""

    def __init__(self, status: int, error: str, errors: list[dict] | None = None, **extra):
        super().__init__(error)
        self.status = status
        self.body = {"error": error, **({"errors": errors} if errors is not None else {}), **extra}


# -- configuration ---------------------------------------------------------------------------


def batch_limit() -> int:
    """The most customers one POST /predict may hold: the app's RETENTION_BATCH_LIMIT setting
    (dashboard.server validates the environment variable and sets it), default 10,000."""
    return int(current_app.config.get(BATCH_LIMIT_KEY, DEFAULT_BATCH_LIMIT))


def max_body_bytes(limit: int) -> int:
    return ENVELOPE_BYTES + limit * BYTES_PER_CUSTOMER


# -- JSON out --------------------------------------------------------------------------------


def plain(value):
    """JSON-ready: numpy scalars to Python, NaN/inf/NaT to null, dates to ISO text."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


# <, > and & never occur outside strings in JSON, so escaping them everywhere is safe; a body
# pasted into HTML, or sniffed by an old browser, then carries no markup.
_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _other(value):
    """json.dumps' fallback for what it cannot write itself; same results as plain()."""
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return plain(value)
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)


def json_response(payload, status: int = 200, headers: Mapping[str, str] | None = None):
    try:
        # Most bodies are plain already (a 10,000-row prediction: walking it first took 0.3 s).
        text = json.dumps(payload, allow_nan=False, default=_other)
    except ValueError:  # a NaN or infinity somewhere: plain() turns them into null
        text = json.dumps(plain(payload), allow_nan=False)
    text = text.translate(_HTML_ESCAPES)
    response = Response(text, status=status, mimetype="application/json")
    for key, val in (headers or {}).items():
        response.headers[key] = val
    return response


def error_response(status: int, error: str, **extra):
    return json_response({"error": error, **extra}, status)


# -- JSON in ---------------------------------------------------------------------------------


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def read_json():
    """The request body as JSON; 400 for a wrong content type or malformed JSON, 413 when too
    large (before it is read whole)."""
    if not request.is_json:
        raise ApiError(
            400,
            f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}",
        )
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8 JSON"
        raise ApiError(400, f"malformed JSON body: {detail}") from None


# -- query parameters ------------------------------------------------------------------------


def _query_pairs(exclude: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Query parameters as name -> values; blank values are dropped, as in dashboard links."""
    pairs = parse_qs(request.query_string.decode("utf-8", "replace"), keep_blank_values=False)
    return {k: v for k, v in pairs.items() if k not in exclude}


def parse_filters(data: DashboardData, pairs: Mapping[str, list[str]]):
    """(FilterState, problems): each parameter is checked on its own so every problem is listed
    with the parameter that caused it."""
    problems = []
    for name, values in pairs.items():
        try:
            filters.from_pairs({name: values}, data.allowed, strict=True)
        except filters.FilterError as exc:
            problems.append({"field": name, "message": str(exc)})
    bounds = {k: pairs[k] for k in (filters.TENURE_MIN, filters.TENURE_MAX) if k in pairs}
    if len(bounds) == 2 and not any(p["field"] in bounds for p in problems):
        try:
            filters.from_pairs(bounds, data.allowed, strict=True)
        except filters.FilterError as exc:
            problems.append({"field": filters.TENURE_MIN, "message": str(exc)})
    if problems:
        return None, problems
    return filters.from_pairs(pairs, data.allowed, strict=True), []


def filters_echo(state: filters.FilterState) -> dict:
    query = filters.to_query(state)
    levels = {
        k: v
        for k, v in parse_qs(query.lstrip("?")).items()
        if k not in (filters.TENURE_MIN, filters.TENURE_MAX)
    }
    return {
        "query": query,
        "levels": levels,
        "tenure_min": state.tenure_min,
        "tenure_max": state.tenure_max,
    }


def _whole(name: str, raw: str, low: int, high: int | None, problems: list) -> int | None:
    if not re.fullmatch(r"[0-9]{1,15}", raw.strip()):
        problems.append({"field": name, "message": f"{raw!r}: expected a whole number"})
        return None
    value = int(raw.strip())
    if value < low or (high is not None and value > high):
        bound = f"{low} to {high}" if high is not None else f">= {low}"
        problems.append({"field": name, "message": f"{value} is out of range: expected {bound}"})
        return None
    return value


def parse_sort(raw_values: list[str], allowed: list[str], problems: list):
    sort = []
    for raw in raw_values:
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            column, ascending = (part[1:], False) if part.startswith("-") else (part, True)
            column = column.lstrip("+")
            if column not in allowed:
                problems.append(
                    {
                        "field": "sort",
                        "message": f"cannot sort by {column!r}; allowed: {', '.join(allowed)} "
                        "(prefix with - for descending)",
                    }
                )
            else:
                sort.append((column, ascending))
    return sort


def query_error(problems: list[dict]) -> ApiError:
    return ApiError(400, "invalid query parameters", problems)


# -- the routes ------------------------------------------------------------------------------


def not_ready_reason(data: DashboardData | None) -> str | None:
    if data is None or getattr(data, "ws", None) is None:
        return "no data loaded"
    if getattr(data.ws, "model", None) is None or data.ws.model.pipeline is None:
        return "no model loaded"
    if data.scored is None or not len(data.scored):
        return "the loaded data has no customers in the current base"
    return None


def not_ready(reason: str):
    return json_response({"status": "not ready", "reason": reason, "error": "not ready"}, 503)


def created_at(meta: Mapping, version: str) -> str | None:
    """The sidecar's created_at; a model trained in this process has only its version name."""
    if meta.get("created_at"):
        return str(meta["created_at"])
    try:
        stamp = datetime.strptime(version.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC, microsecond=0).isoformat()


def create_blueprint(data: DashboardData | None) -> Blueprint:
    bp = Blueprint(BLUEPRINT, __name__, url_prefix=PREFIX)
    ready_problem = not_ready_reason(data)
    schema = predict.input_schema(data.meta) if ready_problem is None else {}
    id_positions: pd.Series | None = None
    if ready_problem is None:
        ids = data.scored[C.CUSTOMER_ID].astype(str)
        first = ~ids.duplicated().to_numpy()
        id_positions = pd.Series(np.flatnonzero(first), index=pd.Index(ids[first].to_numpy()))

    @bp.before_request
    def _limits_and_readiness():
        request.max_content_length = max_body_bytes(batch_limit())
        endpoint = request.endpoint or ""
        if ready_problem is not None and not endpoint.endswith(".health"):
            return not_ready(ready_problem)
        return None

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_response(exc.body, exc.status)

    @bp.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return http_error_json(exc)

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("API error on %s %s", request.method, request.path)
        return error_response(500, INTERNAL)

    @bp.get("/health")
    def health():
        if ready_problem is not None:
            return not_ready(ready_problem)
        return json_response(
            {
                "status": "ready",
                "rows": len(data.scored),
                "model_version": data.ws.model.version,
                "data_hash": data.meta.get("data_hash"),
                "data": Path(data.ws.source).name,
            }
        )

    @bp.get("/kpis")
    def kpi_view():
        state, problems = parse_filters(data, _query_pairs())
        if problems:
            raise query_error(problems)
        query = filters.to_query(state)
        values = data.kpis(query)
        return json_response(
            {**values, "filters": filters_echo(state), "definitions": KPI_DEFINITIONS}
        )

    @bp.get("/customers/at-risk")
    def at_risk_list():
        args = _query_pairs()
        state, problems = parse_filters(data, _query_pairs(exclude=PAGING_PARAMS))
        problems = list(problems)
        sort = parse_sort(args.get("sort", []), data.grid_fields, problems)
        limit = (
            _whole("limit", args["limit"][-1], 1, MAX_LIMIT, problems)
            if "limit" in args
            else DEFAULT_LIMIT
        )
        offset = _whole("offset", args["offset"][-1], 0, None, problems) if "offset" in args else 0
        if problems:
            raise query_error(problems)
        query = filters.to_query(state)
        hv = at_risk(data, query)
        if isinstance(hv, Unavailable):
            raise ApiError(409, hv.reason)
        key = (repr(sort), repr([]))
        selected = data.cached(
            "at_risk_sel", query, lambda: paging.select(hv, sort=sort), key, large=True
        )
        start = min(offset, len(selected))
        rows, total = paging.page(selected, start, start + limit)
        return json_response(
            {
                "total": total,
                "limit": limit,
                "offset": offset,
                "sort": [("" if asc else "-") + col for col, asc in sort],
                "filters": filters_echo(state),
                "items": grid_rows(rows, data.grid_fields),
            }
        )

    @bp.get("/customers/<customer_id>")
    def customer(customer_id: str):
        pos = id_positions.get(customer_id)
        if pos is None:
            raise ApiError(404, f"customer {customer_id!r} is not in the current base")
        row = data.scored.iloc[int(pos)]
        settings = data.ws.settings
        features = [f for f in data.ws.table.features if f in row.index]

        def get(col):
            return row[col] if col in row.index else None

        return json_response(
            {
                "customer_id": str(row[C.CUSTOMER_ID]),
                "profile": {f: row[f] for f in features},
                "churned": get(C.CHURNED),
                "probability": get(C.P_CHURN),
                "risk_band": get(C.RISK_BAND),
                "threshold": data.threshold,
                "segment": get(C.SEGMENT),
                "clv": get(C.CLV),
                "value": get(C.VALUE),
                "expected_loss": get(C.EXPECTED_LOSS),
                "value_tier": get(C.VALUE_TIER),
                "drivers": [str(row[r]) for r in C.REASONS if isinstance(get(r), str) and row[r]],
                "recommended_action": recommend_action(
                    row, save_rate=settings.save_rate, cost_per_contact=settings.cost_per_contact
                ),
            }
        )

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
            values, found = predict.check_record(schema, record, where=path)
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
        settings = data.ws.settings
        rows = predict.predict(
            data.ws.model, clean, margin=settings.margin, discount=settings.discount
        )
        version = data.ws.model.version
        if batch:
            return json_response(
                {"model_version": version, "count": len(rows), "predictions": rows}
            )
        return json_response({"model_version": version, **rows[0]})

    @bp.get("/model")
    def model_view():
        meta = data.meta
        model = data.ws.model
        importance = model.importance
        return json_response(
            {
                "version": model.version,
                "created_at": created_at(meta, model.version),
                "data_hash": meta.get("data_hash"),
                "chosen": meta.get("chosen"),
                "candidates": meta.get("candidates", []),
                "metrics": meta.get("metrics", {}),
                "holdout": meta.get("holdout"),
                "threshold": meta.get("threshold"),
                "threshold_rule": meta.get("threshold_rule"),
                "protocol": meta.get("protocol"),
                "window_months": meta.get("window_months", 1),
                "base_rows": meta.get("base_rows"),
                "features": {name: {"type": spec["kind"], **spec} for name, spec in schema.items()},
                "importance": importance.to_dict("records") if importance is not None else [],
                "segments": meta.get("segments"),
                "definitions": {
                    k: TERMS[k] for k in ("p", "threshold", "risk_band", "clv", "value", "drivers")
                },
            }
        )

    @bp.get("/openapi.json")
    def openapi_document():
        return json_response(openapi.document(data, schema, batch_limit=batch_limit()))

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
    if not request.path.startswith("/api/"):
        return exc
    original = getattr(exc, "original_exception", None)
    if original is not None:
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
        return error_response(500, INTERNAL)
    return http_error_json(exc)


def register(server: Flask, data: DashboardData | None) -> None:
    """Add the API to the dashboard's Flask server."""
    server.register_blueprint(create_blueprint(data))

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
