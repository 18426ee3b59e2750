"""API clients: an admin registers one, it gets a short-lived token with client credentials, and
it can do exactly what its scopes allow, audited as the client."""

from __future__ import annotations

import base64
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
from attendwise.platform.oauth_server import TOKEN_MINUTES, ApiClient, ApiClientToken
from attendwise.tenants.models import Organisation, User
from tests.conftest import csrf_token


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


def register_client(
    client: FlaskClient, login: Callable[..., Any], admin: User, name: str, scopes: list[str]
) -> tuple[str, str]:
    login(admin)
    token = csrf_token(client, "/settings/api-clients/new")
    response = client.post(
        "/settings/api-clients/new", data={"csrf_token": token, "name": name, "scopes": scopes}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_data(as_text=True)
    client_id = re.search(r'data-testid="client-id">([^<]+)<', body)
    secret = re.search(r'data-testid="client-secret">([^<]+)<', body)
    assert client_id
    assert secret
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/account")})
    return client_id.group(1), secret.group(1)


def get_token(client: FlaskClient, client_id: str, secret: str, scope: str | None = None) -> Any:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    data = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    # Authlib's token endpoint refuses plain http, as production runs behind https.
    return client.post(
        "/api/v1/oauth/token",
        data=data,
        headers={"Authorization": f"Basic {basic}"},
        base_url="https://attendwise.test",
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_client_with_the_scope_can_call_the_endpoint_and_is_audited_as_itself(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation,
    db_session: Any,
) -> None:  # fmt: skip
    admin = make_user(school, "school_admin")
    client_id, secret = register_client(client, login, admin, "LA case system", ["pupils:read"])
    issued = get_token(client, client_id, secret)
    assert issued.status_code == 200, issued.get_data(as_text=True)
    body = issued.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == TOKEN_MINUTES * 60
    assert body["scope"] == "pupils:read"
    response = client.get("/api/v1/pupils", headers=bearer(body["access_token"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    with tenancy.tenant_context(school.id):
        event = db_session.scalar(
            select(AuditEvent).where(AuditEvent.action == "pupils.list").order_by(AuditEvent.seq.desc())
        )
    assert event is not None
    assert event.actor_user_id is None
    assert event.actor_label == f"client:LA case system ({client_id})"


def test_without_the_scope_the_client_gets_403(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation
) -> None:
    admin = make_user(school, "school_admin")
    client_id, secret = register_client(client, login, admin, "Cases only", ["cases:read"])
    access = get_token(client, client_id, secret).get_json()["access_token"]
    assert client.get("/api/v1/pupils", headers=bearer(access)).status_code == 403


def test_a_narrower_token_than_the_client_can_be_asked_for(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation
) -> None:
    admin = make_user(school, "school_admin")
    client_id, secret = register_client(client, login, admin, "Two scopes", ["cases:read", "pupils:read"])
    issued = get_token(client, client_id, secret, scope="cases:read").get_json()
    assert issued["scope"] == "cases:read"
    assert client.get("/api/v1/pupils", headers=bearer(issued["access_token"])).status_code == 403


def test_a_client_is_not_a_person_to_the_account_endpoint(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation
) -> None:
    admin = make_user(school, "school_admin")
    client_id, secret = register_client(client, login, admin, "Machine", ["pupils:read"])
    access = get_token(client, client_id, secret).get_json()["access_token"]
    response = client.get("/api/v1/account/me", headers=bearer(access))
    assert response.status_code == 403
    assert "not a person" in response.get_data(as_text=True)


def test_an_expired_token_gets_401(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation,
    db_session: Any,
) -> None:  # fmt: skip
    admin = make_user(school, "school_admin")
    client_id, secret = register_client(client, login, admin, "Expiring", ["pupils:read"])
    access = get_token(client, client_id, secret).get_json()["access_token"]
    db_session.execute(update(ApiClientToken).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert client.get("/api/v1/pupils", headers=bearer(access)).status_code == 401


def test_a_wrong_secret_or_a_revoked_client_gets_no_token(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation,
    db_session: Any,
) -> None:  # fmt: skip
    admin = make_user(school, "school_admin")
    client_id, secret = register_client(client, login, admin, "Revoked", ["pupils:read"])
    assert get_token(client, client_id, "wrong").status_code == 401
    access = get_token(client, client_id, secret).get_json()["access_token"]
    row = db_session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    login(admin)
    client.post(f"/settings/api-clients/{row.id}/revoke", data={"csrf_token": csrf_token(client, "/account")})
    assert get_token(client, client_id, secret).status_code == 401
    assert client.get("/api/v1/pupils", headers=bearer(access)).status_code == 401


def test_a_client_sees_only_its_own_organisations_data(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User],
    make_school: Callable[..., Organisation], school: Organisation, db_session: Any,
) -> None:  # fmt: skip
    other = make_school()
    admin = make_user(school, "school_admin")
    client_id, secret = register_client(client, login, admin, "Ours", ["pupils:read"])
    access = get_token(client, client_id, secret).get_json()["access_token"]
    listing = client.get("/api/v1/pupils", headers=bearer(access)).get_json()
    assert listing["total"] == 0
    with tenancy.tenant_context(other.id):
        assert db_session.scalar(select(AuditEvent).where(AuditEvent.action == "pupils.list")) is None


def test_the_admin_finds_and_revokes_clients_from_the_navigation(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation
) -> None:
    admin = make_user(school, "school_admin")
    client_id, _secret = register_client(client, login, admin, "Trust dashboard", ["pupils:read"])
    login(admin)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/settings/api-clients"' in home
    listing = client.get("/settings/api-clients").get_data(as_text=True)
    assert "Trust dashboard" in listing
    assert client_id in listing
    assert "Revoke Trust dashboard" in listing


def test_admins_cannot_grant_administrative_or_unheld_scopes(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation
) -> None:
    login(make_user(school, "school_admin"))
    page = client.get("/settings/api-clients/new").get_data(as_text=True)
    assert 'value="pupils:read"' in page
    assert 'value="users:manage"' not in page
    response = client.post(
        "/settings/api-clients/new",
        data={
            "csrf_token": csrf_token(client, "/settings/api-clients/new"),
            "name": "x",
            "scopes": ["users:manage"],
        },
    )
    assert response.status_code == 400
    assert "Choose at least one permission your role has" in response.get_data(as_text=True)


def test_openapi_declares_client_credentials_and_each_endpoints_scope(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    scheme = spec["components"]["securitySchemes"]["clientCredentials"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/api/v1/oauth/token"
    assert "pupils:read" in scheme["flows"]["clientCredentials"]["scopes"]
    operation = spec["paths"]["/api/v1/pupils"]["get"]
    assert {"clientCredentials": ["pupils:read"]} in operation["security"]
