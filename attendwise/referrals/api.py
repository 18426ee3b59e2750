"""REST API for an LA's case-management system: received referrals and decisions
(``/api/v1/referrals``, ``referrals:triage``).

It reads only the LA's own rows: the frozen copies of what its schools submitted, the decisions
and the penalty-notice ledger entries made on them. Every read of a referral is audited.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Flask, Response, abort
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from attendwise.platform import audit
from attendwise.platform.api import API_PREFIX, Blueprint, api
from attendwise.platform.db import db
from attendwise.referrals.models import DecisionKind, KindKey, PenaltyNotice, ReceivedReferral, Status
from attendwise.referrals.penalty import NoticeStatus
from attendwise.tenants.roles import Perm

blp = Blueprint(
    "referrals_api",
    __name__,
    url_prefix=f"{API_PREFIX}/referrals",
    description="Referrals the LA's schools have submitted, with their frozen bundles and decisions.",
)
PER_PAGE_MAX = 200


class ReferralQueryArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=PER_PAGE_MAX))
    kind = fields.Enum(KindKey, by_value=True, load_default=None)
    status = fields.Enum(Status, by_value=True, load_default=None)
    school_id = fields.Integer(load_default=None)
    due_before = fields.Date(load_default=None, metadata={"description": "Service level due on or before."})


class DecisionSchema(Schema):
    id = fields.Integer()
    kind = fields.Enum(DecisionKind, by_value=True)
    decided_on = fields.Date()
    notes = fields.String()
    improvement_ends_on = fields.Date(allow_none=True)
    conference_on = fields.Date(allow_none=True)
    attendees = fields.String()
    outcome = fields.String()
    penalty_notice_id = fields.Integer(allow_none=True)


class BundleItemSchema(Schema):
    position = fields.Integer()
    section = fields.String()
    title = fields.String()
    dated = fields.Date(allow_none=True)
    sha256 = fields.String()


class ReferralSchema(Schema):
    id = fields.Integer()
    school_id = fields.Integer(attribute="source_org_id")
    school_name = fields.String()
    kind = fields.Enum(KindKey, by_value=True)
    kind_label = fields.String()
    status = fields.Enum(Status, by_value=True)
    pupil_name = fields.String()
    pupil_upn = fields.String()
    submitted_on = fields.Date()
    due_on = fields.Date()
    paused_on = fields.Date(allow_none=True)
    assigned_user_id = fields.Integer(allow_none=True)
    declined_reason = fields.String()
    bundle_sha256 = fields.String(attribute="bundle_hash")
    bundle_pdf_sha256 = fields.String()
    decisions = fields.List(fields.Nested(DecisionSchema))


class ReferralDetailSchema(ReferralSchema):
    bundle = fields.Dict()
    items = fields.List(fields.Nested(BundleItemSchema))


class ReferralPageSchema(Schema):
    items = fields.List(fields.Nested(ReferralSchema))
    total = fields.Integer()
    page = fields.Integer()
    pages = fields.Integer()


class PenaltyNoticeSchema(Schema):
    id = fields.Integer()
    sequence = fields.Integer()
    parent_name = fields.String()
    child_name = fields.String()
    issued_on = fields.Date()
    received_on = fields.Date()
    amount = fields.Integer()
    early_amount = fields.Integer(allow_none=True)
    status = fields.Enum(NoticeStatus, by_value=True)
    paid_on = fields.Date(allow_none=True)
    paid_amount = fields.Integer(allow_none=True)
    offence_on = fields.Date()
    prosecution_deadline = fields.Date()


def _received(received_referral_id: int) -> ReceivedReferral:
    received = db.session.scalar(select(ReceivedReferral).where(ReceivedReferral.id == received_referral_id))
    if received is None:
        abort(404)
    return received


@blp.route("")
@blp.requires(Perm.REFERRALS_READ)
@blp.arguments(ReferralQueryArgsSchema, location="query")
@blp.response(200, ReferralPageSchema)
def list_referrals(args: dict[str, Any]) -> dict[str, Any]:
    """The LA's received referrals, soonest service-level date first."""
    query = select(ReceivedReferral).order_by(ReceivedReferral.due_on, ReceivedReferral.id)
    if args["kind"]:
        query = query.where(ReceivedReferral.kind == args["kind"])
    if args["status"]:
        query = query.where(ReceivedReferral.status == args["status"])
    if args["school_id"]:
        query = query.where(ReceivedReferral.source_org_id == args["school_id"])
    if args["due_before"]:
        query = query.where(ReceivedReferral.due_on <= args["due_before"])
    session = db.session()
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    per_page = args["per_page"]
    items = session.scalars(query.limit(per_page).offset((args["page"] - 1) * per_page)).all()
    return {
        "items": items,
        "total": total,
        "page": args["page"],
        "pages": max(1, math.ceil(total / per_page)),
    }


@blp.route("/<int:received_referral_id>")
@blp.requires(Perm.REFERRALS_READ)
@blp.response(200, ReferralDetailSchema)
def get_referral(received_referral_id: int) -> ReceivedReferral:
    """One referral with its frozen bundle, the index of its parts and its decisions."""
    received = _received(received_referral_id)
    audit.record(
        db.session(),
        org_id=received.org_id,
        action="referral.received.view",
        object_type="received_referral",
        object_id=received.id,
        detail={"via": "api"},
    )
    return received


@blp.route("/<int:received_referral_id>/penalty-notices")
@blp.requires(Perm.REFERRALS_READ)
@blp.response(200, PenaltyNoticeSchema(many=True))
def referral_notices(received_referral_id: int) -> list[Any]:
    """The penalty notices issued on this referral."""
    received = _received(received_referral_id)
    return list(
        db.session.scalars(
            select(PenaltyNotice).where(PenaltyNotice.received_id == received.id).order_by(PenaltyNotice.id)
        )
    )


@blp.route("/<int:received_referral_id>/bundle.pdf")
@blp.requires(Perm.REFERRALS_READ)
@blp.response(200, content_type="application/pdf", description="The frozen bundle as one indexed PDF.")
def referral_bundle_pdf(received_referral_id: int) -> Response:
    """The bundle as the school submitted it: one indexed, paginated PDF (its SHA-256 is
    ``bundle_pdf_sha256`` on the referral)."""
    received = _received(received_referral_id)
    if received.bundle_pdf is None:
        abort(404)
    audit.record(
        db.session(),
        org_id=received.org_id,
        action="referral.bundle.view",
        object_type="received_referral",
        object_id=received.id,
        detail={"sha256": received.bundle_hash, "form": "pdf", "via": "api"},
    )
    response = Response(received.bundle_pdf, mimetype="application/pdf")
    response.headers["ETag"] = f'"{received.bundle_pdf_sha256}"'
    return response


def register(app: Flask) -> None:
    api.register_blueprint(blp)
