"""Demo casework: the engine replayed over the autumn term of every demo school, and over last
summer term too for the pilot school, whose marks begin then.

Each school day from the first to the last day of demo marks, the attendance team does
the day's work first and the school's policy then runs in the evening, exactly as the daily job
would. Nothing here writes a stage: every move is the engine's, driven by the marks and by the
events the team records through the casework services, as staff would on the pages:

* a task raised on an earlier day is done on its due date (calls, letters, visits), or the next
  school day when it is something to arrange: support offered (the support-first record a later
  stage waits for), a plan, a meeting. A meeting is held three to ten days later (by its due
  date) and its attendance recorded on the day; parents of pupils who miss more than a fifth of
  sessions miss meetings more often (the "meeting missed" event several policies escalate on);
* a plan or contract task becomes an attendance plan (or contract) with a target of 90%, reviewed
  every two weeks (contracts: every four); the review measures attendance since the plan began
  from the marks, so "targets met" or "not met" is the marks' answer, not the demo's;
* a proposed step is approved by the senior attendance champion the next school day, after the
  support it waits for is on record.

In the final week the team falls behind, as teams do: every third ordinary task is left, so the
worklist shows overdue work, the steps the last evaluation proposed waiting for sign-off, and a
week of tasks still to come.
"""

from __future__ import annotations

import datetime as dt
import math
import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import SchoolCalendar, academic_year_of, days_between
from attendwise.attendance.demo import MARKS_TO, marks_from
from attendwise.attendance.metrics import Period
from attendwise.casework import services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import (
    ActionPlan,
    Case,
    Meeting,
    MeetingStatus,
    PlanStatus,
    ReviewOutcome,
    SupportStatus,
    Task,
    TaskKind,
    TaskStatus,
)
from attendwise.platform import tenancy
from attendwise.platform.demo import DemoOrgs
from attendwise.policies import services as policy_services
from attendwise.policies.document import Policy
from attendwise.tenants.models import Membership

SEED = 20261124
FINAL_WEEK = MARKS_TO - dt.timedelta(days=MARKS_TO.weekday())  # the Monday of the last week of marks
PLAN_TARGET = 90.0
PLAN_REVIEW_WEEKS = 2
MEETING_WITHIN_DAYS = (3, 10)
CONTRACT_REVIEW_WEEKS = 4
STRAIGHT_AWAY = frozenset(
    {TaskKind.MEETING, TaskKind.ACTION_PLAN, TaskKind.ATTENDANCE_CONTRACT, TaskKind.EARLY_HELP}
)
"""Tasks the team acts on the day after they appear (arranging, planning, offering); the rest
are done on their due date."""
MISSED_MEETING = {"often_absent": 0.6, "other": 0.2}


def seed(session: Session, demo: DemoOrgs) -> None:
    for school in demo.schools:
        first_day = marks_from(demo.presets[school.id])
        with tenancy.tenant_context(school.id):
            if policy_services.get_policy(session) is None:
                policy_services.publish(
                    session,
                    policy_services.create_from_preset(
                        session, preset=demo.presets[school.id], effective_from=first_day
                    ),
                )
            school_policy = policy_services.get_policy(session)
            assert school_policy is not None
            champion = session.scalar(
                select(Membership.user_id).where(
                    Membership.org_id == school.id, Membership.role == "senior_attendance_champion"
                )
            )
            team = _Team(session, random.Random(f"{SEED}:{school.urn}"), school.id, champion)
            versions = policy_services.compiled_versions(school_policy)
            for day in days_between(first_day, MARKS_TO):
                in_effect = [p for p in versions if p.effective_from <= day]
                if not in_effect or not team.calendar(day).is_school_day(day):
                    continue
                team.work(day, in_effect[-1])
                evaluate_on(session, school.id, day, policy=in_effect[-1])


class _Team:
    """One school's attendance team, working through its casework a day at a time."""

    def __init__(
        self,
        session: Session,
        rng: random.Random,
        org_id: int,
        champion: int | None,
    ) -> None:
        self.session = session
        self.rng = rng
        self.org_id = org_id
        self.champion = champion
        self._calendars: dict[int, SchoolCalendar] = {}

    def calendar(self, day: dt.date) -> SchoolCalendar:
        """The school's calendar for the academic year of ``day``."""
        year = academic_year_of(day)
        if year not in self._calendars:
            self._calendars[year] = attendance_services.school_calendar(self.session, self.org_id, year)
        return self._calendars[year]

    def work(self, day: dt.date, policy: Policy) -> None:
        """The day's work, before the evening's evaluation: what was raised before today (the
        evaluations so far raised every task there is when the day begins)."""
        self._hold_meetings(day)
        self._review_plans(day)
        behind = day >= FINAL_WEEK
        raised_before_today = self.session.scalar(select(func.max(Task.id))) or 0
        done: list[Task] = []
        for task in self.session.scalars(
            select(Task)
            .where(Task.status == TaskStatus.OPEN, Task.id <= raised_before_today)
            .order_by(Task.id)
        ).all():
            if task.waiting_for_signoff:
                self._sign_off(task, day, policy)
                continue
            if task.kind not in STRAIGHT_AWAY and task.due_on > day:
                continue
            if behind and task.id % 3 == 0:
                continue
            case = self.session.get(Case, task.case_id) if task.case_id is not None else None
            if case is not None:
                self._act(task, case, day)
            done.append(task)
        services.complete_tasks(self.session, done, by_user_id=None, note="Done")

    def _act(self, task: Task, case: Case, day: dt.date) -> None:
        if task.kind == TaskKind.EARLY_HELP:
            self._offer_support(case, day)
        elif task.kind == TaskKind.MEETING:
            services.invite_to_meeting(
                self.session,
                case,
                starts_at=dt.datetime.combine(
                    min(task.due_on, day + dt.timedelta(days=self.rng.randint(*MEETING_WITHIN_DAYS))),
                    dt.time(9, 30),
                ),
                place="School office",
                invitees=["Parent or carer", "Attendance officer"],
                agenda=task.detail,
                by_user_id=None,
            )
        elif task.kind in (TaskKind.ACTION_PLAN, TaskKind.ATTENDANCE_CONTRACT):
            contract = task.kind == TaskKind.ATTENDANCE_CONTRACT
            weeks = CONTRACT_REVIEW_WEEKS if contract else PLAN_REVIEW_WEEKS
            services.create_plan(
                self.session,
                case,
                target_attendance=PLAN_TARGET,
                target_weeks=weeks,
                support_agreed=[
                    self.rng.choice(("Breakfast club", "Collection by staff", "Mentor check-ins"))
                ],
                owners=["Attendance officer", "Parent or carer"],
                starts_on=day,
                review_on=day + dt.timedelta(weeks=weeks),
                is_contract=contract,
                review_period_weeks=weeks if contract else None,
                by_user_id=None,
            )

    def _sign_off(self, task: Task, day: dt.date, policy: Policy) -> None:
        case = self.session.get(Case, task.case_id) if task.case_id is not None else None
        if case is not None and not services.support_on_record(self.session, case):
            self._offer_support(case, day)
        services.decide_signoff(
            self.session,
            task,
            approve=True,
            reason="Reviewed the case; support was offered first.",
            by_user_id=self.champion,
            by_role=None,
            policy=policy,
            on=day,
        )

    def _hold_meetings(self, day: dt.date) -> None:
        """Record whether each meeting arranged for today happened."""
        for meeting in self.session.scalars(
            select(Meeting).where(
                Meeting.status == MeetingStatus.INVITED,
                Meeting.starts_at < dt.datetime.combine(day + dt.timedelta(days=1), dt.time()),
            )
        ).all():
            case = services.get_case(self.session, meeting.case_id)
            often_absent = (self._attendance(case, self.calendar(day).start, day) or 100.0) < 80.0
            missed = self.rng.random() < MISSED_MEETING["often_absent" if often_absent else "other"]
            services.record_meeting_attendance(
                self.session,
                meeting,
                MeetingStatus.MISSED if missed else MeetingStatus.ATTENDED,
                by_user_id=None,
            )

    def _review_plans(self, day: dt.date) -> None:
        """Review each plan due today against the marks; continue it if the targets were not met."""
        for plan in self.session.scalars(
            select(ActionPlan).where(ActionPlan.status == PlanStatus.ACTIVE, ActionPlan.review_on <= day)
        ).all():
            case = services.get_case(self.session, plan.case_id)
            measured = self._attendance(case, plan.starts_on, day)
            met = measured is not None and measured >= plan.target_attendance
            services.review_plan(
                self.session,
                plan,
                measured_attendance=measured,
                outcome=ReviewOutcome.CLOSE if met else ReviewOutcome.CONTINUE,
                note="Targets met: plan closed, monitoring continues." if met else "Targets not met.",
                on=day,
                by_user_id=None,
            )
            if not met:
                weeks = plan.review_period_weeks or PLAN_REVIEW_WEEKS
                services.update_plan(
                    self.session,
                    plan,
                    support_agreed=plan.support_agreed,
                    owners=plan.owners,
                    review_on=day + dt.timedelta(weeks=weeks),
                    by_user_id=None,
                )

    def _attendance(self, case: Case, start: dt.date, day: dt.date) -> float | None:
        """The pupil's attendance from ``start`` to ``day`` (from September when ``start`` was in
        an earlier academic year), from the marks."""
        calendar = self.calendar(day)
        figures = attendance_queries.figures(
            self.session, self.org_id, calendar, Period(max(start, calendar.start), day), [case.pupil_id]
        )
        value = float(figures.attendance_pct[0])
        return None if math.isnan(value) else value

    def _offer_support(self, case: Case, day: dt.date) -> None:
        services.record_support(
            self.session,
            case,
            barriers=[self.rng.choice(("health", "EBSA", "transport", "housing"))],
            support=self.rng.choice(("School well-being service", "Breakfast club", "Early help offer")),
            status=SupportStatus.OFFERED,
            agencies=[],
            early_help_offered=True,
            early_help_started=False,
            on=day,
            by_user_id=None,
        )
