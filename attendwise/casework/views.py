"""Pages: the worklist (mine and the school's), a case with its timeline, and every form staff use.

Views are thin: they read the form, call ``services`` and redirect. A refused change re-renders
the page with the error next to its field (400); a change made from a stale page gets the
conflict page (409) and nothing is saved.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import academic_year_of
from attendwise.attendance.metrics import Period
from attendwise.casework import case_view, queries, services
from attendwise.casework.jobs import evaluate_school, school_now
from attendwise.casework.models import (
    OUTCOMES_BY_CHANNEL,
    ActionPlan,
    Case,
    ContactChannel,
    ContactOutcome,
    Meeting,
    MeetingStatus,
    ReviewOutcome,
    SupportStatus,
    Task,
)
from attendwise.letters import hooks as letter_hooks
from attendwise.letters import render as letter_render
from attendwise.platform import audit
from attendwise.platform.auth import Principal, current_principal, require_perm
from attendwise.platform.db import db
from attendwise.platform.jobs import enqueue
from attendwise.platform.web import register_nav
from attendwise.policies import services as policy_services
from attendwise.tenants.roles import Perm

bp = Blueprint("casework", __name__, template_folder="templates")
TIMELINE_SECTION = "aw-timeline"
"""The id of the case page's timeline section, which htmx swaps a page at a time."""
MINUTES_TEMPLATE = Path(__file__).parent / "templates" / "casework" / "letters" / "meeting-minutes.html"

SUPPORT_OPTIONS = (
    "Early help",
    "School well-being service",
    "Breakfast club",
    "Collection by staff",
    "Reduced timetable",
)
BARRIERS = ("health", "SEND", "EBSA", "housing", "bullying", "transport")


def _principal() -> Principal:
    principal = current_principal()
    if principal is None or principal.organisation is None or principal.user is None:
        abort(403)
    return principal


def _user_id() -> int:
    principal = _principal()
    assert principal.user is not None
    return principal.user.id


def _version() -> int | None:
    raw = request.form.get("version", "")
    return int(raw) if raw.isdigit() else None


def _get(model: type[Case] | type[Task] | type[Meeting] | type[ActionPlan], object_id: int) -> Any:
    # A query, not Session.get: the identity map must not hand back another tenant's row.
    obj = db.session().scalars(select(model).where(model.id == object_id)).first()
    if obj is None:
        abort(404)
    return obj


def _errors(exc: services.CaseworkError) -> dict[str, str]:
    field, sep, sentence = str(exc).partition(": ")
    if sep and field.isidentifier():
        return {field: f"{field.replace('_', ' ').capitalize()}: {sentence}"}
    return {"form": str(exc)}


def _date(name: str) -> dt.date:
    raw = request.form.get(name, "").strip()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise services.CaseworkError(f"{name}: enter a date like 2026-11-24, not '{raw}'") from None


def _number(name: str, kind: type[int] | type[float]) -> Any:
    raw = request.form.get(name, "").strip()
    try:
        return kind(raw)
    except ValueError:
        raise services.CaseworkError(f"{name}: enter a number, not '{raw}'") from None


# --------------------------------------------------------------------------- worklist


@bp.get("/worklist")
@require_perm(Perm.CASES_READ)
def worklist() -> Any:
    principal = _principal()
    scope = request.args.get("scope", "mine")
    today = attendance_queries.today()
    session = db.session()
    if scope == "school":
        work = queries.worklist(session, today)
    else:
        scope = "mine"
        work = queries.worklist(session, today, user_id=_user_id(), role=principal.role)
    return render_template(
        "casework/worklist.html",
        work=work,
        scope=scope,
        safe_kinds=services.SAFE_BULK_KINDS,
        role_labels=services.ROLE_LABELS,
        can_write=principal.can(Perm.CASES_WRITE),
        can_run=principal.can(Perm.ORG_SETTINGS),
    )


@bp.post("/worklist/bulk-complete")
@require_perm(Perm.CASES_WRITE)
def bulk_complete() -> Any:
    ids = [int(v) for v in request.form.getlist("task_id") if v.isdigit()]
    if not ids:
        flash("Choose at least one task to mark as done.")
        return redirect(url_for("casework.worklist", scope=request.form.get("scope", "mine")))
    try:
        done = services.bulk_complete(
            db.session(), ids, by_user_id=_user_id(), note=request.form.get("note", "Posted")
        )
    except services.CaseworkError as exc:
        flash(str(exc))
        return redirect(url_for("casework.worklist", scope=request.form.get("scope", "mine")))
    flash(f"{done} task{'s' if done != 1 else ''} marked as done.", "success")
    return redirect(url_for("casework.worklist", scope=request.form.get("scope", "mine")))


@bp.post("/casework/run-now")
@require_perm(Perm.ORG_SETTINGS)
def run_now() -> Any:
    school = _principal().organisation
    assert school is not None
    # The day the admin asked for, on the school's clock: a job that starts after midnight still
    # evaluates that day.
    on = school_now(school).date().isoformat()
    enqueue(evaluate_school, school.id, on, org_id=school.id, queue="evaluation")
    flash("The school's policy is being evaluated now; new tasks appear on the worklist.", "success")
    return redirect(url_for("casework.worklist", scope="school"))


# --------------------------------------------------------------------------- case page


def _page_arg(name: str) -> int:
    raw = request.args.get(name, "1")
    return max(int(raw), 1) if raw.isdigit() else 1


def _household(case: Case, principal: Principal) -> list[case_view.HouseholdMember]:
    """The pupil's siblings and their cases; each sibling shown at this school is a pupil-record view."""
    session = db.session()
    assert principal.organisation is not None
    return case_view.viewed_household(
        session,
        case,
        viewer=principal.organisation,
        may_see_other_schools=principal.can(Perm.SIBLINGS_HEADLINE),
        on=attendance_queries.today(),
    )


def _render_case(case: Case, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    session = db.session()
    page = case_view.case_view(
        session,
        case,
        timeline_page=_page_arg("timeline_page"),
        contacts_page=_page_arg("contacts_page"),
    )
    audit.record(
        session,
        org_id=case.org_id,
        action="case.view",
        object_type="case",
        object_id=case.id,
        pupil_id=case.pupil_id,
    )
    if request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == TIMELINE_SECTION:
        # The older or newer timeline page, fetched by htmx for the timeline section alone.
        return render_template("casework/_timeline.html", page=page, case=case)
    principal = _principal()
    today = attendance_queries.today()
    return (
        render_template(
            "casework/case.html",
            page=page,
            household=_household(case, principal),
            case=case,
            errors=errors or {},
            form=request.form if errors else {},
            today=today,
            channels=list(ContactChannel),
            outcomes=OUTCOMES_BY_CHANNEL,
            all_outcomes=list(ContactOutcome),
            meeting_statuses=[MeetingStatus.ATTENDED, MeetingStatus.MISSED, MeetingStatus.REARRANGED],
            review_outcomes=list(ReviewOutcome),
            support_statuses=list(SupportStatus),
            support_options=SUPPORT_OPTIONS,
            barriers=BARRIERS,
            role_labels=services.ROLE_LABELS,
            can_write=principal.can(Perm.CASES_WRITE),
            can_signoff=principal.can(Perm.SIGNOFF),
            can_send_letters=principal.can(Perm.LETTERS_SEND),
        ),
        status,
    )


@bp.get("/cases/<int:case_id>")
@require_perm(Perm.CASES_READ)
def case_page(case_id: int) -> Any:
    return _render_case(_get(Case, case_id))


def _after(case: Case, message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("casework.case_page", case_id=case.id))  # type: ignore[return-value]


@bp.post("/cases/<int:case_id>/contacts")
@require_perm(Perm.CASES_WRITE)
def log_contact(case_id: int) -> Any:
    case = _get(Case, case_id)
    try:
        channel_raw = request.form.get("channel", "")
        outcome_raw = request.form.get("outcome", "")
        if channel_raw not in {c.value for c in ContactChannel}:
            raise services.CaseworkError("channel: choose how you made contact")
        if outcome_raw not in {o.value for o in ContactOutcome}:
            raise services.CaseworkError("outcome: choose what happened")
        contact_raw = request.form.get("contact_id", "")
        contact_id = int(contact_raw) if contact_raw.isdigit() else None
        if contact_id is not None and contact_id not in case_view.contact_ids(db.session(), case.pupil_id):
            raise services.CaseworkError("contact_id: choose one of the pupil's contacts")
        services.log_contact(
            db.session(),
            case,
            channel=ContactChannel(channel_raw),
            outcome=ContactOutcome(outcome_raw),
            note=request.form.get("note", ""),
            by_user_id=_user_id(),
            contact_id=contact_id,
            safeguarding=request.form.get("safeguarding") == "yes",
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    return _after(case, "Contact logged.")


@bp.post("/cases/<int:case_id>/meetings")
@require_perm(Perm.CASES_WRITE)
def invite(case_id: int) -> Any:
    case = _get(Case, case_id)
    try:
        day = _date("meeting_date")
        raw_time = request.form.get("meeting_time", "").strip()
        try:
            at = dt.time.fromisoformat(raw_time)
        except ValueError:
            raise services.CaseworkError(f"meeting_time: enter a time like 09:30, not '{raw_time}'") from None
        services.invite_to_meeting(
            db.session(),
            case,
            starts_at=dt.datetime.combine(day, at),
            place=request.form.get("place", ""),
            invitees=request.form.get("invitees", "").splitlines(),
            agenda=request.form.get("agenda", ""),
            by_user_id=_user_id(),
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    return _after(case, "Meeting invitation recorded.")


def _evaluate_on_the_day_recorded(org_id: int) -> None:
    """Evaluate the school on the day an event the policy reads was recorded (a pupil is due the
    day of their event)."""
    enqueue(
        evaluate_school, org_id, attendance_queries.today().isoformat(), org_id=org_id, queue="evaluation"
    )


@bp.post("/meetings/<int:meeting_id>/attendance")
@require_perm(Perm.CASES_WRITE)
def meeting_attendance(meeting_id: int) -> Any:
    meeting = _get(Meeting, meeting_id)
    case = _get(Case, meeting.case_id)
    raw = request.form.get("status", "")
    try:
        if raw not in {s.value for s in MeetingStatus} or raw == MeetingStatus.INVITED:
            raise services.CaseworkError("status: choose attended, missed or rearranged")
        services.record_meeting_attendance(
            db.session(), meeting, MeetingStatus(raw), by_user_id=_user_id(), version=_version()
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    if raw in (MeetingStatus.ATTENDED, MeetingStatus.MISSED):
        _evaluate_on_the_day_recorded(case.org_id)
    return _after(case, f"Meeting recorded as {raw}.")


@bp.post("/meetings/<int:meeting_id>/minutes")
@require_perm(Perm.CASES_WRITE)
def meeting_minutes(meeting_id: int) -> Any:
    meeting = _get(Meeting, meeting_id)
    case = _get(Case, meeting.case_id)
    try:
        services.record_minutes(
            db.session(),
            meeting,
            {name: request.form.get(name, "") for name in services.MINUTES_FIELDS},
            by_user_id=_user_id(),
            version=_version(),
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    return _after(case, "Minutes recorded.")


@bp.post("/cases/<int:case_id>/plans")
@require_perm(Perm.CASES_WRITE)
def create_plan(case_id: int) -> Any:
    case = _get(Case, case_id)
    try:
        contract = request.form.get("is_contract") == "yes"
        services.create_plan(
            db.session(),
            case,
            target_attendance=_number("target_attendance", float),
            target_weeks=_number("target_weeks", int),
            support_agreed=request.form.getlist("support_agreed"),
            owners=request.form.get("owners", "").split(","),
            starts_on=attendance_queries.today(),
            review_on=_date("review_on"),
            is_contract=contract,
            review_period_weeks=_number("review_period_weeks", int) if contract else None,
            by_user_id=_user_id(),
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    return _after(case, "Plan recorded.")


@bp.post("/plans/<int:plan_id>")
@require_perm(Perm.CASES_WRITE)
def update_plan(plan_id: int) -> Any:
    plan = _get(ActionPlan, plan_id)
    case = _get(Case, plan.case_id)
    try:
        services.update_plan(
            db.session(),
            plan,
            support_agreed=request.form.getlist("support_agreed"),
            owners=request.form.get("owners", "").split(","),
            review_on=_date("review_on"),
            by_user_id=_user_id(),
            version=_version(),
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    return _after(case, "Plan updated.")


def measured_attendance(case: Case, plan: ActionPlan, today: dt.date) -> float | None:
    """The pupil's attendance since the plan started, from the marks."""
    session = db.session()
    calendar = attendance_services.school_calendar(session, case.org_id, academic_year_of(today))
    start = max(plan.starts_on, calendar.start)
    if start > today:
        return None
    figures = attendance_queries.figures(
        session, case.org_id, calendar, Period(start, today), [case.pupil_id]
    )
    value = float(figures.attendance_pct[0])
    return None if math.isnan(value) else value


@bp.post("/plans/<int:plan_id>/review")
@require_perm(Perm.CASES_WRITE)
def review_plan(plan_id: int) -> Any:
    plan = _get(ActionPlan, plan_id)
    case = _get(Case, plan.case_id)
    today = attendance_queries.today()
    try:
        raw = request.form.get("outcome", "")
        if raw not in {o.value for o in ReviewOutcome}:
            raise services.CaseworkError("outcome: choose close, continue or escalate")
        services.review_plan(
            db.session(),
            plan,
            measured_attendance=measured_attendance(case, plan, today),
            outcome=ReviewOutcome(raw),
            note=request.form.get("note", ""),
            on=today,
            by_user_id=_user_id(),
            version=_version(),
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    _evaluate_on_the_day_recorded(case.org_id)
    return _after(case, "Review recorded.")


@bp.post("/cases/<int:case_id>/support")
@require_perm(Perm.CASES_WRITE)
def record_support(case_id: int) -> Any:
    case = _get(Case, case_id)
    try:
        raw = request.form.get("support_status", "")
        if raw not in {s.value for s in SupportStatus}:
            raise services.CaseworkError("support_status: choose offered, accepted or declined")
        services.record_support(
            db.session(),
            case,
            barriers=[b for b in request.form.getlist("barriers") if b in BARRIERS],
            support=request.form.get("support", ""),
            status=SupportStatus(raw),
            agencies=request.form.get("agencies", "").split(","),
            early_help_offered=request.form.get("early_help_offered") == "yes",
            early_help_started=request.form.get("early_help_started") == "yes",
            on=attendance_queries.today(),
            by_user_id=_user_id(),
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    return _after(case, "Support recorded.")


@bp.post("/cases/<int:case_id>/timeline/<int:entry_id>/correct")
@require_perm(Perm.CASES_WRITE)
def correct(case_id: int, entry_id: int) -> Any:
    case = _get(Case, case_id)
    try:
        services.correct_timeline(
            db.session(), case, entry_id, request.form.get("correction", ""), by_user_id=_user_id()
        )
    except services.CaseworkError as exc:
        return _render_case(case, _errors(exc), 400)
    return _after(case, "Correction added to the timeline.")


@bp.post("/tasks/<int:task_id>/complete")
@require_perm(Perm.CASES_WRITE)
def complete_task(task_id: int) -> Any:
    task = _get(Task, task_id)
    try:
        services.complete_task(
            db.session(), task, by_user_id=_user_id(), note=request.form.get("note", ""), version=_version()
        )
    except services.CaseworkError as exc:
        if task.case_id is not None:
            return _render_case(_get(Case, task.case_id), {"form": str(exc)}, 400)
        abort(400, str(exc))
    flash(f"Done: {task.title}", "success")
    if request.form.get("next") == "worklist" or task.case_id is None:
        return redirect(url_for("casework.worklist", scope=request.form.get("scope", "mine")))
    return redirect(url_for("casework.case_page", case_id=task.case_id))


@bp.post("/tasks/<int:task_id>/signoff")
@require_perm(Perm.SIGNOFF)
def signoff(task_id: int) -> Any:
    task = _get(Task, task_id)
    principal = _principal()
    today = attendance_queries.today()
    session = db.session()
    school_policy = policy_services.get_policy(session)
    policy = policy_services.policy_on(school_policy, today) if school_policy is not None else None
    decision = request.form.get("decision", "")
    try:
        if decision not in ("approve", "decline"):
            raise services.CaseworkError("decision: choose approve or decline")
        services.decide_signoff(
            session,
            task,
            approve=decision == "approve",
            reason=request.form.get("reason", ""),
            by_user_id=_user_id(),
            by_role=principal.role,
            policy=policy,
            on=today,
            version=_version(),
        )
    except services.CaseworkError as exc:
        if task.case_id is not None:
            return _render_case(_get(Case, task.case_id), _errors(exc), 400)
        abort(400, str(exc))
    flash(f"{'Approved' if decision == 'approve' else 'Declined'}: {task.title}", "success")
    if task.case_id is None:
        return redirect(url_for("casework.worklist", scope="school"))
    return redirect(url_for("casework.case_page", case_id=task.case_id))


@bp.get("/cases/<int:case_id>/household")
@require_perm(Perm.CASES_READ)
def household(case_id: int) -> Any:
    case = _get(Case, case_id)
    return render_template(
        "casework/household.html",
        case=case,
        household=_household(case, _principal()),
        may_see_other_schools=_principal().can(Perm.SIBLINGS_HEADLINE),
    )


@bp.get("/cases/<int:case_id>/timeline.pdf")
@require_perm(Perm.CASES_WRITE)
def timeline_pdf(case_id: int) -> Any:
    case = _get(Case, case_id)
    principal = _principal()
    assert principal.organisation is not None
    try:
        pdf, _document_id = services.export_timeline_pdf(
            db.session(), case, school=principal.organisation.name, by_user_id=_user_id()
        )
    except services.CaseworkError as exc:
        return _render_case(case, {"form": str(exc)}, 500)
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="case-{case.id}-episode-{case.episode}-timeline.pdf"'
    )
    return response


@bp.post("/meetings/<int:meeting_id>/minutes/send")
@require_perm(Perm.LETTERS_SEND)
def send_minutes(meeting_id: int) -> Any:
    meeting = _get(Meeting, meeting_id)
    case = _get(Case, meeting.case_id)
    try:
        letters = services.send_minutes_copy(
            db.session(), meeting, by_user_id=_user_id(), on=attendance_queries.today()
        )
    except services.CaseworkError as exc:
        return _render_case(case, {"form": str(exc)}, 400)
    count = len(letters)
    return _after(case, f"A copy of the minutes is on its way to {count} parent{'s' if count != 1 else ''}.")


@bp.errorhandler(StaleDataError)
def _conflict(exc: StaleDataError) -> Any:
    db.session.rollback()
    if request.path.startswith("/api/"):
        return {
            "code": 409,
            "status": "Conflict",
            "message": "someone else changed this first; reload it",
        }, 409
    return render_template("casework/conflict.html", back=request.referrer), 409


def register(app: Flask) -> None:
    app.register_blueprint(bp)
    letter_hooks.on_delivered(services.record_letter_delivered)
    letter_render.register_package_default(services.MINUTES_LETTER, MINUTES_TEMPLATE)
    register_nav(endpoint="casework.worklist", label="Worklist", perm=Perm.CASES_READ, order=20)
