"""Organisation administrators change roles and deactivate people; every change is audited."""

from __future__ import annotations

import json

from sqlalchemy import select

from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Membership
from tests.tenants.conftest import login_as, post

USERS = "/organisation/users"


def membership(db_session, user, org) -> Membership:
    found = db_session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.org_id == org.id)
    )
    assert found is not None
    db_session.refresh(found)
    return found


def last_event(db_session, org_id: int) -> AuditEvent:
    with tenancy.tenant_context(org_id):
        return db_session.scalars(
            select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq.desc())
        ).first()


def test_admin_changes_a_role_and_it_is_audited(client, db_session, sign_in, make_user, school, school_admin):
    teacher = make_user(school, "school_staff", email="teacher@hilltop.test")
    sign_in(school_admin)
    m = membership(db_session, teacher, school)
    response = post(client, USERS, f"{USERS}/{m.id}/role", {"role": "attendance_officer"})
    assert response.status_code == 302
    assert membership(db_session, teacher, school).role == "attendance_officer"
    event = last_event(db_session, school.id)
    assert (event.action, event.object_id, event.actor_label) == (
        "membership.role_change",
        str(m.id),
        school_admin.email,
    )
    assert json.loads(event.detail) == {
        "from": "school_staff",
        "to": "attendance_officer",
        "user_id": teacher.id,
    }


def test_only_roles_of_the_organisations_kind_can_be_given(
    client, db_session, sign_in, make_user, school, school_admin
):
    teacher = make_user(school, "school_staff")
    sign_in(school_admin)
    m = membership(db_session, teacher, school)
    response = post(client, USERS, f"{USERS}/{m.id}/role", {"role": "trust_leader"})
    assert response.status_code == 400
    assert "Trust leader is not a role in a school" in response.get_data(as_text=True)
    assert membership(db_session, teacher, school).role == "school_staff"


def test_another_organisations_members_are_not_found(
    client, db_session, sign_in, make_school, make_user, school_admin
):
    elsewhere = make_school(name="Elsewhere")
    outsider = make_user(elsewhere, "school_staff")
    sign_in(school_admin)
    m = membership(db_session, outsider, elsewhere)
    for action in ("role", "deactivate", "reactivate"):
        assert post(client, USERS, f"{USERS}/{m.id}/{action}", {"role": "school_admin"}).status_code == 404
    assert membership(db_session, outsider, elsewhere).role == "school_staff"
    assert "Elsewhere" not in client.get(USERS).get_data(as_text=True)


def test_deactivating_someones_only_membership_signs_them_out_everywhere(
    app, client, db_session, sign_in, make_user, school, school_admin
):
    teacher = make_user(school, "school_staff", email="teacher@hilltop.test")
    teachers_browser = app.test_client()
    assert login_as(teachers_browser, teacher).status_code == 302
    assert teachers_browser.get("/").status_code == 200
    sign_in(school_admin)
    m = membership(db_session, teacher, school)
    response = post(client, USERS, f"{USERS}/{m.id}/deactivate", {})
    assert response.status_code == 302
    assert "They have been signed out everywhere." in client.get(USERS).get_data(as_text=True)
    assert membership(db_session, teacher, school).active is False
    replay = teachers_browser.get("/")
    assert replay.status_code == 302
    assert "/auth/login" in replay.headers["Location"]
    assert last_event(db_session, school.id).action == "membership.deactivate"

    post(client, USERS, f"{USERS}/{m.id}/reactivate", {})
    assert membership(db_session, teacher, school).active is True
    assert last_event(db_session, school.id).action == "membership.reactivate"


def test_someone_with_another_organisation_keeps_their_session_there(
    app, client, db_session, sign_in, make_school, make_user, school, school_admin
):
    teacher = make_user(school, "school_staff", email="teacher@hilltop.test")
    other = make_school(name="Valley Primary")
    with tenancy.system_context("test factory"):
        from attendwise.tenants import services

        services.add_membership(db_session, user=teacher, org=other, role_key="attendance_officer")
    teachers_browser = app.test_client()
    login_as(teachers_browser, teacher)
    sign_in(school_admin)
    post(client, USERS, f"{USERS}/{membership(db_session, teacher, school).id}/deactivate", {})
    still = teachers_browser.get("/")
    assert still.status_code == 200
    assert "Valley Primary" in still.get_data(as_text=True)


def test_the_last_person_who_can_manage_users_cannot_remove_themselves(
    client, db_session, sign_in, school, school_admin
):
    sign_in(school_admin)
    m = membership(db_session, school_admin, school)
    demote = post(client, USERS, f"{USERS}/{m.id}/role", {"role": "school_staff"})
    assert demote.status_code == 400
    assert "needs at least one other person who can manage users first" in demote.get_data(as_text=True)
    leave = post(client, USERS, f"{USERS}/{m.id}/deactivate", {})
    assert leave.status_code == 400
    assert membership(db_session, school_admin, school).role == "school_admin"
    assert membership(db_session, school_admin, school).active is True


def test_people_without_users_manage_cannot_see_or_change_people(
    client, db_session, sign_in, make_user, school, school_admin
):
    officer = make_user(school, "attendance_officer")
    sign_in(officer)
    assert client.get(USERS).status_code == 403
    m = membership(db_session, school_admin, school)
    token_page = "/"
    assert post(client, token_page, f"{USERS}/{m.id}/deactivate", {}).status_code == 403
    assert membership(db_session, school_admin, school).active is True


def test_a_trust_admin_manages_the_trusts_people_not_its_schools(
    client, db_session, sign_in, make_trust, make_school, make_user
):
    trust = make_trust("Chalk Downs Learning Trust")
    member_school = make_school(trust=trust, name="Trust Primary")
    admin = make_user(trust, "trust_admin", email="admin@chalkdowns.test")
    make_user(trust, "trust_leader", email="ceo@chalkdowns.test")
    make_user(member_school, "school_staff", email="teacher@trustprimary.test")
    sign_in(admin)
    page = client.get(USERS).get_data(as_text=True)
    assert "ceo@chalkdowns.test" in page
    assert "teacher@trustprimary.test" not in page
    assert "Trust leader" in page
    assert "Attendance officer" not in page, "only trust roles are offered"
