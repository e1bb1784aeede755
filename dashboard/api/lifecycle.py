"""The lifecycle API under /api/v1: datasets, training jobs, model versions. Admin-only; every
change is audited (analytics.store.lifecycle). Nothing trains here: POST /models queues a job.

- POST /datasets: multipart `file` (+ optional `mapping`, a JSON object), or a JSON body
  {"source": {"table": ...} | {"query": ...}, "mapping": {...}} read from
  RETENTION_SOURCE_URL -> 201 {"dataset_id", "rows", "report"} (200 when that dataset exists
  already). A table that fails validation -> 422 with its one-line error; nothing is stored.
- POST /datasets/<id>/mapping {"mapping": {...}} -> the same file with another mapping.
- POST /models {"dataset_id"} -> 202 {"job_id"}; GET /jobs/<id>; POST /jobs/<id>/cancel.
- GET /models; GET /models/<version>/compare[?against=]; POST /models/<version>/promote.
- PUT /customers/<id>, POST /customers:batch: customers' current data, as a CRM sends it;
  checked against the live model's inputs, scored now, stored, and applied by every server
  process within seconds (dashboard.live); the model does not change until the next training.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from analytics import access
from analytics import columns as C
from analytics.ingest.errors import DataError, FileTooLargeError, MappingError
from analytics.model import predict
from analytics.services.lifecycle import Lifecycle
from analytics.store.lifecycle import LifecycleError
from dashboard import auth
from dashboard.api.http import ApiError, batch_limit, json_response, read_json

log = logging.getLogger("dashboard.api")

PREFIX = "/api/v1"
SERVED_BASE = "retention_served_base"  # dashboard.app's key for the app's ServedBase
# Multipart framing around the file: its headers and the mapping field.
MULTIPART_SLACK = 1 << 20
# An upserted customer id fits the state database's column (customer_updates, 128 characters)
# and holds no control character (PostgreSQL refuses a NUL byte): either failed there as a 500.
CUSTOMER_ID_MAX = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _actor() -> tuple[str, str]:
    found = auth.user()
    return (found.username if found else "unknown"), auth.client_address()


def create_blueprint(service: Lifecycle) -> Blueprint:
    bp = Blueprint("api_lifecycle", __name__, url_prefix=PREFIX)

    @bp.before_request
    def _admin_only():
        found = auth.user()
        if found is None:
            return auth.unauthenticated()
        if not access.allowed(found.role, access.ADMINISTER):
            return auth.forbidden(access.ADMINISTER)
        return None

    @bp.errorhandler(LifecycleError)
    def _lifecycle_error(exc: LifecycleError):
        return json_response({"error": str(exc)}, exc.status)

    @bp.errorhandler(FileTooLargeError)
    def _too_large(exc: FileTooLargeError):
        return json_response({"error": str(exc)}, 413)

    @bp.errorhandler(RequestEntityTooLarge)
    def _body_too_large(_exc):
        limit = service.settings.max_file_bytes / 2**20
        return json_response(
            {"error": f"the upload is larger than {limit:.0f} MB (RETENTION_MAX_FILE_MB)"}, 413
        )

    @bp.errorhandler(MappingError)
    def _mapping_error(exc: MappingError):
        return json_response({"error": str(exc)}, 422)

    @bp.errorhandler(DataError)
    def _data_error(exc: DataError):
        return json_response({"error": str(exc)}, 422)

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_response(exc.body, exc.status)

    def dataset_created(info, created: bool):
        body = {"dataset_id": info.id, "rows": info.rows, "created": created, **info.public()}
        return json_response(body, 201 if created else 200)

    @bp.get("/datasets")
    def datasets_list():
        return json_response({"datasets": [d.public() for d in service.datasets()]})

    @bp.post("/datasets")
    def datasets_upload():
        actor, address = _actor()
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("file")
            if upload is None or not upload.filename:
                raise ApiError(400, 'no file: send the table as the multipart field "file"')
            mapping = service.mapping(_json_field(request.form.get("mapping")))
            info, created = service.upload(upload.stream, upload.filename, mapping, actor, address)
            return dataset_created(info, created)
        body = read_json()
        if not isinstance(body, dict) or not isinstance(body.get("source"), dict):
            raise ApiError(
                400,
                'send a multipart "file", or JSON {"source": {"table": NAME} or {"query": SQL}}',
            )
        source = body["source"]
        kinds = [k for k in ("table", "query") if k in source]
        if len(kinds) != 1 or set(source) - {"table", "query"}:
            raise ApiError(400, 'a source is {"table": NAME} or {"query": SQL}, one of them')
        mapping = service.mapping(body.get("mapping"))
        info, created = service.from_source(
            kinds[0], str(source[kinds[0]]), mapping, actor, address
        )
        return dataset_created(info, created)

    @bp.get("/datasets/<dataset_id>")
    def dataset_view(dataset_id: str):
        return json_response(service.dataset(dataset_id).public())

    @bp.post("/datasets/<dataset_id>/mapping")
    def dataset_remap(dataset_id: str):
        body = read_json()
        if not isinstance(body, dict) or "mapping" not in body:
            raise ApiError(400, 'send {"mapping": {"canonical": "source column", ...}}')
        actor, address = _actor()
        info, created = service.remap(dataset_id, service.mapping(body["mapping"]), actor, address)
        return dataset_created(info, created)

    @bp.get("/models")
    def models_list():
        return json_response(service.models())

    @bp.post("/models")
    def models_train():
        body = read_json()
        if not isinstance(body, dict) or not isinstance(body.get("dataset_id"), str):
            raise ApiError(400, 'send {"dataset_id": "<id from POST /api/v1/datasets>"}')
        actor, address = _actor()
        job = service.train(body["dataset_id"], actor, address)
        return json_response(
            {"job_id": job.id, **job.public()}, 202, {"Location": f"{PREFIX}/jobs/{job.id}"}
        )

    @bp.get("/models/<version>/compare")
    def models_compare(version: str):
        return json_response(service.compare(version, request.args.get("against") or None))

    @bp.post("/models/<version>/promote")
    def models_promote(version: str):
        actor, address = _actor()
        live = service.promote(version, actor, address)
        return json_response(
            {
                "live": live.version,
                "previous": live.previous,
                "dataset_id": live.dataset_id,
                "changed_at": live.changed_at,
                "changed_by": live.changed_by,
                "note": "every server process serves it within a few seconds",
            }
        )

    @bp.put("/customers/<customer_id>")
    def customer_upsert(customer_id: str):
        body = read_json()
        if isinstance(body, dict) and str(body.get(C.CUSTOMER_ID, customer_id)) != customer_id:
            raise ApiError(422, f"the body's {C.CUSTOMER_ID} differs from the one in the path")
        record = {**body, C.CUSTOMER_ID: customer_id} if isinstance(body, dict) else body
        return _upsert([record], [""], single=True)

    @bp.post("/customers:batch")
    def customers_batch():
        body = read_json()
        records = body.get("customers") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records or set(body) != {"customers"}:
            raise ApiError(422, 'send {"customers": [{"customer_id": ..., feature: value, ...}]}')
        limit = batch_limit()
        if len(records) > limit:
            raise ApiError(
                413,
                f"batch of {len(records):,} customers exceeds the limit of {limit:,}: split it",
                limit=limit,
            )
        return _upsert(records, [f"customers[{i}]" for i in range(len(records))], single=False)

    def _upsert(records: list, where: list[str], *, single: bool):
        """Check upserted customers against the live model's inputs (a known customer's missing
        fields are kept from their current data), store them, score them now."""
        data = current_app.extensions.get(SERVED_BASE)
        live = service.live()
        if data is None or getattr(data.ws, "model", None) is None or live is None:
            raise ApiError(503, "no live model yet: customers can be upserted once one is live")
        if data.ws.model.version != live.version:
            # This process still serves the model promoted before: customers checked against
            # its inputs but stored for the new live dataset would stop every process from
            # building the new model's app (its inputs missing from the update).
            return json_response(
                {
                    "error": f"model {live.version} went live a moment ago and this server is "
                    "still switching to it: retry in a few seconds"
                },
                503,
                {"Retry-After": "5"},
            )
        schema = predict.input_schema(data.meta)
        unused = set(data.ws.table.features) - set(schema)
        clean, problems = [], []
        for record, path in zip(records, where, strict=True):
            cid = record.get(C.CUSTOMER_ID) if isinstance(record, dict) else None
            if isinstance(record, dict) and (
                not isinstance(cid, str | int) or isinstance(cid, bool) or not str(cid).strip()
            ):
                prefix = f"{path}." if path else ""
                problems.append({"field": f"{prefix}{C.CUSTOMER_ID}", "message": "required"})
                continue
            if isinstance(record, dict) and (
                len(str(cid)) > CUSTOMER_ID_MAX or _CONTROL.search(str(cid))
            ):
                prefix = f"{path}." if path else ""
                problems.append(
                    {
                        "field": f"{prefix}{C.CUSTOMER_ID}",
                        "message": f"at most {CUSTOMER_ID_MAX} characters, no control characters",
                    }
                )
                continue
            if isinstance(record, dict):
                record = {**_current(data, str(cid), schema), **record}
            values, found = predict.check_record(schema, record, where=path, ignored=unused)
            problems += [p.as_dict() for p in found]
            clean.append(values)
        if problems:
            raise ApiError(422, "invalid request body", problems[:50], errors_total=len(problems))
        actor, _ = _actor()
        rows = [(str(v.pop(C.CUSTOMER_ID)), v) for v in clean]
        last = service.upsert(live.dataset_id, rows, actor)
        scores = predict.predict(
            data.ws.model,
            [{**v, C.CUSTOMER_ID: cid} for cid, v in rows],
            margin=data.ws.settings.margin,
            discount=data.ws.settings.discount,
        )
        note = "scored by the live model now; the dashboard shows it within seconds"
        head = {"model_version": live.version, "update": last, "note": note}
        if single:
            return json_response({**head, **scores[0]})
        return json_response({**head, "count": len(scores), "predictions": scores})

    @bp.get("/jobs")
    def jobs_list():
        return json_response({"jobs": [j.public() for j in service.jobs()]})

    @bp.get("/jobs/<job_id>")
    def job_view(job_id: str):
        return json_response(service.job(job_id).public())

    @bp.post("/jobs/<job_id>/cancel")
    def job_cancel(job_id: str):
        actor, address = _actor()
        return json_response(service.cancel(job_id, actor, address).public())

    return bp


def _current(data, customer_id: str, schema) -> dict:
    """A known customer's current feature values (an update may send only what changed)."""
    row = data.id_positions.get(customer_id)
    if row is None:
        return {}
    values = {}
    for feature in schema:
        if feature in data.scored.columns:
            value = data.scored[feature].iloc[int(row)]
            if value is not None and not (isinstance(value, float) and value != value):
                values[feature] = value.item() if hasattr(value, "item") else value
    return values


def _json_field(text: str | None):
    """A multipart field holding JSON (the mapping); None when absent."""
    if text is None or not text.strip():
        return None
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(400, f'the "mapping" field is not valid JSON: {exc}') from None


# Endpoints that take a table: their body limit is RETENTION_MAX_FILE_MB, not
# RETENTION_MAX_BODY_MB (the file part is spooled to disk, not held in memory).
UPLOADS = {"api_lifecycle.datasets_upload", "admin_data.datasets"}


def register(server: Flask, service: Lifecycle) -> None:
    server.register_blueprint(create_blueprint(service))

    # Before any before_request hook: the login guard's CSRF check reads a form, and so its
    # body, under the limit that holds at that moment.
    @server.url_value_preprocessor
    def _upload_limit(endpoint, _values):
        if endpoint in UPLOADS and request.method == "POST":
            request.max_content_length = service.settings.max_file_bytes + MULTIPART_SLACK
