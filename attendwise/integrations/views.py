"""Pages: a school's MIS imports — upload a CTF, and every sync run with what it rejected."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from attendwise.integrations import ctf, services
from attendwise.integrations.models import SyncRun
from attendwise.platform.auth import current_principal, require_perm
from attendwise.platform.db import db
from attendwise.platform.web import register_nav
from attendwise.tenants.models import Organisation, OrgKind
from attendwise.tenants.roles import Perm

bp = Blueprint("integrations", __name__, template_folder="templates")

RECENT_RUNS = 25


def _school() -> Organisation:
    principal = current_principal()
    if principal is None or principal.organisation is None or principal.organisation.kind != OrgKind.SCHOOL:
        abort(403)
    return principal.organisation


def _page(school: Organisation, *, status: int = 200, errors: dict[str, str] | None = None) -> Any:
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
            max_mb=_max_bytes() / 1024 / 1024,
        ),
        status,
    )


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
    parsed = ctf.parse(data)
    session = db.session()
    principal = current_principal()
    try:
        run = services.run_import(
            session,
            school,
            connector="ctf",
            source=upload.filename,
            work=lambda: services.import_ctf(session, school, parsed),
            user_id=principal.user.id if principal and principal.user else None,
        )
    except services.SyncInProgress as busy:
        return _page(school, status=409, errors={"ctf_file": str(busy)})
    return redirect(url_for("integrations.index", run=run.id), code=303)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_nav(endpoint="integrations.index", label="MIS data", perm=Perm.INTEGRATIONS_MANAGE, order=60)
