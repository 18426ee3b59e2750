"""Read helpers for one case: its page (timeline and contact log a page at a time), its
household, and its whole timeline for the court-bundle PDF.

The case page costs the same number of statements whatever the length of the case's history:
each list reads one page (one row more than it shows, to know whether there are older ones),
and names come in one query per page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance.models import PupilContact
from attendwise.casework import queries
from attendwise.casework.models import (
    ActionPlan,
    Case,
    ContactLog,
    Meeting,
    SupportRecord,
    Task,
    TimelineEntry,
)
from attendwise.platform import audit
from attendwise.tenants.models import Organisation, User

PER_PAGE = 50
T = TypeVar("T")


@dataclass
class Paged(Generic[T]):
    """One page of a newest-first list: ``page`` 1 is the newest ``per_page`` rows."""

    items: list[T]
    page: int
    per_page: int
    has_older: bool

    @property
    def has_newer(self) -> bool:
        return self.page > 1


def _paged(session: Session, query: Select[Any], page: int, per_page: int) -> Paged[Any]:
    rows = list(session.scalars(query.limit(per_page + 1).offset((page - 1) * per_page)))
    return Paged(rows[:per_page], page, per_page, len(rows) > per_page)


@dataclass
class CaseView:
    case: Case
    timeline: Paged[TimelineEntry]
    contact_log: Paged[ContactLog]
    tasks: list[Task]
    meetings: list[Meeting]
    plans: list[ActionPlan]
    support: list[SupportRecord]
    contacts: list[PupilContact]
    episodes: list[Case]
    people: dict[int, str]


def people(session: Session, user_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {i for i in user_ids if i}
    if not ids:
        return {}
    return {
        row.id: row.display_name
        for row in session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    }


def case_view(
    session: Session, case: Case, *, timeline_page: int = 1, contacts_page: int = 1, per_page: int = PER_PAGE
) -> CaseView:
    timeline: Paged[TimelineEntry] = _paged(
        session,
        select(TimelineEntry)
        .where(TimelineEntry.case_id == case.id)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc()),
        timeline_page,
        per_page,
    )
    contact_log: Paged[ContactLog] = _paged(
        session,
        select(ContactLog)
        .where(ContactLog.case_id == case.id)
        .options(joinedload(ContactLog.contact))
        .order_by(ContactLog.occurred_at.desc(), ContactLog.id.desc()),
        contacts_page,
        per_page,
    )
    records = queries.case_records(session, case)
    names = people(
        session,
        [
            *(e.by_user_id for e in timeline.items),
            *(c.by_user_id for c in contact_log.items),
            case.lead_user_id,
        ],
    )
    return CaseView(
        case,
        timeline,
        contact_log,
        records.tasks,
        records.meetings,
        records.plans,
        records.support,
        records.contacts,
        records.episodes,
        names,
    )


def contact_ids(session: Session, pupil_id: int) -> set[int]:
    """The pupil's contacts (a contact logged on the case must be one of them)."""
    return set(session.scalars(select(PupilContact.contact_id).where(PupilContact.pupil_id == pupil_id)))


def timeline_oldest_first(case_id: int) -> Select[TimelineEntry]:
    """The case's timeline entries in the order they happened (ties in the order recorded)."""
    return (
        select(TimelineEntry)
        .where(TimelineEntry.case_id == case_id)
        .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
    )


def whole_timeline(session: Session, case_id: int) -> Sequence[TimelineEntry]:
    """Every entry of a case, oldest first (the order a court bundle reads in)."""
    return session.scalars(timeline_oldest_first(case_id)).all()


# --------------------------------------------------------------------------- household


@dataclass(frozen=True)
class CaseSummary:
    id: int
    episode: int
    open: bool
    stage: int
    stage_name: str


@dataclass(frozen=True)
class HouseholdMember:
    """A sibling (sharing a contact with parental responsibility) and, at this school, their case.

    At another school only that the sibling exists and their headline attendance are known:
    ``sibling.pupil_id`` and ``sibling.name`` are None and there is no case."""

    sibling: attendance_queries.Sibling
    case: CaseSummary | None


def household(
    session: Session, case: Case, *, viewer: Organisation, may_see_other_schools: bool, on: dt.date
) -> list[HouseholdMember]:
    siblings = attendance_queries.siblings(
        session, case.pupil, viewer=viewer, may_see_other_schools=may_see_other_schools, on=on
    )
    here = [s.pupil_id for s in siblings if s.pupil_id is not None]
    latest: dict[int, CaseSummary] = {}
    if here:
        for found in session.scalars(
            select(Case).where(Case.pupil_id.in_(here)).order_by(Case.pupil_id, Case.episode.desc())
        ):
            latest.setdefault(
                found.pupil_id,
                CaseSummary(found.id, found.episode, found.status == "open", found.stage, found.stage_name),
            )
    return [HouseholdMember(s, latest.get(s.pupil_id) if s.pupil_id is not None else None) for s in siblings]


def viewed_household(
    session: Session, case: Case, *, viewer: Organisation, may_see_other_schools: bool, on: dt.date
) -> list[HouseholdMember]:
    """:func:`household` as shown to a person (the page or the API), audited: the view of the
    household (``case.household_view``) and a pupil-record view of each sibling at this school."""
    members = household(session, case, viewer=viewer, may_see_other_schools=may_see_other_schools, on=on)
    audit.record(
        session,
        org_id=case.org_id,
        action="case.household_view",
        object_type="case",
        object_id=case.id,
        pupil_id=case.pupil_id,
        detail={
            "siblings_here": [m.sibling.pupil_id for m in members if m.sibling.pupil_id is not None],
            "siblings_elsewhere": sum(1 for m in members if m.sibling.pupil_id is None),
        },
    )
    for member in members:
        if member.sibling.pupil_id is not None:
            sibling = attendance_queries.get_pupil(session, member.sibling.pupil_id)
            if sibling is not None:
                attendance_queries.record_view(session, sibling, via="household")
    return members
