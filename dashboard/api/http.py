"""HTTP plumbing of /api/v1: JSON in and out, errors, query parameters and filters."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
from flask import Response, current_app, request
from pydantic import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from analytics import access, filters
from analytics.plain import plain
from analytics.services.base import ServedBase

log = logging.getLogger("dashboard.api")

DEFAULT_BATCH_LIMIT = 10_000
BATCH_LIMIT_KEY = "RETENTION_BATCH_LIMIT"
# Body size limit: a generous allowance per customer object plus room for the envelope, so a
# full batch of ordinary records fits and a body far beyond it is refused before parsing.
BYTES_PER_CUSTOMER = 2048
ENVELOPE_BYTES = 64 * 1024


class ApiError(Exception):
    """An answer other than 200, with a JSON body."""

    def __init__(self, status: int, error: str, errors: list[dict] | None = None, **extra):
        super().__init__(error)
        self.status = status
        self.body = {"error": error, **(_bounded(errors) if errors is not None else {}), **extra}


# What an error echoes of the request is bounded: a 20 MB body of unknown keys once gave a
# 31 MB answer naming each of them.
MAX_ERRORS = 50
SNAPSHOT = "snapshot"  # ?snapshot=<as_of>: a view of that snapshot instead of the live base
MAX_ECHO = 120


def _clip(text) -> str:
    text = str(text)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"


def _bounded(errors: list[dict]) -> dict:
    shown = [{k: _clip(v) for k, v in e.items()} for e in errors[:MAX_ERRORS]]
    if len(errors) <= MAX_ERRORS:
        return {"errors": shown}
    return {"errors": shown, "errors_total": len(errors)}


# -- configuration ---------------------------------------------------------------------------


def batch_limit() -> int:
    """The most customers one POST /predict may hold: the app's RETENTION_BATCH_LIMIT setting
    (dashboard.server validates the environment variable and sets it), default 10,000."""
    return int(current_app.config.get(BATCH_LIMIT_KEY, DEFAULT_BATCH_LIMIT))


def max_body_bytes(limit: int) -> int:
    return ENVELOPE_BYTES + limit * BYTES_PER_CUSTOMER


# -- JSON out --------------------------------------------------------------------------------

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


def query_pairs(exclude: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Query parameters as name -> values; blank values are dropped, as in dashboard links."""
    pairs = parse_qs(request.query_string.decode("utf-8", "replace"), keep_blank_values=False)
    return {k: v for k, v in pairs.items() if k not in exclude}


def parse_filters(data: ServedBase, pairs: Mapping[str, list[str]]):
    """(FilterState, problems): each parameter is checked on its own so every problem is listed
    with the parameter that caused it."""
    problems = []
    allowed = data.levels_for(access.current_scope())  # a manager names levels in scope only
    for name, values in pairs.items():
        try:
            filters.from_pairs({name: values}, allowed, strict=True)
        except filters.FilterError as exc:
            problems.append({"field": name, "message": str(exc)})
    bounds = {k: pairs[k] for k in (filters.TENURE_MIN, filters.TENURE_MAX) if k in pairs}
    if len(bounds) == 2 and not any(p["field"] in bounds for p in problems):
        try:
            filters.from_pairs(bounds, allowed, strict=True)
        except filters.FilterError as exc:
            problems.append({"field": filters.TENURE_MIN, "message": str(exc)})
    if problems:
        return None, problems
    return filters.from_pairs(pairs, allowed, strict=True), []


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


def parse_query(model, pairs: Mapping[str, list[str]], problems: list[dict]):
    """The route's declared query parameters, validated by their pydantic model; each problem
    is added to `problems` with the parameter at fault. List fields take every value, others
    the last one."""
    fields = model.model_fields
    raw = {}
    for name, values in pairs.items():
        if name not in fields:
            continue
        annotation = str(fields[name].annotation)
        raw[name] = values if annotation.startswith("list") else values[-1]
    try:
        return model(**raw)
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "query"
            problems.append({"field": field, "message": f"{err['msg']}, got {err.get('input')!r}"})
        return None


def parse_request(data: ServedBase, model, check=None):
    """(options, FilterState) of this request: the declared parameters by `model`, every other
    parameter a filter; `check(pairs, problems)` adds what only the data can tell (a sort
    column, say). 400 listing every problem."""
    pairs = query_pairs()
    problems: list[dict] = []
    options = parse_query(model, pairs, problems) if model is not None else None
    if check is not None:
        check(pairs, problems)
    declared = set(model.model_fields) if model is not None else set()
    declared.add(SNAPSHOT)  # which base: the route has read it already (history.pick)
    state, found = parse_filters(data, {k: v for k, v in pairs.items() if k not in declared})
    problems += found
    if problems:
        raise query_error(problems)
    return options, state
