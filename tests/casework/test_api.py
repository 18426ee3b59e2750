"""The casework API: list and filter with the same permissions as the pages, create, and conflicts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from attendwise.casework.jobs import evaluate_on
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation, User
from tests.casework.conftest import CaseworkSchool
from tests.conftest import csrf_token

FRIDAYS = (dt.date(2026, 9, 11), dt.date(2026, 9, 18))


def _school(db_session: Session, casework_school: Callable[..., CaseworkSchool]) -> Organisation:
    built = casework_school(pupils=10, absent_pupils=4)
    with tenancy.tenant_context(built.school.id):
        for friday in FRIDAYS:
            evaluate_on(db_session, built.school.id, friday)
    return built.school


def test_cases_and_tasks_are_listed_filtered_and_paged(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    casework_school: Callable[..., CaseworkSchool],
) -> None:
    school = _school(db_session, casework_school)
    login(make_user(school, "school_staff"))
    cases = client.get("/api/v1/casework/cases?status=open&per_page=3").get_json()
    assert cases["total"] == 4
    assert cases["pages"] == 2
    assert len(cases["items"]) == 3
    assert all(c["stage"] == 1 for c in cases["items"])
    letters = client.get("/api/v1/casework/tasks?kind=letter").get_json()
    assert letters["total"] == 4
    assert {t["kind"] for t in letters["items"]} == {"letter"}
    assert client.get("/api/v1/casework/cases?status=shut").status_code == 422


def test_creating_through_the_api_needs_write_and_stale_versions_conflict(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    casework_school: Callable[..., CaseworkSchool],
) -> None:
    school = _school(db_session, casework_school)
    login(make_user(school, "school_staff"))
    case_id = client.get("/api/v1/casework/cases").get_json()["items"][0]["id"]
    token = csrf_token(client, "/worklist")
    headers = {"X-CSRFToken": token}
    body = {"channel": "phone", "outcome": "spoke_to", "note": "Agreed to come in"}
    assert (
        client.post(f"/api/v1/casework/cases/{case_id}/contacts", json=body, headers=headers).status_code
        == 403
    )

    login(make_user(school, "attendance_officer"))
    headers = {"X-CSRFToken": csrf_token(client, "/worklist")}
    created = client.post(f"/api/v1/casework/cases/{case_id}/contacts", json=body, headers=headers)
    assert created.status_code == 201
    assert created.get_json()["outcome"] == "spoke_to"
    wrong = client.post(
        f"/api/v1/casework/cases/{case_id}/contacts", json={**body, "channel": "home_visit"}, headers=headers
    )
    assert wrong.status_code == 422
    assert "a home visit can be seen, not seen, concerns" in wrong.get_json()["message"]
    listed = client.get(f"/api/v1/casework/contacts?case_id={case_id}").get_json()
    assert [c["note"] for c in listed["items"]] == ["Agreed to come in"]

    task = client.get(f"/api/v1/casework/tasks?case_id={case_id}&kind=letter").get_json()["items"][0]
    done = client.post(
        f"/api/v1/casework/tasks/{task['id']}/complete",
        json={"note": "Posted", "version": task["version"]},
        headers=headers,
    )
    again = client.post(
        f"/api/v1/casework/tasks/{task['id']}/complete",
        json={"note": "Posted too", "version": task["version"]},
        headers=headers,
    )
    assert done.status_code == 200
    assert done.get_json()["status"] == "done"
    assert again.status_code == 409


def test_another_schools_case_is_not_found_over_the_api(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    make_school: Callable[..., Organisation],
    casework_school: Callable[..., CaseworkSchool],
) -> None:
    school = _school(db_session, casework_school)
    login(make_user(school, "attendance_officer"))
    case_id = client.get("/api/v1/casework/cases").get_json()["items"][0]["id"]
    login(make_user(make_school(), "attendance_officer"))
    assert client.get(f"/api/v1/casework/cases/{case_id}").status_code == 404
    assert client.get("/api/v1/casework/cases").get_json()["total"] == 0
