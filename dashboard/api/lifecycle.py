"""The lifecycle API under /api/v1: datasets, training jobs, model versions. Admin-only; every
change is audited (analytics.store.lifecycle). Nothing trains here: POST /models queues a job.

- POST /datasets: multipart `file` (+ optional `mapping`, a JSON object), or a JSON body
  {"source": {"table": ...} | {"query": ...}, "mapping": {...}} read from
  RETENTION_SOURCE_URL -> 201 {"dataset_id", "rows", "report"} (200 when that dataset exists
  already). A table that fails validation -> 422 with its one-line error; nothing is stored.
- POST /datasets/<id>/mapping {"mapping": {...}} -> the same file with another mapping.
- POST /models {"dataset_id"} -> 202 {"job_id"}; GET /jobs/<id>; POST /jobs/<id>/cancel.
- GET /models; GET /models/<version>/compare[?against=]; POST /models/<version>/promote.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from analytics import access
from analytics.ingest.errors import DataError, FileTooLargeError, MappingError
from analytics.services.lifecycle import Lifecycle
from analytics.store.lifecycle import LifecycleError
from dashboard import auth
from dashboard.api.http import ApiError, json_response, read_json

log = logging.getLogger("dashboard.api")

PREFIX = "/api/v1"
# Multipart framing around the file: its headers and the mapping field.
MULTIPART_SLACK = 1 << 20


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
