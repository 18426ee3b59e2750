"""An LA with two schools; one school's pupil has a case, a parent and a term of marks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance_services
from attendwise.attendance.models import Pupil
from attendwise.casework.models import Case
from attendwise.letters import render
from attendwise.platform import tenancy
from attendwise.referrals import services
from attendwise.tenants.models import Organisation, User
from tests.attendance.records import HALF_TERMS_2026, make_upn
from tests.casework.conftest import school_days
from tests.platform.account_fixtures import enrol_from_setup_page

TERM_START = dt.date(2026, 9, 2)
SUBMIT_ON = dt.date(2026, 11, 20)
ABSENT_DAYS = (
    dt.date(2026, 10, 5),
    dt.date(2026, 10, 6),
    dt.date(2026, 10, 7),
    dt.date(2026, 10, 8),
    dt.date(2026, 11, 9),
)


@dataclass
class World:
    la: Organisation
    school: Organisation
    other_school: Organisation
    pupil: Pupil
    other_pupil: Pupil
    case: Case
    officer: User
    attendance_officer: User
    champion: User


def school_with_pupil(session: Session, school: Organisation, estab: int, absent: bool) -> tuple[Pupil, Case]:
    with tenancy.tenant_context(school.id):
        attendance_services.set_school_calendar(session, school.id, 2026, HALF_TERMS_2026, [])
        upn = make_upn(1, estab=estab)
        attendance_services.upsert_pupils(
            session,
            school.id,
            [
                attendance_services.PupilRecord(
                    upn=upn,
                    legal_forename="Ada",
                    legal_surname=f"Reed{estab}",
                    date_of_birth=dt.date(2015, 3, 4),
                    year_group="6",
                )
            ],
        )
        attendance_services.upsert_contacts(
            session,
            school.id,
            [
                attendance_services.ContactRecord(
                    forename="Grace",
                    surname="Reed",
                    postcode="SW1A 1AA",
                    address_lines=("1 High Street",),
                    emails=("grace@example.test",),
                    links=(attendance_services.ContactLink(upn, "Mother", parental_responsibility=True),),
                )
            ],
        )
        marks = []
        for day in school_days(TERM_START, SUBMIT_ON):
            code = "O" if absent and day in ABSENT_DAYS else "/"
            marks.append(attendance_services.MarkRow(upn, day, "AM", code))
            marks.append(attendance_services.MarkRow(upn, day, "PM", "\\" if code == "/" else code))
        attendance_services.store_marks(session, school.id, marks, "mis")
        pupil = session.query(Pupil).filter_by(upn=upn).one()
        case = Case(
            org_id=school.id,
            pupil_id=pupil.id,
            stage=2,
            stage_name="Stage 2",
            stage_entered_on=dt.date(2026, 10, 12),
            ladder_entered_on=dt.date(2026, 10, 12),
            opened_on=dt.date(2026, 10, 12),
        )
        session.add(case)
        session.flush()
    return pupil, case


@pytest.fixture
def world(
    db_session: Session,
    make_la: Callable[..., Organisation],
    make_school: Callable[..., Organisation],
    make_user: Callable[..., User],
) -> World:
    la = make_la()
    school = make_school(la=la)
    other = make_school(la=la)
    with tenancy.tenant_context(la.id):
        profile = services.ensure_la_setup(db_session, la.id)
        profile.team_email = "attendance-team@la.example.test"
        db_session.flush()
    pupil, case = school_with_pupil(db_session, school, 2001, absent=True)
    other_pupil, _ = school_with_pupil(db_session, other, 2002, absent=True)
    return World(
        la=la,
        school=school,
        other_school=other,
        pupil=pupil,
        other_pupil=other_pupil,
        case=case,
        officer=make_user(la, "la_attendance_officer"),
        attendance_officer=make_user(school, "attendance_officer"),
        champion=make_user(school, "senior_attendance_champion"),
    )


def sign_in_officer(client: FlaskClient, login: Callable[..., Any], officer: User) -> None:
    """Sign an LA officer in, enrolling the TOTP factor their role requires."""
    login(officer)
    enrol_from_setup_page(client, "/auth/mfa/setup")


@pytest.fixture(scope="session", autouse=True)
def _stop_pdf_renderer() -> Iterator[None]:
    """Submitting renders the bundle in the letters render process; stop it when the run ends."""
    yield
    render.renderer().close()
