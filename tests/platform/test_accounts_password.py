"""Password reset by emailed one-time link (real SMTP), and changing the password in account settings."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from attendwise.platform.db import utcnow
from attendwise.platform.models import PasswordResetToken
from attendwise.tenants.models import Organisation, User
from tests.conftest import TEST_PASSWORD, FreshGlobalsClient
from tests.platform.account_fixtures import body_text, post_form, smtp_server

__all__ = ["smtp_server"]

NEW_PASSWORD = "a-brand-new-long-passphrase"


@pytest.fixture
def officer(make_school: Callable[..., Organisation], make_user: Callable[..., User]) -> User:
    return make_user(make_school(), "attendance_officer")


def request_reset(client: FlaskClient, email: str) -> Any:
    return post_form(client, "/auth/reset", {"email": email})


def emailed_link(smtp_server: Any) -> str:
    [message] = smtp_server.messages
    match = re.search(r"https?://\S+/auth/reset/(\S+)", body_text(message))
    assert match, "no reset link in the email"
    return "/auth/reset/" + match.group(1)


def test_reset_link_is_emailed_and_sets_a_new_password(
    app: Flask,
    client: FlaskClient,
    login: Callable[..., Any],
    officer: User,
    smtp_server: Any,
    db_session: Any,
) -> None:
    page = request_reset(client, officer.email)
    assert page.status_code == 200
    assert "Check your email" in page.get_data(as_text=True)
    [message] = smtp_server.messages
    assert message["To"] == officer.email
    assert message["Subject"] == "Reset your Attendwise password"
    link = emailed_link(smtp_server)
    assert body_text(message).count(app.config["BASE_URL"]) == 1
    raw = link.rsplit("/", 1)[1]
    stored = db_session.scalars(select(PasswordResetToken.token_hash)).all()
    assert raw not in stored  # only the hash is kept

    assert "Choose a new password" in client.get(link).get_data(as_text=True)
    done = post_form(client, link, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert done.status_code == 302
    assert login(officer, TEST_PASSWORD).status_code == 400
    assert login(officer, NEW_PASSWORD).status_code == 302


def test_reset_link_works_once(client: FlaskClient, officer: User, smtp_server: Any) -> None:
    request_reset(client, officer.email)
    link = emailed_link(smtp_server)
    post_form(client, link, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    again = client.get(link)
    assert again.status_code == 400
    assert "This link does not work" in again.get_data(as_text=True)


def test_an_expired_link_does_not_work(
    client: FlaskClient, officer: User, smtp_server: Any, db_session: Any
) -> None:
    request_reset(client, officer.email)
    link = emailed_link(smtp_server)
    db_session.execute(update(PasswordResetToken).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    db_session.commit()
    assert client.get(link).status_code == 400


def test_unknown_email_gets_the_same_page_and_no_mail(client: FlaskClient, smtp_server: Any) -> None:
    page = request_reset(client, "nobody@example.test")
    assert page.status_code == 200
    assert "Check your email" in page.get_data(as_text=True)
    assert smtp_server.messages == []


def test_reset_requests_are_limited_per_account(client: FlaskClient, officer: User, smtp_server: Any) -> None:
    for _ in range(5):
        assert request_reset(client, officer.email).status_code == 200
    assert len(smtp_server.messages) == 3


def test_a_reset_ends_every_session_and_clears_a_lockout(
    app: Flask,
    client: FlaskClient,
    login: Callable[..., Any],
    officer: User,
    smtp_server: Any,
) -> None:
    other = FreshGlobalsClient(app, app.response_class, use_cookies=True)
    assert login(officer).status_code == 302
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"], domain="attendwise.test")
    assert cookie is not None
    other.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value, domain="attendwise.test")
    assert other.get("/").status_code == 200
    for _ in range(10):
        login(officer, "wrong-password-guess")
    assert login(officer, TEST_PASSWORD).status_code == 429
    request_reset(client, officer.email)
    link = emailed_link(smtp_server)
    post_form(client, link, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert other.get("/").status_code == 302
    assert login(officer, NEW_PASSWORD).status_code == 302


def test_the_new_password_must_be_long_enough_and_confirmed(
    client: FlaskClient, officer: User, smtp_server: Any
) -> None:
    request_reset(client, officer.email)
    link = emailed_link(smtp_server)
    short = post_form(client, link, {"new_password": "short", "confirm_password": "short"})
    assert short.status_code == 400
    assert "at least 12 characters" in short.get_data(as_text=True)
    mismatch = post_form(client, link, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD + "x"})
    assert "do not match" in mismatch.get_data(as_text=True)
    assert client.get(link).status_code == 200  # failed attempts do not use the link up


def test_changing_the_password_signs_out_other_sessions_but_not_this_one(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    other = FreshGlobalsClient(app, app.response_class, use_cookies=True)
    login(officer)
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"], domain="attendwise.test")
    assert cookie is not None
    other.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value, domain="attendwise.test")
    response = post_form(
        client,
        "/account/password",
        {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert "signed out everywhere else" in client.get("/account").get_data(as_text=True)
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 302


def test_changing_the_password_needs_the_current_one(
    client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    login(officer)
    response = post_form(
        client,
        "/account/password",
        {
            "current_password": "not-my-password",
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 400
    assert "current password is not right" in response.get_data(as_text=True)
    assert login(officer, TEST_PASSWORD).status_code == 302


def test_a_mail_failure_does_not_reveal_that_the_account_exists(
    app: Flask, client: FlaskClient, officer: User, caplog: pytest.LogCaptureFixture
) -> None:
    saved = app.config["MAIL_SERVER"], app.config["MAIL_PORT"]
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=1)
    try:
        known = request_reset(client, officer.email)
        unknown = request_reset(client, "nobody@example.test")
    finally:
        app.config["MAIL_SERVER"], app.config["MAIL_PORT"] = saved
    assert known.status_code == unknown.status_code == 200
    assert "Check your email" in known.get_data(as_text=True)
    assert any(getattr(r, "event", "") == "password_reset.mail_failed" for r in caplog.records)
