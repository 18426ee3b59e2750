"""Households across schools: another school sees only that a sibling exists and their headline figure."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from attendwise.attendance import queries, services
from attendwise.attendance.models import HouseholdKey
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from tests.attendance.records import make_upn, pupil
from tests.attendance.test_views_pupils import TODAY, seed


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(queries, "today", lambda: TODAY)


def mother(upn: str, **kwargs: object) -> services.ContactRecord:
    values: dict[str, object] = {
        "forename": "Kerry",
        "surname": "Sibley",
        "postcode": "DT11 0AB",
        "phones": (("mobile", "+44 7700 900456"),),
        "links": (services.ContactLink(upn, "Mother", parental_responsibility=True),),
    }
    values.update(kwargs)
    return services.ContactRecord(**values)  # type: ignore[arg-type]


def link(db_session, school, contact):
    with tenancy.tenant_context(school.id):
        services.upsert_contacts(db_session, school.id, [contact])


@pytest.fixture
def family(db_session, make_school, make_la):
    """Sam at Ash (the viewer's school); siblings at Birch (same LA) and Cedar (another LA)."""
    la, far_la = make_la(), make_la()
    ash, birch, cedar = make_school(la=la), make_school(la=la), make_school(la=far_la)
    ids = {}
    for school, serial, codes in (
        (ash, 1, ["/"] * 20),
        (birch, 2, ["/"] * 10 + ["G"] * 10),
        (cedar, 3, ["/"] * 20),
    ):
        ids[serial] = seed(db_session, school, [pupil(serial, surname="Sibley")], {serial: codes})[
            make_upn(serial)
        ]
        link(db_session, school, mother(make_upn(serial)))
    return ash, birch, cedar, ids


def _household(client, pupil_id):
    body = client.get(f"/pupils/{pupil_id}").get_data(as_text=True)
    return body.split('id="main-content"')[1].split(">Household<")[1].split(">Details<")[0]


def test_a_sibling_at_another_school_in_the_la_shows_only_its_headline(
    client, login, make_user, family, db_session
):
    ash, birch, _cedar, ids = family
    login(make_user(ash, "attendance_officer"))
    household = _household(client, ids[1])
    assert "Another school in your local authority or trust" in household
    assert "50.0%" in household
    assert "Severe" in household
    assert "Pupil2" not in household
    assert make_upn(2) not in household
    assert household.count('<tr class="govuk-table__row">') == 2  # header + Birch; Cedar is in another LA
    with tenancy.tenant_context(birch.id):
        seen = db_session.scalars(
            select(AuditEvent).where(AuditEvent.action == "pupil.sibling_headline")
        ).all()
    assert [(e.pupil_id, e.detail) for e in seen] == [
        (ids[2], f'{{"viewed_from_org": {ash.id}, "viewed_with_pupil": {ids[1]}}}')
    ]


def test_roles_without_the_sibling_permission_do_not_see_other_schools(client, login, make_user, family):
    ash, _birch, _cedar, ids = family
    login(make_user(ash, "school_staff"))
    assert "No siblings found" in _household(client, ids[1])


def test_siblings_at_the_same_school_are_named_and_linked(client, login, make_user, db_session, family):
    ash, _birch, _cedar, ids = family
    with tenancy.tenant_context(ash.id):
        services.upsert_pupils(db_session, ash.id, [pupil(1, surname="Sibley"), pupil(4, surname="Sibley")])
        services.upsert_contacts(
            db_session,
            ash.id,
            [
                mother(
                    make_upn(1),
                    links=(
                        services.ContactLink(make_upn(1), "Mother", parental_responsibility=True),
                        services.ContactLink(make_upn(4), "Mother", parental_responsibility=True),
                    ),
                )
            ],
        )
    login(make_user(ash, "school_staff"))
    household = _household(client, ids[1])
    assert "Pupil4 Sibley" in household
    assert "This school" in household


def test_only_contacts_with_parental_responsibility_link_a_household(db_session, family):
    _ash, birch, _cedar, ids = family
    with tenancy.tenant_context(birch.id):
        services.upsert_contacts(
            db_session,
            birch.id,
            [
                mother(
                    make_upn(2),
                    links=(services.ContactLink(make_upn(2), "Mother", parental_responsibility=False),),
                )
            ],
        )
    keys = db_session.scalars(select(HouseholdKey.pupil_id)).all()
    assert ids[2] not in keys
    assert ids[1] in keys


def test_household_keys_are_keyed_hashes_not_personal_data(db_session, family):
    stored = db_session.scalars(select(HouseholdKey.key)).all()
    assert stored
    assert all(len(k) == 64 and "sibley" not in k.lower() for k in stored)
