"""Pages for the signed-in home, onboarding and organisation administration.

* Platform administrators create local authorities and trusts, import schools from a GIAS
  CSV (all or nothing), and invite the first people into any organisation.
* Organisation administrators (``users:manage``) invite people by email, change their
  roles and deactivate them; every change is audited under the organisation.
* Anyone with an invitation link sets a password (or signs in) and joins.
* Administrators with ``audit:read`` search their own organisation's audit log.

Platform pages act on organisations other than the administrator's own, so their writes
run in an explicit, named system context.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from attendwise.platform import auth, mail, tenancy
from attendwise.platform.auth import login_required, require_perm
from attendwise.platform.db import db
from attendwise.platform.passwords import password_problem
from attendwise.platform.web import register_nav
from attendwise.tenants import queries, services
from attendwise.tenants.models import Invitation, Membership, Organisation, OrgKind, User
from attendwise.tenants.roles import ROLES, Perm, roles_for

bp = Blueprint("tenants", __name__, template_folder="templates")

AUDIT_PAGE_SIZE = 50
MAX_LISTED_PROBLEMS = 500


@bp.get("/")
@login_required
def home() -> Any:
    return render_template("tenants/home.html", roles=ROLES)


def _principal() -> auth.Principal:
    principal = auth.current_principal()
    assert principal is not None
    return principal


def _org() -> Organisation:
    org = _principal().organisation
    assert org is not None
    return org


def _role_items(kind: OrgKind, selected: str | None = None) -> list[dict[str, Any]]:
    return [
        {"value": r.key, "text": r.label, "hint": {"text": r.description}, "checked": r.key == selected}
        for r in roles_for(kind)
    ]


def send_invitation(issued: services.IssuedInvitation, org: Organisation, inviter: User | None) -> None:
    link = current_app.config["BASE_URL"].rstrip("/") + url_for(
        "tenants.accept_invitation", token=issued.token
    )
    context = {
        "organisation": org,
        "role_label": ROLES[issued.invitation.role].label,
        "inviter": inviter,
        "link": link,
        "days": services.INVITATION_DAYS,
    }
    mail.send_email(
        issued.invitation.email,
        f"You have been invited to join {org.name} on Attendwise",
        render_template("tenants/email/invitation.txt", **context),
        html=render_template("tenants/email/invitation.html", **context),
    )


def _invite_from_form(org: Organisation, inviter: User | None) -> dict[str, str]:
    """Invite from the posted form; return field errors (nothing is kept if there are any)."""
    email = request.form.get("email", "").strip()
    role_key = request.form.get("role", "")
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter the email address of the person to invite"
    if role_key not in {r.key for r in roles_for(org.kind)}:
        errors["role"] = "Choose a role"
    if errors:
        return errors
    try:
        issued = services.invite(db.session(), org=org, email=email, role_key=role_key, invited_by=inviter)
    except services.OnboardingError as exc:
        return {"email": str(exc)}
    try:
        send_invitation(issued, org, inviter)
    except mail.MailError:
        current_app.logger.exception("invitation email could not be sent")
        db.session.rollback()
        return {"email": "The invitation email could not be sent, so no invitation was made. Try again."}
    flash(f"Invitation sent to {issued.invitation.email}.", "success")
    return {}


# ---- organisation administrators: people -----------------------------------------------------


def _users_page(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    org = _org()
    sess = db.session()
    return render_template(
        "tenants/users.html",
        organisation=org,
        members=queries.members(sess, org.id),
        invitations=queries.open_invitations(sess, org.id),
        roles=ROLES,
        role_items=_role_items(org.kind, request.form.get("role")),
        role_choices=roles_for(org.kind),
        errors=errors or {},
        form=request.form,
        me=_principal().user,
    ), status


@bp.get("/organisation/users")
@require_perm(Perm.USERS_MANAGE)
def users() -> Any:
    return _users_page()


@bp.post("/organisation/users/invite")
@require_perm(Perm.USERS_MANAGE)
def invite_user() -> Any:
    errors = _invite_from_form(_org(), _principal().user)
    if errors:
        return _users_page(errors, 400)
    return redirect(url_for("tenants.users"))


def _membership_or_404(membership_id: int) -> Membership:
    membership = queries.membership_in(db.session(), _org().id, membership_id)
    if membership is None:
        abort(404)
    return membership


@bp.post("/organisation/users/<int:membership_id>/role")
@require_perm(Perm.USERS_MANAGE)
def change_role(membership_id: int) -> Any:
    membership = _membership_or_404(membership_id)
    try:
        services.change_role(db.session(), membership, request.form.get("role", ""))
    except (services.OnboardingError, ValueError) as exc:
        return _users_page({f"role-{membership.id}": str(exc)}, 400)
    flash(f"{membership.user.display_name} is now {ROLES[membership.role].label}.", "success")
    return redirect(url_for("tenants.users"))


@bp.post("/organisation/users/<int:membership_id>/deactivate")
@require_perm(Perm.USERS_MANAGE)
def deactivate_user(membership_id: int) -> Any:
    membership = _membership_or_404(membership_id)
    try:
        signed_out = services.deactivate_membership(db.session(), membership)
    except services.OnboardingError as exc:
        return _users_page({f"role-{membership.id}": str(exc)}, 400)
    message = f"{membership.user.display_name} can no longer use {membership.organisation.name}."
    if signed_out:
        message += " They have been signed out everywhere."
    flash(message, "success")
    return redirect(url_for("tenants.users"))


@bp.post("/organisation/users/<int:membership_id>/reactivate")
@require_perm(Perm.USERS_MANAGE)
def reactivate_user(membership_id: int) -> Any:
    membership = _membership_or_404(membership_id)
    services.reactivate_membership(db.session(), membership)
    flash(f"{membership.user.display_name} can use {membership.organisation.name} again.", "success")
    return redirect(url_for("tenants.users"))


@bp.post("/organisation/invitations/<int:invitation_id>/revoke")
@require_perm(Perm.USERS_MANAGE)
def revoke_invitation(invitation_id: int) -> Any:
    invitation = db.session.scalar(
        select(Invitation).where(Invitation.id == invitation_id, Invitation.org_id == _org().id)
    )
    if invitation is None:
        abort(404)
    services.revoke_invitation(db.session(), invitation)
    flash(f"The invitation to {invitation.email} has been withdrawn.", "success")
    return redirect(url_for("tenants.users"))


# ---- accepting an invitation -------------------------------------------------------------------


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@auth.public
def accept_invitation(token: str) -> Any:
    principal = auth.current_principal()
    signed_in = principal.user if principal is not None else None
    with tenancy.system_context("accept invitation"):
        sess = db.session()
        invitation = services.find_invitation(sess, token)
        if invitation is None:
            return render_template("tenants/invitation_invalid.html"), 404
        org = sess.get(Organisation, invitation.org_id)
        assert org is not None
        existing = sess.scalar(select(User).where(User.email == invitation.email))
        context = {
            "invitation": invitation,
            "organisation": org,
            "role_label": ROLES[invitation.role].label,
            "signed_in": signed_in,
            "existing": existing,
            "errors": {},
            "form": request.form,
        }
        if signed_in is not None and signed_in.email != invitation.email:
            return render_template("tenants/invitation_accept.html", mismatch=True, **context), 403
        if request.method == "GET":
            return render_template("tenants/invitation_accept.html", **context)
        if signed_in is not None:
            services.accept_invitation(sess, invitation, signed_in)
            sess.commit()
            session["org_id"] = org.id
            flash(f"You have joined {org.name} as {context['role_label']}.", "success")
            return redirect(url_for("tenants.home"))
        if existing is not None:
            return redirect(url_for("auth.login", next=request.path))
        errors = _new_account_errors()
        if errors:
            context["errors"] = errors
            return render_template("tenants/invitation_accept.html", **context), 400
        try:
            user = services.create_user(
                sess,
                email=invitation.email,
                display_name=request.form["display_name"].strip(),
                password=request.form["password"],
            )
        except services.OnboardingError:
            sess.rollback()
            return redirect(url_for("auth.login", next=request.path))
        services.accept_invitation(sess, invitation, user)
        sess.commit()
    flash(f"Your account is ready. Sign in with {user.email} to use {org.name}.", "success")
    return redirect(url_for("auth.login"))


def _new_account_errors() -> dict[str, str]:
    errors = {}
    name = request.form.get("display_name", "").strip()
    password = request.form.get("password", "")
    if not name:
        errors["display_name"] = "Enter your full name"
    elif len(name) > 200:
        errors["display_name"] = "Your name must be 200 characters or fewer"
    problem = password_problem(password)
    if problem:
        errors["password"] = problem
    elif password != request.form.get("confirm_password", ""):
        errors["confirm_password"] = "The passwords do not match"  # noqa: S105 - a message
    return errors


# ---- platform administrators: onboarding organisations -----------------------------------------


def _platform_page(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    sess = db.session()
    context = {
        "las": queries.organisations(sess, OrgKind.LA),
        "trusts": queries.organisations(sess, OrgKind.TRUST),
        "schools": queries.search_schools(sess, request.args.get("q", "")),
        "la_counts": queries.school_counts(sess, "la_id"),
        "trust_counts": queries.school_counts(sess, "trust_id"),
    }
    return render_template(
        "tenants/platform_organisations.html",
        errors=errors or {},
        form=request.form,
        q=request.args.get("q", ""),
        **context,
    ), status


@bp.get("/platform/organisations")
@require_perm(Perm.PLATFORM_ADMIN)
def platform_organisations() -> Any:
    return _platform_page()


@bp.post("/platform/organisations/local-authorities")
@require_perm(Perm.PLATFORM_ADMIN)
def create_local_authority() -> Any:
    with tenancy.system_context("platform admin creates a local authority"):
        try:
            org = services.onboard_local_authority(
                db.session(), name=request.form.get("la_name", ""), la_code=request.form.get("la_code", "")
            )
        except services.OnboardingError as exc:
            field = "la_name" if "name" in str(exc) else "la_code"
            return _platform_page({field: str(exc)}, 400)
        db.session.commit()
    flash(f"{org.name} (LA code {org.la_code}) has been created.", "success")
    return redirect(url_for("tenants.platform_organisation", org_id=org.id))


@bp.post("/platform/organisations/trusts")
@require_perm(Perm.PLATFORM_ADMIN)
def create_trust() -> Any:
    with tenancy.system_context("platform admin creates a trust"):
        try:
            org = services.onboard_trust(db.session(), name=request.form.get("trust_name", ""))
        except services.OnboardingError as exc:
            return _platform_page({"trust_name": str(exc)}, 400)
        db.session.commit()
    flash(f"{org.name} has been created.", "success")
    return redirect(url_for("tenants.platform_organisation", org_id=org.id))


@bp.route("/platform/organisations/import", methods=["GET", "POST"])
@require_perm(Perm.PLATFORM_ADMIN)
def import_schools() -> Any:
    if request.method == "GET":
        return render_template("tenants/import_schools.html", errors={}, report=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        errors = {"file": "Choose a CSV file of schools from Get Information about Schools"}
        return render_template("tenants/import_schools.html", errors=errors, report=None), 400
    with tenancy.system_context("platform admin imports schools"):
        report = services.import_schools(db.session(), upload.read(), platform_org=_org())
        if report.problems:
            db.session.rollback()
            return render_template(
                "tenants/import_schools.html",
                errors={
                    "file": f"{upload.filename} has {len(report.problems)} problem(s): nothing was imported"
                },
                report=report,
                listed=MAX_LISTED_PROBLEMS,
            ), 400
        db.session.commit()
    return render_template(
        "tenants/import_schools.html", errors={}, report=report, listed=MAX_LISTED_PROBLEMS
    )


def _platform_org_page(org_id: int, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    sess = db.session()
    with tenancy.system_context("platform admin views an organisation"):
        org = sess.get(Organisation, org_id)
        if org is None:
            abort(404)
        context = {
            "organisation": org,
            "members": queries.members(sess, org.id),
            "invitations": queries.open_invitations(sess, org.id),
            "schools": queries.member_schools(sess, org),
        }
    return render_template(
        "tenants/platform_organisation.html",
        roles=ROLES,
        role_items=_role_items(org.kind, request.form.get("role")),
        errors=errors or {},
        form=request.form,
        **context,
    ), status


@bp.get("/platform/organisations/<int:org_id>")
@require_perm(Perm.PLATFORM_ADMIN)
def platform_organisation(org_id: int) -> Any:
    return _platform_org_page(org_id)


@bp.post("/platform/organisations/<int:org_id>/invite")
@require_perm(Perm.PLATFORM_ADMIN)
def platform_invite(org_id: int) -> Any:
    with tenancy.system_context("platform admin invites someone into an organisation"):
        org = db.session.get(Organisation, org_id)
        if org is None:
            abort(404)
        errors = _invite_from_form(org, _principal().user)
        if errors:
            return _platform_org_page(org_id, errors, 400)
        db.session.commit()
    return redirect(url_for("tenants.platform_organisation", org_id=org_id))


# ---- the audit log ------------------------------------------------------------------------------


def _parse_date(value: str, label: str, errors: dict[str, str], field: str) -> dt.date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors[field] = f"{label} must be a real date, like 2026-03-27"
        return None


@bp.get("/organisation/audit")
@require_perm(Perm.AUDIT_READ)
def audit_log() -> Any:
    org = _org()
    args = request.args
    errors: dict[str, str] = {}
    date_from = _parse_date(args.get("from", ""), "The start date", errors, "from")
    date_to = _parse_date(args.get("to", ""), "The end date", errors, "to")
    if date_from and date_to and date_to < date_from:
        errors["to"] = "The end date must be the same as or after the start date"
    pupil_text = args.get("pupil", "").strip()
    pupil_id = None
    if pupil_text:
        if pupil_text.isdigit():
            pupil_id = int(pupil_text)
        else:
            errors["pupil"] = "The pupil ID must be a number"
    try:
        page = max(1, int(args.get("page", "1")))
    except ValueError:
        page = 1
    sess = db.session()
    events: list[Any] = []
    total = 0
    if not errors:
        criteria = queries.AuditFilter(
            date_from=date_from,
            date_to=date_to,
            actor=args.get("actor", "").strip(),
            action=args.get("action", "").strip(),
            pupil_id=pupil_id,
        )
        events, total = queries.audit_page(sess, org.id, criteria, page, AUDIT_PAGE_SIZE)
    pages = max(1, math.ceil(total / AUDIT_PAGE_SIZE))
    return render_template(
        "tenants/audit_log.html",
        organisation=org,
        events=events,
        total=total,
        page=page,
        pages=pages,
        pagination=_pagination(page, pages, args),
        actions=queries.audit_actions(sess, org.id),
        args=args,
        errors=errors,
    ), (400 if errors else 200)


def _pagination(page: int, pages: int, args: Any) -> dict[str, Any] | None:
    if pages <= 1:
        return None

    def href(number: int) -> str:
        params = {k: v for k, v in args.items() if k != "page" and v}
        return url_for("tenants.audit_log", page=number, **params)

    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    items: list[dict[str, Any]] = []
    previous = 0
    for number in shown:
        if number - previous > 1:
            items.append({"ellipsis": True})
        items.append({"number": number, "href": href(number), "current": number == page})
        previous = number
    result: dict[str, Any] = {"items": items}
    if page > 1:
        result["previous"] = {"href": href(page - 1)}
    if page < pages:
        result["next"] = {"href": href(page + 1)}
    return result


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    register_nav(endpoint="tenants.users", label="People", perm=Perm.USERS_MANAGE, order=80)
    register_nav(endpoint="tenants.audit_log", label="Audit log", perm=Perm.AUDIT_READ, order=90)
    register_nav(
        endpoint="tenants.platform_organisations", label="Organisations", perm=Perm.PLATFORM_ADMIN, order=10
    )
