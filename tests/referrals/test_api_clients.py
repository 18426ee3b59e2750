"""An LA's case-management system pulls referrals with an OAuth2 client: `referrals:read` lists
the LA's own referrals and nothing else; without the scope the same call is refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from attendwise.tenants.models import Organisation, User
from tests.platform.account_fixtures import enrol_from_setup_page
from tests.platform.test_oauth_clients import bearer, get_token
from tests.referrals.conftest import World
from tests.referrals.test_views import _fixed_today, _school_submits, _token

__all__ = ["_fixed_today"]


def _register(
    client: FlaskClient, login: Callable[..., Any], admin: User, scopes: list[str]
) -> tuple[str, str]:
    """The LA administrator signs in (with MFA, as LA roles must) and registers a client."""
    login(admin)
    enrol_from_setup_page(client, "/auth/mfa/setup")
    page = client.get("/settings/api-clients/new").get_data(as_text=True)
    response = client.post(
        "/settings/api-clients/new",
        data={"csrf_token": _token(page), "name": "LA case system", "scopes": scopes},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    client_id = re.search(r'data-testid="client-id">([^<]+)<', body)
    secret = re.search(r'data-testid="client-secret">([^<]+)<', body)
    assert client_id
    assert secret
    client.post("/auth/logout", data={"csrf_token": _token(body)})
    return client_id.group(1), secret.group(1)


def test_referrals_read_lists_the_las_own_referrals_and_nothing_else(
    client: FlaskClient,
    login: Callable[..., Any],
    world: World,
    make_la: Callable[..., Organisation],
    make_user: Callable[..., User],
) -> None:
    _school_submits(client, login, world)

    own_id, own_secret = _register(client, login, make_user(world.la, "la_admin"), ["referrals:read"])
    token = get_token(client, own_id, own_secret).get_json()["access_token"]
    listed = client.get("/api/v1/referrals", headers=bearer(token))
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["total"] == 1
    received_id = body["items"][0]["id"]
    assert client.get(f"/api/v1/referrals/{received_id}", headers=bearer(token)).status_code == 200
    # The scope reaches referrals only: pupils, cases and the LA's own members are refused.
    assert client.get("/api/v1/pupils", headers=bearer(token)).status_code == 403
    assert client.get("/api/v1/organisation/members", headers=bearer(token)).status_code == 403

    other_la = make_la()
    other_id, other_secret = _register(client, login, make_user(other_la, "la_admin"), ["referrals:read"])
    other_token = get_token(client, other_id, other_secret).get_json()["access_token"]
    assert client.get("/api/v1/referrals", headers=bearer(other_token)).get_json()["total"] == 0
    assert client.get(f"/api/v1/referrals/{received_id}", headers=bearer(other_token)).status_code == 404


def test_without_referrals_read_the_client_gets_403(
    client: FlaskClient, login: Callable[..., Any], world: World, make_user: Callable[..., User]
) -> None:
    client_id, secret = _register(client, login, make_user(world.la, "la_admin"), ["insights:read"])
    token = get_token(client, client_id, secret).get_json()["access_token"]
    assert client.get("/api/v1/referrals", headers=bearer(token)).status_code == 403
