"""Administrators search their own organisation's audit log, and only their own."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from attendwise.platform import audit, tenancy
from attendwise.platform.audit import Actor
from tests.tenants.conftest import sign_in  # noqa: F401 - fixture

PAGE = "/organisation/audit"


def record(db_session, org_id: int, action: str, who: str, pupil_id: int | None = None, n: int = 1) -> None:
    with tenancy.tenant_context(org_id):
        for _ in range(n):
            audit.record(
                db_session,
                org_id=org_id,
                action=action,
                object_type="pupils",
                object_id=pupil_id,
                pupil_id=pupil_id,
                actor=Actor(label=who),
            )


def rows(html: str) -> list[str]:
    return re.findall(r'data-testid="audit-event">(.*?)</tr>', html, flags=re.S)


@pytest.fixture
def logged(db_session, make_school, make_user, sign_in):  # noqa: F811 - fixture
    school = make_school(name="Hill Top Primary")
    other = make_school(name="Valley Primary")
    admin = make_user(school, "school_admin", email="head@hilltop.test")
    record(db_session, school.id, "pupil.view", "officer@hilltop.test", pupil_id=41)
    record(db_session, school.id, "pupil.view", "head@hilltop.test", pupil_id=42)
    record(db_session, school.id, "case.open", "officer@hilltop.test", pupil_id=41)
    record(db_session, other.id, "pupil.view", "spy@valley.test", pupil_id=99)
    db_session.commit()
    sign_in(admin)
    return school


def test_the_log_shows_own_events_newest_first_and_never_anothers(client, logged):
    html = client.get(PAGE).get_data(as_text=True)
    found = rows(html)
    assert len(found) == 3
    assert "case.open" in found[0]
    assert "spy@valley.test" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=OFFICER@", 2),
        ("action=pupil.view", 2),
        ("pupil=42", 1),
        ("actor=officer&action=case.open&pupil=41", 1),
        ("actor=nobody", 0),
    ],
)
def test_filters_narrow_the_log(client, logged, query, expected):
    html = client.get(f"{PAGE}?{query}").get_data(as_text=True)
    assert len(rows(html)) == expected
    assert f"{expected} entr" in html


def test_date_range_is_by_the_day_in_england(client, logged):
    today = dt.datetime.now(dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    assert (
        len(rows(client.get(f"{PAGE}?from={today}&to={today + dt.timedelta(days=1)}").get_data(as_text=True)))
        == 3
    )
    assert rows(client.get(f"{PAGE}?to={yesterday - dt.timedelta(days=1)}").get_data(as_text=True)) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=27/03/2026", "The start date must be a real date, like 2026-03-27"),
        ("from=2026-03-27&to=2026-03-01", "The end date must be the same as or after the start date"),
        ("pupil=abc", "The pupil ID must be a number"),
    ],
)
def test_bad_filters_are_explained(client, logged, query, message):
    response = client.get(f"{PAGE}?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_the_log_is_paginated_and_pages_keep_the_filters(client, db_session, logged):
    record(db_session, logged.id, "pupil.view", "bulk@hilltop.test", pupil_id=7, n=60)
    db_session.commit()
    first = client.get(f"{PAGE}?actor=bulk").get_data(as_text=True)
    assert len(rows(first)) == 50
    assert "60 entries, page 1 of 2" in first
    assert 'href="/organisation/audit?page=2&amp;actor=bulk"' in first
    second = client.get(f"{PAGE}?actor=bulk&page=2").get_data(as_text=True)
    assert len(rows(second)) == 10


def test_a_trust_admin_sees_the_trusts_log_not_its_schools(
    client,
    db_session,
    make_trust,
    make_school,
    make_user,
    sign_in,  # noqa: F811 - fixture
):
    trust = make_trust("Chalk Downs Learning Trust")
    member = make_school(trust=trust)
    admin = make_user(trust, "trust_admin")
    record(db_session, trust.id, "membership.create", "admin@chalkdowns.test")
    record(db_session, member.id, "pupil.view", "teacher@member.test", pupil_id=5)
    db_session.commit()
    sign_in(admin)
    html = client.get(PAGE).get_data(as_text=True)
    assert "membership.create" in html
    assert "teacher@member.test" not in html


def test_roles_without_audit_read_are_refused(client, make_school, make_user, sign_in):  # noqa: F811
    officer = make_user(make_school(), "attendance_officer")
    assert client.get(PAGE).status_code == 302, "anonymous visitors are sent to sign in"
    sign_in(officer)
    assert client.get(PAGE).status_code == 403
