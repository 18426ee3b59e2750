"""Demo casework: the engine replayed over the autumn term of every demo school.

Each school day from the start of term to the last day of demo marks, the school's policy runs
exactly as the daily job would. Staff work is simulated as it goes: tasks more than three
school days old are done, proposed steps are signed off by the senior attendance champion, and
support is recorded where a stage waits for it, except in the final week, so the worklist shows
a realistic week of open tasks, steps waiting for sign-off and overdue work.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance.calendar import days_between
from attendwise.attendance.demo import MARKS_FROM, MARKS_TO
from attendwise.casework import services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case, MeetingStatus, SupportStatus, Task, TaskKind, TaskStatus
from attendwise.platform import tenancy
from attendwise.platform.demo import DemoOrgs
from attendwise.policies import services as policy_services
from attendwise.policies.document import Policy
from attendwise.tenants.models import Membership

SEED = 20261124
FINAL_WEEK = MARKS_TO - dt.timedelta(days=7)


def seed(session: Session, demo: DemoOrgs) -> None:
    rng = random.Random(SEED)
    for school in demo.schools:
        with tenancy.tenant_context(school.id):
            if policy_services.get_policy(session) is None:
                policy_services.publish(
                    session,
                    policy_services.create_from_preset(
                        session, preset=demo.presets[school.id], effective_from=MARKS_FROM
                    ),
                )
            school_policy = policy_services.get_policy(session)
            assert school_policy is not None
            champion = session.scalar(
                select(Membership.user_id).where(
                    Membership.org_id == school.id, Membership.role == "senior_attendance_champion"
                )
            )
            versions = policy_services.compiled_versions(school_policy)
            for day in days_between(MARKS_FROM, MARKS_TO):
                in_effect = [p for p in versions if p.effective_from <= day]
                if not in_effect:
                    continue
                outcome = evaluate_on(session, school.id, day, policy=in_effect[-1])
                if outcome.evaluated and day < FINAL_WEEK:
                    _staff_work(session, rng, day, champion, in_effect[-1])


def _staff_work(
    session: Session, rng: random.Random, day: dt.date, champion: int | None, policy: Policy | None
) -> None:
    """What the attendance team did by ``day``: older tasks done, steps signed off, support offered."""
    done: list[Task] = []
    for task in session.scalars(
        select(Task).where(Task.status == TaskStatus.OPEN, Task.due_on < day - dt.timedelta(days=3))
    ).all():
        if task.waiting_for_signoff:
            services.decide_signoff(
                session,
                task,
                approve=True,
                reason="Reviewed the case; support was offered first.",
                by_user_id=champion,
                by_role=None,
                policy=policy,
                on=day,
            )
            continue
        case = session.get(Case, task.case_id) if task.case_id is not None else None
        if task.kind == TaskKind.EARLY_HELP and case is not None:
            services.record_support(
                session,
                case,
                barriers=[rng.choice(("health", "EBSA", "transport", "housing"))],
                support=rng.choice(("School well-being service", "Breakfast club", "Early help offer")),
                status=SupportStatus.OFFERED,
                agencies=[],
                early_help_offered=True,
                early_help_started=False,
                on=day,
                by_user_id=None,
            )
        if task.kind == TaskKind.MEETING and case is not None:
            meeting = services.invite_to_meeting(
                session,
                case,
                starts_at=dt.datetime.combine(task.due_on, dt.time(9, 30)),
                place="School office",
                invitees=["Parent or carer", "Attendance officer"],
                agenda=task.detail,
                by_user_id=None,
            )
            attended = rng.random() < 0.75
            services.record_meeting_attendance(
                session,
                meeting,
                MeetingStatus.ATTENDED if attended else MeetingStatus.MISSED,
                by_user_id=None,
            )
        done.append(task)
    services.complete_tasks(session, done, by_user_id=None, note="Done")
