"""Storing a school's marks set-based: shuffled repeats, who changed, minutes late, racing writers."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm.exc import StaleDataError

from attendwise.attendance import marks_codec, services
from attendwise.attendance.codes import encode
from attendwise.attendance.models import MarkChange, Pupil, PupilMarkYear
from attendwise.platform import tenancy
from tests.attendance.records import HALF_TERMS_2026, make_upn, pupil

MON = dt.date(2026, 9, 7)
WEEK = [MON + dt.timedelta(days=d) for d in range(5)]


@pytest.fixture
def school(db_session, make_school):
    org = make_school()
    with tenancy.tenant_context(org.id):
        services.set_school_calendar(db_session, org.id, 2026, HALF_TERMS_2026)
        services.upsert_pupils(db_session, org.id, [pupil(n) for n in range(1, 6)])
    return org


def _store(db_session, org, rows, source="mis"):
    with tenancy.tenant_context(org.id):
        return services.store_marks(db_session, org.id, rows, source)


def _week(serials, code_am="/", code_pm="\\"):
    return [
        services.MarkRow(make_upn(n), day, half, code_am if half == "AM" else code_pm)
        for n in serials
        for day in WEEK
        for half in ("AM", "PM")
    ]


def _ids(db_session, org):
    with tenancy.tenant_context(org.id):
        return dict(db_session.execute(select(Pupil.upn, Pupil.id).where(Pupil.org_id == org.id)).all())


def _year(db_session, org, serial):
    with tenancy.tenant_context(org.id):
        return db_session.scalar(
            select(PupilMarkYear)
            .where(PupilMarkYear.pupil_id == _ids(db_session, org)[make_upn(serial)])
            .execution_options(populate_existing=True)
        )


def test_the_same_marks_shuffled_change_nothing_and_name_no_pupil(db_session, school):
    rows = _week(range(1, 6))
    first = _store(db_session, school, rows)
    versions = [_year(db_session, school, n).version for n in range(1, 6)]
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    again = _store(db_session, school, shuffled + shuffled[:10])  # and some rows twice
    assert (first.created, first.updated, first.unchanged) == (50, 0, 0)
    assert first.changed_pupils == frozenset(_ids(db_session, school).values())
    assert (again.created, again.updated, again.unchanged) == (0, 0, 60)
    assert again.changed_pupils == frozenset()
    assert [_year(db_session, school, n).version for n in range(1, 6)] == versions


def test_only_pupils_whose_marks_changed_are_named_and_their_history_kept(db_session, school):
    _store(db_session, school, _week(range(1, 6)))
    rows = _week(range(1, 6))
    rows[0] = services.MarkRow(make_upn(1), MON, "AM", "I")  # pupil 1, Monday morning
    counts = _store(db_session, school, rows)
    with tenancy.tenant_context(school.id):
        history = db_session.scalars(select(MarkChange)).all()
    assert counts.changed_pupils == {_ids(db_session, school)[make_upn(1)]}
    assert (counts.created, counts.updated, counts.unchanged) == (0, 1, 49)
    assert [(h.date, h.session, h.old_code, h.new_code) for h in history] == [(MON, "AM", "/", "I")]
    codes = marks_codec.decode_year(_year(db_session, school, 1).codes, 2026)
    assert codes[marks_codec.slot(2026, MON, "AM")] == encode("I")
    assert codes[marks_codec.slot(2026, MON, "PM")] == encode("\\")


def test_minutes_late_are_set_changed_and_cleared_by_the_mis(db_session, school):
    late = services.MarkRow(make_upn(1), MON, "AM", "L", minutes_late=12)
    _store(db_session, school, [late])
    later = _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "L", minutes_late=20)])
    assert json.loads(_year(db_session, school, 1).minutes_late) == {"2026-09-07:AM": 20}
    cleared = _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "L")])
    assert (later.updated, cleared.updated) == (1, 1)
    assert json.loads(_year(db_session, school, 1).minutes_late) == {}
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(MarkChange)).all() == []  # the code never changed


def _someone_else_writes_after_the_read(monkeypatch, db_session, school, serial):
    """The next store reads pupil ``serial``'s year, then another writer changes it."""
    pupil_id = _ids(db_session, school)[make_upn(serial)]
    read = services._stored_years

    def read_then_someone_else_writes(session, org_id, year, pupil_ids):
        stored = read(session, org_id, year, pupil_ids)
        session.execute(
            update(PupilMarkYear)
            .where(PupilMarkYear.pupil_id == pupil_id)
            .values(version=PupilMarkYear.version + 1)
        )
        return stored

    monkeypatch.setattr(services, "_stored_years", read_then_someone_else_writes)


def test_a_write_racing_another_is_refused_and_the_other_writers_marks_survive(
    db_session, school, monkeypatch
):
    _store(db_session, school, _week([1]))
    _someone_else_writes_after_the_read(monkeypatch, db_session, school, 1)
    with pytest.raises(StaleDataError, match="changed by someone else"):
        _store(db_session, school, [services.MarkRow(make_upn(1), MON, "AM", "N")])
    codes = marks_codec.decode_year(_year(db_session, school, 1).codes, 2026)
    assert codes[marks_codec.slot(2026, MON, "AM")] == encode("/")


def _span(serial, start, codes, row=None):
    return services.MarkSpan(make_upn(serial), start, bytes(encode(c) if c else 0 for c in codes), row=row)


def _store_spans(db_session, org, spans, source="mis"):
    with tenancy.tenant_context(org.id):
        return services.store_mark_spans(db_session, org.id, spans, source)


def test_spans_store_what_the_same_marks_as_rows_store(db_session, school, make_school):
    week = ["/", "\\", "L", "\\", None, None, "I", "I", "/", "C2"]  # Mon-Fri; Wednesday unmarked
    counts = _store_spans(db_session, school, [_span(n, MON, week) for n in (1, 2)])
    by_rows = make_school()
    with tenancy.tenant_context(by_rows.id):
        services.set_school_calendar(db_session, by_rows.id, 2026, HALF_TERMS_2026)
        services.upsert_pupils(db_session, by_rows.id, [pupil(n) for n in (1, 2)])
    rows = [
        services.MarkRow(make_upn(n), MON + dt.timedelta(days=i // 2), ("AM", "PM")[i % 2], code)
        for n in (1, 2)
        for i, code in enumerate(week)
        if code
    ]
    same = _store(db_session, by_rows, rows)
    assert (counts.created, counts.updated, counts.unchanged) == (same.created, 0, 0) == (16, 0, 0)
    assert _year(db_session, school, 2).codes == _year(db_session, by_rows, 2).codes
    assert counts.changed_pupils == {_ids(db_session, school)[make_upn(n)] for n in (1, 2)}


def test_a_span_changes_only_the_sessions_it_marks_and_keeps_the_history(db_session, school):
    _store(db_session, school, _week([1]))
    counts = _store_spans(db_session, school, [_span(1, MON, [None, None, "N", "\\"])])
    with tenancy.tenant_context(school.id):
        history = db_session.scalars(select(MarkChange)).all()
    codes = marks_codec.decode_year(_year(db_session, school, 1).codes, 2026)
    assert (counts.created, counts.updated, counts.unchanged) == (0, 1, 1)
    assert [(h.date, h.session, h.old_code, h.new_code) for h in history] == [(WEEK[1], "AM", "/", "N")]
    assert codes[marks_codec.slot(2026, MON, "AM")] == encode("/")  # not in the span: kept
    assert codes[marks_codec.slot(2026, WEEK[1], "AM")] == encode("N")
    again = _store_spans(db_session, school, [_span(1, MON, [None, None, "N", "\\"])])
    assert (again.created, again.updated, again.unchanged, again.changed_pupils) == (0, 0, 2, frozenset())


def test_a_bad_span_rejects_the_batch_naming_its_row_the_sessions_and_why(db_session, school):
    half_term = dt.date(2026, 10, 26)  # Monday of the October half-term
    spans = [
        _span(1, MON, ["/", "\\"], row=1),
        _span(2, half_term, ["/", "\\", "/"], row=2),
        _span(3, MON, ["H"], row=3),
        services.MarkSpan("A12345", MON, b"\x01", row=4),
        _span(4, MON, ["/"], row=5),
        _span(4, MON, ["N"], row=6),
    ]
    with pytest.raises(services.BatchRejected) as caught:
        _store_spans(db_session, school, spans)
    reasons = {e.row: e.reason for e in caught.value.errors}
    assert sorted(reasons) == [2, 3, 4, 6]
    assert reasons[2] == "2026-10-26 AM and 2 more sessions: outside the school calendar (in no half-term)"
    assert reasons[3] == "2026-09-07 AM: code H was withdrawn after 2024-08-18"
    assert "UPN 'A12345'" in reasons[4]
    assert "coded differently by an earlier span" in reasons[6]
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(PupilMarkYear)).all() == []


def test_with_one_span_per_pupil_each_bad_span_is_still_named_with_its_sessions_and_why(db_session, school):
    half_term = dt.date(2026, 10, 26)  # Monday of the October half-term
    spans = [
        _span(1, MON, ["/", "\\"], row=1),
        _span(2, half_term, ["/", "\\", "/"], row=2),
        _span(3, MON, ["H"], row=3),
        services.MarkSpan(make_upn(4), MON, b"\x01\xfe", row=4),
    ]
    with pytest.raises(services.BatchRejected) as caught:
        _store_spans(db_session, school, spans)
    reasons = {e.row: e.reason for e in caught.value.errors}
    assert reasons == {
        2: "2026-10-26 AM and 2 more sessions: outside the school calendar (in no half-term)",
        3: "2026-09-07 AM: code H was withdrawn after 2024-08-18",
        4: "2026-09-07 PM: unknown code value(s) [254]",
    }
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(PupilMarkYear)).all() == []


def test_a_span_racing_another_writer_is_refused(db_session, school, monkeypatch):
    _store(db_session, school, _week([1]))
    _someone_else_writes_after_the_read(monkeypatch, db_session, school, 1)
    with pytest.raises(StaleDataError, match="changed by someone else"):
        _store_spans(db_session, school, [_span(1, MON, ["N"])])
    codes = marks_codec.decode_year(_year(db_session, school, 1).codes, 2026)
    assert codes[marks_codec.slot(2026, MON, "AM")] == encode("/")


def test_a_span_over_the_summer_lands_in_both_academic_years(db_session, school):
    last_day = dt.date(2026, 7, 20)  # the England default's last day of 2025/26
    first_day = dt.date(2026, 9, 3)  # the school's second day of 2026/27
    codes = [None] * (2 * ((first_day - last_day).days + 1))
    codes[0], codes[-1] = "/", "\\"

    counts = _store_spans(db_session, school, [_span(1, last_day, codes)])

    with tenancy.tenant_context(school.id):
        years = {
            y.academic_year: marks_codec.decode_year(y.codes, y.academic_year)
            for y in db_session.scalars(select(PupilMarkYear)).all()
        }
    assert counts.created == 2
    assert sorted(years) == [2025, 2026]
    assert years[2025][marks_codec.slot(2025, last_day, "AM")] == encode("/")
    assert years[2026][marks_codec.slot(2026, first_day, "PM")] == encode("\\")
    assert sum(int(np.count_nonzero(y)) for y in years.values()) == 2
