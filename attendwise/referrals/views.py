"""Pages: a school's referrals (start, supply, sign off, submit, answer) and the LA's queue (triage,
thread, decisions, the penalty-notice panel and ledger).

A school's pages read only the school's rows; the LA's pages read only the LA's rows (the frozen
copies), so another tenant's object is a 404 by construction. A refused action re-renders the
page with the reason (400); nothing is half-written because the request rolls back.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Flask, abort, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.wrappers import Response

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance.models import Pupil
from attendwise.platform import audit
from attendwise.platform.auth import Principal, current_principal, require_perm
from attendwise.platform.db import db
from attendwise.platform.web import register_nav
from attendwise.referrals import bundle as bundle_pdf
from attendwise.referrals import queries, services, webhooks
from attendwise.referrals.models import (
    DecisionKind,
    Issuer,
    LAProfile,
    PenaltyNotice,
    ReceivedReferral,
    Referral,
    ReferralKind,
    Status,
    WebhookEndpoint,
    WebhookEvent,
)
from attendwise.referrals.services import ReferralError
from attendwise.tenants import roles
from attendwise.tenants.models import OrgKind
from attendwise.tenants.roles import Perm

bp = Blueprint("referrals", __name__, template_folder="templates", url_prefix="/referrals")


def _principal() -> Principal:
    principal = current_principal()
    if principal is None or principal.organisation is None or principal.user is None:
        abort(403)
    return principal


def _today() -> dt.date:
    return attendance_queries.today()


def _date(name: str, default: dt.date | None = None) -> dt.date:
    raw = request.form.get(name, "").strip()
    if not raw:
        if default is None:
            raise ReferralError(f"{name.replace('_', ' ')}: enter a date")
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ReferralError(f"{name.replace('_', ' ')}: {raw!r} is not a date (use YYYY-MM-DD)") from None


def _own_referral(referral_id: int) -> Referral:
    referral = db.session.scalar(select(Referral).where(Referral.id == referral_id))
    if referral is None:
        abort(404)
    return referral


def _own_received(received_referral_id: int) -> ReceivedReferral:
    received = db.session.scalar(select(ReceivedReferral).where(ReceivedReferral.id == received_referral_id))
    if received is None:
        abort(404)
    return received


# -- the school's side ----------------------------------------------------------------------------


@bp.get("/")
@require_perm(Perm.REFERRALS_SUBMIT)
def school_list() -> str:
    referrals = db.session.scalars(select(Referral).order_by(Referral.id.desc())).all()
    pupils = {
        p.id: p
        for p in db.session.scalars(select(Pupil).where(Pupil.id.in_({r.pupil_id for r in referrals})))
    }
    return render_template("referrals/school_list.html", referrals=referrals, pupils=pupils)


@bp.route("/new", methods=["GET", "POST"])
@require_perm(Perm.REFERRALS_SUBMIT)
def start() -> tuple[str, int] | Response:
    principal = _principal()
    assert principal.organisation is not None
    assert principal.user is not None
    pupil_id = request.values.get("pupil_id", type=int)
    pupil = db.session.scalar(select(Pupil).where(Pupil.id == pupil_id)) if pupil_id else None
    if pupil is None:
        abort(404)
    error = ""
    if request.method == "POST":
        try:
            referral = services.start(
                db.session(),
                pupil_id=pupil.id,
                kind=request.form.get("kind", ""),
                user_id=principal.user.id,
                reason=request.form.get("reason", ""),
            )
            return redirect(url_for("referrals.school_detail", referral_id=referral.id))
        except ReferralError as exc:
            error = str(exc)
    kinds = queries.kinds_for_school(db.session(), principal.organisation)
    return render_template(
        "referrals/start.html", pupil=pupil, kinds=kinds, error=error
    ), 400 if error else 200


def _school_page(referral: Referral, error: str = "", status: int = 200) -> tuple[str, int]:
    principal = _principal()
    pupil = db.session.get(Pupil, referral.pupil_id)
    bundle = None
    if referral.status in (Status.DRAFT, Status.MORE_INFORMATION_REQUESTED):
        try:
            bundle = services.assemble(db.session(), referral, _today())
        except ReferralError as exc:
            error, status = error or str(exc), 200
    audit.record(
        db.session(),
        org_id=referral.org_id,
        action="referral.view",
        object_type="referral",
        object_id=referral.id,
        pupil_id=referral.pupil_id,
    )
    return (
        render_template(
            "referrals/school_detail.html",
            referral=referral,
            pupil=pupil,
            bundle=bundle,
            can_signoff=principal.can(Perm.REFERRALS_SIGNOFF),
            error=error,
        ),
        status,
    )


@bp.get("/<int:referral_id>")
@require_perm(Perm.REFERRALS_SUBMIT)
def school_detail(referral_id: int) -> tuple[str, int]:
    return _school_page(_own_referral(referral_id))


@bp.post("/<int:referral_id>/act")
@require_perm(Perm.REFERRALS_SUBMIT)
def school_act(referral_id: int) -> tuple[str, int] | Response:
    principal = _principal()
    assert principal.user is not None
    assert principal.membership is not None
    referral = _own_referral(referral_id)
    action = request.form.get("action", "")
    session = db.session()
    try:
        if action == "supply":
            services.supply(session, referral, request.form.get("key", ""), request.form.get("text", ""))
        elif action == "signoff":
            if not principal.can(Perm.REFERRALS_SIGNOFF):
                abort(403)
            services.sign_off(
                session, referral, user_id=principal.user.id, role_key=principal.membership.role
            )
        elif action == "submit":
            services.submit(session, referral, user_id=principal.user.id, on=_today())
        elif action == "reply":
            services.school_reply(
                session,
                referral,
                user_id=principal.user.id,
                author=principal.user.display_name,
                body=request.form.get("body", ""),
                on=_today(),
            )
        else:
            abort(400)
    except ReferralError as exc:
        session.rollback()
        return _school_page(_own_referral(referral_id), str(exc), 400)
    return redirect(url_for("referrals.school_detail", referral_id=referral.id))


# -- the LA's side --------------------------------------------------------------------------------


@bp.get("/queue")
@require_perm(Perm.REFERRALS_TRIAGE)
def queue() -> str:
    filters = queries.QueueFilters.from_args(request.args)
    rows = queries.queue(db.session(), filters, _today())
    return render_template(
        "referrals/queue.html",
        rows=rows,
        filters=filters,
        kinds=[(k.value, label) for k, (label, _statutory, _checklist) in services.DEFAULT_KINDS.items()],
        statuses=[(s.value, s.value.replace("_", " ").capitalize()) for s in Status],
        schools=queries.schools_in_queue(db.session()),
        officers=queries.officers(db.session(), _principal()),
        today=_today(),
    )


@bp.get("/overview")
@require_perm(Perm.REFERRALS_TRIAGE)
def overview() -> str:
    return render_template(
        "referrals/overview.html",
        o=queries.overview(db.session(), _today()),
        can_configure=all(_principal().can(p) for p in LA_SETTINGS),
    )


def _la_page(received: ReceivedReferral, error: str = "", status: int = 200) -> tuple[str, int]:
    principal = _principal()
    audit.record(
        db.session(),
        org_id=received.org_id,
        action="referral.received.view",
        object_type="received_referral",
        object_id=received.id,
    )
    panel = queries.penalty_panel(db.session(), received, _today())
    return (
        render_template(
            "referrals/received.html",
            received=received,
            thread=queries.thread_for_received(db.session(), received),
            section_labels=bundle_pdf.SECTION_LABELS,
            panel=panel,
            decisions=list(DecisionKind),
            officers=queries.officers(db.session(), principal),
            today=_today(),
            unpaid=lambda n: services.notice_unpaid(n, _today()),
            notice_clock=lambda n: services.notice_clock(n, _today()),
            unpaid_next_step=services.UNPAID_NEXT_STEP,
            error=error,
        ),
        status,
    )


@bp.get("/received/<int:received_referral_id>")
@require_perm(Perm.REFERRALS_TRIAGE)
def received_detail(received_referral_id: int) -> tuple[str, int]:
    return _la_page(_own_received(received_referral_id))


def _audit_bundle_view(received: ReceivedReferral, form: str) -> None:
    audit.record(
        db.session(),
        org_id=received.org_id,
        action="referral.bundle.view",
        object_type="received_referral",
        object_id=received.id,
        detail={"sha256": received.bundle_hash, "form": form},
    )


@bp.get("/received/<int:received_referral_id>/bundle")
@require_perm(Perm.REFERRALS_TRIAGE)
def received_bundle(received_referral_id: int) -> Response:
    """The frozen bundle as the HTML it was rendered from (escaped in the letters sandbox)."""
    received = _own_received(received_referral_id)
    _audit_bundle_view(received, "html")
    return Response(received.bundle_html, mimetype="text/html")


@bp.get("/received/<int:received_referral_id>/bundle.pdf")
@require_perm(Perm.REFERRALS_TRIAGE)
def received_bundle_pdf(received_referral_id: int) -> Response:
    """The frozen bundle as the one indexed, paginated PDF made at submission."""
    received = _own_received(received_referral_id)
    if received.bundle_pdf is None:
        abort(404)
    _audit_bundle_view(received, "pdf")
    response = Response(received.bundle_pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="referral-R{received.id}-bundle.pdf"'
    response.headers["ETag"] = f'"{received.bundle_pdf_sha256}"'
    return response


def _run_la_action(received: ReceivedReferral, principal: Principal, action: str) -> None:
    assert principal.user is not None
    session = db.session()
    on = _today()
    if action == "acknowledge":
        services.acknowledge(session, received)
    elif action == "assign":
        services.assign(session, received, request.form.get("user_id", type=int))
    elif action == "request_information":
        services.request_information(
            session,
            received,
            user_id=principal.user.id,
            author=principal.user.display_name,
            body=request.form.get("body", ""),
            on=on,
        )
    elif action == "accept":
        services.accept(session, received)
    elif action == "decline":
        services.decline(session, received, request.form.get("reason", ""))
    elif action == "close":
        services.close(session, received)
    elif action == "decide":
        conference = request.form.get("conference_on", "").strip()
        services.decide(
            session,
            received,
            request.form.get("kind", ""),
            user_id=principal.user.id,
            on=on,
            notes=request.form.get("notes", ""),
            conference_on=dt.date.fromisoformat(conference) if conference else None,
            attendees=request.form.get("attendees", ""),
            outcome=request.form.get("outcome", ""),
        )
    elif action == "issue_notice":
        parents = queries.parents_of(received)
        index = request.form.get("parent", type=int)
        if index is None or not 0 <= index < len(parents):
            raise ReferralError("choose the parent the notice is issued to")
        issued_on = _date("issued_on", on)
        refused = services.notice_refusal(session, received, parents[index]["parent_key"], issued_on)
        if refused is not None:
            raise ReferralError(services.refusal_message(refused))
        sessions = queries.unused_window_sessions(
            session, received, parents[index]["parent_key"], request.form.get("window", type=int) or 0
        )
        notice = services.issue_notice(
            session,
            received,
            parent=parents[index],
            sessions=sessions,
            issued_on=issued_on,
            received_on=_date("received_on", issued_on),
            user_id=principal.user.id,
        )
        services.decide(
            session,
            received,
            DecisionKind.PN_ISSUED,
            user_id=principal.user.id,
            on=issued_on,
            penalty_notice=notice,
        )
    else:
        abort(400)


@bp.post("/received/<int:received_referral_id>/act")
@require_perm(Perm.REFERRALS_TRIAGE)
def received_act(received_referral_id: int) -> tuple[str, int] | Response:
    principal = _principal()
    received = _own_received(received_referral_id)
    try:
        _run_la_action(received, principal, request.form.get("action", ""))
    except (ReferralError, ValueError) as exc:
        db.session.rollback()
        return _la_page(_own_received(received_referral_id), str(exc), 400)
    except StaleDataError:
        db.session.rollback()
        return _la_page(
            _own_received(received_referral_id), "Someone else changed this referral; try again.", 409
        )
    return redirect(url_for("referrals.received_detail", received_referral_id=received.id))


@bp.post("/notices/<int:notice_id>")
@require_perm(Perm.REFERRALS_TRIAGE)
def notice_act(notice_id: int) -> tuple[str, int] | Response:
    notice = db.session.scalar(select(PenaltyNotice).where(PenaltyNotice.id == notice_id))
    if notice is None:
        abort(404)
    back = notice.received_id
    try:
        if request.form.get("action") == "payment":
            amount = request.form.get("amount", type=int)
            if amount is None:
                raise ReferralError("amount: enter the amount paid in whole pounds")
            services.record_payment(db.session(), notice, paid_on=_date("paid_on"), amount=amount)
        elif request.form.get("action") == "prosecute":
            services.consider_prosecution(db.session(), notice, _today())
        elif request.form.get("action") == "withdraw":
            services.withdraw_notice(db.session(), notice, request.form.get("reason", ""))
        else:
            abort(400)
    except ReferralError as exc:
        db.session.rollback()
        if back is None:
            raise
        return _la_page(_own_received(back), str(exc), 400)
    if back is None:
        return redirect(url_for("referrals.queue"))
    return redirect(url_for("referrals.received_detail", received_referral_id=back))


# -- the LA's settings --------------------------------------------------------------------------------

LA_SETTINGS = (Perm.REFERRALS_TRIAGE, Perm.ORG_SETTINGS)


def _settings_page(error: str = "", status: int = 200, saved: bool = False) -> tuple[str, int]:
    profile = db.session.scalar(select(LAProfile))
    return (
        render_template(
            "referrals/settings.html",
            profile=profile
            or LAProfile(
                nti_issuer=Issuer.LA, pn_issuer=Issuer.LA, improvement_period_school_days=30, team_email=""
            ),
            kinds=db.session.scalars(select(ReferralKind).order_by(ReferralKind.id)).all(),
            issuers=[(i.value, i.value.replace("la", "the local authority").capitalize()) for i in Issuer],
            form=request.form if error else None,
            error=error,
            saved=saved,
        ),
        status,
    )


@bp.route("/settings", methods=["GET", "POST"])
@require_perm(*LA_SETTINGS)
def settings() -> tuple[str, int]:
    principal = _principal()
    assert principal.organisation is not None
    if request.method == "GET":
        return _settings_page()
    try:
        services.update_profile(
            db.session(),
            principal.organisation.id,
            nti_issuer=request.form.get("nti_issuer", ""),
            pn_issuer=request.form.get("pn_issuer", ""),
            improvement_period_school_days=request.form.get("improvement_period_school_days", ""),
            team_email=request.form.get("team_email", ""),
            daily_digest=request.form.get("daily_digest") == "yes",
        )
    except ReferralError as exc:
        db.session.rollback()
        return _settings_page(str(exc), 400)
    return _settings_page(saved=True)


def _kind_page(
    kind: ReferralKind, error: str = "", status: int = 200, saved: bool = False
) -> tuple[str, int]:
    rows = [(i["key"], i["label"], str(i["weeks"])) for i in kind.checklist]
    if error:
        rows = _checklist_rows()
    return (
        render_template(
            "referrals/kind.html",
            kind=kind,
            rows=[*rows, ("", "", "")],
            evidence=services.EVIDENCE,
            school_roles=[(r.key, r.label) for r in roles.roles_for(OrgKind.SCHOOL)],
            form=request.form if error else None,
            error=error,
            saved=saved,
        ),
        status,
    )


def _checklist_rows() -> list[tuple[str, str, str]]:
    count = min(request.form.get("rows", type=int) or 0, 50)
    return [
        (
            request.form.get(f"key-{n}", ""),
            request.form.get(f"label-{n}", ""),
            request.form.get(f"weeks-{n}", ""),
        )
        for n in range(count)
        if request.form.get(f"key-{n}", "")
    ]


@bp.route("/settings/kinds/<int:referral_kind_id>", methods=["GET", "POST"])
@require_perm(*LA_SETTINGS)
def kind_settings(referral_kind_id: int) -> tuple[str, int]:
    kind = db.session.scalar(select(ReferralKind).where(ReferralKind.id == referral_kind_id))
    if kind is None:
        abort(404)
    if request.method == "GET":
        return _kind_page(kind)
    try:
        services.update_kind(
            db.session(),
            kind,
            label=request.form.get("label", ""),
            enabled=request.form.get("enabled") == "yes",
            signoff_role=request.form.get("signoff_role", ""),
            sla_working_days=request.form.get("sla_working_days", ""),
            checklist=_checklist_rows(),
        )
    except (ReferralError, StaleDataError) as exc:
        db.session.rollback()
        kind = db.session.scalars(select(ReferralKind).where(ReferralKind.id == referral_kind_id)).one()
        return _kind_page(kind, str(exc), 400)
    return _kind_page(kind, saved=True)


# -- the LA's webhooks ------------------------------------------------------------------------------
EVENT_LABELS = {
    WebhookEvent.REFERRAL_SUBMITTED: "A school submits a referral",
    WebhookEvent.REFERRAL_STATUS_CHANGED: "A referral's status changes",
    WebhookEvent.REFERRAL_DECIDED: "A decision is recorded",
    WebhookEvent.PENALTY_NOTICE_CHANGED: "A penalty notice is issued, paid, withdrawn or unpaid",
}


def _webhooks_page(error: str = "", secret: str = "", status: int = 200) -> tuple[str, int]:
    endpoints = db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()
    return (
        render_template(
            "referrals/webhooks.html",
            endpoints=endpoints,
            events=EVENT_LABELS,
            error=error,
            secret=secret,
            form=request.form if error else {},
        ),
        status,
    )


@bp.route("/webhooks", methods=["GET", "POST"])
@require_perm(*LA_SETTINGS)
def webhooks_page() -> tuple[str, int]:
    principal = _principal()
    assert principal.organisation is not None
    assert principal.user is not None
    if request.method == "GET":
        return _webhooks_page()
    try:
        _endpoint, secret = webhooks.create_endpoint(
            db.session(),
            principal.organisation.id,
            url=request.form.get("url", ""),
            events=request.form.getlist("events"),
            description=request.form.get("description", ""),
            user_id=principal.user.id,
        )
    except webhooks.WebhookError as exc:
        db.session.rollback()
        return _webhooks_page(str(exc), status=400)
    return _webhooks_page(secret=secret, status=201)


def _own_endpoint(referral_webhook_endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == referral_webhook_endpoint_id)
    )
    if endpoint is None:
        abort(404)
    return endpoint


@bp.get("/webhooks/<int:referral_webhook_endpoint_id>")
@require_perm(*LA_SETTINGS)
def webhook_detail(referral_webhook_endpoint_id: int) -> str:
    endpoint = _own_endpoint(referral_webhook_endpoint_id)
    return render_template(
        "referrals/webhook.html",
        endpoint=endpoint,
        deliveries=webhooks.deliveries(db.session(), endpoint),
        events=EVENT_LABELS,
    )


@bp.post("/webhooks/<int:referral_webhook_endpoint_id>")
@require_perm(*LA_SETTINGS)
def webhook_act(referral_webhook_endpoint_id: int) -> Response:
    endpoint = _own_endpoint(referral_webhook_endpoint_id)
    action = request.form.get("action")
    if action not in ("enable", "disable"):
        abort(400)
    webhooks.set_active(db.session(), endpoint, action == "enable")
    return redirect(url_for("referrals.webhook_detail", referral_webhook_endpoint_id=endpoint.id))


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_nav(endpoint="referrals.school_list", label="Referrals", perm=Perm.REFERRALS_SUBMIT, order=40)
    register_nav(endpoint="referrals.queue", label="Referral queue", perm=Perm.REFERRALS_TRIAGE, order=40)
    register_nav(
        endpoint="referrals.overview", label="Referral overview", perm=Perm.REFERRALS_TRIAGE, order=41
    )
