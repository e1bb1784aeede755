"""The OpenAPI 3.1 document of /api/v1, generated from the loaded data and model.

The customer schema comes from the model's input schema (analytics.predict.input_schema): an
enum of the known levels for each categorical feature, the accepted range for each number.
The filter parameters list the levels the data has. So the document always describes what this
server accepts, and the fuzz tests derive their requests from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from analytics import access, filters
from analytics import columns as C
from analytics.model import predict
from analytics.services.alerts import RuleBody
from dashboard.api import history_models as hm
from dashboard.api import lifecycle_models as lm
from dashboard.api import models

PREFIX = "/api/v1"
# Error answers, by status: their component names and what each means.
ERROR_NAMES = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "TooLarge",
    "422": "Unprocessable",
}
RESPONSES = {
    "BadRequest": "A query parameter is wrong (unknown filter or level, bad sort/limit/offset, a "
    "value out of range), the body is not JSON, or the content type is wrong. Every problem is "
    "listed.",
    "Unauthorized": "No user: log in (session cookie) or send 'Authorization: Bearer <token>'; "
    "or the token is unknown, expired or revoked.",
    "Forbidden": "The user's role lacks the right; the body names the role needed.",
    "NotFound": "No such customer in the current base (or outside a manager's scope), or no "
    "such route.",
    "Conflict": "The data set cannot answer this (the at-risk list needs monthly_revenue).",
    "TooLarge": "The body or the batch exceeds the limit.",
    "Unprocessable": "The body is JSON but invalid; every problem is listed with its field path.",
    "ServerError": "Unexpected error; logged on the server, no details returned.",
}


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


SNAPSHOT_PARAMETER = {
    "name": "snapshot",
    "in": "query",
    "required": False,
    "description": "Answer from the snapshot as of this date (YYYY-MM-DD, see GET "
    "/api/v1/snapshots) instead of the live base.",
    "schema": {"type": "string", "format": "date"},
}


def filter_parameters(allowed: Mapping[str, list[str]]) -> list[dict]:
    """The dashboard's filters as query parameters, with analytics.filters' URL names, and the
    snapshot to read."""
    url_names = {column: name for name, column in filters.NAMED.items()}
    params = [SNAPSHOT_PARAMETER]
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


@dataclass(frozen=True)
class Operation:
    """One route as the document lists it: its query model and response model come from
    dashboard/api/models.py, the declarations the route validates with."""

    path: str
    method: str
    operation_id: str
    summary: str
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    filters: bool = False
    errors: tuple[str, ...] = ()
    path_params: tuple[str, ...] = ()
    right: str | None = access.VIEWS  # None: no user needed
    body: dict | None = None  # the request body's content, by media type
    ok: str = "200"  # the success status


# One route per entry, laid out as a table.
# fmt: off
OPERATIONS = (
    Operation(
        "/health", "get", "health",
        "Readiness: data loaded, and the model's status (ready, or training with progress).",
        models.Health, right=None,
    ),
    Operation(
        "/kpis", "get", "kpis", "The KPI cards over the customers the filters select.",
        models.Kpis, filters=True, errors=("400",),
    ),
    Operation(
        "/trend", "get", "trend",
        "Monthly churn and retention (dated tables), else Kaplan-Meier retention over tenure.",
        models.Trend, models.TrendQuery, filters=True, errors=("400",),
    ),
    Operation(
        "/cohorts", "get", "cohorts", "Cohort retention by signup month (dated tables).",
        models.Cohorts, filters=True, errors=("400",),
    ),
    Operation(
        "/segments", "get", "segments",
        "Each segment's customers and churn rate with its Wilson 95% interval.",
        models.Segments, filters=True, errors=("400",),
    ),
    Operation(
        "/drivers", "get", "drivers",
        "Churn rate by one factor's levels, the base's and the selection's rate, importance.",
        models.Drivers, models.DriversQuery, filters=True, errors=("400",),
    ),
    Operation(
        "/customers/value-risk", "get", "value_risk",
        "A fixed random sample of the selection's active customers: probability and value.",
        models.Scatter, filters=True, errors=("400",),
    ),
    Operation(
        "/customers/at-risk", "get", "at_risk",
        "The high-value at-risk list (active, high value, risk band High), paged.",
        models.AtRiskPage, models.AtRiskQuery, filters=True, errors=("400", "409"),
    ),
    Operation(
        "/customers/{customer_id}", "get", "customer",
        "One customer of the current base: profile, probability, drivers and an action.",
        models.CustomerDetail, errors=("404",), path_params=("customer_id",),
    ),
    Operation(
        "/planner", "get", "planner",
        "The retention plan: net benefit over N, the best N, saved value, cost and ROI.",
        models.Plan, models.PlannerQuery, filters=True, errors=("400",),
    ),
    Operation(
        "/model/curves", "get", "model_curves",
        "ROC, precision-recall, calibration and lift of the selection's out-of-fold scores.",
        models.ModelCurves, filters=True, errors=("400",), right=access.MODEL,
    ),
    Operation(
        "/model/threshold", "get", "model_threshold",
        "Confusion matrix, precision, recall and F1 of the selection at a threshold.",
        models.ThresholdMetrics, models.ThresholdQuery, filters=True, errors=("400",),
        right=access.MODEL,
    ),
    Operation(
        "/predict", "post", "predict",
        "Score new customers with the final model (one object, or a batch).",
        errors=("400", "413", "422"),
    ),
    Operation(
        "/model", "get", "model",
        "The model: candidates, metrics, threshold, features and their input schema.",
        models.Model, right=access.MODEL,
    ),
    Operation(
        "/audit", "get", "audit",
        "The audit log, newest first (logins, failed logins, user, role and token changes, "
        "exports), and the calls counted per day.",
        models.Audit, models.AuditQuery, errors=("400",), right=access.ADMINISTER,
    ),
    Operation("/openapi.json", "get", "openapi", "This document."),
    # over time (issue 13)
    Operation(
        "/snapshots", "get", "snapshots",
        "The snapshots, newest first (one per as_of), with predicted and realised churn.",
        hm.Snapshots, errors=("400",),
    ),
    Operation(
        "/customers/movers", "get", "movers",
        "Customers whose churn probability rose most since the previous snapshot, and those "
        "newly on the high-value at-risk list, with their reasons then and now.",
        hm.Movers, hm.MoversQuery, filters=True, errors=("400",),
    ),
    Operation(
        "/revenue", "get", "revenue",
        "Revenue retention per month between consecutive snapshots: new, reactivation, "
        "expansion, contraction and churned MRR, GRR and NRR (ChartMogul's movements).",
        hm.Revenue, filters=True, errors=("400",),
    ),
    Operation(
        "/monitoring", "get", "monitoring",
        "The model watched: realised ROC-AUC, PR-AUC, lift and calibration of each snapshot "
        "whose window has passed, each feature's drift (PSI), and whether to retrain.",
        hm.Monitoring, filters=True, errors=("400",),
    ),
    Operation(
        "/campaigns", "get", "campaigns",
        "The campaigns, each with churn in its treated and control groups and the measured "
        "save rate with its 95% interval once a later snapshot says who left.",
        hm.Campaigns, errors=("400",),
    ),
    Operation(
        "/campaigns", "post", "campaign_create",
        "Create a campaign from the planner's contact list of the selection: a random control "
        "group, stratified by risk band, is held out; only the treated are returned.",
        hm.CampaignCreated, filters=True, errors=("400", "409", "422"), ok="201",
        body={"application/json": {"schema": {"$ref": "#/components/schemas/CampaignBody"}}},
    ),
    Operation(
        "/alerts/rules", "get", "alert_rules",
        "Alert rules: every rule (admin), or the rules a manager owns.", hm.AlertRules,
        right=access.ALERTS,
    ),
    Operation(
        "/alerts/rules", "post", "alert_rule_create",
        "Define an alert rule (admin), checked at each new snapshot; 'owner' names the manager "
        "whose scope it covers.", hm.AlertRule, errors=("400", "422"), ok="201",
        body={"application/json": {"schema": {"$ref": "#/components/schemas/RuleBody"}}},
        right=access.ADMINISTER,
    ),
    Operation(
        "/alerts/rules/{rule_id}/test", "post", "alert_rule_test",
        "Send a test alert through the rule's channel now (one attempt); the delivery is "
        "logged.", hm.Delivery, errors=("400", "404", "422"), path_params=("rule_id",),
        right=access.ADMINISTER,
    ),
    Operation(
        "/alerts/rules/{rule_id}", "delete", "alert_rule_delete",
        "Delete an alert rule and its delivery log (admin).", hm.AlertRule,
        errors=("400", "404", "422"), path_params=("rule_id",), right=access.ADMINISTER,
    ),
    Operation(
        "/alerts/deliveries", "get", "alert_deliveries",
        "The alert delivery log, newest first (a manager: their rules').", hm.Deliveries,
        errors=("400",), right=access.ALERTS,
    ),
)


def _body(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


ADMIN = access.ADMINISTER
# canonical column -> the table's column; "keep": the columns kept although they look like leaks
MAPPING_OBJECT = {
    "type": "object",
    "properties": {"keep": {"type": "array", "items": {"type": "string"}}},
    "additionalProperties": {"type": "string"},
}
UPLOAD = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "CSV/TSV/TXT (optionally .gz) or Parquet"},
                "mapping": {"type": "string",
                            "description": 'JSON: {"churned": "Exited", ...} (optional)'},
            },
            "required": ["file"],
        }
    },
    **_body({
        "type": "object",
        "properties": {
            "source": {"type": "object", "description": "read from RETENTION_SOURCE_URL",
                       "properties": {"table": {"type": "string"}, "query": {"type": "string"}}},
            "mapping": MAPPING_OBJECT,
        },
        "required": ["source"],
    }),
}
MAPPING = _body({
    "type": "object",
    "properties": {"mapping": MAPPING_OBJECT},
    "required": ["mapping"],
})
TRAIN = _body({
    "type": "object", "properties": {"dataset_id": {"type": "string"}}, "required": ["dataset_id"],
})
UPSERT = _body({"$ref": "#/components/schemas/CustomerUpdate"})
UPSERT_BATCH = _body({
    "type": "object",
    "properties": {"customers": {"type": "array", "minItems": 1,
                                 "items": {"$ref": "#/components/schemas/CustomerUpdate"}}},
    "required": ["customers"], "additionalProperties": False,
})
# The data and model lifecycle (admin): listed when the server mounts it (dashboard.live).
LIFECYCLE_OPERATIONS = (
    Operation(
        "/datasets", "post", "dataset_add",
        "Store a customer table as a dataset after validating it (a multipart file, or a table "
        "or query of RETENTION_SOURCE_URL); 200 when that dataset exists already.",
        lm.DatasetStored, errors=("400", "409", "413", "422"), right=ADMIN, body=UPLOAD, ok="201",
    ),
    Operation(
        "/datasets", "get", "datasets", "The datasets, newest first.", lm.Datasets, right=ADMIN,
    ),
    Operation(
        "/datasets/{dataset_id}", "get", "dataset", "One dataset and its load report.",
        lm.Dataset, errors=("404",), path_params=("dataset_id",), right=ADMIN,
    ),
    Operation(
        "/datasets/{dataset_id}/mapping", "post", "dataset_remap",
        "The same stored file with another mapping: a new dataset.",
        lm.DatasetStored, errors=("400", "404", "422"), path_params=("dataset_id",), right=ADMIN,
        body=MAPPING, ok="201",
    ),
    Operation(
        "/models", "post", "model_train", "Train a model on a dataset, as a job.",
        lm.Job, errors=("400", "404", "409", "422"), right=ADMIN, body=TRAIN, ok="202",
    ),
    Operation(
        "/models", "get", "models", "The model versions, the live one and the previous one.",
        lm.Versions, right=ADMIN,
    ),
    Operation(
        "/models/{version}/compare", "get", "model_compare",
        "A version beside the live one (or ?against=): metrics and risk-band changes.",
        lm.Comparison, errors=("404",), path_params=("version",), right=ADMIN,
    ),
    Operation(
        "/models/{version}/promote", "post", "model_promote",
        "Make a version live (promoting the previous one is the rollback); every server "
        "process serves it within seconds.",
        lm.Promoted, errors=("404", "409"), path_params=("version",), right=ADMIN,
    ),
    Operation("/jobs", "get", "jobs", "The newest jobs.", lm.Jobs, right=ADMIN),
    Operation(
        "/jobs/{job_id}", "get", "job", "A job's state, progress, step and result.",
        lm.Job, errors=("404",), path_params=("job_id",), right=ADMIN,
    ),
    Operation(
        "/jobs/{job_id}/cancel", "post", "job_cancel", "Cancel a queued or running job.",
        lm.Job, errors=("404", "409"), path_params=("job_id",), right=ADMIN,
    ),
    Operation(
        "/customers/{customer_id}", "put", "customer_upsert",
        "Upsert a customer's current data (a known customer may send only what changed): "
        "checked, scored by the live model, shown by every process within seconds.",
        lm.Upserted, errors=("400", "413", "422"), path_params=("customer_id",), right=ADMIN,
        body=UPSERT,
    ),
    Operation(
        "/customers:batch", "post", "customers_upsert",
        "Upsert several customers at once (up to the batch limit).",
        lm.UpsertedBatch, errors=("400", "413", "422"), right=ADMIN, body=UPSERT_BATCH,
    ),
)
# fmt: on


def _not_null(prop: dict) -> dict:
    """A query parameter is never null: it is left out to take its default. Pydantic declares an
    optional field as anyOf [X, null] with default null; the document says X."""
    prop = dict(prop)
    options = [o for o in prop.get("anyOf", ()) if o.get("type") != "null"]
    if "anyOf" in prop and len(options) == 1:
        del prop["anyOf"]
        prop.update(options[0])
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def query_parameters(model: type[BaseModel]) -> list[dict]:
    """The model's fields as query parameters, with the schema pydantic validates them by."""
    schema = model.model_json_schema()
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": False, "schema": prop}
        if prop.get("type") == "array":
            param.update(style="form", explode=True)
        if description:
            param["description"] = description
        params.append(param)
    return params


def _operation(op: Operation, filter_params: list[dict], batch_limit: int) -> dict:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in op.path_params
    ]
    if op.query is not None:
        params += query_parameters(op.query)
    if op.filters:
        params += filter_params
    if op.response is not None:
        ok = _json(_ref(op.response.__name__), "OK.")
    elif op.operation_id == "predict":
        ok = _json(
            {"oneOf": [_ref("SinglePrediction"), _ref("BatchPrediction")]},
            "A prediction per customer, in input order.",
        )
    else:
        ok = _json({"type": "object"}, "OpenAPI 3.1.")
    errors = list(op.errors)
    if op.right is not None:
        errors += ["401"] + (["403"] if op.right != access.VIEWS else [])
    out = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": {
            op.ok: ok,
            **{code: _error(ERROR_NAMES[code]) for code in sorted(errors)},
            "500": _error("ServerError"),
            "503": _json(
                {"oneOf": [_ref("NotReady"), _ref("ModelPending")]},
                "No data is loaded (NotReady); or this route needs the churn model and the "
                "server's first model is still training (ModelPending: its progress; try again "
                "when health says ready).",
            ),
        },
    }
    if params:
        out["parameters"] = params
    if op.right is None:
        out["security"] = []  # open to all
    else:
        out["description"] = f"Needs {access.needed(op.right)}."
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": op.body}
    if op.operation_id == "predict":
        out["summary"] += f" Batches hold up to {batch_limit:,} customers."
        out["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [_ref("Customer"), _ref("CustomerBatch")]}}
            },
        }
    return out


def component_schemas(
    schema: Mapping[str, dict], batch_limit: int, *, lifecycle: bool = False
) -> dict:
    """Every response model's JSON schema (pydantic), and the customer body from the model's
    input schema (what predict.check_record validates)."""
    responses = [*models.RESPONSES, *hm.RESPONSES, hm.CampaignBody, RuleBody,
                 *(lm.RESPONSES if lifecycle else ())]  # fmt: skip
    _, top = models_json_schema(
        [(m, "serialization") for m in responses],
        ref_template="#/components/schemas/{model}",
    )
    out = dict(top.get("$defs", {}))
    out["Customer"] = customer_schema(schema)
    if lifecycle:
        out["CustomerUpdate"] = {
            **out["Customer"],
            "required": [C.CUSTOMER_ID],
            "description": "A customer's current data: every model feature for a new customer; "
            "a known one may send only what changed.",
        }
    out["CustomerBatch"] = {
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
    }
    return out


def document(
    data, schema: Mapping[str, dict], *, batch_limit: int, lifecycle: bool = False
) -> dict:
    """The OpenAPI document for this server's data and model (`lifecycle`: with the admin's
    data and model routes, when the server mounts them)."""
    filter_params = filter_parameters(data.levels_for(access.current_scope()))
    paths: dict = {}
    for op in (*OPERATIONS, *(LIFECYCLE_OPERATIONS if lifecycle else ())):
        paths.setdefault(PREFIX + op.path, {})[op.method] = _operation(
            op, filter_params, batch_limit
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Customer retention API",
            "version": "1",
            "description": "JSON over the dashboard's scored customer base and model: every view "
            "of the dashboard, for the same filters. Errors are JSON: "
            '{"error": ..., "errors": [{"field", "message"}]}. Unknown routes give 404, a wrong '
            "method 405; no request fits a model. Every route but health needs a user: a "
            "personal token (`Authorization: Bearer`) or the dashboard's session; a manager's "
            "answers are cut to their scope.",
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token (python -m dashboard tokens create NAME).",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "retention_session"},
            },
            "schemas": component_schemas(schema, batch_limit, lifecycle=lifecycle),
            "responses": {name: _json(_ref("Error"), text) for name, text in RESPONSES.items()},
        },
    }
