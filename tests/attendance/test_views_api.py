"""The pupils API: figures, filters, audit of every read, isolation and permissions."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from attendwise.attendance import queries, services
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import db
from tests.attendance.records import make_upn, pupil
from tests.attendance.test_views_pupils import TODAY, school_a  # noqa: F401 - fixture
from tests.conftest import TEST_PASSWORD, csrf_token


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(queries, "today", lambda: TODAY)


def test_list_returns_figures_and_filters(client, login, make_user, school_a):  # noqa: F811
    school, _la, _ids = school_a
    login(make_user(school, "school_staff"))
    everyone = client.get("/api/v1/pupils?sort=attendance").get_json()
    persistent = client.get("/api/v1/pupils?flag=persistent&flag=fsm").get_json()
    assert everyone["total"] == 3
    assert [p["figures"]["attendance_pct"] for p in everyone["items"]] == [45.0, 75.0, 100.0]
    assert everyone["period"]["key"] == "ytd"
    assert [p["legal_surname"] for p in persistent["items"]] == ["Baker"]


def test_bad_query_arguments_are_explained(client, login, make_user, school_a):  # noqa: F811
    school, _la, _ids = school_a
    login(make_user(school, "school_staff"))
    response = client.get("/api/v1/pupils?flag=tall&page=0")
    assert response.status_code == 422
    errors = response.get_json()["errors"]["query"]
    assert set(errors) == {"flag", "page"}


def test_get_pupil_is_audited_and_other_schools_are_not_found(
    app,
    client,
    login,
    make_user,
    make_school,
    db_session,
    school_a,  # noqa: F811
):
    school, la, ids = school_a
    outsider = make_user(make_school(la=la), "attendance_officer")
    login(make_user(school, "attendance_officer"))
    body = client.get(f"/api/v1/pupils/{ids[make_upn(2)]}").get_json()
    assert body["upn"] == make_upn(2)
    assert body["figures"]["unauthorised"] == 10
    assert body["figures"]["persistent_absence"] is True
    with tenancy.tenant_context(school.id):
        views = db_session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "pupil.view")).all()
    assert views == ['{"via": "api"}']
    other_client = app.test_client()
    token = csrf_token(other_client)
    other_client.post(
        "/auth/login", data={"email": outsider.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert other_client.get(f"/api/v1/pupils/{ids[make_upn(2)]}").status_code == 404


def test_roles_without_pupil_access_get_403(client, login, make_user, make_trust):
    login(make_user(make_trust(), "trust_leader"))
    assert client.get("/api/v1/pupils").status_code == 403


def test_a_page_of_thirty_pupils_costs_the_same_queries_as_a_page_of_three(
    client,
    login,
    make_user,
    db_session,
    school_a,  # noqa: F811
):
    school, _la, _ids = school_a
    login(make_user(school, "school_staff"))

    def statements_for_a_page() -> int:
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            body = client.get("/api/v1/pupils").get_json()
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return body["total"], len(statements)

    statements_for_a_page()  # the first request also loads what is cached for later ones
    three = statements_for_a_page()
    with tenancy.tenant_context(school.id):
        services.upsert_pupils(db_session, school.id, [pupil(n) for n in range(4, 31)])
    thirty = statements_for_a_page()
    assert (three[0], thirty[0]) == (3, 30)
    assert thirty[1] <= three[1], "the statements grow with the pupils on the page"
