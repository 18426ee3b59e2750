"""Read helpers for casework pages and the API: the worklist and a case with everything on it.

The worklist is three queries (the tasks, then their pupils' names and their cases' stages by
primary key), read as plain rows, however many cases the school has: no query and no ORM object
per row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from attendwise.attendance.models import Pupil, PupilContact
from attendwise.casework.models import (
    ActionPlan,
    Case,
    CaseStatus,
    ContactLog,
    Meeting,
    SupportRecord,
    Task,
    TaskKind,
    TaskStatus,
    TimelineEntry,
)
from attendwise.tenants.models import User


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One task as the worklist shows it (plain values: no ORM objects to load per row)."""

    id: int
    case_id: int | None
    kind: TaskKind
    title: str
    due_on: dt.date
    assignee_role: str | None
    pupil_name: str
    stage: int | None


@dataclass
class Worklist:
    today: dt.date
    week_end: dt.date
    overdue: list[WorkItem] = field(default_factory=list)
    due_today: list[WorkItem] = field(default_factory=list)
    this_week: list[WorkItem] = field(default_factory=list)
    signoff: list[WorkItem] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.overdue) + len(self.due_today) + len(self.this_week) + len(self.signoff)


def worklist(
    session: Session, today: dt.date, *, user_id: int | None = None, role: str | None = None
) -> Worklist:
    """Open tasks due by the end of this week, and steps waiting for sign-off, in three queries.

    With ``user_id`` (and ``role``): only tasks assigned to that person or to their role.

    The tasks, their pupils' names and their cases' stages are read by three statements (the
    pupils and cases by primary key), not one join, so each table is read once whatever plan
    PostgreSQL picks: joined, a planner without statistics (a bulk load before autovacuum has
    run) chose nested loops that re-read the school's pupils for every task, 80 times slower.
    """
    week_end = today + dt.timedelta(days=6 - today.weekday())
    query = (
        select(
            Task.id,
            Task.case_id,
            Task.pupil_id,
            Task.kind,
            Task.title,
            Task.due_on,
            Task.assignee_role,
            Task.needs_signoff,
            Task.signoff_decision,
        )
        .where(Task.status == TaskStatus.OPEN, or_(Task.due_on <= week_end, Task.needs_signoff.is_(True)))
        .order_by(Task.due_on, Task.id)
    )
    if user_id is not None:
        mine = [Task.assignee_user_id == user_id]
        if role is not None:
            mine.append((Task.assignee_role == role) & Task.assignee_user_id.is_(None))
        query = query.where(or_(*mine))
    tasks = session.execute(query).all()
    names = _pupil_names(session, {row[2] for row in tasks})
    stages = _case_stages(session, {row[1] for row in tasks if row[1] is not None})
    out = Worklist(today, week_end)
    for tid, case_id, pupil_id, kind, title, due_on, role_, needs, decision in tasks:
        stage = stages.get(case_id) if case_id is not None else None
        item = WorkItem(tid, case_id, kind, title, due_on, role_, names[pupil_id], stage)
        if needs and decision is None:
            out.signoff.append(item)
        elif due_on < today:
            out.overdue.append(item)
        elif due_on == today:
            out.due_today.append(item)
        else:
            out.this_week.append(item)
    return out


def _pupil_names(session: Session, pupil_ids: set[int]) -> dict[int, str]:
    if not pupil_ids:
        return {}
    forename = func.coalesce(Pupil.preferred_forename, Pupil.legal_forename)
    surname = func.coalesce(Pupil.preferred_surname, Pupil.legal_surname)
    rows = session.execute(select(Pupil.id, forename, surname).where(Pupil.id.in_(pupil_ids)))
    return {pid: f"{first} {last}" for pid, first, last in rows}


def _case_stages(session: Session, case_ids: set[int]) -> dict[int, int]:
    if not case_ids:
        return {}
    return dict(session.execute(select(Case.id, Case.stage).where(Case.id.in_(case_ids))).all())


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


@dataclass
class CaseRecords:
    """What a case holds besides its timeline and contact log, each read once in page order."""

    tasks: list[Task]
    meetings: list[Meeting]
    plans: list[ActionPlan]
    support: list[SupportRecord]
    contacts: list[PupilContact]
    episodes: list[Case]


def case_records(session: Session, case: Case) -> CaseRecords:
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
        select(PupilContact)
        .where(PupilContact.pupil_id == case.pupil_id)
        .options(joinedload(PupilContact.contact))
        .order_by(PupilContact.priority)
    ).all()
    episodes = session.scalars(
        select(Case).where(Case.pupil_id == case.pupil_id).order_by(Case.episode)
    ).all()
    return CaseRecords(
        list(tasks), list(meetings), list(plans), list(support), list(contacts), list(episodes)
    )


def case_page(session: Session, case: Case) -> CasePage:
    timeline = session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.case_id == case.id)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
    ).all()
    records = case_records(session, case)
    user_ids = {e.by_user_id for e in timeline if e.by_user_id} | {case.lead_user_id or 0}
    people: dict[int, str] = {
        row.id: row.display_name
        for row in session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    }
    return CasePage(
        case,
        list(timeline),
        records.tasks,
        records.meetings,
        records.plans,
        records.support,
        records.contacts,
        records.episodes,
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


@dataclass(frozen=True)
class CaseworkCounts:
    """A school's casework in figures: open cases by stage, and meetings held in a date range."""

    open_by_stage: dict[str, int]
    open_cases: int
    meetings: int


def casework_counts(session: Session, start: dt.date, end: dt.date) -> CaseworkCounts:
    """The current school's open cases by stage name, and meetings from ``start`` to ``end``."""
    by_stage = {
        str(name): int(n)
        for name, n in session.execute(
            select(Case.stage_name, func.count())
            .where(Case.status == CaseStatus.OPEN)
            .group_by(Case.stage_name)
        ).all()
    }
    low = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    meetings = session.scalar(
        select(func.count()).select_from(Meeting).where(Meeting.starts_at >= low, Meeting.starts_at < high)
    )
    return CaseworkCounts(by_stage, sum(by_stage.values()), int(meetings or 0))


# ---- dates of casework for process measures and what-works (insights) ---------------------------


@dataclass(frozen=True)
class CaseHistory:
    """One case episode as dates and stage numbers only: no names, notes or contacts' details."""

    pupil_id: int
    opened_on: dt.date
    first_contact_on: dt.date | None
    moves: tuple[tuple[dt.date, int, int, str], ...]
    """Stage changes in order: (day, from stage, to stage, name of the stage moved to)."""
    closed_on: dt.date | None


def case_histories(session: Session, start: dt.date, end: dt.date) -> list[CaseHistory]:
    """The current school's case episodes open at any time from ``start`` to ``end``."""
    from attendwise.casework.models import StageChange

    cases = session.execute(
        select(Case.id, Case.pupil_id, Case.opened_on, Case.closed_on)
        .where(Case.opened_on <= end, or_(Case.closed_on.is_(None), Case.closed_on >= start))
        .order_by(Case.id)
    ).all()
    ids = [c.id for c in cases]
    first_contact: dict[int, dt.datetime] = {}
    moves: dict[int, list[tuple[dt.date, int, int, str]]] = {i: [] for i in ids}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        for case_id, at in session.execute(
            select(ContactLog.case_id, func.min(ContactLog.occurred_at))
            .where(ContactLog.case_id.in_(chunk))
            .group_by(ContactLog.case_id)
        ):
            first_contact[case_id] = at
        for change in session.execute(
            select(
                StageChange.case_id,
                StageChange.changed_on,
                StageChange.from_stage,
                StageChange.to_stage,
                StageChange.to_name,
            )
            .where(StageChange.case_id.in_(chunk))
            .order_by(StageChange.case_id, StageChange.changed_on, StageChange.id)
        ):
            moves[change.case_id].append(
                (change.changed_on, change.from_stage, change.to_stage, change.to_name)
            )
    return [
        CaseHistory(
            pupil_id=c.pupil_id,
            opened_on=c.opened_on,
            first_contact_on=first_contact[c.id].date() if c.id in first_contact else None,
            moves=tuple(moves[c.id]),
            closed_on=c.closed_on,
        )
        for c in cases
    ]


def overdue_task_count(session: Session, on: dt.date) -> int:
    """The current school's open tasks whose due day is before ``on``."""
    count = session.scalar(
        select(func.count()).select_from(Task).where(Task.status == TaskStatus.OPEN, Task.due_on < on)
    )
    return int(count or 0)


def actions_done(session: Session, start: dt.date, end: dt.date) -> list[tuple[int, str, dt.date]]:
    """The current school's tasks done from ``start`` to ``end``: (pupil id, kind, day done)."""
    low = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    rows = session.execute(
        select(Task.pupil_id, Task.kind, Task.completed_at)
        .where(Task.status == TaskStatus.DONE, Task.completed_at >= low, Task.completed_at < high)
        .order_by(Task.completed_at)
    )
    return [(r.pupil_id, TaskKind(r.kind).value, r.completed_at.date()) for r in rows]
