"""The household view: siblings (sharing a parent with parental responsibility) and their cases;
at another school of the same LA only that a sibling exists and their headline attendance, and
only for roles that may see it; nothing at all from another LA's school."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance_services
from attendwise.attendance.models import Pupil
from attendwise.casework.models import Case
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation, User
from tests.attendance.records import make_upn
from tests.casework.conftest import CaseWithParents

TODAY = dt.date(2026, 11, 20)


def add_child_of_jane(
    session: Session, school: Organisation, forename: str, surname: str, n: int, *, also: str | None = None
) -> Pupil:
    """A pupil at ``school`` whose mother (parental responsibility) is the case pupil's mother
    (the MIS sends her with all her children at the school: ``also`` is the other one's UPN)."""
    upn = make_upn(n, estab=4000 + n)
    with tenancy.tenant_context(school.id):
        attendance_services.upsert_pupils(
            session,
            school.id,
            [
                attendance_services.PupilRecord(
                    upn=upn,
                    legal_forename=forename,
                    legal_surname=surname,
                    date_of_birth=dt.date(2018, 3, 1),
                    year_group="3",
                )
            ],
        )
        attendance_services.upsert_contacts(
            session,
            school.id,
            [
                attendance_services.ContactRecord(
                    forename="Jane",
                    surname="Family1",
                    title="Ms",
                    links=tuple(
                        attendance_services.ContactLink(child, "Mother", True, True, 1)
                        for child in (upn, also)
                        if child
                    ),
                    address_lines=("1 High Street", "Telford"),
                    postcode="TF1 1AA",
                    emails=("jane@example.test",),
                )
            ],
        )
        pupil = session.scalars(select(Pupil).where(Pupil.upn == upn)).one()
        session.flush()
    return pupil


def add_brother_with_a_case(db_session: Session, school: Organisation, upn: str) -> tuple[int, int]:
    """Robin, a brother of the case's pupil at the same school, with an open stage 2 case: ids."""
    brother = add_child_of_jane(db_session, school, "Robin", "Brother", 1, also=upn)
    with tenancy.tenant_context(school.id):
        case = Case(
            pupil_id=brother.id,
            stage=2,
            stage_name="Stage 2 meeting",
            stage_entered_on=TODAY,
            ladder_entered_on=TODAY,
            opened_on=TODAY,
        )
        db_session.add(case)
        db_session.flush()
        return brother.id, case.id


def test_the_household_groups_siblings_cases_and_shows_other_schools_only_as_headlines(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    make_school: Callable[..., Organisation],
    case_with_parents: CaseWithParents,
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("attendwise.attendance.queries.today", lambda: TODAY)
    school, case = case_with_parents.school, case_with_parents.case
    case_id = case.id
    with tenancy.system_context("test: the school's LA"):
        la = db_session.get(Organisation, school.la_id)
    same_la = make_school(la=la, name="Hadley Learning Community")
    other_la = make_school(name="Faraway Academy")
    with tenancy.tenant_context(school.id):
        upn = case.pupil.upn
    brother_id, brothers_case_id = add_brother_with_a_case(db_session, school, upn)
    elsewhere = add_child_of_jane(db_session, same_la, "Zebedee", "Secretname", 2)
    elsewhere_id = elsewhere.id
    add_child_of_jane(db_session, other_la, "Farfetched", "Otherla", 3)
    db_session.commit()

    login(make_user(school, "attendance_officer"))
    page = client.get(f"/cases/{case_id}/household")
    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    assert "Robin Brother" in shown
    assert f'href="/cases/{brothers_case_id}"' in shown
    assert "Stage 2: Stage 2 meeting" in shown
    assert shown.count("A sibling at another school") == 1
    assert "Not shown: the other school holds it" in shown
    for secret in ("Zebedee", "Secretname", "Farfetched", "Otherla", "Hadley", "Faraway"):
        assert secret not in shown
    case_page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'data-testid="household"' in case_page
    assert "Robin Brother" in case_page
    assert f'href="/cases/{case_id}/household"' in case_page

    with tenancy.system_context("test: read the audit log"):
        views = db_session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "case.household_view", AuditEvent.org_id == school.id
            )
        ).all()
        assert views
        assert json.loads(views[0].detail) == {"siblings_here": [brother_id], "siblings_elsewhere": 1}
        assert db_session.scalars(
            select(AuditEvent).where(AuditEvent.action == "pupil.view", AuditEvent.pupil_id == brother_id)
        ).all()
        headline = db_session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "pupil.sibling_headline", AuditEvent.pupil_id == elsewhere_id
            )
        ).all()
        assert headline
        assert {event.org_id for event in headline} == {same_la.id}

    # Read-only staff lack siblings:headline: the other school's sibling is not even mentioned.
    login(make_user(school, "school_staff"))
    staff_view = client.get(f"/cases/{case_id}/household").get_data(as_text=True)
    assert "Robin Brother" in staff_view
    assert "A sibling at another school" not in staff_view
    assert "Siblings at other schools are not shown to your role" in staff_view

    # Another school (even in the same LA) cannot open this case's household.
    login(make_user(same_la, "attendance_officer"))
    assert client.get(f"/cases/{case_id}/household").status_code == 404


def test_a_pupil_with_no_siblings_says_so(
    client: FlaskClient,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    case_with_parents: CaseWithParents,
) -> None:
    case_id = case_with_parents.case.id
    login(make_user(case_with_parents.school, "attendance_officer"))
    shown = client.get(f"/cases/{case_id}/household").get_data(as_text=True)
    assert "No brothers or sisters found" in shown
