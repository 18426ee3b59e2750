"""A school with a published policy, pupils and a term of marks, for the casework tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance_services
from attendwise.attendance.models import Pupil
from attendwise.casework.models import Case, CaseStatus
from attendwise.platform import tenancy
from attendwise.policies import services as policy_services
from attendwise.tenants.models import Organisation
from tests.attendance.records import HALF_TERMS_2026, make_upn

TERM_START = dt.date(2026, 9, 2)


@dataclass
class CaseworkSchool:
    school: Organisation
    pupils: list[Pupil]


def school_days(start: dt.date, end: dt.date) -> list[dt.date]:
    days = []
    day = start
    while day <= end:
        half = any(h.start_date <= day <= h.end_date for h in HALF_TERMS_2026)
        if half and day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def build_school(
    session: Session,
    school: Organisation,
    *,
    pupils: int,
    absent_pupils: int,
    preset: str = "spetisbury",
    marks_to: dt.date = dt.date(2026, 11, 20),
    estab: int = 2001,
) -> CaseworkSchool:
    """``absent_pupils`` of the pupils miss one day in four (75%: persistently absent)."""
    with tenancy.tenant_context(school.id):
        policy = policy_services.create_from_preset(
            session, preset=preset, effective_from=dt.date(2026, 8, 1)
        )
        policy_services.publish(session, policy)
        attendance_services.set_school_calendar(session, school.id, 2026, HALF_TERMS_2026, [])
        records = [
            attendance_services.PupilRecord(
                upn=make_upn(i, estab=estab),
                legal_forename=f"Pupil{i}",
                legal_surname=f"Family{i % 97}",
                date_of_birth=dt.date(2016, 9, 1) + dt.timedelta(days=i % 300),
                year_group=str(1 + i % 6),
            )
            for i in range(1, pupils + 1)
        ]
        attendance_services.upsert_pupils(session, school.id, records)
        marks = []
        for i, record in enumerate(records):
            absent = i < absent_pupils
            for n, day in enumerate(school_days(TERM_START, marks_to)):
                code = "O" if absent and n % 4 == 3 else "/"
                marks.append(attendance_services.MarkRow(record.upn, day, "AM", code))
                marks.append(attendance_services.MarkRow(record.upn, day, "PM", code))
        attendance_services.store_marks(session, school.id, marks, "mis")
        stored = list(session.query(Pupil).order_by(Pupil.id))
    return CaseworkSchool(school, stored)


@pytest.fixture
def casework_school(
    db_session: Session, make_school: Callable[..., Organisation]
) -> Callable[..., CaseworkSchool]:
    def factory(**kwargs: object) -> CaseworkSchool:
        return build_school(db_session, make_school(), **kwargs)  # type: ignore[arg-type]

    return factory


FRIDAYS = (dt.date(2026, 9, 11), dt.date(2026, 9, 18), dt.date(2026, 9, 25), dt.date(2026, 10, 2))


@dataclass
class CaseWithParents:
    school: Organisation
    case: Case
    mother_id: int
    father_id: int


@pytest.fixture
def case_with_parents(db_session: Session, casework_school: Callable[..., CaseworkSchool]) -> CaseWithParents:
    """An open case (the engine's, after four Fridays) whose pupil has two parents with
    parental responsibility: the mother has an email address, the father only a postal one."""
    from attendwise.casework.jobs import evaluate_on
    from tests.letters.conftest import add_parents

    built = casework_school(pupils=6, absent_pupils=1)
    school = built.school
    with tenancy.tenant_context(school.id):
        for friday in FRIDAYS:
            evaluate_on(db_session, school.id, friday)
        case = db_session.scalars(select(Case).where(Case.status == CaseStatus.OPEN)).one()
        mother, father = add_parents(db_session, school, case.pupil)
    return CaseWithParents(school, case, mother, father)
