"""``/api/v1/organisation``: the caller's organisation's people, invitations and audit log."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from attendwise.platform import auth, mail
from attendwise.platform.api import Blueprint, api
from attendwise.platform.db import db
from attendwise.tenants import queries, services
from attendwise.tenants.models import Organisation
from attendwise.tenants.roles import ROLES, Perm
from attendwise.tenants.views import send_invitation

blp = Blueprint(
    "organisation_api",
    __name__,
    url_prefix="/api/v1/organisation",
    description="People, invitations and the audit log of the caller's organisation",
)

MAX_PAGE_SIZE = 200


class MemberSchema(Schema):
    membership_id = fields.Integer(dump_only=True)
    user_id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    display_name = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    role_label = fields.String(dump_only=True)
    active = fields.Boolean(dump_only=True)


class InvitationSchema(Schema):
    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True)


class InvitationCreateSchema(Schema):
    email = fields.Email(required=True)
    role = fields.String(
        required=True, validate=validate.OneOf(list(ROLES)), metadata={"description": "A role key"}
    )


class AuditEventSchema(Schema):
    seq = fields.Integer(dump_only=True)
    occurred_at = fields.DateTime(dump_only=True)
    actor_label = fields.String(dump_only=True)
    action = fields.String(dump_only=True)
    object_type = fields.String(dump_only=True)
    object_id = fields.String(dump_only=True)
    pupil_id = fields.Integer(dump_only=True)
    ip = fields.String(dump_only=True)
    request_id = fields.String(dump_only=True)


class AuditEventPageSchema(Schema):
    total = fields.Integer(dump_only=True)
    page = fields.Integer(dump_only=True)
    per_page = fields.Integer(dump_only=True)
    events = fields.List(fields.Nested(AuditEventSchema), dump_only=True)


class AuditEventQueryArgsSchema(Schema):
    date_from = fields.Date(data_key="from", load_default=None)
    date_to = fields.Date(data_key="to", load_default=None)
    actor = fields.String(load_default="")
    action = fields.String(load_default="")
    pupil_id = fields.Integer(load_default=None)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))

    @validates_schema
    def _range(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["date_from"] and data["date_to"] and data["date_to"] < data["date_from"]:
            raise ValidationError("must be the same as or after 'from'", field_name="to")


def _org() -> Organisation:
    principal = auth.current_principal()
    assert principal is not None
    assert principal.organisation is not None
    return principal.organisation


@blp.route("/members", methods=["GET"])
@blp.requires(Perm.USERS_MANAGE)
@blp.response(200, MemberSchema(many=True))
def members() -> Any:
    """Everyone who has or had a role in the organisation, active first."""
    return [
        {
            "membership_id": m.id,
            "user_id": u.id,
            "email": u.email,
            "display_name": u.display_name,
            "role": m.role,
            "role_label": ROLES[m.role].label,
            "active": m.active,
        }
        for m, u in queries.members(db.session(), _org().id)
    ]


@blp.route("/invitations", methods=["GET"])
@blp.requires(Perm.USERS_MANAGE)
@blp.response(200, InvitationSchema(many=True))
def invitations() -> Any:
    """Invitations not yet accepted, withdrawn or expired."""
    return queries.open_invitations(db.session(), _org().id)


@blp.route("/invitations", methods=["POST"])
@blp.requires(Perm.USERS_MANAGE)
@blp.arguments(InvitationCreateSchema)
@blp.response(201, InvitationSchema)
@blp.alt_response(422, description="The address or role cannot be invited")
@blp.alt_response(503, description="The invitation email could not be sent; nothing was kept")
def create_invitation(data: dict[str, Any]) -> Any:
    """Email a one-time, 7-day invitation to join the organisation with a role."""
    org = _org()
    principal = auth.current_principal()
    inviter = principal.user if principal else None
    try:
        issued = services.invite(
            db.session(), org=org, email=data["email"], role_key=data["role"], invited_by=inviter
        )
    except services.OnboardingError as exc:
        abort(422, message=str(exc))
    try:
        send_invitation(issued, org, inviter)
    except mail.MailError:
        current_app.logger.exception("invitation email could not be sent")
        db.session.rollback()
        abort(503, message="the invitation email could not be sent, so no invitation was made")
    return issued.invitation


@blp.route("/audit-events", methods=["GET"])
@blp.requires(Perm.AUDIT_READ)
@blp.arguments(AuditEventQueryArgsSchema, location="query")
@blp.response(200, AuditEventPageSchema)
def audit_events(args: dict[str, Any]) -> Any:
    """The organisation's own audit log, newest first, filtered like the audit page."""
    criteria = queries.AuditFilter(
        date_from=args["date_from"],
        date_to=args["date_to"],
        actor=args["actor"].strip(),
        action=args["action"].strip(),
        pupil_id=args["pupil_id"],
    )
    events, total = queries.audit_page(db.session(), _org().id, criteria, args["page"], args["per_page"])
    return {"total": total, "page": args["page"], "per_page": args["per_page"], "events": events}


def register(app: Flask) -> None:
    api.register_blueprint(blp)
