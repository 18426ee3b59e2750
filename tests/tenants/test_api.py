"""The organisation API with a personal token: people, invitations, the audit log."""

from __future__ import annotations

import pytest

from attendwise.platform import audit, tenancy
from attendwise.platform.audit import Actor
from tests.platform.account_fixtures import body_text
from tests.platform.test_api_tokens import bearer, create_token

API = "/api/v1/organisation"


@pytest.fixture
def token(client, sign_in, school_admin):
    sign_in(school_admin)
    _response, raw = create_token(client, "HR sync", ["users:manage", "audit:read"])
    assert raw
    return raw


def test_members_are_listed_for_the_token_organisation_only(
    app, db_session, token, make_school, make_user, school
):
    make_user(make_school(name="Elsewhere"), "school_staff", email="outsider@elsewhere.test")
    make_user(school, "school_staff", email="teacher@hilltop.test")
    api = app.test_client()
    response = api.get(f"{API}/members", headers=bearer(token))
    assert response.status_code == 200
    assert sorted(m["email"] for m in response.json) == ["head@hilltop.test", "teacher@hilltop.test"]


def test_invitations_are_created_and_emailed(app, db_session, token, school, smtp_server):
    api = app.test_client()
    created = api.post(
        f"{API}/invitations",
        json={"email": "new@hilltop.test", "role": "school_staff"},
        headers=bearer(token),
    )
    assert created.status_code == 201, created.json
    assert created.json["email"] == "new@hilltop.test"
    assert "/invitations/" in body_text(smtp_server.messages[0])
    listed = api.get(f"{API}/invitations", headers=bearer(token)).json
    assert [i["email"] for i in listed] == ["new@hilltop.test"]
    wrong_kind = api.post(
        f"{API}/invitations", json={"email": "x@hilltop.test", "role": "la_admin"}, headers=bearer(token)
    )
    assert wrong_kind.status_code == 422
    assert "LA administrator is not a role in a school" in wrong_kind.json["message"]
    bad = api.post(f"{API}/invitations", json={"email": "nope", "role": "boss"}, headers=bearer(token))
    assert bad.status_code == 422
    assert set(bad.json["errors"]["json"]) == {"email", "role"}


def test_audit_events_are_filtered_and_paged(app, db_session, token, school, make_school):
    other = make_school()
    for org_id, who in ((school.id, "officer@hilltop.test"), (other.id, "spy@other.test")):
        with tenancy.tenant_context(org_id):
            for _ in range(3):
                audit.record(
                    db_session,
                    org_id=org_id,
                    action="pupil.view",
                    object_type="pupils",
                    actor=Actor(label=who),
                )
    db_session.commit()
    api = app.test_client()
    page = api.get(f"{API}/audit-events?action=pupil.view&per_page=2", headers=bearer(token)).json
    assert (page["total"], len(page["events"])) == (3, 2)
    assert {e["actor_label"] for e in page["events"]} == {"officer@hilltop.test"}
    backwards = api.get(f"{API}/audit-events?from=2026-03-27&to=2026-03-01", headers=bearer(token))
    assert backwards.status_code == 422
    assert "to" in backwards.json["errors"]["query"]


def test_the_api_needs_the_permission(app, db_session, make_user, school, client, sign_in):
    officer = make_user(school, "attendance_officer")
    sign_in(officer)
    assert client.get(f"{API}/members").status_code == 403
    assert app.test_client().get(f"{API}/members").status_code == 401
