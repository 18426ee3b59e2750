"""Pupils and contacts from an MIS sync: validated as a batch, matched, counted."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from attendwise.attendance import services
from attendwise.attendance.models import Contact, Enrolment, HouseholdKey, Pupil, PupilContact, SenStatus
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from tests.attendance.records import make_upn, pupil


def test_check_upn_accepts_permanent_and_flags_temporary_numbers():
    permanent = make_upn(1)
    assert services.check_upn(permanent.lower()) == (permanent, False)
    temporary_body = "835200126" + "01A"
    temporary = services.stdnum_upn.calc_check_digit(temporary_body) + temporary_body
    assert services.check_upn(temporary) == (temporary, True)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("A83520012600", "must be 13 characters"),
        ("Z835200126001", "check letter does not match"),
        ("A8352001X6001", "must be a letter, 11 digits"),
    ],
)
def test_check_upn_explains_what_is_wrong(value, reason):
    with pytest.raises(services.UpnError, match=reason):
        services.check_upn(value)


def test_upsert_creates_then_reports_unchanged_and_updated(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        first = services.upsert_pupils(db_session, school.id, [pupil(1), pupil(2)])
        again = services.upsert_pupils(db_session, school.id, [pupil(1), pupil(2)])
        changed = services.upsert_pupils(
            db_session, school.id, [pupil(1, sen_status="ehcp", fsm=True), pupil(2)]
        )
        stored = db_session.scalar(select(Pupil).where(Pupil.upn == make_upn(1)))
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 1)
    assert stored.sen_status is SenStatus.EHCP
    assert stored.fsm


def test_a_bad_row_rejects_the_whole_batch_naming_rows_and_reasons(db_session, make_school):
    school = make_school()
    batch = [
        pupil(1, row=2),
        pupil(2, row=3, upn="A83520012600"),
        pupil(3, row=4, year_group="Y5"),
        pupil(4, row=5, upn=make_upn(1)),
    ]
    with tenancy.tenant_context(school.id), pytest.raises(services.BatchRejected) as caught:
        services.upsert_pupils(db_session, school.id, batch)
    rows = {(e.row, e.reason.split(" ")[0]) for e in caught.value.errors}
    assert rows == {(3, "UPN"), (4, "year"), (5, "UPN")}
    assert "row 5: UPN" in str(caught.value)
    assert "also appears in row 2" in str(caught.value)
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(Pupil)).all() == []


def test_matching_on_external_id_lets_a_temporary_upn_become_permanent(db_session, make_school):
    school = make_school()
    body = "835200126" + "07B"
    temporary = services.stdnum_upn.calc_check_digit(body) + body
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(
            db_session, school.id, [pupil(7, upn=temporary, source="sims", external_id="77")]
        )
        counts = services.upsert_pupils(db_session, school.id, [pupil(7, source="sims", external_id="77")])
        stored = db_session.scalars(select(Pupil)).all()
    assert counts.updated == 1
    assert [(p.upn, p.upn_temporary) for p in stored] == [(make_upn(7), False)]


def test_enrolments_follow_the_sync(db_session, make_school):
    school = make_school()
    main = services.EnrolmentRecord(dt.date(2026, 9, 2))
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1, enrolments=(main,))])
        left = services.EnrolmentRecord(dt.date(2026, 9, 2), dt.date(2026, 10, 1), "subsidiary")
        counts = services.upsert_pupils(db_session, school.id, [pupil(1, enrolments=(left,))])
        enrolments = db_session.scalar(select(Pupil)).enrolments
    assert counts.updated == 1
    assert [(e.leave_date, e.registration_type.value) for e in enrolments] == [
        (dt.date(2026, 10, 1), "subsidiary")
    ]


def _mother(*upns: str, **kwargs: object) -> services.ContactRecord:
    values: dict[str, object] = {
        "forename": "Jo",
        "surname": "Smith",
        "postcode": "dt11 9aa",
        "phones": (("mobile", "07700 900123"),),
        "emails": ("jo.smith@example.test",),
        "links": tuple(services.ContactLink(u, "Mother", parental_responsibility=True) for u in upns),
    }
    values.update(kwargs)
    return services.ContactRecord(**values)  # type: ignore[arg-type]


def test_contacts_link_to_pupils_and_are_matched_on_name_and_postcode(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1), pupil(2)])
        created = services.upsert_contacts(db_session, school.id, [_mother(make_upn(1), make_upn(2))])
        same = services.upsert_contacts(db_session, school.id, [_mother(make_upn(1), make_upn(2))])
        moved = services.upsert_contacts(db_session, school.id, [_mother(make_upn(1), postcode="DT11 9AA")])
        contacts = db_session.scalars(select(Contact)).all()
        linked = [link.pupil.upn for link in db_session.scalars(select(PupilContact))]
    assert (created.created, same.unchanged, moved.updated) == (1, 1, 1)
    assert [c.postcode for c in contacts] == ["DT11 9AA"]
    assert linked == [make_upn(1)]


def test_one_person_twice_in_a_batch_keeps_the_links_of_both_records(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1), pupil(2)])
        counts = services.upsert_contacts(
            db_session, school.id, [_mother(make_upn(1)), _mother(make_upn(2), phones=())]
        )
        contacts = db_session.scalars(select(Contact)).all()
        linked = sorted(link.pupil.upn for link in db_session.scalars(select(PupilContact)))
    assert (counts.created, len(contacts)) == (1, 1)
    assert linked == sorted([make_upn(1), make_upn(2)])


def test_namesakes_the_mis_tells_apart_stay_two_contacts(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1), pupil(2)])
        counts = services.upsert_contacts(
            db_session,
            school.id,
            [
                _mother(make_upn(1), source="sims", external_id="c1"),
                _mother(make_upn(2), source="sims", external_id="c2"),
            ],
        )
        links = {
            (link.contact.external_id, link.pupil.upn) for link in db_session.scalars(select(PupilContact))
        }
    assert counts.created == 2
    assert links == {("c1", make_upn(1)), ("c2", make_upn(2))}


def test_contact_for_an_unknown_pupil_is_rejected(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id), pytest.raises(services.BatchRejected, match="row 1: no pupil"):
        services.upsert_contacts(db_session, school.id, [_mother(make_upn(9), emails=("not-an-email",))])


def test_writing_another_schools_pupils_is_refused(db_session, make_school):
    a, b = make_school(), make_school()
    with tenancy.tenant_context(a.id), pytest.raises(tenancy.TenantViolation):
        services.upsert_pupils(db_session, b.id, [pupil(1)])


def _audited(session, school) -> list[tuple[str, str, str, dict[str, object]]]:
    """(action, table, row id, detail) of every audit event of the school, oldest first."""
    rows = session.scalars(select(AuditEvent).where(AuditEvent.org_id == school.id).order_by(AuditEvent.seq))
    return [(e.action, e.object_type, e.object_id, json.loads(e.detail)) for e in rows]


def _ids(session, model) -> set[str]:
    return {str(i) for i in session.scalars(select(model.id))}


def test_every_written_row_is_audited_once_with_what_changed(db_session, make_school):
    school = make_school()
    term = services.EnrolmentRecord(dt.date(2026, 9, 2))
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1, enrolments=(term,)), pupil(2)])
        mother = {"source": "sims", "external_id": "m1"}
        services.upsert_contacts(db_session, school.id, [_mother(make_upn(1), make_upn(2), **mother)])
        created = _audited(db_session, school)
        tables = {
            "pupils": Pupil,
            "enrolments": Enrolment,
            "contacts": Contact,
            "pupil_contacts": PupilContact,
        }
        stored = {name: _ids(db_session, model) for name, model in tables.items()}
        first = db_session.scalar(select(Pupil).where(Pupil.upn == make_upn(1)))
        link_to_2 = db_session.scalar(select(PupilContact).join(Pupil).where(Pupil.upn == make_upn(2)))
        assert first is not None
        assert link_to_2 is not None
        first_id, link_id = str(first.id), str(link_to_2.id)

        left = services.EnrolmentRecord(dt.date(2026, 9, 2), dt.date(2026, 12, 18))
        services.upsert_pupils(db_session, school.id, [pupil(1, fsm=True, enrolments=(left,)), pupil(2)])
        services.upsert_contacts(db_session, school.id, [_mother(make_upn(1), postcode="DT1 1AA", **mother)])
        changed = _audited(db_session, school)[len(created) :]

    rows = [(action, table, row_id) for action, table, row_id, _detail in created if table in tables]
    assert sorted(rows) == sorted(("create", name, i) for name, ids in stored.items() for i in ids)
    assert (len(stored["pupils"]), len(stored["enrolments"]), len(stored["contacts"])) == (2, 1, 1)
    assert (
        "create",
        "pupils",
        first_id,
        {
            "org_id": school.id,
            "upn": make_upn(1),
            "upn_temporary": False,
            "legal_forename": "Pupil1",
            "legal_surname": "Smith",
            "preferred_forename": None,
            "preferred_surname": None,
            "date_of_birth": "2016-09-02",
            "sex": "U",
            "year_group": "5",
            "registration_group": None,
            "sen_status": "none",
            "fsm": False,
            "eal": False,
            "looked_after": False,
            "child_in_need": False,
            "source": None,
            "external_id": None,
        },
    ) in created
    (enrolment_id,) = stored["enrolments"]
    (contact_id,) = stored["contacts"]
    assert sorted(changed, key=lambda e: (e[1], e[0])) == [
        ("update", "contacts", contact_id, {"postcode": "DT1 1AA"}),
        ("update", "enrolments", enrolment_id, {"leave_date": "2026-12-18"}),
        ("delete", "pupil_contacts", link_id, {}),
        ("update", "pupils", first_id, {"fsm": True}),
    ]


def test_an_unchanged_batch_writes_and_audits_nothing(db_session, make_school):
    school = make_school()
    term = (services.EnrolmentRecord(dt.date(2026, 9, 2)),)
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1, enrolments=term), pupil(2)])
        services.upsert_contacts(db_session, school.id, [_mother(make_upn(1), make_upn(2))])
        before = _audited(db_session, school)
        stamps = {p.upn: p.updated_at for p in db_session.scalars(select(Pupil))}
        keys = set(db_session.execute(select(HouseholdKey.key, HouseholdKey.pupil_id)))

        pupils = services.upsert_pupils(db_session, school.id, [pupil(2), pupil(1, enrolments=term)])
        contacts = services.upsert_contacts(db_session, school.id, [_mother(make_upn(2), make_upn(1))])

        assert _audited(db_session, school) == before
        assert {p.upn: p.updated_at for p in db_session.scalars(select(Pupil))} == stamps
        assert set(db_session.execute(select(HouseholdKey.key, HouseholdKey.pupil_id))) == keys
    assert (pupils.created, pupils.updated, pupils.unchanged) == (0, 0, 2)
    assert (contacts.created, contacts.updated, contacts.unchanged) == (0, 0, 1)
    assert len(keys) == 6  # each child: the mother's name with her postcode, email and phone


def test_a_rejected_contact_batch_stores_and_audits_nothing(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1)])
        before = _audited(db_session, school)
        batch = [_mother(make_upn(1), row=2), _mother(make_upn(1), row=3, forename=" ", postcode="nowhere")]
        with pytest.raises(services.BatchRejected) as refused:
            services.upsert_contacts(db_session, school.id, batch)
        assert _audited(db_session, school) == before
        assert db_session.scalars(select(Contact)).all() == []
    assert [str(e) for e in refused.value.errors] == [
        "row 3: contact forename and surname are required",
        "row 3: postcode 'nowhere' is not a UK postcode",
    ]
