"""Organisation administrators invite people by email; the link works once, for a week."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket

import pytest
from sqlalchemy import select, update

from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Invitation, Membership, User
from tests.platform.account_fixtures import body_text
from tests.tenants.conftest import login_as, post

USERS = "/organisation/users"
PASSWORD = "a long and memorable passphrase"


@pytest.fixture
def invited(client, sign_in, school_admin, smtp_server):
    """The school admin invites a new attendance officer; returns the emailed link's path."""
    sign_in(school_admin)
    response = post(
        client, USERS, f"{USERS}/invite", {"email": "new.officer@hilltop.test", "role": "attendance_officer"}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    [message] = smtp_server.messages
    link = re.search(r"https?://\S+/invitations/\S+", body_text(message))
    assert link, body_text(message)
    client.post("/auth/logout", data={"csrf_token": _token(client)})
    return "/invitations/" + link.group(0).rsplit("/invitations/", 1)[1]


def _token(client) -> str:
    from tests.tenants.conftest import form_token

    return form_token(client.get("/auth/login").get_data(as_text=True))


def _invitations(db_session, org_id: int) -> list[Invitation]:
    with tenancy.tenant_context(org_id):
        return list(db_session.scalars(select(Invitation).order_by(Invitation.id)))


def test_the_invitation_is_emailed_and_only_its_hash_is_stored(
    client,
    db_session,
    school,
    invited,
    smtp_server,
):
    token = invited.rsplit("/", 1)[1]
    [stored] = _invitations(db_session, school.id)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_hash
    assert (stored.email, stored.role) == ("new.officer@hilltop.test", "attendance_officer")
    message = smtp_server.messages[0]
    assert message["Subject"] == f"You have been invited to join {school.name} on Attendwise"
    assert "stops working after 7 days" in body_text(message)


def test_a_new_person_sets_a_password_joins_and_the_link_then_dies(client, db_session, school, invited):
    page = client.get(invited).get_data(as_text=True)
    assert "Set up your account for new.officer@hilltop.test" in page
    response = post(
        client,
        invited,
        invited,
        {"display_name": "Nia Officer", "password": PASSWORD, "confirm_password": PASSWORD},
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/auth/login")
    user = db_session.scalar(select(User).where(User.email == "new.officer@hilltop.test"))
    assert user is not None
    [membership] = user.memberships
    assert (membership.org_id, membership.role, membership.active) == (school.id, "attendance_officer", True)
    with tenancy.tenant_context(school.id):
        actions = db_session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == school.id)).all()
    assert "membership.create" in actions
    assert client.get(invited).status_code == 404
    signed = login_as(client, user, PASSWORD)
    assert signed.status_code == 302
    assert school.name in client.get("/").get_data(as_text=True)


def test_weak_or_mismatched_passwords_create_nothing(client, db_session, invited):
    short = post(
        client, invited, invited, {"display_name": "Nia", "password": "short", "confirm_password": "short"}
    )
    assert short.status_code == 400
    assert "Password must be at least 12 characters" in short.get_data(as_text=True)
    mismatch = post(
        client,
        invited,
        invited,
        {"display_name": "Nia", "password": PASSWORD, "confirm_password": PASSWORD + "x"},
    )
    assert mismatch.status_code == 400
    assert "The passwords do not match" in mismatch.get_data(as_text=True)
    assert db_session.scalar(select(User).where(User.email == "new.officer@hilltop.test")) is None


def test_an_expired_or_withdrawn_link_does_not_work(client, db_session, school, invited):
    with tenancy.tenant_context(school.id):
        db_session.execute(
            update(Invitation).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    db_session.commit()
    response = client.get(invited)
    assert response.status_code == 404
    assert "This invitation link does not work" in response.get_data(as_text=True)
    assert client.get("/invitations/made-up-token").status_code == 404


def test_a_new_invitation_replaces_the_old_one_and_can_be_withdrawn(
    client,
    db_session,
    sign_in,
    school,
    school_admin,
    invited,
    smtp_server,
):
    sign_in(school_admin)
    again = post(
        client, USERS, f"{USERS}/invite", {"email": "new.officer@hilltop.test", "role": "school_staff"}
    )
    assert again.status_code == 302
    assert client.get(invited).status_code == 404, "the first link stops working"
    newest = [i for i in _invitations(db_session, school.id) if i.revoked_at is None]
    assert [i.role for i in newest] == ["school_staff"]
    withdraw = post(client, USERS, f"/organisation/invitations/{newest[0].id}/revoke", {})
    assert withdraw.status_code == 302
    assert all(i.revoked_at is not None for i in _invitations(db_session, school.id))


def test_someone_with_an_account_joins_after_signing_in(
    client,
    db_session,
    sign_in,
    make_school,
    make_user,
    school,
    school_admin,
    smtp_server,
):
    other = make_school(name="Valley Primary")
    existing = make_user(other, "school_staff", email="teacher@valley.test")
    sign_in(school_admin)
    post(client, USERS, f"{USERS}/invite", {"email": "teacher@valley.test", "role": "school_staff"})
    link = "/invitations/" + body_text(smtp_server.messages[0]).split("/invitations/", 1)[1].split()[0]
    client.post("/auth/logout", data={"csrf_token": _token(client)})

    anonymous = client.get(link).get_data(as_text=True)
    assert "Sign in to accept the invitation" in anonymous
    sign_in(existing)
    response = post(client, link, link, {})
    assert response.status_code == 302
    roles = {
        m.org_id: m.role
        for m in db_session.scalars(select(Membership).where(Membership.user_id == existing.id))
    }
    assert roles == {other.id: "school_staff", school.id: "school_staff"}
    home = client.get("/").get_data(as_text=True)
    assert f"You have joined {school.name} as Staff (read only)." in home


def test_the_link_is_refused_to_someone_signed_in_as_another_person(
    client, sign_in, make_user, school, invited
):
    stranger = make_user(school, "school_staff", email="stranger@hilltop.test")
    sign_in(stranger)
    response = client.get(invited)
    assert response.status_code == 403
    assert "This invitation is for new.officer@hilltop.test" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("email", "role", "message"),
    [
        ("head@hilltop.test", "school_staff", "head@hilltop.test is already a member of Hill Top Primary"),
        ("someone@hilltop.test", "trust_leader", "Choose a role"),
        ("not-an-email", "school_staff", "not-an-email is not an email address"),
    ],
)
def test_invitations_that_cannot_work_are_refused(
    client,
    db_session,
    sign_in,
    school,
    school_admin,
    smtp_server,
    email,
    role,
    message,
):
    sign_in(school_admin)
    response = post(client, USERS, f"{USERS}/invite", {"email": email, "role": role})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert smtp_server.messages == []
    assert _invitations(db_session, school.id) == []


def test_if_the_email_cannot_be_sent_no_invitation_is_kept(
    app, client, db_session, sign_in, school, school_admin
):
    sign_in(school_admin)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    saved = {k: app.config.get(k) for k in ("MAIL_SERVER", "MAIL_PORT")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=closed_port)
    try:
        response = post(client, USERS, f"{USERS}/invite", {"email": "x@hilltop.test", "role": "school_staff"})
    finally:
        app.config.update(saved)
    assert response.status_code == 400
    assert "The invitation email could not be sent, so no invitation was made" in response.get_data(
        as_text=True
    )
    assert _invitations(db_session, school.id) == []
