"""The school calendar page: the England default until the school sets its own, edits validated."""

from __future__ import annotations

import re

import pytest

from attendwise.attendance import queries, services
from attendwise.platform import tenancy
from tests.attendance.test_views_pupils import TODAY
from tests.conftest import csrf_token

TERM_DATES = """name,start,end
Autumn 1,2026-09-03,2026-10-23
Autumn 2,2026-11-02,2026-12-18
Spring 1,2027-01-05,2027-02-12
Spring 2,2027-02-22,2027-03-26
Summer 1,2027-04-12,2027-05-28
Summer 2,2027-06-07,2027-07-21
"""


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(queries, "today", lambda: TODAY)


def test_a_school_without_term_dates_sees_the_england_default(client, login, make_user, make_school):
    school = make_school()
    login(make_user(school, "school_staff"))
    body = client.get("/calendar").get_data(as_text=True)
    assert "School calendar 2026/27" in body
    assert "the England default calendar applies" in body
    assert "Save calendar" not in body  # staff may look, not change
    counts = " ".join(body.split('data-testid="year-counts"')[1].split("</dl>")[0].split())
    assert re.search(r"School days </dt> <dd[^>]*> 190 </dd>", counts)
    assert re.search(r"Sessions \(two a school day\) </dt> <dd[^>]*> 380 </dd>", counts)


def test_an_administrator_sets_term_dates_and_inset_days(client, login, make_user, make_school, db_session):
    school = make_school()
    login(make_user(school, "school_admin"))
    response = client.post(
        "/calendar",
        data={
            "year": "2026",
            "half_terms": TERM_DATES,
            "closures": "2026-09-03, Staff training\n2026-12-18, Closure: heating works",
            "csrf_token": csrf_token(client, "/calendar"),
        },
    )
    assert response.status_code == 302
    with tenancy.tenant_context(school.id):
        calendar = services.school_calendar(db_session, school.id, 2026)
    assert calendar.start.isoformat() == "2026-09-03"
    assert not calendar.is_school_day(calendar.start)  # INSET
    assert [d.isoformat() for d in calendar.closures] == ["2026-12-18"]
    page = client.get("/calendar").get_data(as_text=True)
    assert "England default" not in page
    assert "Closure: heating works" in page


def test_bad_term_dates_are_explained_and_nothing_changes(client, login, make_user, make_school, db_session):
    school = make_school()
    login(make_user(school, "school_admin"))
    response = client.post(
        "/calendar",
        data={
            "year": "2026",
            "half_terms": TERM_DATES.replace("2026-11-02", "2026-10-20"),
            "closures": "3rd September, INSET",
            "csrf_token": csrf_token(client, "/calendar"),
        },
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "There is a problem" in body
    assert "overlap" in body
    assert "is not a date like 2026-09-01" in body
    with tenancy.tenant_context(school.id):
        assert not services.has_own_calendar(db_session, school.id, 2026)


def test_staff_cannot_change_the_calendar(client, login, make_user, make_school):
    school = make_school()
    login(make_user(school, "school_staff"))
    response = client.post(
        "/calendar",
        data={"year": "2026", "half_terms": TERM_DATES, "csrf_token": csrf_token(client, "/calendar")},
    )
    assert response.status_code == 403
