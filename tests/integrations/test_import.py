"""Importing a CTF into a school: whole pupils or none, idempotent, recorded as a sync run."""

from __future__ import annotations

import datetime as dt
import gc
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.attendance import marks_codec
from attendwise.attendance.calendar import SchoolCalendar
from attendwise.attendance.codes import decode
from attendwise.attendance.models import Contact, MarkChange, Pupil, PupilContact, PupilMarkYear
from attendwise.integrations import ctf, services
from attendwise.integrations.models import RunStatus, SyncRejection, SyncRun
from attendwise.platform import audit, tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation
from tests.integrations import ctf_generator as gen

START, END = dt.date(2025, 9, 1), dt.date(2025, 12, 19)


def closed_days() -> list[dt.date]:
    calendar = SchoolCalendar.england_default(2025)
    days = (END - START).days + 1
    return [
        START + dt.timedelta(days=i)
        for i in range(days)
        if not calendar.is_school_day(START + dt.timedelta(days=i))
    ]


def pupils(count: int, seed: int = 1) -> list[gen.GenPupil]:
    return gen.random_pupils(count, seed=seed, start=START, end=END, closed=closed_days())


def run(session: Session, school: Organisation, made: list[gen.GenPupil]) -> SyncRun:
    return run_bytes(session, school, gen.to_bytes(gen.build(made)))


def run_bytes(session: Session, school: Organisation, data: bytes) -> SyncRun:
    """Import a file as the upload page and the command do."""
    return services.run_import(
        session,
        school,
        connector="ctf",
        source="test.xml",
        work=lambda: services.import_ctf_bytes(session, school, data),
    )


def stored_marks(session: Session, school: Organisation) -> dict[str, dict[tuple[dt.date, str], str]]:
    with tenancy.tenant_context(school.id):
        upns = dict(session.execute(select(Pupil.id, Pupil.upn).where(Pupil.org_id == school.id)).all())
        found: dict[str, dict[tuple[dt.date, str], str]] = {upn: {} for upn in upns.values()}
        for row in session.scalars(select(PupilMarkYear).where(PupilMarkYear.org_id == school.id)):
            codes = marks_codec.decode_year(row.codes, row.academic_year)
            start = dt.date(row.academic_year, 8, 1)
            for slot in codes.nonzero()[0]:
                day = start + dt.timedelta(days=int(slot) // 2)
                found[upns[row.pupil_id]][(day, "AM" if slot % 2 == 0 else "PM")] = decode(int(codes[slot]))  # type: ignore[assignment]
        return found


def count(session: Session, school: Organisation, model: type) -> int:
    with tenancy.tenant_context(school.id):
        return session.scalar(select(func.count()).select_from(model).where(model.org_id == school.id)) or 0


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


def test_import_stores_the_pupils_contacts_and_marks_of_the_file(
    db_session: Session, school: Organisation
) -> None:
    made = pupils(6)

    result = run(db_session, school, made)

    assert result.status == RunStatus.SUCCEEDED
    assert result.rejected == 0
    assert result.detail["pupils"]["created"] == 6
    assert count(db_session, school, Pupil) == 6
    assert count(db_session, school, PupilContact) == 12
    assert stored_marks(db_session, school) == {p.upn: p.marks() for p in made}


def test_the_same_file_twice_or_shuffled_changes_nothing(db_session: Session, school: Organisation) -> None:
    made = pupils(5, seed=4)
    first = run(db_session, school, made)
    shuffled = made[:]
    random.Random(2).shuffle(shuffled)

    second = run(db_session, school, made)
    third = run(db_session, school, shuffled)

    assert first.created > 0
    for again in (second, third):
        assert (again.created, again.updated, again.rejected) == (0, 0, 0), again.detail
        assert again.unchanged == first.created
    people = {(c.forename, c.surname) for p in made for c in p.contacts}  # no postcodes: one each
    assert count(db_session, school, Pupil) == 5
    assert count(db_session, school, Contact) == len(people)
    assert count(db_session, school, MarkChange) == 0


def test_a_changed_mark_is_updated_and_its_history_kept(db_session: Session, school: Organisation) -> None:
    made = pupils(2, seed=8)
    run(db_session, school, made)
    sessions = made[0].years[0].sessions
    first_open = next(i for i, code in enumerate(sessions) if code != "#")
    sessions[first_open] = "N" if sessions[first_open] != "N" else "I"

    again = run(db_session, school, made)

    assert again.detail["marks"]["updated"] == 1
    assert stored_marks(db_session, school)[made[0].upn] == made[0].marks()
    assert count(db_session, school, MarkChange) == 1


def test_good_pupils_are_imported_and_bad_ones_reported(db_session: Session, school: Organisation) -> None:
    made = pupils(4, seed=6)
    good_upn = made[1].upn
    assert good_upn is not None
    made[1].upn = ("A" if good_upn[0] != "A" else "B") + good_upn[1:]
    made[3].contacts[0].forename = None

    result = run(db_session, school, made)

    assert result.status == RunStatus.SUCCEEDED
    with tenancy.tenant_context(school.id):
        rejections = db_session.scalars(select(SyncRejection).where(SyncRejection.run_id == result.id)).all()
        upns = set(db_session.scalars(select(Pupil.upn).where(Pupil.org_id == school.id)))
    assert upns == {made[0].upn, made[2].upn, made[3].upn}
    locations = {r.location for r in rejections}
    assert "CTfile/CTFpupilData/Pupil[2]/UPN" in locations
    assert "CTfile/CTFpupilData/Pupil[4]/Contacts/Contact[1]/Forename" in locations
    assert result.rejected == 2  # Pupil[2] and the contact of Pupil[4]


def test_a_pupil_whose_marks_the_school_refuses_is_left_untouched(
    db_session: Session, school: Organisation
) -> None:
    made = pupils(3, seed=12)
    run(db_session, school, made)
    before = stored_marks(db_session, school)
    # A changed name and a mark in the October half-term, outside the school's calendar.
    made[0].surname = "Changed"
    half_term = (dt.date(2025, 10, 28) - START).days * 2
    made[0].years[0].sessions[half_term] = "/"
    made[1].years[0].sessions[next(i for i, c in enumerate(made[1].years[0].sessions) if c != "#")] = "O"

    result = run(db_session, school, made)

    with tenancy.tenant_context(school.id):
        surname = db_session.scalar(select(Pupil.legal_surname).where(Pupil.upn == made[0].upn))
        [rejection] = result.rejections
    after = stored_marks(db_session, school)
    assert after[made[0].upn] == before[made[0].upn]
    assert after[made[1].upn] == made[1].marks()
    assert surname != "Changed"
    assert result.rejected == 1
    assert (
        rejection.location
        == "CTfile/CTFpupilData/Pupil[1]/Attendance/YearData[1]/AttendSessions/AttendanceMarks"
    )
    assert "outside the school calendar" in rejection.reason


def test_one_sync_per_school_at_a_time(db_session: Session, school: Organisation) -> None:
    with tenancy.tenant_context(school.id):
        running = services.start_run(db_session, school.id, connector="wonde", source="A1930499544")
        db_session.commit()
        with pytest.raises(services.SyncInProgress, match="wonde sync of this school has been running"):
            services.start_run(db_session, school.id, connector="ctf", source="file.xml")
        running.started_at = running.started_at - services.STALE_AFTER - dt.timedelta(minutes=1)
        db_session.flush()
        fresh = services.start_run(db_session, school.id, connector="ctf", source="file.xml")
    assert running.status == RunStatus.FAILED
    assert "abandoned" in (running.error or "")
    assert fresh.status == RunStatus.RUNNING


def test_a_failure_half_way_leaves_every_pupil_untouched(db_session: Session, school: Organisation) -> None:
    made = pupils(4, seed=14)
    run(db_session, school, made)
    before = stored_marks(db_session, school)
    for pupil in made:
        pupil.surname = "Renamed"
        pupil.years[0].sessions = ["G" if c in ("/", "\\") else c for c in pupil.years[0].sessions]
    parsed = ctf.parse(gen.to_bytes(gen.build(made)))

    def crash_after_pupils() -> services.Outcome:
        services.import_ctf(db_session, school, parsed)
        raise RuntimeError("the worker was stopped")

    with pytest.raises(RuntimeError):
        services.run_import(db_session, school, connector="ctf", source="x.xml", work=crash_after_pupils)

    assert stored_marks(db_session, school) == before
    with tenancy.tenant_context(school.id):
        names = set(db_session.scalars(select(Pupil.legal_surname).where(Pupil.org_id == school.id)))
        last = db_session.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()
    assert "Renamed" not in names
    assert last is not None
    assert last.status == RunStatus.FAILED
    assert "the worker was stopped" in (last.error or "")


def test_a_pupil_removed_since_the_last_import_comes_back_with_the_same_file(
    db_session: Session, school: Organisation
) -> None:
    made = pupils(3, seed=16)
    run(db_session, school, made)
    with tenancy.tenant_context(school.id):
        gone = db_session.scalars(select(Pupil).where(Pupil.upn == made[1].upn)).one()
        db_session.delete(gone)
        db_session.commit()

    again = run(db_session, school, made)

    assert again.detail["pupils"] == {"created": 1, "updated": 0, "unchanged": 2}
    assert stored_marks(db_session, school) == {p.upn: p.marks() for p in made}


def test_changed_marks_queue_the_schools_evaluation_and_unchanged_ones_do_not(
    db_session: Session, school: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        services.jobs, "enqueue", lambda func, *args, **kwargs: queued.append((func, *args, kwargs["queue"]))
    )
    made = pupils(2, seed=18)

    run(db_session, school, made)
    run(db_session, school, made)

    assert queued == [(services.EVALUATE_SCHOOL, school.id, "evaluation")]


def test_a_file_identical_to_the_last_import_is_not_read_again_and_changes_nothing(
    db_session: Session, school: Organisation
) -> None:
    made = pupils(4, seed=20)
    first = run(db_session, school, made)

    again = run(db_session, school, made[::-1])

    assert again.detail["same_as_run"] == first.id
    assert (again.created, again.updated, again.unchanged) == (0, 0, first.created)
    assert again.detail["marks"] == {
        "created": 0,
        "updated": 0,
        "unchanged": first.detail["marks"]["created"],
    }
    assert stored_marks(db_session, school) == {p.upn: p.marks() for p in made}


def test_the_same_file_again_is_not_even_parsed_until_the_schools_pupils_change(
    db_session: Session, school: Organisation, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = pupils(4, seed=21)
    data = gen.to_bytes(gen.build(made))
    first = run_bytes(db_session, school, data)
    parsed = ctf.parse

    def refuse(_data: bytes, **_kwargs: object) -> ctf.CtfFile:
        raise AssertionError("the identical file was parsed")

    monkeypatch.setattr(ctf, "parse", refuse)
    again = run_bytes(db_session, school, data)
    assert again.status == RunStatus.SUCCEEDED
    assert (again.detail["same_as_run"], again.detail["same_bytes"]) == (first.id, True)
    assert (again.created, again.updated, again.unchanged) == (0, 0, first.created)

    # A pupil removed by another route since: the same bytes are read, and the pupil comes back.
    monkeypatch.setattr(ctf, "parse", parsed)
    with tenancy.tenant_context(school.id):
        db_session.delete(db_session.scalars(select(Pupil).where(Pupil.upn == made[0].upn)).one())
        db_session.commit()
    third = run_bytes(db_session, school, data)
    assert "same_bytes" not in third.detail
    assert third.detail["pupils"] == {"created": 1, "updated": 0, "unchanged": 3}
    assert stored_marks(db_session, school) == {p.upn: p.marks() for p in made}


def test_a_file_with_a_problem_is_read_and_reported_every_time(
    db_session: Session, school: Organisation
) -> None:
    made = pupils(3, seed=22)
    made[2].contacts[0].forename = None

    first = run(db_session, school, made)
    again = run(db_session, school, made)

    assert "same_as_run" not in again.detail
    with tenancy.tenant_context(school.id):
        reported = db_session.scalars(
            select(SyncRejection.location).where(SyncRejection.run_id == again.id)
        ).all()
    assert reported == ["CTfile/CTFpupilData/Pupil[3]/Contacts/Contact[1]/Forename"]
    assert (first.rejected, again.rejected, again.created, again.updated) == (1, 1, 0, 0)


def test_siblings_parents_are_one_contact_each_linked_to_both_and_audited_once(
    db_session: Session, school: Organisation
) -> None:
    made = pupils(3, seed=5)
    for sibling in made[1:]:
        sibling.surname = made[0].surname
        sibling.contacts = [replace(c, surname=made[0].surname) for c in made[0].contacts]

    run(db_session, school, made)

    with tenancy.tenant_context(school.id):
        contacts = db_session.scalars(select(Contact).where(Contact.org_id == school.id)).all()
        links = db_session.scalars(select(PupilContact).where(PupilContact.org_id == school.id)).all()
        linked = {(link.contact_id, link.pupil.upn) for link in links}
        created = db_session.execute(
            select(AuditEvent.object_type, AuditEvent.object_id).where(
                AuditEvent.org_id == school.id, AuditEvent.action == "create"
            )
        ).all()
    assert len(contacts) == len(made[0].contacts)
    assert linked == {(c.id, p.upn) for c in contacts for p in made}
    audited = Counter((table, row_id) for table, row_id in created)
    assert {key: n for key, n in audited.items() if key[0] in ("contacts", "pupil_contacts")} == {
        **{("contacts", str(c.id)): 1 for c in contacts},
        **{("pupil_contacts", str(link.id)): 1 for link in links},
    }


def test_a_schools_import_is_audited_row_by_row_in_a_chain_that_verifies(
    db_session: Session, school: Organisation
) -> None:
    made = pupils(80, seed=9)  # 80 pupils, 160 contacts, 160 links: appended in bulk

    run(db_session, school, made)

    with tenancy.tenant_context(school.id):
        created = Counter(
            db_session.scalars(
                select(AuditEvent.object_type).where(
                    AuditEvent.org_id == school.id, AuditEvent.action == "create"
                )
            )
        )
    with tenancy.system_context("test: verify the import's audit chain"):
        problems = list(audit.verify(db_session, [school.id]))
    assert problems == []
    assert {t: created[t] for t in ("pupils", "contacts", "pupil_contacts")} == {
        "pupils": count(db_session, school, Pupil),
        "contacts": count(db_session, school, Contact),
        "pupil_contacts": count(db_session, school, PupilContact),
    }
    assert created["pupils"] == 80


def test_an_import_leaves_the_garbage_collector_as_it_found_it(
    db_session: Session, school: Organisation
) -> None:
    frozen_during: list[int] = []

    def work() -> services.Outcome:
        frozen_during.append(gc.get_freeze_count())
        raise RuntimeError("the MIS went away")

    with pytest.raises(RuntimeError, match="the MIS went away"):
        services.run_import(db_session, school, connector="ctf", source="test.xml", work=work)
    after_failure = gc.get_freeze_count()
    run(db_session, school, pupils(2))

    assert frozen_during[0] > 0  # what existed before the import was left out of its collections
    assert after_failure == 0
    assert gc.get_freeze_count() == 0
