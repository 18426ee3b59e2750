"""REST API: the school's pupils with their attendance figures (``/api/v1/pupils``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort
from flask_smorest import abort as smorest_abort
from marshmallow import Schema, fields, validate

from attendwise.attendance import queries, services
from attendwise.attendance.codes import Code, OverrideError, StatClass
from attendwise.attendance.models import Pupil, RegistrationType, SenStatus, Sex
from attendwise.platform.api import API_PREFIX, Blueprint, api
from attendwise.platform.auth import current_principal
from attendwise.platform.db import db
from attendwise.tenants.roles import Perm

blp = Blueprint(
    "pupils_api",
    __name__,
    url_prefix=f"{API_PREFIX}/pupils",
    description="Pupils of the signed-in school, with attendance figures computed the DfE's way.",
)


class PupilQueryArgsSchema(Schema):
    q = fields.String(load_default="", metadata={"description": "Part of a name or UPN."})
    year_group = fields.String(
        load_default="",
        validate=validate.OneOf(("", *services.YEAR_GROUPS)),
        metadata={"description": "NC year."},
    )
    flag = fields.List(
        fields.String(validate=validate.OneOf(tuple(queries.FLAGS))),
        load_default=list,
        metadata={"description": "Only pupils with every one of these flags (repeat the parameter)."},
    )
    period = fields.String(
        load_default="ytd",
        validate=validate.OneOf(("ytd", "half_term", "term", "last4")),
        metadata={"description": "Year to date, this half-term, this term or the last 4 school weeks."},
    )
    sort = fields.String(load_default="name", validate=validate.OneOf(queries.SORTS))
    order = fields.String(load_default="asc", validate=validate.OneOf(("asc", "desc")))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    year = fields.Integer(
        load_default=None,
        validate=validate.Range(min=2000, max=2100),
        metadata={"description": "Academic year by its first calendar year (2025 = 2025/26); default: now."},
    )


class FiguresSchema(Schema):
    """Attendance over ``period_start``..``period_end``; percentages at full precision."""

    period_start = fields.String()
    period_end = fields.String()
    possible_sessions = fields.Integer()
    present = fields.Integer()
    approved_activity = fields.Integer()
    authorised = fields.Integer()
    unauthorised = fields.Integer()
    attendance_pct = fields.Float(allow_none=True)
    absence_pct = fields.Float(allow_none=True)
    persistent_absence = fields.Boolean()
    severe_absence = fields.Boolean()
    late_before_close = fields.Integer()
    late_after_close = fields.Integer()
    max_unauthorised_in_10_school_weeks = fields.Integer()
    current_unauthorised_run_school_days = fields.Integer()
    school_days_missed = fields.Integer()


class PupilSummarySchema(Schema):
    id = fields.Integer()
    upn = fields.String()
    upn_temporary = fields.Boolean()
    legal_forename = fields.String()
    legal_surname = fields.String()
    preferred_forename = fields.String(allow_none=True)
    preferred_surname = fields.String(allow_none=True)
    year_group = fields.String()
    registration_group = fields.String(allow_none=True)
    sen_status = fields.Enum(SenStatus, by_value=True)
    fsm = fields.Boolean()
    eal = fields.Boolean()
    looked_after = fields.Boolean()
    child_in_need = fields.Boolean()
    figures = fields.Nested(FiguresSchema)


class EnrolmentSchema(Schema):
    start_date = fields.Date()
    leave_date = fields.Date(allow_none=True)
    registration_type = fields.Enum(RegistrationType, by_value=True)


class PupilSchema(PupilSummarySchema):
    date_of_birth = fields.Date()
    sex = fields.Enum(Sex, by_value=True)
    enrolments = fields.List(fields.Nested(EnrolmentSchema))


class PeriodSchema(Schema):
    key = fields.String()
    name = fields.String()
    start = fields.Date()
    end = fields.Date()


class PupilPageSchema(Schema):
    items = fields.List(fields.Nested(PupilSummarySchema))
    total = fields.Integer()
    page = fields.Integer()
    pages = fields.Integer()
    period = fields.Nested(PeriodSchema)


# The attributes each schema dumps, read once: a list item needs no enrolments (reading them
# per pupil was one lazy load per row), and building a schema per row cost more than the row.
SUMMARY_FIELDS = tuple(name for name in PupilSummarySchema().fields if name != "figures")
PUPIL_FIELDS = tuple(name for name in PupilSchema().fields if name != "figures")


def _pupil_dict(pupil: Pupil, figures: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {**{name: getattr(pupil, name) for name in names}, "figures": figures}


def _school_id() -> int:
    principal = current_principal()
    if principal is None or principal.organisation is None:
        abort(403)
    return principal.organisation.id


@blp.route("")
@blp.requires(Perm.PUPILS_READ)
@blp.arguments(PupilQueryArgsSchema, location="query")
@blp.response(200, PupilPageSchema)
def list_pupils(args: dict[str, Any]) -> dict[str, Any]:
    """List the school's pupils with their figures for a period: filter, sort and page (50 a page)."""
    filters = queries.PupilFilters(
        q=args["q"].strip()[:100],
        year_group=args["year_group"],
        flags=frozenset(args["flag"]),
        period=args["period"],
        sort=args["sort"],
        descending=args["order"] == "desc",
        page=args["page"],
        academic_year=args["year"],
    )
    org_id = _school_id()
    listing = queries.pupil_list(db.session(), org_id, filters)
    queries.record_list_view(db.session(), org_id, listing, via="api", filters=filters)
    period = listing.period.period
    return {
        "items": [_pupil_dict(row.pupil, row.figures, SUMMARY_FIELDS) for row in listing.rows],
        "total": listing.total,
        "page": listing.page,
        "pages": listing.pages,
        "period": {"key": listing.period.key, "name": period.name, "start": period.start, "end": period.end},
    }


@blp.route("/<int:pupil_id>")
@blp.requires(Perm.PUPILS_READ)
@blp.response(200, PupilSchema)
def get_pupil(pupil_id: int) -> dict[str, Any]:
    """One pupil with year-to-date figures. Every call is recorded in the audit log."""
    session = db.session()
    pupil = queries.get_pupil(session, pupil_id)
    if pupil is None:
        abort(404)
    figures = queries.pupil_figures(session, pupil)
    queries.record_view(session, pupil, via="api")
    return _pupil_dict(pupil, figures, PUPIL_FIELDS)


codes_blp = Blueprint(
    "codes_api",
    __name__,
    url_prefix=f"{API_PREFIX}/attendance-codes",
    description="The DfE attendance codes, their statistical classes and platform corrections.",
)


class CodeSchema(Schema):
    code = fields.String()
    meaning = fields.String()
    statistical_class = fields.String()
    default_class = fields.String(metadata={"description": "The class the DfE sources give."})
    overridden = fields.Boolean()
    verification = fields.String(metadata={"description": "V verified, P secondary source, U unverified."})
    valid_from = fields.Date(allow_none=True)
    valid_to = fields.Date(allow_none=True)


class CodeCorrectionCreateSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=3))
    statistical_class = fields.String(required=True, validate=validate.OneOf([c.value for c in StatClass]))
    reason = fields.String(required=True, validate=validate.Length(min=5, max=2000))


def _code_dict(code: Code) -> dict[str, Any]:
    return {
        "code": code.code,
        "meaning": code.meaning,
        "statistical_class": code.stat_class.value,
        "default_class": (code.default_class or code.stat_class).value,
        "overridden": code.overridden,
        "verification": code.verification.value,
        "valid_from": code.valid_from,
        "valid_to": code.valid_to,
    }


@codes_blp.route("")
@codes_blp.requires(Perm.PLATFORM_ADMIN)
@codes_blp.response(200, CodeSchema(many=True))
def list_codes() -> list[dict[str, Any]]:
    """Every code with the class the platform uses now (including any correction)."""
    return [_code_dict(code) for code in services.code_table(db.session())]


@codes_blp.route("/corrections", methods=["POST"])
@codes_blp.requires(Perm.PLATFORM_ADMIN)
@codes_blp.arguments(CodeCorrectionCreateSchema)
@codes_blp.response(201, CodeSchema)
def correct_code(args: dict[str, Any]) -> dict[str, Any]:
    """Correct the statistical class of a code whose classification is not verified (audited).

    Verified classifications are the law and cannot be changed (422).
    """
    principal = current_principal()
    if principal is None or principal.organisation is None:
        abort(403)
    session, code = db.session(), args["code"]
    try:
        services.set_code_override(
            session,
            code=code,
            statistical_class=args["statistical_class"],
            reason=args["reason"],
            user_id=principal.user.id if principal.user else None,
            audit_org_id=principal.organisation.id,
        )
    except OverrideError as exc:
        smorest_abort(422, message=str(exc))
    return _code_dict(services.code_table(session)[code])


def register(app: Flask) -> None:
    api.register_blueprint(blp)
    api.register_blueprint(codes_blp)
