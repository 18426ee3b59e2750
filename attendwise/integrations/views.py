"""Pages: a school's MIS data — upload a CTF or a CSV (mapped and previewed first), connect Wonde,
sync now, and every run with what it rejected."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.integrations import connectors, csv_import, ctf, files, services
from attendwise.integrations.models import CsvUpload, RunStatus, SyncRun
from attendwise.platform.auth import current_principal, require_perm
from attendwise.platform.db import db
from attendwise.platform.web import register_nav
from attendwise.tenants.models import Organisation, OrgKind
from attendwise.tenants.roles import Perm

bp = Blueprint(
    "integrations",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/integrations/static",
)

RECENT_RUNS = 25


def _import_csv_bytes(session: Session, school: Organisation, data: bytes, *, kind: str) -> services.Outcome:
    """Import a CSV of ``kind`` through the school's saved mapping for that kind (the upload page
    saves the mapping it previewed before importing, so a retry reads the file the same way)."""
    mapping = services.saved_mapping(session, school.id, kind)
    return services.import_csv(session, school, csv_import.parse(data, kind, mapping))


FILE_IMPORTS: dict[str, Callable[[Session, Organisation, bytes], services.Outcome]] = {
    "ctf": services.import_ctf_bytes,
    **{f"csv-{kind}": partial(_import_csv_bytes, kind=kind) for kind in csv_import.KINDS},
}
"""The file imports this page runs, by connector name: each parses and imports a file's bytes."""


def _school() -> Organisation:
    principal = current_principal()
    if principal is None or principal.organisation is None or principal.organisation.kind != OrgKind.SCHOOL:
        abort(403)
    return principal.organisation


def _page(
    school: Organisation, *, status: int = 200, errors: dict[str, str] | None = None, csv_kind: str = ""
) -> Any:
    session = db.session()
    runs = session.scalars(
        select(SyncRun)
        .where(SyncRun.org_id == school.id)
        .order_by(SyncRun.started_at.desc())
        .limit(RECENT_RUNS)
    ).all()
    shown = None
    if request.args.get("run"):
        if not request.args["run"].isdigit():
            abort(404)
        shown = session.get(SyncRun, int(request.args["run"]))
        if shown is None or shown.org_id != school.id:
            abort(404)
    return (
        render_template(
            "integrations/index.html",
            school=school,
            runs=runs,
            shown=shown,
            errors=errors or {},
            csv_kind=csv_kind,
            csv_kinds=csv_import.KINDS,
            max_mb=_max_bytes() / 1024 / 1024,
            connector=connectors.settings_for(session, school.id),
            connector_names=connectors.CONNECTORS,
            retryable=_retryable(shown),
            kept=files.kept_for(session, shown) if shown is not None else None,
        ),
        status,
    )


def _retryable(run: SyncRun | None) -> bool:
    """A failed connector run can be retried, and so can a failed file import whose file was kept."""
    if run is None or run.status != RunStatus.FAILED:
        return False
    if run.connector in connectors.CONNECTORS:
        return True
    return run.connector in FILE_IMPORTS and files.kept_for(db.session(), run) is not None


def _max_bytes() -> int:
    return int(current_app.config.get("MAX_CONTENT_LENGTH") or ctf.DEFAULT_MAX_BYTES)


@bp.get("/integrations")
@require_perm(Perm.INTEGRATIONS_MANAGE)
def index() -> Any:
    return _page(_school())


@bp.post("/integrations/ctf")
@require_perm(Perm.INTEGRATIONS_MANAGE)
def upload_ctf() -> Any:
    school = _school()
    upload = request.files.get("ctf_file")
    if upload is None or not upload.filename:
        return _page(
            school, status=400, errors={"ctf_file": "Choose a CTF file (.xml) exported from your MIS"}
        )
    try:
        data = ctf.read_limited(upload.stream, _max_bytes())
    except ctf.CtfRefused as refused:
        return _page(school, status=400, errors={"ctf_file": f"The file was refused: {refused.reason}"})
    session = db.session()
    try:
        run = _import_file(school, connector="ctf", source=upload.filename, data=data)
    except services.SyncInProgress as busy:
        return _page(school, status=409, errors={"ctf_file": str(busy)})
    if run.status == RunStatus.FAILED:
        files.keep(session, run, upload.filename, data)
        session.commit()
    return redirect(url_for("integrations.index", run=run.id), code=303)


@bp.post("/integrations/csv")
@require_perm(Perm.INTEGRATIONS_MANAGE)
def upload_csv() -> Any:
    """Keep the uploaded CSV (refused when too large or unreadable) and show its preview."""
    school = _school()
    kind = request.form.get("kind", "")
    upload = request.files.get("csv_file")
    errors = {}
    if kind not in csv_import.KINDS:
        errors["kind"] = "Choose whether the file holds attendance marks or pupils"
    if upload is None or not upload.filename:
        errors["csv_file"] = "Choose a CSV file (.csv) exported from your MIS"
    else:
        try:
            data = ctf.read_limited(upload.stream, _max_bytes())
            csv_import.headers(data)
        except ctf.CtfRefused as refused:
            errors["csv_file"] = f"The file was refused: {refused.reason}"
        except csv_import.CsvUnreadable as unreadable:
            errors["csv_file"] = f"The file cannot be read: {unreadable}"
    if errors or upload is None:
        return _page(school, status=400, errors=errors, csv_kind=kind)
    kept = files.keep_upload(
        db.session(), school.id, kind=kind, filename=upload.filename or "", content=data, user_id=_user_id()
    )
    return redirect(url_for("integrations.csv_upload", upload_id=kept.id), code=303)


@bp.route("/integrations/csv/<int:upload_id>", methods=["GET", "POST"])
@require_perm(Perm.INTEGRATIONS_MANAGE)
def csv_upload(upload_id: int) -> Any:
    """Choose the columns and preview the file's first rows; "Import" saves the mapping and imports."""
    school = _school()
    session = db.session()
    upload = _upload(school, upload_id)
    columns = csv_import.headers(upload.content)
    if request.method == "GET":
        chosen = csv_import.suggest(
            upload.kind, columns, services.saved_mapping(session, school.id, upload.kind)
        )
        mapping, missing = csv_import.check_mapping(upload.kind, columns, chosen)
        return _csv_page(school, upload, chosen, None if missing else mapping)
    fields = [name for names in csv_import.FIELDS[upload.kind] for name in names]
    chosen = {name: request.form.get(f"column-{name}", "") for name in fields}
    mapping, errors = csv_import.check_mapping(upload.kind, columns, chosen)
    if errors:
        return _csv_page(school, upload, chosen, None, errors={f"column-{k}": v for k, v in errors.items()})
    if request.form.get("action") != "import":
        return _csv_page(school, upload, chosen, mapping)
    services.save_mapping(session, school.id, upload.kind, mapping)
    filename, data = upload.filename, upload.content
    try:
        run = _import_file(school, connector=f"csv-{upload.kind}", source=filename, data=data)
    except services.SyncInProgress as busy:
        return _csv_page(school, upload, chosen, mapping, errors={"import": str(busy)}, status=409)
    if run.status == RunStatus.FAILED:
        files.keep(session, run, filename, data)
    files.discard(session, upload)
    session.commit()
    return redirect(url_for("integrations.index", run=run.id), code=303)


@bp.post("/integrations/csv/<int:upload_id>/discard")
@require_perm(Perm.INTEGRATIONS_MANAGE)
def discard_csv(upload_id: int) -> Any:
    school = _school()
    upload = _upload(school, upload_id)
    files.discard(db.session(), upload)
    flash(f"{upload.filename} was discarded without importing it.", "success")
    return redirect(url_for("integrations.index"), code=303)


def _upload(school: Organisation, upload_id: int) -> CsvUpload:
    """The school's CSV upload, or 404 (another school's upload is not found either)."""
    upload = files.upload_of(db.session(), school.id, upload_id)
    if upload is None:
        abort(404)
    return upload


def _csv_page(
    school: Organisation,
    upload: CsvUpload,
    chosen: dict[str, str],
    mapping: dict[str, str] | None,
    *,
    errors: dict[str, str] | None = None,
    status: int | None = None,
) -> Any:
    """The mapping form and the preview: checked through ``mapping``, or only shown without one."""
    required, optional = csv_import.FIELDS[upload.kind]
    return (
        render_template(
            "integrations/csv_upload.html",
            school=school,
            upload=upload,
            required=required,
            optional=optional,
            labels=csv_import.LABELS,
            chosen=chosen,
            preview=csv_import.preview(upload.content, upload.kind, mapping),
            errors=errors or {},
        ),
        status or (400 if errors else 200),
    )


def _import_file(school: Organisation, *, connector: str, source: str, data: bytes) -> SyncRun:
    """Import a file's bytes as one run, and return the run, succeeded or failed.

    The run's failure is recorded on it (``services.run_import``) and logged here; the caller
    keeps the file of a failed run so the import can be retried.
    """
    session = db.session()
    started: list[int] = []

    def work() -> services.Outcome:
        running = connectors.running_run(session, school.id)  # this run: the school's lock is held
        if running is not None:
            started.append(running.id)
        return FILE_IMPORTS[connector](session, school, data)

    try:
        return services.run_import(
            session, school, connector=connector, source=source, work=work, user_id=_user_id()
        )
    except Exception:
        if not started:
            raise
        current_app.logger.exception("%s import %r failed (run %s)", connector, source, started[0])
    return session.get_one(SyncRun, started[0])


def _user_id() -> int | None:
    principal = current_principal()
    return principal.user.id if principal and principal.user else None


@bp.post("/integrations/sync")
@require_perm(Perm.INTEGRATIONS_MANAGE)
def sync_now() -> Any:
    school = _school()
    try:
        connectors.request_sync(db.session(), school, user_id=_user_id())
    except connectors.NotConnected as missing:
        return _page(school, status=400, errors={"sync": str(missing)})
    except services.SyncInProgress as busy:
        return _page(school, status=409, errors={"sync": str(busy)})
    flash("Sync started: its run is listed below when it has finished.", "success")
    return redirect(url_for("integrations.index"), code=303)


@bp.post("/integrations/runs/<int:sync_run_id>/retry")
@require_perm(Perm.INTEGRATIONS_MANAGE)
def retry_run(sync_run_id: int) -> Any:
    school = _school()
    session = db.session()
    run = session.get(SyncRun, sync_run_id)
    if run is None or run.org_id != school.id:
        abort(404)
    if not _retryable(run):
        reason = (
            "Only a failed sync can be retried"
            if run.status != RunStatus.FAILED
            else "A file import is retried by uploading the file again"
        )
        return _page(school, status=409, errors={"sync": reason})
    if run.connector in FILE_IMPORTS:
        return _retry_file(school, run)
    try:
        connectors.request_sync(session, school, user_id=_user_id(), retry_of=run.id)
    except connectors.NotConnected as missing:
        return _page(school, status=400, errors={"sync": str(missing)})
    except services.SyncInProgress as busy:
        return _page(school, status=409, errors={"sync": str(busy)})
    flash(f"Retrying run {run.id}: the new run is listed below when it has finished.", "success")
    return redirect(url_for("integrations.index"), code=303)


def _retry_file(school: Organisation, run: SyncRun) -> Any:
    """Import a failed run's kept file again, as a new run whose source names the run it retries."""
    session = db.session()
    kept = files.kept_for(session, run)
    if kept is None:
        abort(404)
    data, filename = kept.content, kept.filename
    try:
        again = _import_file(
            school, connector=run.connector, source=f"retry of run {run.id}: {filename}", data=data
        )
    except services.SyncInProgress as busy:
        return _page(school, status=409, errors={"sync": str(busy)})
    if again.status == RunStatus.FAILED:
        files.move(session, kept, again)
        flash(f"Retrying run {run.id} failed again: {filename} is kept for another retry.", "info")
    else:
        files.discard(session, kept)
        flash(f"Run {run.id} retried: {filename} imported as run {again.id}.", "success")
    session.commit()
    return redirect(url_for("integrations.index", run=again.id), code=303)


def _settings_form(settings: Any) -> dict[str, Any]:
    if settings is None:
        return {
            "connector": "wonde",
            "mis_school_id": "",
            "sync_at": connectors.DEFAULT_SYNC_AT.strftime("%H:%M"),
            "enabled": True,
        }
    return {
        "connector": settings.connector,
        "mis_school_id": settings.mis_school_id,
        "sync_at": settings.sync_at.strftime("%H:%M"),
        "enabled": settings.enabled,
    }


@bp.route("/integrations/connector", methods=["GET", "POST"])
@require_perm(Perm.INTEGRATIONS_MANAGE)
def connector_settings() -> Any:
    school = _school()
    session = db.session()
    settings = connectors.settings_for(session, school.id)
    form = _settings_form(settings)
    errors: dict[str, str] = {}
    if request.method == "POST":
        submitted = connectors.SettingsForm(
            connector=request.form.get("connector", "").strip(),
            mis_school_id=request.form.get("mis_school_id", "").strip(),
            token=request.form.get("token", "").strip(),
            sync_at=request.form.get("sync_at", "").strip(),
            enabled=request.form.get("enabled") == "yes",
        )
        try:
            connectors.save_settings(session, school.id, submitted)
        except connectors.SettingsInvalid as invalid:
            errors = invalid.errors
            form = {
                "connector": submitted.connector,
                "mis_school_id": submitted.mis_school_id,
                "sync_at": submitted.sync_at,
                "enabled": submitted.enabled,
            }
        else:
            flash("Connector settings saved.", "success")
            return redirect(url_for("integrations.connector_settings"), code=303)
    return (
        render_template(
            "integrations/connector.html",
            school=school,
            settings=settings,
            form=form,
            errors=errors,
            connectors=connectors.CONNECTORS,
        ),
        400 if errors else 200,
    )


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_nav(endpoint="integrations.index", label="MIS data", perm=Perm.INTEGRATIONS_MANAGE, order=60)
