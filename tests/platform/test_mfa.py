"""TOTP MFA: enrolment, sign-in with a code or recovery code, single use, forced enrolment, throttling."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from attendwise.platform import crypto, mfa
from attendwise.tenants.models import Organisation, User
from tests.conftest import TEST_PASSWORD, csrf_token
from tests.platform.account_fixtures import (
    enrol_from_setup_page,
    manual_key,
    next_step_code,
    page_csrf,
    post_form,
)


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school()


@pytest.fixture
def officer(school: Organisation, make_user: Callable[..., User]) -> User:
    return make_user(school, "attendance_officer")


def sign_out(client: FlaskClient) -> None:
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/auth/login")})


def enrolled(client: FlaskClient, login: Callable[..., Any], user: User) -> tuple[str, list[str]]:
    """Sign in, turn MFA on from account settings, sign out; returns the key and recovery codes."""
    assert login(user).status_code == 302
    key, codes, response = enrol_from_setup_page(client, "/account/mfa/setup")
    assert response.status_code == 200
    sign_out(client)
    return key, codes


def submit_code(client: FlaskClient, code: str) -> Any:
    return post_form(client, "/auth/mfa", {"code": code})


def test_enrolment_shows_a_qr_code_and_ten_recovery_codes_once(
    client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    login(officer)
    key, codes, response = enrol_from_setup_page(client, "/account/mfa/setup")
    assert "only time you will see these codes" in response.get_data(as_text=True)
    assert len(codes) == len(set(codes)) == 10
    db_session.refresh(officer)
    assert officer.totp_enabled
    assert officer.totp_secret is not None
    assert key not in officer.totp_secret  # encrypted at rest
    assert mfa.secret_of(officer) == key
    assert all(code not in (officer.recovery_codes or "") for code in codes)  # stored hashed
    assert "10 unused recovery codes" in client.get("/account").get_data(as_text=True)


def test_turning_mfa_on_from_account_settings_needs_the_password(
    client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    login(officer)
    _key, codes, response = enrol_from_setup_page(client, "/account/mfa/setup", password="not-my-password")
    assert response.status_code == 400
    assert codes == []
    assert "current password is not right" in response.get_data(as_text=True)
    db_session.refresh(officer)
    assert not officer.totp_enabled


def test_a_wrong_confirmation_code_does_not_turn_mfa_on(
    client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    login(officer)
    response = post_form(client, "/account/mfa/setup", {"code": "000000"})
    assert response.status_code == 400
    assert "Enter the 6-digit code" in response.get_data(as_text=True)
    db_session.refresh(officer)
    assert not officer.totp_enabled


def test_sign_in_asks_for_the_code_after_the_password(
    client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    key, _codes = enrolled(client, login, officer)
    response = login(officer)
    assert response.headers["Location"].endswith("/auth/mfa")
    assert client.get("/").status_code == 302  # the password alone does not sign in
    assert client.get("/api/v1/account/me").status_code == 401
    assert client.get("/auth/login").headers["Location"].endswith("/auth/mfa")
    assert submit_code(client, "123456").status_code == 400
    assert submit_code(client, next_step_code(key)).status_code == 302
    assert client.get("/").status_code == 200


def test_a_code_works_only_once_and_reuse_is_logged(
    client: FlaskClient, login: Callable[..., Any], officer: User, caplog: pytest.LogCaptureFixture
) -> None:
    key, _codes = enrolled(client, login, officer)
    code = next_step_code(key)
    login(officer)
    assert submit_code(client, code).status_code == 302
    sign_out(client)
    caplog.set_level(logging.WARNING, logger="attendwise.auth")
    login(officer)
    reused = submit_code(client, code)
    assert reused.status_code == 400
    assert "already been used" in reused.get_data(as_text=True)
    assert any(getattr(r, "event", "") == "mfa.totp_reuse" for r in caplog.records)


def test_the_enrolment_code_cannot_be_replayed_at_sign_in(
    client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    login(officer)
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    key = manual_key(page)
    code = pyotp.TOTP(key).now()
    client.post(
        "/account/mfa/setup",
        data={"code": code, "current_password": TEST_PASSWORD, "csrf_token": page_csrf(page)},
    )
    sign_out(client)
    login(officer)
    assert submit_code(client, code).status_code == 400


def test_a_recovery_code_signs_in_once(
    client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    _key, codes = enrolled(client, login, officer)
    login(officer)
    assert submit_code(client, codes[3].upper()).status_code == 302
    sign_out(client)
    login(officer)
    assert submit_code(client, codes[3]).status_code == 400
    db_session.refresh(officer)
    assert mfa.recovery_codes_left(officer) == 9


def test_wrong_codes_are_throttled(client: FlaskClient, login: Callable[..., Any], officer: User) -> None:
    key, _codes = enrolled(client, login, officer)
    login(officer)
    for _ in range(10):
        assert submit_code(client, "000000").status_code == 400
    assert submit_code(client, next_step_code(key)).status_code == 429


def test_la_roles_must_enrol_before_anything_else(
    client: FlaskClient,
    login: Callable[..., Any],
    make_la: Callable[..., Organisation],
    make_user: Callable[..., User],
    db_session: Any,
) -> None:
    officer = make_user(make_la(), "la_attendance_officer")
    response = login(officer)
    assert response.headers["Location"].endswith("/auth/mfa/setup")
    assert client.get("/").status_code == 302
    assert client.get("/account").status_code == 302
    _key, codes, page = enrol_from_setup_page(client, "/auth/mfa/setup")
    assert len(codes) == 10
    assert 'href="/"' in page.get_data(as_text=True)
    assert client.get("/").status_code == 200
    db_session.refresh(officer)
    assert officer.totp_enabled


def test_an_organisation_can_require_mfa(
    client: FlaskClient,
    login: Callable[..., Any],
    school: Organisation,
    officer: User,
    db_session: Any,
) -> None:
    school.mfa_required = True
    db_session.commit()
    assert login(officer).headers["Location"].endswith("/auth/mfa/setup")


def test_a_signed_in_user_is_sent_to_enrol_when_their_organisation_starts_requiring_mfa(
    client: FlaskClient,
    login: Callable[..., Any],
    school: Organisation,
    officer: User,
    db_session: Any,
) -> None:
    login(officer)
    assert client.get("/").status_code == 200
    school.mfa_required = True
    db_session.commit()
    response = client.get("/")
    assert response.headers["Location"].endswith("/auth/mfa/setup")
    assert client.get("/").status_code == 302
    enrol_from_setup_page(client, "/auth/mfa/setup")
    assert client.get("/").status_code == 200


def test_mfa_cannot_be_turned_off_when_required(
    client: FlaskClient, login: Callable[..., Any], school: Organisation, officer: User, db_session: Any
) -> None:
    key, _codes = enrolled(client, login, officer)
    school.mfa_required = True
    db_session.commit()
    login(officer)
    submit_code(client, next_step_code(key))
    assert client.get("/account/mfa/disable").status_code == 403
    token = page_csrf(client.get("/account").get_data(as_text=True))
    refused = client.post(
        "/account/mfa/disable", data={"current_password": TEST_PASSWORD, "csrf_token": token}
    )
    assert refused.status_code == 403
    assert "requires two-factor authentication" in refused.get_data(as_text=True)
    db_session.refresh(officer)
    assert officer.totp_enabled


def test_mfa_can_be_turned_off_with_the_password_when_optional(
    client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    key, _codes = enrolled(client, login, officer)
    login(officer)
    submit_code(client, next_step_code(key))
    assert post_form(client, "/account/mfa/disable", {"current_password": "wrong"}).status_code == 400
    assert post_form(client, "/account/mfa/disable", {"current_password": TEST_PASSWORD}).status_code == 302
    db_session.refresh(officer)
    assert not officer.totp_enabled
    assert officer.totp_secret is None


def test_new_recovery_codes_replace_the_old_ones(
    client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    key, old_codes = enrolled(client, login, officer)
    login(officer)
    submit_code(client, next_step_code(key))
    response = post_form(client, "/account/mfa/recovery-codes", {"current_password": TEST_PASSWORD})
    assert "only time you will see these codes" in response.get_data(as_text=True)
    sign_out(client)
    login(officer)
    assert submit_code(client, old_codes[0]).status_code == 400


def test_secrets_survive_key_rotation(app: Flask) -> None:
    old, new = crypto.generate_key(), crypto.generate_key()
    with app.test_request_context():
        saved = app.config["ENCRYPTION_KEYS"]
        try:
            app.config["ENCRYPTION_KEYS"] = old
            token = crypto.encrypt("JBSWY3DPEHPK3PXP")
            app.config["ENCRYPTION_KEYS"] = f"{new},{old}"
            assert crypto.decrypt(token) == "JBSWY3DPEHPK3PXP"
            rotated = crypto.rotate(token)
            app.config["ENCRYPTION_KEYS"] = new
            assert crypto.decrypt(rotated) == "JBSWY3DPEHPK3PXP"
            with pytest.raises(crypto.CryptoError):
                crypto.decrypt(token)
        finally:
            app.config["ENCRYPTION_KEYS"] = saved


def test_production_needs_explicit_encryption_keys() -> None:
    with pytest.raises(crypto.CryptoError, match="must be set in production"):
        crypto.keyring("", "x" * 40, production=True)
    with pytest.raises(crypto.CryptoError, match="key 2 is not a valid Fernet key"):
        crypto.keyring(f"{crypto.generate_key()},not-a-key", "x" * 40, production=True)


def test_keys_rotate_re_encrypts_stored_secrets(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    key, _codes = enrolled(client, login, officer)
    old, new = crypto.generate_key(), crypto.generate_key()
    saved = app.config["ENCRYPTION_KEYS"]
    try:
        with app.test_request_context():
            app.config["ENCRYPTION_KEYS"] = ""
            plain = mfa.secret_of(officer)
            app.config["ENCRYPTION_KEYS"] = old
            officer.totp_secret = crypto.encrypt(plain)
            db_session.commit()
        app.config["ENCRYPTION_KEYS"] = new
        refused = app.test_cli_runner().invoke(args=["keys", "rotate"])
        assert refused.exit_code != 0
        assert f"user(s) {officer.id}" in refused.output
        app.config["ENCRYPTION_KEYS"] = f"{new},{old}"
        result = app.test_cli_runner().invoke(args=["keys", "rotate"])
        assert result.exit_code == 0, result.output
        assert "re-encrypted 1 TOTP secret(s)" in result.output
        app.config["ENCRYPTION_KEYS"] = new
        db_session.refresh(officer)
        with app.test_request_context():
            assert mfa.secret_of(officer) == key
    finally:
        app.config["ENCRYPTION_KEYS"] = saved


def test_the_page_asked_for_is_reached_after_the_second_factor(
    client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    key, _codes = enrolled(client, login, officer)
    bounced = client.get("/account")
    assert "next=/account" in bounced.headers["Location"]
    page = client.get(bounced.headers["Location"]).get_data(as_text=True)
    client.post(
        bounced.headers["Location"],
        data={"email": officer.email, "password": TEST_PASSWORD, "csrf_token": page_csrf(page)},
    )
    assert submit_code(client, next_step_code(key)).headers["Location"] == "/account"


def test_a_half_finished_sign_in_leaves_nothing_for_the_next_person(
    client: FlaskClient,
    login: Callable[..., Any],
    officer: User,
    make_la: Callable[..., Organisation],
    make_user: Callable[..., User],
) -> None:
    la_officer = make_user(make_la(), "la_attendance_officer")
    login(la_officer)
    setup = client.get("/auth/mfa/setup").get_data(as_text=True)
    first_key = manual_key(setup)
    assert client.get("/auth/login").headers["Location"].endswith("/auth/mfa/setup")
    other = client.post(
        "/auth/login",
        data={"email": officer.email, "password": TEST_PASSWORD, "csrf_token": page_csrf(setup)},
    )
    assert other.status_code == 302
    assert client.get("/").status_code == 200
    assert manual_key(client.get("/account/mfa/setup").get_data(as_text=True)) != first_key
