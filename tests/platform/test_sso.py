"""Staff SSO against a provider whose ID tokens the test writes (signed by keys it controls).

The app talks to the provider over real loopback HTTP (discovery, JWKS, token endpoint); the
test plays the browser, following the authorization redirect by hand.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from attendwise.platform import crypto, tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.sso import SsoProvider, mfa_asserted
from attendwise.tenants.models import Identity, Organisation, User
from tests.conftest import csrf_token
from tests.platform.sso_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    CraftedProvider,
    authorize_params,
    crafted_provider,
)

__all__ = ["crafted_provider"]


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


@pytest.fixture
def sso(db_session: Any, school: Organisation, crafted_provider: CraftedProvider) -> SsoProvider:
    provider = SsoProvider(
        org_id=school.id,
        preset="custom",
        discovery_url=crafted_provider.discovery_url,
        client_id=CLIENT_ID,
        client_secret=crypto.encrypt(CLIENT_SECRET),
        allowed_domains="school.test",
        sso_required=False,
        enabled=True,
    )
    db_session.add(provider)
    db_session.flush()
    return provider


def start(
    client: FlaskClient, email: str = "sam@school.test", next_path: str | None = None
) -> dict[str, str]:
    """Enter the email address, follow the same-site continue page, and read the provider redirect."""
    path = "/auth/sso" + (f"?next={next_path}" if next_path else "")
    page = client.post(path, data={"email": email, "csrf_token": csrf_token(client, "/auth/sso")})
    assert page.status_code == 200, page.get_data(as_text=True)
    begin = continue_url(page.get_data(as_text=True))
    response = client.get(begin)
    assert response.status_code == 302, response.get_data(as_text=True)
    return authorize_params(response.headers["Location"])


def continue_url(body: str) -> str:
    match = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', body)
    assert match, "no continue page"
    return html.unescape(match.group(1))


def finish(
    client: FlaskClient,
    provider: CraftedProvider,
    params: dict[str, str],
    token: Callable[[dict[str, Any]], str] | str,
    code: str = "code-1",
) -> Any:
    provider.code_challenges[code] = params["code_challenge"]
    provider.next_id_token = token if callable(token) else (lambda _form: token)
    return client.get(f"/auth/sso/callback?code={code}&state={params['state']}")


def signed_in_as(client: FlaskClient) -> str:
    return client.get("/account").get_data(as_text=True)


def test_invited_member_signs_in_and_is_linked_by_issuer_and_subject(
    client: FlaskClient, db_session: Any, make_user: Callable[..., User], school: Organisation,
    sso: SsoProvider, crafted_provider: CraftedProvider,
) -> None:  # fmt: skip
    user = make_user(school, "attendance_officer", email="sam@school.test")
    params = start(client, next_path="/account")
    assert params["code_challenge_method"] == "S256"
    assert params["nonce"]
    response = finish(
        client, crafted_provider, params, crafted_provider.sign(crafted_provider.claims(params["nonce"]))
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    assert "sam@school.test" in signed_in_as(client)
    identity = db_session.scalar(select(Identity).where(Identity.issuer == crafted_provider.url))
    assert (identity.user_id, identity.subject) == (user.id, "subject-123")
    sent = crafted_provider.token_requests[-1]
    assert sent["code_verifier"]
    assert sent["grant_type"] == "authorization_code"


def test_a_returning_user_is_found_by_subject_even_when_the_email_changed(
    client: FlaskClient, make_user: Callable[..., User], school: Organisation,
    sso: SsoProvider, crafted_provider: CraftedProvider,
) -> None:  # fmt: skip
    make_user(school, "attendance_officer", email="sam@school.test")
    params = start(client)
    finish(client, crafted_provider, params, crafted_provider.sign(crafted_provider.claims(params["nonce"])))
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/account")})
    params = start(client)
    claims = crafted_provider.claims(params["nonce"], email="samantha.new@school.test")
    response = finish(client, crafted_provider, params, crafted_provider.sign(claims), code="code-2")
    assert response.status_code == 302
    assert "sam@school.test" in signed_in_as(client)


def test_an_uninvited_person_cannot_register_themselves(
    client: FlaskClient, db_session: Any, sso: SsoProvider, crafted_provider: CraftedProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    params = start(client, email="stranger@school.test")
    claims = crafted_provider.claims(params["nonce"], email="stranger@school.test")
    with caplog.at_level(logging.INFO, logger="attendwise.auth"):
        response = finish(client, crafted_provider, params, crafted_provider.sign(claims))
    assert response.status_code == 400
    assert "You have not been invited" in response.get_data(as_text=True)
    assert db_session.scalar(select(User).where(User.email == "stranger@school.test")) is None
    assert any(getattr(r, "reason", "") == "no invited user for this account" for r in caplog.records)


def test_a_member_of_another_organisation_is_not_linked(
    client: FlaskClient, make_user: Callable[..., User], make_school: Callable[..., Organisation],
    sso: SsoProvider, crafted_provider: CraftedProvider,
) -> None:  # fmt: skip
    make_user(make_school(), "attendance_officer", email="sam@school.test")
    params = start(client)
    response = finish(
        client, crafted_provider, params, crafted_provider.sign(crafted_provider.claims(params["nonce"]))
    )
    assert response.status_code == 400
    assert "You have not been invited" in response.get_data(as_text=True)


REFUSALS = {
    "wrong issuer": (
        lambda p, n: p.sign(p.claims(n, iss="https://evil.example")),
        "ID token rejected: invalid_claim",
    ),
    "wrong audience": (
        lambda p, n: p.sign(p.claims(n, aud="other-app", azp="other-app")),
        "ID token rejected: invalid_claim",
    ),
    "expired": (
        lambda p, n: p.sign(p.claims(n, iat=1_700_000_000, exp=1_700_000_300)),
        "ID token rejected: expired_token",
    ),
    "bad nonce": (lambda p, n: p.sign(p.claims("not-the-nonce")), "ID token rejected: invalid_claim"),
    "alg none": (lambda p, n: p.unsigned(p.claims(n)), "ID token rejected"),
    "another key": (lambda p, n: p.sign(p.claims(n), key=p.other_key), "ID token rejected: bad_signature"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_id_token_is_refused_with_a_clear_message_and_logged(
    case: str, client: FlaskClient, db_session: Any, make_user: Callable[..., User], school: Organisation,
    sso: SsoProvider, crafted_provider: CraftedProvider, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    make_user(school, "attendance_officer", email="sam@school.test")
    build, reason = REFUSALS[case]
    params = start(client)
    with caplog.at_level(logging.INFO, logger="attendwise.auth"):
        response = finish(client, crafted_provider, params, build(crafted_provider, params["nonce"]))
    assert response.status_code == 400
    assert "The sign-in could not be verified" in response.get_data(as_text=True)
    refusals = [r for r in caplog.records if r.getMessage() == "sso.refused"]
    assert refusals
    assert refusals[0].reason.startswith(reason)  # type: ignore[attr-defined]
    assert client.get("/account").status_code == 302  # still signed out
    assert db_session.scalar(select(Identity).where(Identity.issuer == crafted_provider.url)) is None


def test_a_replayed_state_is_refused(
    client: FlaskClient, make_user: Callable[..., User], school: Organisation,
    sso: SsoProvider, crafted_provider: CraftedProvider, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    make_user(school, "attendance_officer", email="sam@school.test")
    params = start(client)
    good = crafted_provider.sign(crafted_provider.claims(params["nonce"]))
    assert finish(client, crafted_provider, params, good).status_code == 302
    with caplog.at_level(logging.INFO, logger="attendwise.auth"):
        replay = client.get(f"/auth/sso/callback?code=code-1&state={params['state']}")
    assert replay.status_code == 400
    body = replay.get_data(as_text=True)
    assert "not been signed in" in body
    assert any(r.getMessage() == "sso.refused" for r in caplog.records)


def test_a_forged_state_is_refused(
    client: FlaskClient, make_user: Callable[..., User], school: Organisation,
    sso: SsoProvider, crafted_provider: CraftedProvider,
) -> None:  # fmt: skip
    make_user(school, "attendance_officer", email="sam@school.test")
    params = start(client)
    params["state"] = "forged-state"
    response = finish(client, crafted_provider, params, crafted_provider.sign(crafted_provider.claims("x")))
    assert response.status_code == 400
    assert "already been used or has expired" in response.get_data(as_text=True)
    assert crafted_provider.token_requests == []  # the code was never exchanged


def test_mfa_asserted_by_the_provider_skips_totp_for_a_role_that_requires_mfa(
    client: FlaskClient, make_user: Callable[..., User], make_la: Callable[..., Organisation],
    db_session: Any, crafted_provider: CraftedProvider,
) -> None:  # fmt: skip
    la = make_la()
    db_session.add(
        SsoProvider(org_id=la.id, preset="custom", discovery_url=crafted_provider.discovery_url,
                    client_id=CLIENT_ID, client_secret=crypto.encrypt(CLIENT_SECRET),
                    allowed_domains="school.test", sso_required=False, enabled=True)
    )  # fmt: skip
    make_user(la, "la_attendance_officer", email="sam@school.test")
    params = start(client)
    claims = crafted_provider.claims(params["nonce"], amr=["pwd", "mfa"])
    response = finish(client, crafted_provider, params, crafted_provider.sign(claims))
    assert response.status_code == 302
    assert "/auth/mfa" not in response.headers["Location"]
    assert client.get("/account").status_code == 200


def test_mfa_required_and_not_asserted_asks_for_totp(
    client: FlaskClient, make_user: Callable[..., User], make_la: Callable[..., Organisation],
    db_session: Any, crafted_provider: CraftedProvider,
) -> None:  # fmt: skip
    la = make_la()
    db_session.add(
        SsoProvider(org_id=la.id, preset="custom", discovery_url=crafted_provider.discovery_url,
                    client_id=CLIENT_ID, client_secret=crypto.encrypt(CLIENT_SECRET),
                    allowed_domains="school.test", sso_required=False, enabled=True)
    )  # fmt: skip
    make_user(la, "la_attendance_officer", email="sam@school.test")
    params = start(client)
    response = finish(
        client, crafted_provider, params, crafted_provider.sign(crafted_provider.claims(params["nonce"]))
    )
    assert response.headers["Location"].endswith("/auth/mfa/setup")
    assert client.get("/account").status_code == 302  # not signed in until TOTP is set up


def test_amr_reading() -> None:
    assert mfa_asserted(["mfa"])
    assert mfa_asserted(["pwd", "otp"])
    assert not mfa_asserted(["pwd"])
    assert not mfa_asserted("mfa")
    assert not mfa_asserted(None)


def test_sign_out_continues_to_the_providers_end_session_endpoint(
    client: FlaskClient, make_user: Callable[..., User], school: Organisation,
    sso: SsoProvider, crafted_provider: CraftedProvider,
) -> None:  # fmt: skip
    make_user(school, "attendance_officer", email="sam@school.test")
    params = start(client)
    id_token = crafted_provider.sign(crafted_provider.claims(params["nonce"]))
    finish(client, crafted_provider, params, id_token)
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert response.headers["Location"] == "/auth/sso/signed-out"
    assert client.get("/account").status_code == 302  # signed out of Attendwise already
    location = continue_url(client.get("/auth/sso/signed-out").get_data(as_text=True))
    assert location.startswith(crafted_provider.url + "/logout?")
    sent = authorize_params(location)
    assert sent["id_token_hint"] == id_token
    assert sent["post_logout_redirect_uri"] == "http://attendwise.test/auth/login"
    assert client.get("/auth/sso/signed-out").headers["Location"] == "/auth/login"  # shown once


def test_sso_required_refuses_the_password(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], sso: SsoProvider,
    school: Organisation, db_session: Any,
) -> None:  # fmt: skip
    user = make_user(school, "attendance_officer", email="sam@school.test")
    sso.sso_required = True
    db_session.flush()
    response = login(user)
    assert response.status_code == 400
    assert "Sign in with your organisation" in response.get_data(as_text=True)
    assert client.get("/account").status_code == 302


def test_an_unknown_domain_is_told_to_use_a_password(client: FlaskClient, sso: SsoProvider) -> None:
    response = client.post(
        "/auth/sso", data={"email": "sam@elsewhere.test", "csrf_token": csrf_token(client, "/auth/sso")}
    )
    assert response.status_code == 400
    assert "No organisation signs in with its own account" in response.get_data(as_text=True)


def test_login_page_links_to_sso(client: FlaskClient) -> None:
    assert "Sign in with your organisation" in client.get("/auth/login").get_data(as_text=True)


def test_admin_configures_entra_with_the_secret_encrypted_and_audited(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation,
    db_session: Any,
) -> None:  # fmt: skip
    admin = make_user(school, "school_admin")
    login(admin)
    token = csrf_token(client, "/settings/sso")
    form = {
        "csrf_token": token,
        "preset": "entra",
        "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "client_id": "app-id",
        "client_secret": "very-secret-value",
        "allowed_domains": "School.test, trust.test",
        "enabled": "yes",
    }
    response = client.post("/settings/sso", data=form)
    assert response.status_code == 302
    provider = db_session.scalar(select(SsoProvider).where(SsoProvider.org_id == school.id))
    assert provider.discovery_url == (
        "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/.well-known/openid-configuration"
    )
    assert provider.domains == ["school.test", "trust.test"]
    assert "very-secret-value" not in provider.client_secret
    assert crypto.decrypt(provider.client_secret) == "very-secret-value"
    with tenancy.tenant_context(school.id):
        event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "sso_provider.create"))
    assert event is not None
    assert "very-secret-value" not in str(event.detail)


def test_settings_errors_name_the_field(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation
) -> None:
    login(make_user(school, "school_admin"))
    token = csrf_token(client, "/settings/sso")
    response = client.post(
        "/settings/sso",
        data={"csrf_token": token, "preset": "custom", "discovery_url": "http://idp.example.com/x",
              "client_id": "", "allowed_domains": "not a domain"},
    )  # fmt: skip
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "The discovery URL must start with https://" in body
    assert "Enter the client ID" in body
    assert "Enter the client secret" in body
    assert "These are not email domains: not, a, domain" in body


def test_only_an_admin_may_configure_sso(
    client: FlaskClient, login: Callable[..., Any], make_user: Callable[..., User], school: Organisation
) -> None:
    login(make_user(school, "attendance_officer"))
    assert client.get("/settings/sso").status_code == 403
