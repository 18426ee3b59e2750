"""Storing session marks: whole-batch validation, idempotent re-stores, history of changes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from attendwise.attendance import marks_codec, queries, services
from attendwise.attendance.codes import decode, encode
from attendwise.attendance.models import MarkChange, MarkSource, Pupil, PupilMarkYear
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import utcnow
from tests.attendance.records import HALF_TERMS_2026, make_upn, pupil

MON = dt.date(2026, 9, 7)


@pytest.fixture
def school(db_session, make_school):
    org = make_school()
    with tenancy.tenant_context(org.id):
        services.set_school_calendar(
            db_session, org.id, 2026, HALF_TERMS_2026, [services.ClosureRecord(dt.date(2026, 9, 2))]
        )
        services.upsert_pupils(db_session, org.id, [pupil(1), pupil(2)])
    return org


def _store(db_session, org, rows, source="mis"):
    with tenancy.tenant_context(org.id):
        return services.store_marks(db_session, org.id, rows, source)


def _pupil_id(db_session, serial):
    return db_session.scalar(select(Pupil.id).where(Pupil.upn == make_upn(serial)))


def _marks_of(db_session, org, serial=1):
    with tenancy.tenant_context(org.id):
        return db_session.scalar(
            select(PupilMarkYear).where(PupilMarkYear.pupil_id == _pupil_id(db_session, serial))
        )


def _audit_actions(db_session, org):
    with tenancy.tenant_context(org.id):
        return db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()


def test_marks_are_stored_once_and_a_repeat_changes_nothing(db_session, school):
    rows = [
        services.MarkRow(make_upn(1), MON, "AM", "/"),
        services.MarkRow(make_upn(1), MON, "PM", "\\"),
        services.MarkRow(make_upn(2), "2026-09-07", "am", "L", minutes_late=12),
    ]
    first = _store(db_session, school, rows)
    version = _marks_of(db_session, school).version
    events = len(_audit_actions(db_session, school))
    again = _store(db_session, school, rows)
    stored = _marks_of(db_session, school)
    late = _marks_of(db_session, school, 2)
    assert (first.created, first.updated, first.unchanged) == (3, 0, 0)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert stored.version == version
    assert len(_audit_actions(db_session, school)) == events
    codes = marks_codec.decode_year(stored.codes, 2026)
    assert codes[marks_codec.slot(2026, MON, "AM")] == encode("/")
    assert codes[marks_codec.slot(2026, MON, "PM")] == encode("\\")
    assert json.loads(late.minutes_late) == {"2026-09-07:AM": 12}


def test_a_changed_mark_keeps_what_was_known_before(db_session, school):
    _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "N")])
    before = _marks_of(db_session, school).version
    counts = _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "I")], source="manual")
    stored = _marks_of(db_session, school)
    with tenancy.tenant_context(school.id):
        history = db_session.scalars(select(MarkChange)).all()
    assert counts.updated == 1
    assert stored.version == before + 1
    assert marks_codec.decode_year(stored.codes, 2026)[marks_codec.slot(2026, MON, "AM")] == encode("I")
    assert [(h.date, h.session, h.old_code, h.new_code, h.source) for h in history] == [
        (MON, "AM", "N", "I", MarkSource.MANUAL)
    ]
    assert history[0].seen_at is not None
    assert _audit_actions(db_session, school).count("marks.store") == 2


def test_a_bad_batch_is_rejected_whole_with_row_numbers_and_reasons(db_session, school):
    rows = [
        services.MarkRow(make_upn(1), MON, "AM", "/", row=2),
        services.MarkRow(make_upn(1), MON, "PM", "Q9", row=3),
        services.MarkRow(make_upn(1), dt.date(2026, 10, 28), "AM", "/", row=4),
        services.MarkRow(make_upn(1), MON + dt.timedelta(days=1), "XM", "/", row=5),
        services.MarkRow("A12345", MON, "AM", "/", row=6),
        services.MarkRow(make_upn(2), MON, "AM", "/", row=7),
        services.MarkRow(make_upn(2), MON, "AM", "N", row=8),
        services.MarkRow(make_upn(2), MON, "PM", "H", row=9),
        services.MarkRow(make_upn(2), "7/9/2026", "PM", "/", row=10),
    ]
    with pytest.raises(services.BatchRejected) as caught:
        _store(db_session, school, rows)
    reasons = {e.row: e.reason for e in caught.value.errors}
    assert sorted(reasons) == [3, 4, 5, 6, 8, 9, 10]
    assert "unknown attendance code 'Q9'" in reasons[3]
    assert "outside the school calendar" in reasons[4]
    assert "must be AM or PM" in reasons[5]
    assert "UPN 'A12345'" in reasons[6]
    assert "but / in row 7" in reasons[8]
    assert "withdrawn" in reasons[9]
    assert "not an ISO date" in reasons[10]
    assert "nothing stored" in str(caught.value)
    assert caught.value.counts.rejected == 7
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(PupilMarkYear)).all() == []
    assert "marks.store" not in _audit_actions(db_session, school)


def test_a_pupil_of_another_school_is_unknown_here(db_session, school, make_school):
    other = make_school()
    with tenancy.tenant_context(other.id):
        services.upsert_pupils(db_session, other.id, [pupil(9)])
    with pytest.raises(services.BatchRejected, match=f"no pupil with UPN {make_upn(9)} at this school"):
        _store(db_session, school, [services.MarkRow(make_upn(9), MON, "AM", "/")])


def test_a_school_without_its_own_calendar_gets_the_england_default(db_session, make_school):
    org = make_school()
    with tenancy.tenant_context(org.id):
        calendar = services.school_calendar(db_session, org.id, 2026)
        services.upsert_pupils(db_session, org.id, [pupil(1)])
        with pytest.raises(services.BatchRejected, match="outside the school calendar"):
            services.store_marks(
                db_session, org.id, [services.MarkRow(make_upn(1), dt.date(2026, 8, 20), "AM", "/")], "mis"
            )
    assert next(h.name for h in calendar.half_terms) == "Autumn 1"
    assert len(calendar.school_days(calendar.start, calendar.end)) == 190


def test_the_schools_calendar_and_closures_are_read_back(db_session, school):
    with tenancy.tenant_context(school.id):
        calendar = services.school_calendar(db_session, school.id, 2026)
    assert calendar.start == dt.date(2026, 9, 2)
    assert not calendar.is_school_day(dt.date(2026, 9, 2))
    assert calendar.is_school_day(dt.date(2026, 9, 3))


def test_a_calendar_with_overlapping_half_terms_is_rejected(db_session, make_school):
    org = make_school()
    bad = list(HALF_TERMS_2026)
    bad[1] = services.HalfTermRecord("Autumn 2", dt.date(2026, 10, 20), dt.date(2026, 12, 18))
    with (
        tenancy.tenant_context(org.id),
        pytest.raises(services.BatchRejected, match="row 2: Autumn 2 starts"),
    ):
        services.set_school_calendar(db_session, org.id, 2026, bad)


def test_evidence_can_show_the_register_as_it_was_known_at_a_time(db_session, school):
    _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "N")])
    between = utcnow()
    _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "O")])
    after_first_change = utcnow()
    _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "I")])
    slot = marks_codec.slot(2026, MON, "AM")
    with tenancy.tenant_context(school.id):
        pupil_row = queries.get_pupil_by_upn(db_session, make_upn(1))
        then = queries.marks_known_at(db_session, pupil_row, 2026, between)[slot]
        middle = queries.marks_known_at(db_session, pupil_row, 2026, after_first_change)[slot]
        now = queries.marks_known_at(db_session, pupil_row, 2026, utcnow())[slot]
    assert (decode(int(then)), decode(int(middle)), decode(int(now))) == ("N", "O", "I")
