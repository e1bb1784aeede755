"""The admin pages for data and models: bring a customer table (a streamed upload, or a table
or query of RETENTION_SOURCE_URL), read its load report, change its mapping (and keep a
probable label leak as a feature: the mapping's "keep" entry), train it as a job
with a progress bar, compare the new version beside the live one, promote or roll back.

Server-rendered forms like dashboard.admin: the upload is a plain multipart form, so the browser
streams the file (dcc.Upload would read it into the page's memory and send it as base64 inside
a JSON callback: a 200 MB table would be 270 MB of text in the browser and in one request
body). The guard in dashboard.auth lets only admins reach /admin and checks the CSRF token of
every POST; every change goes through analytics.services.lifecycle, which audits it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for

from analytics import columns as C
from analytics.ingest.errors import DataError
from analytics.services.lifecycle import Lifecycle
from analytics.store.lifecycle import ACTIVE, LifecycleError
from dashboard import auth

NOT_MAPPED = ""


def _who() -> tuple[str, str]:
    return auth.actor() or "unknown", auth.client_address()


def register(server: Flask, service: Lifecycle) -> None:
    bp = Blueprint("admin_data", __name__, url_prefix="/admin/data")
    bp.add_app_template_filter(when, "when")

    def overview(status: int = 200):
        models = service.models()
        return render_template(
            "admin_data.html",
            active="data",
            datasets=service.datasets()[:50],
            jobs=service.jobs(20),
            models=models,
            source=bool(getattr(service.config, "source_url", None)),
            limit_mb=service.settings.max_file_mb,
        ), status

    @bp.get("/")
    def home():
        return overview()

    @bp.errorhandler(LifecycleError)
    def _unknown(exc: LifecycleError):
        # A page of a dataset, job or version that does not exist (a stale link).
        flash(str(exc), "danger")
        return redirect(url_for("admin_data.home"))

    @bp.post("/datasets")
    def datasets():
        actor, address = _who()
        mapping_text = request.form.get("mapping", "")
        try:
            mapping = service.mapping(_parsed(mapping_text), "the mapping")
            upload = request.files.get("file")
            if upload is not None and upload.filename:
                info, created = service.upload(
                    upload.stream, upload.filename, mapping, actor, address
                )
            elif request.form.get("source_text", "").strip():
                info, created = service.from_source(
                    request.form.get("source_kind", "table"),
                    request.form["source_text"],
                    mapping,
                    actor,
                    address,
                )
            else:
                raise LifecycleError("choose a file to upload (or a database table or query)")
        except (DataError, LifecycleError) as exc:
            flash(f"Not stored: {exc}", "danger")
            return overview(422)
        flash(
            f"Stored {info.name}: {info.rows:,} rows."
            if created
            else f"{info.name} with this mapping is stored already: the same dataset.",
            "success",
        )
        return redirect(url_for("admin_data.dataset", dataset_id=info.id))

    @bp.get("/datasets/<dataset_id>")
    def dataset(dataset_id: str):
        info = service.dataset(dataset_id)
        report = info.report
        mapped = report.get("mapping", {})
        leaks = report.get("leaks", [])
        return render_template(
            "admin_dataset.html",
            active="data",
            info=info,
            report=report,
            leaks=leaks,
            leaked={leak["column"] for leak in leaks},
            canonical=[(c, mapped.get(c, NOT_MAPPED)) for c in C.CANONICAL],
            source_columns=report.get("source_columns", []),
            jobs=[j for j in service.jobs(50) if j.dataset_id == info.id],
            versions=[v for v in service.models()["versions"] if v["dataset_id"] == info.id],
        )

    @bp.post("/datasets/<dataset_id>/mapping")
    def remap(dataset_id: str):
        actor, address = _who()
        chosen: dict = {
            c: request.form.get(f"map-{c}", "").strip()
            for c in C.CANONICAL
            if request.form.get(f"map-{c}", "").strip()
        }
        try:
            keep = _kept(service.dataset(dataset_id), request.form.getlist("keep"))
            if keep:
                chosen["keep"] = keep
            info, created = service.remap(dataset_id, service.mapping(chosen), actor, address)
        except (DataError, LifecycleError) as exc:
            flash(f"Mapping not applied: {exc}", "danger")
            return redirect(url_for("admin_data.dataset", dataset_id=dataset_id))
        kept = f" Kept although they look like label leaks: {', '.join(keep)}." if keep else ""
        flash(
            ("Mapping applied: a new dataset (the first one stays as it was)." + kept)
            if created
            else "That mapping gives an existing dataset.",
            "success",
        )
        return redirect(url_for("admin_data.dataset", dataset_id=info.id))

    @bp.post("/datasets/<dataset_id>/train")
    def train(dataset_id: str):
        actor, address = _who()
        try:
            job = service.train(dataset_id, actor, address)
        except LifecycleError as exc:
            flash(f"Not started: {exc}", "danger")
            return redirect(url_for("admin_data.dataset", dataset_id=dataset_id))
        return redirect(url_for("admin_data.job", job_id=job.id))

    @bp.get("/jobs/<job_id>")
    def job(job_id: str):
        found = service.job(job_id)
        return render_template(
            "admin_job.html",
            active="data",
            job=found,
            running=found.state in ACTIVE,
            dataset=service.dataset(found.dataset_id),
        )

    @bp.post("/jobs/<job_id>/cancel")
    def cancel(job_id: str):
        actor, address = _who()
        try:
            service.cancel(job_id, actor, address)
        except LifecycleError as exc:
            flash(str(exc), "danger")
        else:
            flash("Cancel requested: the job stops now; nothing it wrote is kept.", "success")
        return redirect(url_for("admin_data.job", job_id=job_id))

    @bp.get("/models/<version>")
    def compare(version: str):
        found = service.compare(version, request.args.get("against") or None)
        return render_template(
            "admin_compare.html",
            active="data",
            cmp=found,
            models=service.models(),
            metric_names=METRIC_NAMES,
            better=BETTER,
        )

    @bp.post("/models/<version>/promote")
    def promote(version: str):
        actor, address = _who()
        try:
            live = service.promote(version, actor, address)
        except LifecycleError as exc:
            flash(f"Not promoted: {exc}", "danger")
        else:
            flash(
                f"{live.version} is live; every server process serves it within seconds "
                f"(previous: {live.previous or 'none'}).",
                "success",
            )
        return redirect(url_for("admin_data.home"))

    server.register_blueprint(bp)


METRIC_NAMES = {
    "roc_auc": ("ROC-AUC", "higher is better"),
    "pr_auc": ("PR-AUC", "higher is better"),
    "brier": ("Brier score", "lower is better"),
    "lift_top_decile": ("Top-decile lift", "higher is better"),
    "precision": ("Precision at t", ""),
    "recall": ("Recall at t", ""),
    "f1": ("F1 at t", "higher is better"),
    "holdout_roc_auc": ("Holdout ROC-AUC", "time-ordered; higher is better"),
    "customers": ("Customers (base)", ""),
    "churned": ("Churned", ""),
    "threshold": ("Threshold t", ""),
    "chosen": ("Model", ""),
}


# +1: a higher value is better, -1: lower is better; the compare page colours the difference.
BETTER = {
    "roc_auc": 1,
    "pr_auc": 1,
    "brier": -1,
    "lift_top_decile": 1,
    "f1": 1,
    "holdout_roc_auc": 1,
}


def when(value: str | None) -> str:
    """A stored ISO time as the pages show it: '2026-12-03 08:59 UTC' (to the minute; the
    exact time is in the element's title)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _kept(info, ticked: list[str]) -> list[str]:
    """The columns the new mapping keeps: the ticked ones among the leaks the report lists (a
    form cannot name others), and those kept before that the report does not list."""
    listed = {leak["column"] for leak in info.report.get("leaks", [])}
    before = info.mapping.get("keep", [])
    return sorted({c for c in before if c not in listed} | {c for c in ticked if c in listed})


def _parsed(text: str):
    """The mapping box: blank, or a JSON object."""
    import json

    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DataError(f"the mapping is not valid JSON ({exc})") from None
