"""The OpenAPI 3.1 document of /api/v1, generated from the loaded data and model.

The customer schema comes from the model's input schema (analytics.model.predict.input_schema): an
enum of the known levels for each categorical feature, the accepted range for each number.
The filter parameters list the levels the data has. So the document always describes what this
server accepts, and the fuzz tests derive their requests from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from analytics import columns as C
from analytics import filters
from analytics.model import predict

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50

NUMBER = {"type": "number"}
NULLABLE_NUMBER = {"type": ["number", "null"]}
STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return {"$ref": f"#/components/responses/{description}"}


def customer_schema(schema: Mapping[str, dict]) -> dict:
    """One customer for POST /predict: every model feature, nothing else (customer_id optional)."""
    props: dict = {
        C.CUSTOMER_ID: {
            "type": ["string", "integer"],
            "description": "Optional; echoed back with the prediction.",
        }
    }
    for name, spec in schema.items():
        if spec["kind"] == "categorical":
            props[name] = {
                "type": "string",
                "enum": list(spec["levels"]),
                "description": "Categorical: one of the levels the model was trained on "
                "(matched case-insensitively).",
            }
        else:
            props[name] = {
                "type": "number",
                "minimum": spec["allowed_min"],
                "maximum": spec["allowed_max"],
                "description": f"Numeric: observed {spec['min']:g} to {spec['max']:g} in training;"
                f" accepted {spec['allowed_min']:g} to {spec['allowed_max']:g}"
                + ("; whole numbers only." if spec.get("whole") else "."),
            }
            if spec.get("whole"):
                props[name]["multipleOf"] = 1
    required = [name for name in schema if name not in predict.optional_fields(schema)]
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def filter_parameters(allowed: Mapping[str, list[str]]) -> list[dict]:
    """The dashboard's filters as query parameters, with analytics.filters' URL names."""
    url_names = {column: name for name, column in filters.NAMED.items()}
    params = []
    for column, levels in allowed.items():
        name = url_names.get(column, column)
        params.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": f"Keep customers whose {column} is one of these levels "
                "(repeat the parameter for several).",
                "style": "form",
                "explode": True,
                "schema": {"type": "array", "items": {"type": "string", "enum": list(levels)}},
            }
        )
    for name, text in ((filters.TENURE_MIN, "at least"), (filters.TENURE_MAX, "at most")):
        params.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": f"Keep customers with tenure_months {text} this.",
                "schema": {"type": "number", "minimum": 0},
            }
        )
    return params


def _component_schemas(schema: Mapping[str, dict], batch_limit: int, sort_columns) -> dict:
    field_error = {
        "type": "object",
        "properties": {"field": STRING, "message": STRING},
        "required": ["field", "message"],
    }
    prediction = {
        "type": "object",
        "properties": {
            "customer_id": {"type": "string", "description": "The input's id, as text."},
            "probability": NUMBER,
            "risk_band": {"type": "string", "enum": list(C.RISK_BANDS)},
            "threshold": NUMBER,
            "clv": NULLABLE_NUMBER,
            "value": NULLABLE_NUMBER,
            "expected_loss": NULLABLE_NUMBER,
            "drivers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "feature": STRING,
                        "value": {},
                        "change_in_probability": NUMBER,
                    },
                },
            },
        },
        "required": ["probability", "risk_band", "threshold", "drivers"],
    }
    filters_echo = {
        "type": "object",
        "properties": {
            "query": STRING,
            "levels": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": STRING},
            },
            "tenure_min": NULLABLE_NUMBER,
            "tenure_max": NULLABLE_NUMBER,
        },
    }
    row_props = {col: {} for col in sort_columns}
    return {
        "Error": {
            "type": "object",
            "properties": {
                "error": STRING,
                "errors": {"type": "array", "items": _ref("FieldError")},
            },
            "required": ["error"],
        },
        "FieldError": field_error,
        "NotReady": {
            "type": "object",
            "properties": {"status": {"const": "not ready"}, "reason": STRING, "error": STRING},
            "required": ["status", "reason", "error"],
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"const": "ready"},
                "rows": {"type": "integer"},
                "model_version": STRING,
                "data_hash": STRING,
                "data": STRING,
            },
            "required": ["status", "rows", "model_version", "data_hash", "data"],
        },
        "Filters": filters_echo,
        "Kpis": {
            "type": "object",
            "properties": {
                "customers": {"type": "integer"},
                "active_customers": {"type": "integer"},
                "churned": {"type": ["integer", "null"]},
                "churn_rate": NULLABLE_NUMBER,
                "retention_rate": NULLABLE_NUMBER,
                "mrr": NULLABLE_NUMBER,
                "avg_clv": NULLABLE_NUMBER,
                "mrr_at_risk": NULLABLE_NUMBER,
                "reasons": {
                    "type": "object",
                    "description": "KPI name -> why it is null (a column the data lacks).",
                    "additionalProperties": STRING,
                },
                "filters": _ref("Filters"),
                "definitions": {"type": "object", "additionalProperties": STRING},
            },
            "required": ["customers", "active_customers", "reasons", "filters", "definitions"],
        },
        "AtRiskPage": {
            "type": "object",
            "properties": {
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
                "sort": {"type": "array", "items": STRING},
                "filters": _ref("Filters"),
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": row_props},
                },
            },
            "required": ["total", "limit", "offset", "items"],
        },
        "CustomerDetail": {
            "type": "object",
            "properties": {
                "customer_id": STRING,
                "profile": {"type": "object", "description": "Feature values."},
                "churned": {"type": ["integer", "null"]},
                "probability": NULLABLE_NUMBER,
                "risk_band": NULLABLE_STRING,
                "threshold": NUMBER,
                "segment": NULLABLE_STRING,
                "clv": NULLABLE_NUMBER,
                "value": NULLABLE_NUMBER,
                "expected_loss": NULLABLE_NUMBER,
                "value_tier": NULLABLE_STRING,
                "drivers": {"type": "array", "items": STRING},
                "recommended_action": STRING,
            },
            "required": ["customer_id", "profile", "probability", "risk_band", "drivers"],
        },
        "Customer": customer_schema(schema),
        "CustomerBatch": {
            "type": "object",
            "properties": {
                "customers": {
                    "type": "array",
                    "items": _ref("Customer"),
                    "minItems": 1,
                    "maxItems": batch_limit,
                }
            },
            "required": ["customers"],
            "additionalProperties": False,
        },
        "Prediction": prediction,
        "SinglePrediction": {
            "allOf": [
                _ref("Prediction"),
                {"type": "object", "properties": {"model_version": STRING}},
            ]
        },
        "BatchPrediction": {
            "type": "object",
            "properties": {
                "model_version": STRING,
                "count": {"type": "integer"},
                "predictions": {"type": "array", "items": _ref("Prediction")},
            },
            "required": ["model_version", "count", "predictions"],
        },
        "Model": {
            "type": "object",
            "properties": {
                "version": STRING,
                "created_at": NULLABLE_STRING,
                "data_hash": STRING,
                "chosen": STRING,
                "candidates": {"type": "array", "items": {"type": "object"}},
                "metrics": {"type": "object"},
                "holdout": {"type": ["object", "null"]},
                "threshold": NUMBER,
                "threshold_rule": STRING,
                "protocol": STRING,
                "window_months": {"type": "integer"},
                "base_rows": {"type": "integer"},
                "features": {
                    "type": "object",
                    "description": "feature -> {type: categorical, levels} or "
                    "{type: numeric, min, max, allowed_min, allowed_max}, plus default.",
                },
                "importance": {"type": "array", "items": {"type": "object"}},
                "segments": {"type": ["object", "null"]},
                "definitions": {"type": "object", "additionalProperties": STRING},
            },
            "required": ["version", "candidates", "metrics", "threshold", "features"],
        },
    }


RESPONSES = {
    "BadRequest": "Invalid query parameters, malformed JSON or a wrong content type; "
    "`errors` lists every problem with its field.",
    "NotFound": "No such customer or route.",
    "Conflict": "The data cannot answer this (e.g. it has no monthly_revenue column).",
    "TooLarge": "The body is over the byte limit, or the batch over the batch limit.",
    "Unprocessable": "The body is JSON but invalid: `errors` lists every problem with its field "
    "path (e.g. customers[3].tenure_months).",
    "ServerError": "Unexpected server error; details are logged, never returned.",
}


def document(data, schema: Mapping[str, dict], *, batch_limit: int) -> dict:
    """The OpenAPI document for this server's data and model."""
    sort_columns = list(data.grid_fields)
    filter_params = filter_parameters(data.allowed)
    not_ready = _json({"$ref": "#/components/schemas/NotReady"}, "No data or model is loaded.")
    common = {"500": _error("ServerError"), "503": not_ready}
    paging_params = [
        {
            "name": "sort",
            "in": "query",
            "required": False,
            "description": "Comma-separated columns, - for descending (default -expected_loss). "
            f"Allowed: {', '.join(sort_columns)}.",
            "schema": {
                "type": "string",
                "pattern": _sort_pattern(sort_columns),
                "default": f"-{C.EXPECTED_LOSS}",
            },
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
        },
        {
            "name": "offset",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
    ]
    paths = {
        "/api/v1/health": {
            "get": {
                "operationId": "health",
                "summary": "Readiness: data and model loaded.",
                "responses": {
                    "200": _json(_ref("Health"), "Ready."),
                    **common,
                },
            }
        },
        "/api/v1/kpis": {
            "get": {
                "operationId": "kpis",
                "summary": "The KPI cards over the customers the filters select.",
                "parameters": filter_params,
                "responses": {
                    "200": _json(_ref("Kpis"), "KPIs, the filters applied and definitions."),
                    "400": _error("BadRequest"),
                    **common,
                },
            }
        },
        "/api/v1/customers/at-risk": {
            "get": {
                "operationId": "at_risk",
                "summary": "The high-value at-risk list (active, high value, risk band High), "
                "paged.",
                "parameters": filter_params + paging_params,
                "responses": {
                    "200": _json(_ref("AtRiskPage"), "One page of the list."),
                    "400": _error("BadRequest"),
                    "409": _error("Conflict"),
                    **common,
                },
            }
        },
        "/api/v1/customers/{customer_id}": {
            "get": {
                "operationId": "customer",
                "summary": "One customer of the current base: profile, probability, drivers and "
                "a recommended action.",
                "parameters": [
                    {
                        "name": "customer_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json(_ref("CustomerDetail"), "The customer."),
                    "404": _error("NotFound"),
                    **common,
                },
            }
        },
        "/api/v1/predict": {
            "post": {
                "operationId": "predict",
                "summary": "Score new customers with the final model (one object, or a batch of "
                f"up to {batch_limit:,}).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [_ref("Customer"), _ref("CustomerBatch")]}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "A prediction per customer, in input order.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [_ref("SinglePrediction"), _ref("BatchPrediction")]
                                }
                            }
                        },
                    },
                    "400": _error("BadRequest"),
                    "413": _error("TooLarge"),
                    "422": _error("Unprocessable"),
                    **common,
                },
            }
        },
        "/api/v1/model": {
            "get": {
                "operationId": "model",
                "summary": "The model: candidates, metrics, threshold, features and their input "
                "schema.",
                "responses": {"200": _json(_ref("Model"), "The current model."), **common},
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1."), **common},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Customer retention API",
            "version": "1",
            "description": "JSON over the dashboard's scored customer base and model. Errors are "
            'JSON: {"error": ..., "errors": [{"field", "message"}]}. Unknown routes give 404, '
            "a wrong method 405; no request fits a model.",
        },
        "paths": paths,
        "components": {
            "schemas": _component_schemas(schema, batch_limit, sort_columns),
            "responses": {name: _json(_ref("Error"), text) for name, text in RESPONSES.items()},
        },
    }


def _sort_pattern(columns: list[str]) -> str:
    one = "-?(" + "|".join(map(re.escape, columns)) + ")"
    return f"^{one}(,{one})*$"
