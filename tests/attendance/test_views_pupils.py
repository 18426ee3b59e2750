"""The pupil list and pupil page as school staff use them: figures, filters, export, audit, isolation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import select

from attendwise.attendance import queries, services
from attendwise.attendance.models import Pupil
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from tests.attendance.records import HALF_TERMS_2026, make_upn, pupil

TODAY = dt.date(2026, 11, 20)


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(queries, "today", lambda: TODAY)


def school_days(start: dt.date, n: int) -> list[dt.date]:
    days, day = [], start
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def seed(db_session, school, records, marks):
    """``marks``: serial -> list of codes, one per school day from 7 Sep 2026, for AM and PM."""
    with tenancy.tenant_context(school.id):
        services.set_school_calendar(db_session, school.id, 2026, HALF_TERMS_2026)
        services.upsert_pupils(db_session, school.id, records)
        rows = []
        for serial, codes in marks.items():
            for day, code in zip(school_days(dt.date(2026, 9, 7), len(codes)), codes, strict=True):
                rows.append(services.MarkRow(make_upn(serial), day, "AM", code))
                rows.append(services.MarkRow(make_upn(serial), day, "PM", "\\" if code == "/" else code))
        services.store_marks(db_session, school.id, rows, "mis")
        return {p.upn: p.id for p in db_session.scalars(select(Pupil))}


@pytest.fixture
def school_a(db_session, make_school, make_la):
    la = make_la()
    school = make_school(la=la, name="Ash Primary")
    ids = seed(
        db_session,
        school,
        [
            pupil(1, surname="Able"),
            pupil(2, surname="Baker", year_group="6", fsm=True),
            pupil(3, surname='=HYPERLINK("http://x")', year_group="6"),
        ],
        {1: ["/"] * 20, 2: ["/"] * 15 + ["N"] * 5, 3: ["/"] * 9 + ["I"] * 11},
    )
    return school, la, ids


def _body(response):
    return response.get_data(as_text=True)


def test_pupil_list_shows_figures_and_filters_persistent_absence(client, login, make_user, school_a):
    school, _la, _ids = school_a
    login(make_user(school, "attendance_officer"))
    everyone = _body(client.get("/pupils"))
    persistent = _body(client.get("/pupils?flag=persistent"))
    year6_fsm = _body(client.get("/pupils?year_group=6&flag=fsm"))
    assert "3 pupils" in everyone
    assert "75.0%" in everyone  # Baker: 30 of 40 sessions present
    assert "Able" in everyone
    assert "2 pupils" in persistent
    assert "Able" not in persistent.split('data-testid="pupil-table"')[1].split("</table>")[0]
    assert "1 pupil" in year6_fsm


def test_listing_pupils_is_audited_with_the_pupils_shown(client, login, make_user, db_session, school_a):
    school, _la, ids = school_a
    login(make_user(school, "school_staff"))
    client.get("/pupils?year_group=6")
    with tenancy.tenant_context(school.id):
        event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "pupils.list"))
    detail = json.loads(event.detail)
    assert sorted(detail["pupil_ids"]) == sorted([ids[make_upn(2)], ids[make_upn(3)]])
    assert detail["filters"] == {"year_group": "6"}


def test_sorting_by_attendance_puts_the_lowest_first(client, login, make_user, school_a):
    school, _la, _ids = school_a
    login(make_user(school, "school_staff"))
    page = _body(client.get("/pupils?sort=attendance"))
    table = page.split('data-testid="pupil-table"')[1]
    assert table.index("HYPERLINK") < table.index("Baker") < table.index("Able")
    assert 'aria-sort="ascending"' in table


def test_viewing_a_pupil_is_audited(client, login, make_user, db_session, school_a):
    school, _la, ids = school_a
    login(make_user(school, "school_staff"))
    response = client.get(f"/pupils/{ids[make_upn(2)]}")
    assert response.status_code == 200
    body = _body(response)
    assert "75.0%" in body
    assert 'title="AM: N' in body
    assert "Reason for absence not yet established" in body
    assert "Change over the last 6 school weeks" in body
    with tenancy.tenant_context(school.id):
        views = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "pupil.view")).all()
    assert [(v.pupil_id, v.object_id) for v in views] == [(ids[make_upn(2)], str(ids[make_upn(2)]))]


def test_another_schools_pupil_is_not_found(client, login, make_user, make_school, school_a):
    _school, la, ids = school_a
    other = make_school(la=la)
    login(make_user(other, "attendance_officer"))
    assert client.get(f"/pupils/{ids[make_upn(1)]}").status_code == 404
    assert "No pupils match" in _body(client.get("/pupils"))


def test_roles_without_pupil_access_are_refused(client, login, make_user, make_trust, school_a):
    trust = make_trust()
    login(make_user(trust, "trust_leader"))
    assert client.get("/pupils").status_code == 403


def test_csv_export_neutralises_formulas_and_is_audited(client, login, make_user, db_session, school_a):
    school, _la, _ids = school_a
    login(make_user(school, "attendance_officer"))
    response = client.get("/pupils/export.csv?sort=name")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    header, data = rows[1], rows[2:]
    surnames = [r[header.index("Surname")] for r in data]
    assert '\'=HYPERLINK("http://x")' in surnames
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in data for cell in r)
    assert {r[header.index("Attendance %")] for r in data} == {"100.0", "75.0", "45.0"}
    with tenancy.tenant_context(school.id):
        exports = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "pupils.export")).all()
    assert len(exports) == 1


def test_safe_cell_neutralises_every_formula_start():
    from attendwise.attendance.views import safe_cell

    cases = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain", ""]
    assert [safe_cell(c) for c in cases] == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "plain", ""]


def test_an_earlier_academic_year_can_be_chosen(client, login, make_user, db_session, school_a):
    school, _la, ids = school_a
    march = dt.date(2026, 3, 2)  # 2025/26, on the England default calendar
    with tenancy.tenant_context(school.id):
        services.store_marks(
            db_session,
            school.id,
            [
                services.MarkRow(make_upn(1), march, "AM", "O"),
                services.MarkRow(make_upn(1), march, "PM", "\\"),
            ],
            "import",
        )
    login(make_user(school, "school_staff"))
    listing = _body(client.get("/pupils?year=2025"))
    page = _body(client.get(f"/pupils/{ids[make_upn(1)]}?year=2025"))
    assert 'value="2025" selected' in listing
    assert "50.0%" in listing  # Able: one of two sessions that year
    assert "academic year 2025/26" in page
    assert 'title="AM: O' in page
    assert "2026/27</a>" in page


def test_a_new_school_and_a_pupil_without_marks_still_render(
    client, login, make_user, db_session, make_school
):
    school = make_school()
    login(make_user(school, "school_staff"))
    empty = client.get("/pupils")
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(1, surname="Newcomer")])
        new_id = db_session.scalar(select(Pupil.id))
    page = client.get(f"/pupils/{new_id}")
    assert empty.status_code == 200
    assert "0 pupils" in _body(empty)
    assert page.status_code == 200
    assert "No mark has changed" in _body(page)
    assert "\u2013" in _body(page).split('data-testid="headline"')[1][:400]  # no attendance % yet


def test_pupils_are_paged_fifty_at_a_time(client, login, make_user, db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(n, surname=f"S{n:03d}") for n in range(1, 56)])
    login(make_user(school, "school_staff"))
    first = _body(client.get("/pupils"))
    second = _body(client.get("/pupils?page=2"))
    assert "55 pupils, page 1 of 2" in " ".join(first.split())
    assert "S050" in first
    assert "S051" not in first
    assert second.count("S05") == 5  # S051..S055
    assert 'rel="next"' in first
