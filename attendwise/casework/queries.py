"""Read helpers for casework pages and the API: the worklist and a case with everything on it.

The worklist is one query for tasks (their pupils joined in the same statement) and one for the
stages of the cases they belong to, however many cases the school has: no query per row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from attendwise.attendance.models import PupilContact
from attendwise.casework.models import (
    ActionPlan,
    Case,
    CaseStatus,
    ContactLog,
    Meeting,
    SupportRecord,
    Task,
    TaskStatus,
    TimelineEntry,
)
from attendwise.tenants.models import User


@dataclass
class Worklist:
    today: dt.date
    week_end: dt.date
    overdue: list[Task] = field(default_factory=list)
    due_today: list[Task] = field(default_factory=list)
    this_week: list[Task] = field(default_factory=list)
    signoff: list[Task] = field(default_factory=list)
    stages: dict[int, tuple[int, str]] = field(default_factory=dict)
    """Case id -> (stage, stage name)."""

    @property
    def total(self) -> int:
        return len(self.overdue) + len(self.due_today) + len(self.this_week) + len(self.signoff)


def worklist(
    session: Session, today: dt.date, *, user_id: int | None = None, role: str | None = None
) -> Worklist:
    """Open tasks due by the end of this week, and steps waiting for sign-off.

    With ``user_id`` (and ``role``): only tasks assigned to that person or to their role.
    """
    week_end = today + dt.timedelta(days=6 - today.weekday())
    query = (
        select(Task)
        .where(Task.status == TaskStatus.OPEN, or_(Task.due_on <= week_end, Task.needs_signoff.is_(True)))
        .order_by(Task.due_on, Task.id)
    )
    if user_id is not None:
        mine = [Task.assignee_user_id == user_id]
        if role is not None:
            mine.append((Task.assignee_role == role) & Task.assignee_user_id.is_(None))
        query = query.where(or_(*mine))
    out = Worklist(today, week_end)
    tasks = session.scalars(query).all()
    for task in tasks:
        if task.waiting_for_signoff:
            out.signoff.append(task)
        elif task.due_on < today:
            out.overdue.append(task)
        elif task.due_on == today:
            out.due_today.append(task)
        else:
            out.this_week.append(task)
    case_ids = {t.case_id for t in tasks if t.case_id is not None}
    if case_ids:
        out.stages = {
            cid: (stage, name)
            for cid, stage, name in session.execute(
                select(Case.id, Case.stage, Case.stage_name).where(Case.id.in_(case_ids))
            )
        }
    return out


@dataclass
class CasePage:
    case: Case
    timeline: list[TimelineEntry]
    tasks: list[Task]
    meetings: list[Meeting]
    plans: list[ActionPlan]
    support: list[SupportRecord]
    contacts: list[PupilContact]
    episodes: list[Case]
    people: dict[int, str]


def case_page(session: Session, case: Case) -> CasePage:
    timeline = session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.case_id == case.id)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
    ).all()
    tasks = session.scalars(
        select(Task).where(Task.case_id == case.id).order_by(Task.status, Task.due_on, Task.id)
    ).all()
    meetings = session.scalars(
        select(Meeting).where(Meeting.case_id == case.id).order_by(Meeting.starts_at.desc())
    ).all()
    plans = session.scalars(
        select(ActionPlan)
        .where(ActionPlan.case_id == case.id)
        .options(selectinload(ActionPlan.reviews))
        .order_by(ActionPlan.id.desc())
    ).all()
    support = session.scalars(
        select(SupportRecord).where(SupportRecord.case_id == case.id).order_by(SupportRecord.id.desc())
    ).all()
    contacts = session.scalars(
        select(PupilContact).where(PupilContact.pupil_id == case.pupil_id).order_by(PupilContact.priority)
    ).all()
    episodes = session.scalars(
        select(Case).where(Case.pupil_id == case.pupil_id).order_by(Case.episode)
    ).all()
    user_ids = {e.by_user_id for e in timeline if e.by_user_id} | {case.lead_user_id or 0}
    people: dict[int, str] = {
        row.id: row.display_name
        for row in session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    }
    return CasePage(
        case,
        list(timeline),
        list(tasks),
        list(meetings),
        list(plans),
        list(support),
        list(contacts),
        list(episodes),
        people,
    )


def open_case_for_pupil(session: Session, pupil_id: int) -> Case | None:
    return session.scalars(
        select(Case).where(Case.pupil_id == pupil_id, Case.status == CaseStatus.OPEN)
    ).first()


def contact_logs(session: Session, case_id: int) -> list[ContactLog]:
    return list(
        session.scalars(
            select(ContactLog).where(ContactLog.case_id == case_id).order_by(ContactLog.occurred_at.desc())
        )
    )
