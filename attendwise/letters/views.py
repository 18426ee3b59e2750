"""Pages: the school's letters (print a batch, record posting, resend), PDF downloads
(permission-checked and audited), a parent's emailed link, the school's own template
versions with a preview, a pupil's registration certificate, and this week's letters as one
bulk run (preview, render all with progress, one PDF to print, send the emails)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from attendwise.letters import context, render, services, storage
from attendwise.letters.models import (
    Document,
    Letter,
    LetterRun,
    LetterStatus,
    LetterTemplate,
    PostBatch,
    RunStatus,
)
from attendwise.platform import audit, tenancy
from attendwise.platform.audit import Actor
from attendwise.platform.auth import current_principal, public, require_perm
from attendwise.platform.db import db
from attendwise.platform.web import register_nav
from attendwise.tenants.roles import Perm

bp = Blueprint("letters", __name__, template_folder="templates")

LINK_MAX_AGE = 30 * 24 * 3600  # seconds a parent's emailed link works
STATUS_LABELS = {
    "queued": "Being made",
    "rendering": "Being made",
    "sending": "Sending",
    "retry": "Sending",
    "sent": "Emailed",
    "posted": "Posted",
    "failed": "Failed",
}


def status_label(letter: Letter) -> str:
    """A letter's status in the words the bulk-run pages use."""
    if letter.status == LetterStatus.RENDERED:
        return "Ready to email" if letter.channel == "email" else "Ready to print"
    return STATUS_LABELS.get(letter.status, letter.status)


def _org_id() -> int:
    principal = current_principal()
    if principal is None or principal.organisation is None:
        abort(403)
    return principal.organisation.id


def _user_id() -> int | None:
    principal = current_principal()
    return principal.user.id if principal is not None and principal.user is not None else None


def _stored_pdf(org_id: int, document: Document) -> bytes:
    try:
        return storage.store().get_pdf(org_id, document.sha256)
    except (OSError, ValueError):
        abort(404)


def _pdf(data: bytes, name: str) -> Response:
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, no-store"},
    )


@bp.get("/letters")
@require_perm(Perm.CASES_READ)
def letter_list() -> Any:
    org_id = _org_id()
    session = db.session()
    letters = session.scalars(
        select(Letter).where(Letter.org_id == org_id).order_by(Letter.id.desc()).limit(200)
    ).all()
    batches = session.scalars(
        select(PostBatch).where(PostBatch.org_id == org_id).order_by(PostBatch.id.desc()).limit(20)
    ).all()
    waiting = sum(
        1
        for letter in letters
        if letter.channel == "post"
        and letter.status == LetterStatus.RENDERED
        and letter.post_batch_id is None
    )
    return render_template(
        "letters/list.html",
        letters=letters,
        batches=batches,
        waiting=waiting,
        uncertain=services.is_delivery_uncertain,
    )


@bp.get("/letters/<int:letter_id>/pdf")
@require_perm(Perm.CASES_READ)
def letter_pdf(letter_id: int) -> Response:
    org_id = _org_id()
    session = db.session()
    letter = session.scalar(select(Letter).where(Letter.id == letter_id, Letter.org_id == org_id))
    if letter is None or letter.document_id is None:
        abort(404)
    document = session.get(Document, letter.document_id)
    assert document is not None
    audit.record(
        session,
        org_id=org_id,
        action="letter.download",
        object_type="letter",
        object_id=letter.id,
        pupil_id=letter.pupil_id,
    )
    return _pdf(_stored_pdf(org_id, document), f"letter-{letter.id}.pdf")


@bp.get("/letters/documents/<int:document_id>/pdf")
@require_perm(Perm.CASES_READ)
def document_pdf(document_id: int) -> Response:
    org_id = _org_id()
    session = db.session()
    document = session.scalar(select(Document).where(Document.id == document_id, Document.org_id == org_id))
    if document is None:
        abort(404)
    audit.record(
        session,
        org_id=org_id,
        action="document.download",
        object_type="document",
        object_id=document.id,
        pupil_id=document.pupil_id,
    )
    return _pdf(_stored_pdf(org_id, document), f"{document.kind}-{document.id}.pdf")


@bp.get("/letters/download")
@public
def parent_download() -> Response:
    """The link in a school's email: signed, expiring, for one letter; every use is audited."""
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="letter-download")
    try:
        org_id, letter_id = serializer.loads(request.args.get("t", ""), max_age=LINK_MAX_AGE)
    except SignatureExpired:
        abort(410)
    except BadSignature:
        abort(404)
    session = db.session()
    with tenancy.tenant_context(int(org_id)):
        letter = session.scalar(
            select(Letter).where(Letter.id == int(letter_id), Letter.org_id == int(org_id))
        )
        if letter is None or letter.document_id is None or letter.status != LetterStatus.SENT:
            abort(404)
        document = session.get(Document, letter.document_id)
        assert document is not None
        audit.record(
            session,
            org_id=letter.org_id,
            action="letter.download",
            object_type="letter",
            object_id=letter.id,
            pupil_id=letter.pupil_id,
            actor=Actor(label=f"emailed link to {letter.recipient_name}"[:200]),
        )
        data = _stored_pdf(letter.org_id, document)
        session.commit()
    return _pdf(data, f"letter-{letter.id}.pdf")


@bp.post("/letters/print-batch")
@require_perm(Perm.LETTERS_SEND)
def print_batch() -> Any:
    try:
        batch_id = services.print_batch(db.session(), _org_id())
    except services.LetterError as exc:
        flash(str(exc), "error")
        return redirect(url_for("letters.letter_list"))
    flash(f"Batch {batch_id} is ready to print.", "success")
    return redirect(url_for("letters.letter_list"))


@bp.post("/letters/batches/<int:letter_post_batch_id>/posted")
@require_perm(Perm.LETTERS_SEND)
def batch_posted(letter_post_batch_id: int) -> Any:
    org_id = _org_id()
    batch = db.session().scalar(
        select(PostBatch).where(PostBatch.id == letter_post_batch_id, PostBatch.org_id == org_id)
    )
    if batch is None:
        abort(404)
    try:
        posted_on = dt.date.fromisoformat(request.form.get("posted_on", ""))
    except ValueError:
        flash("Enter the date the letters were posted, for example 2026-11-24.", "error")
        return redirect(url_for("letters.letter_list"))
    try:
        marked = services.mark_posted(
            db.session(),
            org_id,
            letter_post_batch_id,
            posted_on=posted_on,
            certificate_of_posting=request.form.get("certificate", ""),
            user_id=_user_id(),
        )
    except services.LetterError as exc:
        flash(str(exc).capitalize() + ".", "error")
        return redirect(url_for("letters.letter_list"))
    flash(f"{marked} letters recorded as posted.", "success")
    return redirect(url_for("letters.letter_list"))


@bp.post("/letters/<int:letter_id>/resend")
@require_perm(Perm.LETTERS_SEND)
def resend(letter_id: int) -> Any:
    if not services.resend(db.session(), _org_id(), letter_id):
        abort(404)
    flash("The letter will be emailed again.", "success")
    return redirect(url_for("letters.letter_list"))


@bp.post("/letters/<int:letter_id>/delivered")
@require_perm(Perm.LETTERS_SEND)
def confirm_delivered(letter_id: int) -> Any:
    if not services.confirm_delivered(db.session(), _org_id(), letter_id):
        abort(404)
    flash("The letter is recorded as delivered on the case.", "success")
    return redirect(url_for("letters.letter_list"))


@bp.get("/letters/templates")
@require_perm(Perm.LETTERS_SEND)
def template_list() -> Any:
    org_id = _org_id()
    latest: dict[str, int] = {}
    for key, version in db.session().execute(
        select(LetterTemplate.key, LetterTemplate.version).where(LetterTemplate.org_id == org_id)
    ):
        latest[key] = max(version, latest.get(key, 0))
    return render_template("letters/templates.html", keys=render.default_keys(), latest=latest)


@bp.route("/letters/templates/edit", methods=["GET", "POST"])
@require_perm(Perm.LETTERS_SEND)
def template_edit() -> Any:
    org_id = _org_id()
    key = request.values.get("key", "")
    if key not in render.default_keys():
        abort(404)
    session = db.session()
    error = None
    if request.method == "POST":
        source = request.form.get("source", "")
        try:
            if request.form.get("action") == "preview":
                html = render.render_html(source, context.sample())
                return _pdf(
                    render.render_pdf(html, services.assets_for(session, org_id)), f"preview-{key}.pdf"
                )
            if request.form.get("action") == "default":
                source = render.default_source(key)
            version = services.save_template(session, org_id, key, source, user_id=_user_id())
        except (render.LetterTemplateError, render.RenderError, services.LetterError) as exc:
            error = str(exc)
        else:
            flash(f"Saved version {version} of {key}. New letters use it.", "success")
            return redirect(url_for("letters.template_edit", key=key))
    else:
        source, version = services.template_source(session, org_id, key)
    return render_template(
        "letters/template_edit.html", key=key, source=source, error=error
    ), 422 if error else 200


@bp.get("/pupils/<int:pupil_id>/registration-certificate")
@require_perm(Perm.PUPILS_READ)
def registration_certificate(pupil_id: int) -> Any:
    from attendwise.attendance.models import Pupil

    org_id = _org_id()
    if db.session().scalar(select(Pupil.id).where(Pupil.id == pupil_id, Pupil.org_id == org_id)) is None:
        abort(404)
    try:
        start = dt.date.fromisoformat(request.args.get("from", ""))
        end = dt.date.fromisoformat(request.args.get("to", ""))
    except ValueError:
        return render_template("letters/certificate_form.html", pupil_id=pupil_id, error=None)
    try:
        document = services.registration_certificate(db.session(), org_id, pupil_id, start, end)
    except services.LetterError as exc:
        return render_template("letters/certificate_form.html", pupil_id=pupil_id, error=str(exc)), 422
    return _pdf(_stored_pdf(org_id, document), f"registration-certificate-{pupil_id}.pdf")


@bp.get("/letters/week")
@require_perm(Perm.LETTERS_SEND)
def week() -> Any:
    from attendwise.attendance import queries as attendance_queries

    org_id = _org_id()
    session = db.session()
    today = attendance_queries.today()
    rows = services.week_letters(session, org_id, today)
    audit.record(
        session,
        org_id=org_id,
        action="letters.week_preview",
        object_type="pupils",
        detail={"rows": len(rows), "pupil_ids": sorted({row.pupil_id for row in rows})},
    )
    runs = session.scalars(
        select(LetterRun).where(LetterRun.org_id == org_id).order_by(LetterRun.id.desc()).limit(5)
    ).all()
    monday, sunday = services.week_of(today)
    return render_template(
        "letters/week.html",
        rows=rows,
        runs=runs,
        monday=monday,
        sunday=sunday,
        ready=sum(1 for row in rows if row.problem is None),
        status_label=status_label,
    )


@bp.post("/letters/runs")
@require_perm(Perm.LETTERS_SEND)
def start_run() -> Any:
    from attendwise.attendance import queries as attendance_queries

    try:
        run = services.start_run(db.session(), _org_id(), attendance_queries.today(), user_id=_user_id())
    except services.LetterError as exc:
        flash(str(exc).capitalize() + ".", "error")
        return redirect(url_for("letters.week"))
    return redirect(url_for("letters.run_page", letter_run_id=run.id))


def _run(letter_run_id: int) -> LetterRun:
    run = db.session().scalar(
        select(LetterRun).where(LetterRun.id == letter_run_id, LetterRun.org_id == _org_id())
    )
    if run is None:
        abort(404)
    return run


def _run_view(run: LetterRun) -> dict[str, Any]:
    session = db.session()
    letters = services.run_letters(session, run.org_id, run.id) if run.status == RunStatus.RENDERED else []
    batch = session.get(PostBatch, run.post_batch_id) if run.post_batch_id else None
    emails = [letter for letter in letters if letter.channel == "email"]
    if letters:
        audit.record(
            session,
            org_id=run.org_id,
            action="letter_run.view",
            object_type="letter_run",
            object_id=run.id,
            detail={"pupil_ids": sorted({letter.pupil_id for letter in letters})},
        )
    return {
        "run": run,
        "letters": letters,
        "batch": batch,
        "printed": sum(
            1 for letter in letters if run.post_batch_id and letter.post_batch_id == run.post_batch_id
        ),
        "emails": emails,
        "emails_waiting": sum(1 for letter in emails if letter.status in ("rendered", "retry")),
        "emails_sent": sum(1 for letter in emails if letter.status == "sent"),
        "percent": int(100 * run.done / run.total) if run.total else 100,
        "status_label": status_label,
    }


@bp.get("/letters/runs/<int:letter_run_id>")
@require_perm(Perm.LETTERS_SEND)
def run_page(letter_run_id: int) -> Any:
    run = _run(letter_run_id)
    return render_template("letters/run.html", **_run_view(run))


@bp.get("/letters/runs/<int:letter_run_id>/progress")
@require_perm(Perm.LETTERS_SEND)
def run_progress(letter_run_id: int) -> Any:
    """The part of the run page that changes; htmx polls it until the run has finished."""
    run = _run(letter_run_id)
    return render_template("letters/_run_progress.html", **_run_view(run))


@bp.post("/letters/runs/<int:letter_run_id>/send")
@require_perm(Perm.LETTERS_SEND)
def run_send(letter_run_id: int) -> Any:
    run = _run(letter_run_id)
    if run.status != RunStatus.RENDERED:
        flash("The letters are still being made: send the emails once they are ready.", "error")
        return redirect(url_for("letters.run_page", letter_run_id=run.id))
    sent = services.release_emails(db.session(), run.org_id, run.id, user_id=_user_id())
    if sent:
        flash(f"{sent} emails are being sent.", "success")
    else:
        flash("This run's emails were already sent: nothing was sent again.", "success")
    return redirect(url_for("letters.run_page", letter_run_id=run.id))


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    storage.init_app(app)
    register_nav(endpoint="letters.letter_list", label="Letters", perm=Perm.CASES_READ, order=30)
