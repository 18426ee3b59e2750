"""Personal API tokens: created in account settings, shown once, scoped, expiring, revocable."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import utcnow
from attendwise.tenants.models import ApiToken, Organisation, User
from tests.platform.account_fixtures import post_form


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school(name="Token Test Primary")


@pytest.fixture
def officer(school: Organisation, make_user: Callable[..., User]) -> User:
    return make_user(school, "attendance_officer")


def create_token(
    client: FlaskClient, name: str, scopes: list[str], days: str = "30"
) -> tuple[Any, str | None]:
    response = post_form(client, "/account/tokens/new", {"name": name, "scopes": scopes, "expiry_days": days})
    match = re.search(r'id="new-token">(awpat_[A-Za-z0-9_-]+)<', response.get_data(as_text=True))
    return response, (match.group(1) if match else None)


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_a_token_is_shown_once_and_authenticates_api_requests(
    client: FlaskClient, login: Callable[..., Any], officer: User, school: Organisation, db_session: Any
) -> None:
    login(officer)
    response, raw = create_token(client, "Nightly export", ["api:tokens", "pupils:read"])
    assert response.status_code == 200
    assert raw is not None
    assert raw not in client.get("/account").get_data(as_text=True)
    assert "Nightly export" in client.get("/account").get_data(as_text=True)
    stored = db_session.scalar(select(ApiToken).where(ApiToken.name == "Nightly export"))
    assert stored.token_hash != raw
    assert stored.org_id == school.id

    api = FlaskClientWithoutCookies(client)
    me = api.get("/api/v1/account/me", headers=bearer(raw))
    assert me.status_code == 200
    assert me.json["organisation_name"] == "Token Test Primary"
    assert me.json["via_token"] is True
    assert me.json["permissions"] == ["api:tokens", "pupils:read"]
    listed = api.get("/api/v1/account/tokens", headers=bearer(raw))
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json] == ["Nightly export"]
    assert "token_hash" not in listed.json[0]
    db_session.refresh(stored)
    assert stored.last_used_at is not None


def test_scopes_limit_what_a_token_may_do(
    client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    login(officer)
    _response, raw = create_token(client, "Read only", ["pupils:read"])
    assert raw is not None
    api = FlaskClientWithoutCookies(client)
    assert api.get("/api/v1/account/me", headers=bearer(raw)).status_code == 200
    assert api.get("/api/v1/account/tokens", headers=bearer(raw)).status_code == 403


def test_revoked_and_expired_tokens_are_refused(
    client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    login(officer)
    _r, revoked = create_token(client, "To revoke", ["api:tokens"])
    _r, expired = create_token(client, "To expire", ["api:tokens"])
    assert revoked
    assert expired
    token = db_session.scalar(select(ApiToken).where(ApiToken.name == "To revoke"))
    page = client.get("/account").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    assert (
        client.post(f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf.group(1)}).status_code
        == 302
    )
    db_session.execute(
        update(ApiToken)
        .where(ApiToken.name == "To expire")
        .values(expires_at=utcnow() - dt.timedelta(seconds=1))
    )
    db_session.commit()
    api = FlaskClientWithoutCookies(client)
    assert api.get("/api/v1/account/me", headers=bearer(revoked)).status_code == 401
    assert api.get("/api/v1/account/me", headers=bearer(expired)).status_code == 401
    assert api.get("/api/v1/account/me", headers=bearer("awpat_made-up")).status_code == 401
    assert api.get("/api/v1/account/me").status_code == 401


def test_a_token_dies_with_its_owners_account(
    client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    login(officer)
    _r, raw = create_token(client, "Owner disabled", ["api:tokens"])
    assert raw
    officer.active = False
    db_session.commit()
    assert FlaskClientWithoutCookies(client).get("/api/v1/account/me", headers=bearer(raw)).status_code == 401


def test_scopes_outside_the_role_are_refused(
    client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    login(officer)
    response, raw = create_token(client, "Too much", ["platform:admin"])
    assert response.status_code == 400
    assert raw is None
    assert "Choose at least one permission your role has" in response.get_data(as_text=True)


def test_roles_without_the_permission_cannot_create_tokens(
    client: FlaskClient,
    login: Callable[..., Any],
    school: Organisation,
    make_user: Callable[..., User],
) -> None:
    login(make_user(school, "school_staff"))
    assert client.get("/account/tokens/new").status_code == 403
    assert "cannot create API tokens" in client.get("/account").get_data(as_text=True)


def test_nobody_can_revoke_someone_elses_token(
    client: FlaskClient,
    login: Callable[..., Any],
    officer: User,
    school: Organisation,
    make_user: Callable[..., User],
    db_session: Any,
) -> None:
    login(officer)
    create_token(client, "Mine", ["api:tokens"])
    token = db_session.scalar(select(ApiToken).where(ApiToken.name == "Mine"))
    client.post("/auth/logout", data={"csrf_token": _csrf(client, "/")})
    login(make_user(school, "attendance_officer"))
    assert (
        client.post(
            f"/account/tokens/{token.id}/revoke", data={"csrf_token": _csrf(client, "/account")}
        ).status_code
        == 404
    )
    db_session.refresh(token)
    assert token.revoked_at is None


def _csrf(client: FlaskClient, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


class FlaskClientWithoutCookies:
    """API calls carrying only the bearer token, never the browser's session cookie."""

    def __init__(self, client: FlaskClient) -> None:
        from tests.conftest import FreshGlobalsClient

        self._client = FreshGlobalsClient(
            client.application, client.application.response_class, use_cookies=False
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._client.get(path, **kwargs)


def test_creating_and_revoking_a_token_is_in_the_organisations_audit_log(
    client: FlaskClient, login: Callable[..., Any], officer: User, school: Organisation, db_session: Any
) -> None:
    login(officer)
    _r, raw = create_token(client, "Audited", ["pupils:read"])
    assert raw
    token = db_session.scalar(select(ApiToken).where(ApiToken.name == "Audited"))
    client.post(f"/account/tokens/{token.id}/revoke", data={"csrf_token": _csrf(client, "/account")})
    with tenancy.tenant_context(school.id):
        events = db_session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "api_token").order_by(AuditEvent.seq)
        ).all()
    assert [(e.action, e.object_id, e.actor_user_id) for e in events] == [
        ("api_token.create", str(token.id), officer.id),
        ("api_token.revoke", str(token.id), officer.id),
    ]
    assert raw not in " ".join(e.detail for e in events)
