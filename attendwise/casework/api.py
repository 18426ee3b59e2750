"""REST API for casework: cases, tasks, contacts, meetings and plans (``/api/v1/casework``).

The same permissions as the pages (cases:read to read, cases:write to record), the same services,
and the same conflict rule: a change carrying an old ``version`` gets 409 and saves nothing.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, abort
from flask_smorest import abort as smorest_abort
from marshmallow import Schema, fields, validate
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.casework import case_view, services
from attendwise.casework.models import (
    ActionPlan,
    Case,
    CaseStatus,
    ContactChannel,
    ContactLog,
    ContactOutcome,
    Meeting,
    MeetingStatus,
    PlanStatus,
    Task,
    TaskKind,
    TaskStatus,
)
from attendwise.platform import audit
from attendwise.platform.api import API_PREFIX, Blueprint, api
from attendwise.platform.auth import current_principal
from attendwise.platform.db import db
from attendwise.tenants.roles import Perm

blp = Blueprint(
    "casework_api",
    __name__,
    url_prefix=f"{API_PREFIX}/casework",
    description="Attendance cases of the signed-in school: tasks, contacts, meetings and plans.",
)
PER_PAGE_MAX = 200


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=PER_PAGE_MAX))


class CaseQueryArgsSchema(PageArgsSchema):
    status = fields.Enum(CaseStatus, by_value=True, load_default=None)
    stage = fields.Integer(load_default=None)
    pupil_id = fields.Integer(load_default=None)


class TaskQueryArgsSchema(PageArgsSchema):
    status = fields.Enum(TaskStatus, by_value=True, load_default=None)
    kind = fields.Enum(TaskKind, by_value=True, load_default=None)
    case_id = fields.Integer(load_default=None)
    due_before = fields.Date(load_default=None, metadata={"description": "Due on or before this date."})
    waiting_for_signoff = fields.Boolean(load_default=None)


class CaseChildQueryArgsSchema(PageArgsSchema):
    case_id = fields.Integer(load_default=None)


class CaseSchema(Schema):
    id = fields.Integer()
    pupil_id = fields.Integer()
    upn = fields.String(attribute="pupil.upn")
    pupil_name = fields.String(attribute="pupil.display_name")
    episode = fields.Integer()
    status = fields.Enum(CaseStatus, by_value=True)
    stage = fields.Integer()
    stage_name = fields.String()
    stage_entered_on = fields.Date()
    ladder_entered_on = fields.Date()
    explanation = fields.String()
    policy_key = fields.String()
    lead_user_id = fields.Integer(allow_none=True)
    opened_on = fields.Date()
    closed_on = fields.Date(allow_none=True)
    version = fields.Integer()


class TaskSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer(allow_none=True)
    pupil_id = fields.Integer()
    kind = fields.Enum(TaskKind, by_value=True)
    title = fields.String()
    detail = fields.String()
    stage = fields.Integer(allow_none=True)
    policy_key = fields.String()
    due_on = fields.Date()
    assignee_role = fields.String(allow_none=True)
    assignee_user_id = fields.Integer(allow_none=True)
    status = fields.Enum(TaskStatus, by_value=True)
    completed_at = fields.DateTime(allow_none=True)
    completion_note = fields.String()
    needs_signoff = fields.Boolean()
    signoff_role = fields.String(allow_none=True)
    signoff_decision = fields.String(attribute="signoff_decision.value", allow_none=True)
    signoff_reason = fields.String()
    version = fields.Integer()


class TaskCompleteSchema(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    version = fields.Integer(required=True, metadata={"description": "The version you last read."})


class ContactLogSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    contact_id = fields.Integer(allow_none=True)
    channel = fields.Enum(ContactChannel, by_value=True)
    outcome = fields.Enum(ContactOutcome, by_value=True)
    note = fields.String()
    occurred_at = fields.DateTime()
    by_user_id = fields.Integer(allow_none=True)
    safeguarding = fields.Boolean()
    letter_id = fields.Integer(
        allow_none=True, metadata={"description": "For a letter sent: the letter (letters API) it records."}
    )


class ContactLogCreateSchema(Schema):
    channel = fields.Enum(ContactChannel, by_value=True, required=True)
    outcome = fields.Enum(ContactOutcome, by_value=True, required=True)
    note = fields.String(load_default="", validate=validate.Length(max=5000))
    contact_id = fields.Integer(load_default=None)
    occurred_at = fields.AwareDateTime(load_default=None)
    safeguarding = fields.Boolean(load_default=False)


class MeetingSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    starts_at = fields.DateTime()
    place = fields.String()
    invitees = fields.List(fields.String())
    agenda = fields.String()
    status = fields.Enum(MeetingStatus, by_value=True)
    who_attended = fields.String()
    going_well = fields.String()
    concerns = fields.String()
    wellbeing_goals = fields.String()
    agreed_actions = fields.String()
    version = fields.Integer()


class MeetingCreateSchema(Schema):
    starts_at = fields.DateTime(required=True)
    place = fields.String(required=True, validate=validate.Length(min=1, max=200))
    invitees = fields.List(fields.String(validate=validate.Length(max=200)), required=True)
    agenda = fields.String(load_default="", validate=validate.Length(max=5000))


class PlanReviewSchema(Schema):
    reviewed_on = fields.Date()
    measured_attendance = fields.Float(allow_none=True)
    targets_met = fields.Boolean()
    outcome = fields.String(attribute="outcome.value")
    note = fields.String()


class ActionPlanSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    target_attendance = fields.Float()
    target_weeks = fields.Integer()
    target = fields.String(attribute="target_text")
    support_agreed = fields.List(fields.String())
    owners = fields.List(fields.String())
    starts_on = fields.Date()
    review_on = fields.Date()
    is_contract = fields.Boolean()
    review_period_weeks = fields.Integer(allow_none=True)
    status = fields.Enum(PlanStatus, by_value=True)
    reviews = fields.List(fields.Nested(PlanReviewSchema))
    version = fields.Integer()


class ActionPlanCreateSchema(Schema):
    target_attendance = fields.Float(
        required=True, validate=validate.Range(min=0, max=100, min_inclusive=False)
    )
    target_weeks = fields.Integer(required=True, validate=validate.Range(min=1, max=52))
    support_agreed = fields.List(fields.String(validate=validate.Length(max=200)), load_default=list)
    owners = fields.List(fields.String(validate=validate.Length(max=200)), load_default=list)
    starts_on = fields.Date(required=True)
    review_on = fields.Date(required=True)
    is_contract = fields.Boolean(load_default=False)
    review_period_weeks = fields.Integer(load_default=None)


class TimelineEntrySchema(Schema):
    id = fields.Integer()
    occurred_at = fields.DateTime()
    kind = fields.String(metadata={"description": "e.g. stage_change, task, contact, meeting, letter."})
    title = fields.String()
    body = fields.String()
    by_user_id = fields.Integer(allow_none=True, metadata={"description": "None: Attendwise itself."})
    object_type = fields.String(allow_none=True, metadata={"description": "task, contact, meeting, plan..."})
    object_id = fields.Integer(allow_none=True)
    corrects_id = fields.Integer(
        allow_none=True, metadata={"description": "For a correction: the entry it corrects."}
    )


class HouseholdCaseSchema(Schema):
    id = fields.Integer()
    episode = fields.Integer()
    open = fields.Boolean()
    stage = fields.Integer()
    stage_name = fields.String()


class HouseholdMemberSchema(Schema):
    at_this_school = fields.Boolean(attribute="sibling.at_this_school")
    pupil_id = fields.Integer(
        attribute="sibling.pupil_id",
        allow_none=True,
        metadata={"description": "None for a sibling at another school (only their headline is shown)."},
    )
    name = fields.String(attribute="sibling.name", allow_none=True)
    year_group = fields.String(attribute="sibling.year_group", allow_none=True)
    attendance_pct = fields.Float(attribute="sibling.attendance_pct", allow_none=True)
    persistent = fields.Boolean(attribute="sibling.persistent")
    severe = fields.Boolean(attribute="sibling.severe")
    period_name = fields.String(attribute="sibling.period_name")
    case = fields.Nested(
        HouseholdCaseSchema,
        allow_none=True,
        metadata={"description": "The sibling's latest case at this school, if any."},
    )


class HouseholdSchema(Schema):
    case_id = fields.Integer()
    members = fields.List(fields.Nested(HouseholdMemberSchema))


def _page_schema(item: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item)),
            "total": fields.Integer(),
            "page": fields.Integer(),
            "pages": fields.Integer(),
        },
        name=name,
    )


CasePageSchema = _page_schema(CaseSchema, "CasePageSchema")
TaskPageSchema = _page_schema(TaskSchema, "TaskPageSchema")
ContactLogPageSchema = _page_schema(ContactLogSchema, "ContactLogPageSchema")
MeetingPageSchema = _page_schema(MeetingSchema, "MeetingPageSchema")
ActionPlanPageSchema = _page_schema(ActionPlanSchema, "ActionPlanPageSchema")
TimelinePageSchema = _page_schema(TimelineEntrySchema, "TimelinePageSchema")


def _user_id() -> int | None:
    principal = current_principal()
    if principal is None or principal.organisation is None:
        abort(403)
    return principal.user.id if principal.user is not None else None


def _paged(session: Session, query: Select[Any], args: dict[str, Any]) -> dict[str, Any]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    per_page = args["per_page"]
    items = session.scalars(query.limit(per_page).offset((args["page"] - 1) * per_page)).all()
    return {
        "items": items,
        "total": total,
        "page": args["page"],
        "pages": max(1, math.ceil(total / per_page)),
    }


def _case(session: Session, case_id: int) -> Case:
    case = session.scalars(select(Case).where(Case.id == case_id)).first()
    if case is None:
        abort(404)
    return case


def _object_first(fn: Callable[..., Any]) -> Callable[..., Any]:
    """404 for a case or task the caller cannot see, before the request body is validated (422)."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        session = db.session()
        if "case_id" in kwargs:
            _case(session, kwargs["case_id"])
        if (
            "task_id" in kwargs
            and session.scalars(select(Task.id).where(Task.id == kwargs["task_id"])).first() is None
        ):
            abort(404)
        return fn(*args, **kwargs)

    return inner


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A step the casework rules refuse becomes a 422 with the rule's own sentence."""
    try:
        yield
    except services.CaseworkError as exc:
        smorest_abort(422, message=str(exc))


@blp.route("/cases")
@blp.requires(Perm.CASES_READ)
@blp.arguments(CaseQueryArgsSchema, location="query")
@blp.response(200, CasePageSchema)
def list_cases(args: dict[str, Any]) -> dict[str, Any]:
    """The school's cases, newest first; filter by status, stage or pupil."""
    query = select(Case).order_by(Case.id.desc())
    for name in ("status", "stage", "pupil_id"):
        if args[name] is not None:
            query = query.where(getattr(Case, name) == args[name])
    return _paged(db.session(), query, args)


@blp.route("/cases/<int:case_id>")
@blp.requires(Perm.CASES_READ)
@blp.response(200, CaseSchema)
def get_case(case_id: int) -> Case:
    """One case. Every call is recorded in the audit log."""
    session = db.session()
    case = _case(session, case_id)
    audit.record(
        session,
        org_id=case.org_id,
        action="case.view",
        object_type="case",
        object_id=case.id,
        pupil_id=case.pupil_id,
    )
    return case


@blp.route("/cases/<int:case_id>/household")
@blp.requires(Perm.CASES_READ)
@blp.response(200, HouseholdSchema)
def get_household(case_id: int) -> dict[str, Any]:
    """The pupil's siblings (sharing a contact with parental responsibility) with their latest
    case here; at another school of the same LA or trust only their headline attendance, for
    roles allowed to see it. Audited like the page: the household view and each sibling shown."""
    session = db.session()
    case = _case(session, case_id)
    principal = current_principal()
    if principal is None or principal.organisation is None:
        abort(403)
    members = case_view.viewed_household(
        session,
        case,
        viewer=principal.organisation,
        may_see_other_schools=principal.can(Perm.SIBLINGS_HEADLINE),
        on=attendance_queries.today(),
    )
    return {"case_id": case.id, "members": members}


@blp.route("/cases/<int:case_id>/timeline")
@blp.requires(Perm.CASES_READ)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, TimelinePageSchema)
def get_timeline(args: dict[str, Any], case_id: int) -> dict[str, Any]:
    """The case's timeline, oldest first (corrections are entries naming the one they correct).
    Every call is recorded in the audit log."""
    session = db.session()
    case = _case(session, case_id)
    audit.record(
        session,
        org_id=case.org_id,
        action="case.timeline_view",
        object_type="case",
        object_id=case.id,
        pupil_id=case.pupil_id,
        detail={"page": args["page"], "per_page": args["per_page"]},
    )
    return _paged(session, case_view.timeline_oldest_first(case.id), args)


@blp.route("/tasks")
@blp.requires(Perm.CASES_READ)
@blp.arguments(TaskQueryArgsSchema, location="query")
@blp.response(200, TaskPageSchema)
def list_tasks(args: dict[str, Any]) -> dict[str, Any]:
    """Tasks by due date; filter by status, kind, case, due date or whether they wait for sign-off."""
    query = select(Task).order_by(Task.due_on, Task.id)
    for name in ("status", "kind", "case_id"):
        if args[name] is not None:
            query = query.where(getattr(Task, name) == args[name])
    if args["due_before"] is not None:
        query = query.where(Task.due_on <= args["due_before"])
    if args["waiting_for_signoff"] is not None:
        waiting = (
            Task.needs_signoff.is_(True) & Task.signoff_decision.is_(None) & (Task.status == TaskStatus.OPEN)
        )
        query = query.where(waiting if args["waiting_for_signoff"] else ~waiting)
    return _paged(db.session(), query, args)


@blp.route("/tasks/<int:task_id>/complete", methods=["POST"])
@blp.requires(Perm.CASES_WRITE)
@_object_first
@blp.arguments(TaskCompleteSchema)
@blp.response(200, TaskSchema)
def complete_task(args: dict[str, Any], task_id: int) -> Task:
    """Mark a task done; 409 when ``version`` is not the task's current version."""
    session = db.session()
    task = session.scalars(select(Task).where(Task.id == task_id)).first()
    if task is None:
        abort(404)
    with _refusals():
        services.complete_task(
            session, task, by_user_id=_user_id(), note=args["note"], version=args["version"]
        )
    return task


@blp.route("/contacts")
@blp.requires(Perm.CASES_READ)
@blp.arguments(CaseChildQueryArgsSchema, location="query")
@blp.response(200, ContactLogPageSchema)
def list_contacts(args: dict[str, Any]) -> dict[str, Any]:
    """The contact log, newest first."""
    query = select(ContactLog).order_by(ContactLog.occurred_at.desc(), ContactLog.id.desc())
    if args["case_id"] is not None:
        query = query.where(ContactLog.case_id == args["case_id"])
    return _paged(db.session(), query, args)


@blp.route("/cases/<int:case_id>/contacts", methods=["POST"])
@blp.requires(Perm.CASES_WRITE)
@_object_first
@blp.arguments(ContactLogCreateSchema)
@blp.response(201, ContactLogSchema)
def create_contact(args: dict[str, Any], case_id: int) -> ContactLog:
    """Log a call, email, text, home visit or letter; a safeguarding flag makes a task for the DSL."""
    session = db.session()
    case = _case(session, case_id)
    with _refusals():
        return services.log_contact(session, case, by_user_id=_user_id(), **args)


@blp.route("/meetings")
@blp.requires(Perm.CASES_READ)
@blp.arguments(CaseChildQueryArgsSchema, location="query")
@blp.response(200, MeetingPageSchema)
def list_meetings(args: dict[str, Any]) -> dict[str, Any]:
    """Meetings, latest first."""
    query = select(Meeting).order_by(Meeting.starts_at.desc(), Meeting.id.desc())
    if args["case_id"] is not None:
        query = query.where(Meeting.case_id == args["case_id"])
    return _paged(db.session(), query, args)


@blp.route("/cases/<int:case_id>/meetings", methods=["POST"])
@blp.requires(Perm.CASES_WRITE)
@_object_first
@blp.arguments(MeetingCreateSchema)
@blp.response(201, MeetingSchema)
def create_meeting(args: dict[str, Any], case_id: int) -> Meeting:
    """Record a meeting invitation."""
    session = db.session()
    case = _case(session, case_id)
    with _refusals():
        return services.invite_to_meeting(session, case, by_user_id=_user_id(), **args)


@blp.route("/plans")
@blp.requires(Perm.CASES_READ)
@blp.arguments(CaseChildQueryArgsSchema, location="query")
@blp.response(200, ActionPlanPageSchema)
def list_plans(args: dict[str, Any]) -> dict[str, Any]:
    """Action plans and contracts with their reviews."""
    query = select(ActionPlan).order_by(ActionPlan.id.desc())
    if args["case_id"] is not None:
        query = query.where(ActionPlan.case_id == args["case_id"])
    return _paged(db.session(), query, args)


@blp.route("/cases/<int:case_id>/plans", methods=["POST"])
@blp.requires(Perm.CASES_WRITE)
@_object_first
@blp.arguments(ActionPlanCreateSchema)
@blp.response(201, ActionPlanSchema)
def create_plan(args: dict[str, Any], case_id: int) -> ActionPlan:
    """Record an action plan or an attendance contract (reviewed every 4 to 6 weeks)."""
    session = db.session()
    case = _case(session, case_id)
    with _refusals():
        return services.create_plan(session, case, by_user_id=_user_id(), **args)


def register(app: Flask) -> None:
    api.register_blueprint(blp)
