"""Running the policy engine for a school, as a job, on the school's own clock.

``dispatch_due_evaluations`` runs every few minutes (RQ's cron scheduler, system context) and
queues one ``evaluate_school`` job per school with a published policy once the school's local
time has passed :data:`RUN_AT` and its day's MIS sync has finished (or it has none), once per
school-local day: a :class:`~attendwise.casework.models.ScheduledEvaluation` row per school and
day is the record of that, so a restart, a second look or a second scheduler queues nothing
twice, and a school whose time passed while the scheduler was down is evaluated when it next
looks. A school admin can also run the policy now (``casework.views.run_now``).

``evaluate_school`` evaluates on the policy's cadence: pupils on a daily-monitored stage every
school day, the others on the policy's weekly day (or the last school day before it), and
anyone with an event recorded that day. Running it twice on one day creates nothing the second
time: the engine keeps a pupil who moved today where they are, and every decision reaches
:class:`~attendwise.casework.services.CaseworkSink` by key.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import SchoolCalendar, academic_year_of
from attendwise.attendance.metrics import Period, PupilMetrics
from attendwise.attendance.models import Pupil
from attendwise.casework.models import (
    ActionPlan,
    Case,
    CaseEvent,
    CaseStatus,
    PlanStatus,
    ScheduledEvaluation,
    SupportRecord,
    SupportStatus,
)
from attendwise.casework.services import CaseworkSink, ladder_state
from attendwise.integrations import connectors
from attendwise.platform import audit
from attendwise.platform.db import db, utcnow
from attendwise.platform.jobs import Periodic, enqueue
from attendwise.policies import services as policy_services
from attendwise.policies.document import Policy
from attendwise.policies.engine import Clock, EventLog, Facts, LadderState, evaluate, half_term_columns
from attendwise.policies.models import SchoolPolicy
from attendwise.policies.simulate import Days, uses_metric
from attendwise.tenants.models import Organisation, OrgKind

log = logging.getLogger(__name__)

RUN_AT = dt.time(18, 30)
"""School-local time after which a school's policy runs each day (after the school day's registers)."""
SYNC_GRACE = dt.timedelta(hours=3)
"""How long after its scheduled time a school's MIS sync may run before the policy runs without it."""
DISPATCH_EVERY = 300  # seconds: a school is evaluated at most this long after it is due


@dataclass(frozen=True)
class Outcome:
    """What one evaluation did."""

    on: dt.date
    policy: str | None
    pupils: int = 0
    evaluated: int = 0
    transitions: int = 0
    tasks_created: int = 0
    cases_opened: int = 0


def _window(
    session: Session, org_id: int, calendar: SchoolCalendar, pupil_ids: list[int], *, day: dt.date, name: str
) -> PupilMetrics:
    half_term = calendar.half_term_of(day)
    if name == "half_term" and half_term is not None:
        period = Period(half_term.start, day)
    elif name == "term" and half_term is not None:
        term = next(t for t in calendar.terms if half_term in t.half_terms)
        period = Period(term.start, day)
    elif name.startswith("last_"):
        period = Period.last_school_weeks(calendar, int(name.split("_")[1]), day)
    else:
        raise ValueError(f"no metrics are available for the window {name!r}")
    return attendance_queries.figures(session, org_id, calendar, period, pupil_ids)


def _previous_year(session: Session, org_id: int, pupil_ids: list[int], day: dt.date) -> np.ndarray:
    year = academic_year_of(day) - 1
    calendar = attendance_services.school_calendar(session, org_id, year)
    return attendance_queries.figures(
        session, org_id, calendar, Period(calendar.start, calendar.end), pupil_ids
    ).attendance_pct


def _clock(
    session: Session, org_id: int, calendar: SchoolCalendar, state: LadderState, day: dt.date
) -> Clock:
    """School days and weeks from the earliest day a pupil entered their stage or the ladder:
    a pupil who joined the ladder last summer has been on it for last summer's weeks too."""
    entries = np.concatenate([state.entered, state.ladder_entered])
    entries = entries[entries > 0]
    this_year = academic_year_of(day)
    first_year = academic_year_of(dt.date.fromordinal(int(entries.min()))) if entries.size else this_year
    if first_year < this_year:
        years = [
            attendance_services.school_calendar(session, org_id, year)
            for year in range(first_year, this_year)
        ]
        years.append(calendar)
        calendar = SchoolCalendar(
            tuple(half_term for year in years for half_term in year.half_terms),
            inset_days=frozenset().union(*(year.inset_days for year in years)),
            closures=frozenset().union(*(year.closures for year in years)),
            extra_days=frozenset().union(*(year.extra_days for year in years)),
        )
    return Clock.of(calendar, calendar.start, max(day, calendar.start))


def _support(session: Session, pupil_ids: list[int]) -> np.ndarray:
    """Pupils with support on record: support offered or accepted, or an active plan."""
    supported = set(
        session.scalars(
            select(Case.pupil_id)
            .join(SupportRecord, SupportRecord.case_id == Case.id)
            .where(Case.status == CaseStatus.OPEN, SupportRecord.status != SupportStatus.DECLINED)
        )
    ) | set(
        session.scalars(
            select(Case.pupil_id)
            .join(ActionPlan, ActionPlan.case_id == Case.id)
            .where(Case.status == CaseStatus.OPEN, ActionPlan.status == PlanStatus.ACTIVE)
        )
    )
    return np.array([pid in supported for pid in pupil_ids], dtype=bool)


def evaluate_on(session: Session, org_id: int, day: dt.date, *, policy: Policy | None = None) -> Outcome:
    """Evaluate the current school's pupils on ``day`` and write the decisions to casework."""
    if policy is None:
        school_policy = policy_services.get_policy(session)
        policy = policy_services.policy_on(school_policy, day) if school_policy is not None else None
    if policy is None:
        return Outcome(day, None)
    pupils = session.execute(select(Pupil.id, Pupil.upn).order_by(Pupil.id)).all()
    if not pupils:
        return Outcome(day, policy.key)
    pupil_ids = [p.id for p in pupils]
    upns = [p.upn for p in pupils]
    calendar = attendance_services.school_calendar(session, org_id, academic_year_of(day))
    days = Days(calendar)
    if not calendar.is_school_day(day):
        return Outcome(day, policy.key, pupils=len(pupils))
    row_of = {pid: i for i, pid in enumerate(pupil_ids)}
    state = ladder_state(session, upns, pupil_ids, policy.base_stage)
    events = session.execute(
        select(CaseEvent.pupil_id, CaseEvent.occurred_on, CaseEvent.name).where(CaseEvent.occurred_on <= day)
    ).all()
    log = EventLog.from_rows((row_of[pid], on, name) for pid, on, name in events if pid in row_of)
    monitoring = {s.number: s.monitoring for s in policy.stages}
    cadence = np.array([monitoring.get(int(s), policy.cadence) for s in state.stage])
    due = (cadence == "daily") | ((cadence == "weekly") & days.weekly(day, policy.evaluation_day))
    for row in log.rows_on(day.toordinal()):
        due[row] = True
    recurring = {
        every
        for every in {r.every for r in policy.rules}
        | {r.every for s in policy.stages for r in s.while_in_stage}
        if days.falls(every, day, policy.evaluation_day)
    }
    if not due.any() and not recurring:
        return Outcome(day, policy.key, pupils=len(pupils))
    metrics = attendance_queries.figures(
        session, org_id, calendar, Period.year_to_date(calendar, day), pupil_ids
    )
    facts = Facts(
        on=day,
        metrics=metrics,
        half_term_column=half_term_columns(metrics, [calendar], day),
        clocks=[_clock(session, org_id, calendar, state, day)],
        calendar_of=np.zeros(len(pupils), dtype=np.int64),
        events=log,
        support=_support(session, pupil_ids),
        previous_year_attendance=_previous_year(session, org_id, pupil_ids, day)
        if uses_metric(policy, "end_of_year_attendance")
        else None,
        window=lambda name: _window(session, org_id, calendar, pupil_ids, day=day, name=name),
    )
    result = evaluate(policy, state, facts, due=due, recurring_today=recurring.__contains__)
    sink = CaseworkSink(session, policy, dict(zip(upns, pupil_ids, strict=True)))
    result.publish(sink)
    sink.finish(result.state, facts.counts())
    audit.record(
        session,
        org_id=org_id,
        action="casework.evaluate",
        object_type="organisation",
        object_id=org_id,
        detail={
            "on": day.isoformat(),
            "policy": policy.key,
            "evaluated": int(due.sum()),
            "transitions": len(sink.transitions),
            "tasks_created": sink.created_tasks,
        },
    )
    return Outcome(
        day,
        policy.key,
        pupils=len(pupils),
        evaluated=int(due.sum()),
        transitions=len(sink.transitions),
        tasks_created=sink.created_tasks,
        cases_opened=sink.opened_cases,
    )


def school_now(school: Organisation, now: dt.datetime | None = None) -> dt.datetime:
    """``now`` (default: the current time) on the school's own clock, in its time zone."""
    return (now or utcnow()).astimezone(ZoneInfo(school.timezone or "Europe/London"))


def evaluate_school(org_id: int, on: str | None = None, scheduled_id: int | None = None) -> dict[str, object]:
    """The job: evaluate one school on ``on`` (ISO date), or today on the school's own clock.

    ``scheduled_id``: the :class:`ScheduledEvaluation` the scheduler queued this for, which
    records the outcome.
    """
    session = db.session()
    day = dt.date.fromisoformat(on) if on else school_now(session.get_one(Organisation, org_id)).date()
    outcome = evaluate_on(session, org_id, day)
    enqueue("attendwise.insights.jobs.refresh_school", org_id, day.isoformat(), org_id=org_id)
    if scheduled_id is not None:
        run = session.get(ScheduledEvaluation, scheduled_id)
        if run is not None:
            run.finished_at = utcnow()
            run.evaluated = outcome.evaluated
            run.transitions = outcome.transitions
            run.tasks_created = outcome.tasks_created
            session.flush()
    return {
        "on": outcome.on.isoformat(),
        "policy": outcome.policy,
        "evaluated": outcome.evaluated,
        "transitions": outcome.transitions,
        "tasks_created": outcome.tasks_created,
    }


def due_evaluation(session: Session, school: Organisation, now: dt.datetime) -> tuple[dt.date, str] | None:
    """The school-local day to evaluate ``school`` for at ``now``, and what it waited for; or None.

    A school is due once its local time has passed :data:`RUN_AT` and, when it has a scheduled
    MIS sync, once that day's sync has finished (or is :data:`SYNC_GRACE` late: the policy then
    runs on the marks it has rather than not at all).
    """
    local = school_now(school, now)
    if local.time() < RUN_AT:
        return None
    sync = connectors.daily_sync(session, school, now)
    if sync is None:
        return local.date(), "no_sync"
    if sync.finished:
        return local.date(), "sync"
    sync_due = dt.datetime.combine(local.date(), sync.at, tzinfo=local.tzinfo)
    if local >= sync_due + SYNC_GRACE:
        log.warning("school %s: today's MIS sync has not finished; evaluating on the marks it has", school.id)
        return local.date(), "sync_overdue"
    return None


def dispatch_due_evaluations(now: dt.datetime | None = None) -> list[int]:
    """The periodic dispatcher (system context): queue ``evaluate_school`` for each school with a
    policy that is due (:func:`due_evaluation`) and not yet queued for its local day.

    Returns the schools queued. Each school is queued at most once per local day: the
    (school, day) row is inserted first, in a savepoint, and a second dispatcher's insert of
    the same row fails and queues nothing.
    """
    session = db.session()
    now = now or utcnow()
    with_policy = set(session.scalars(select(SchoolPolicy.org_id)))
    schools = session.scalars(
        select(Organisation)
        .where(Organisation.kind == OrgKind.SCHOOL, Organisation.active.is_(True))
        .order_by(Organisation.id)
    ).all()
    queued = []
    for school in schools:
        if school.id not in with_policy:
            continue
        due = due_evaluation(session, school, now)
        if due is None:
            continue
        day, after = due
        done = session.scalar(
            select(ScheduledEvaluation.id).where(
                ScheduledEvaluation.org_id == school.id, ScheduledEvaluation.school_day == day
            )
        )
        if done is not None:
            continue
        run = ScheduledEvaluation(org_id=school.id, school_day=day, after=after)
        try:
            with session.begin_nested():
                session.add(run)
        except IntegrityError:
            continue
        enqueue(evaluate_school, school.id, day.isoformat(), run.id, org_id=school.id, queue="evaluation")
        queued.append(school.id)
    if queued:
        log.info("queued the policy evaluation of %d school(s)", len(queued))
    return queued


PERIODIC = (
    Periodic(
        name="casework.dispatch_due_evaluations",
        func="attendwise.casework.jobs.dispatch_due_evaluations",
        queue="evaluation",
        interval=DISPATCH_EVERY,
    ),
)
