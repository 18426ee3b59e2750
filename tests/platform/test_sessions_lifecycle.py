"""Server-side sessions: replay after logout or disablement, rotation, idle and absolute limits, flags."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from attendwise.platform.config import Settings
from attendwise.platform.db import utcnow
from attendwise.platform.sessions import WebSession, revoke_user_sessions
from attendwise.tenants.models import Organisation, User
from tests.conftest import TEST_PASSWORD, FreshGlobalsClient, csrf_token
from tests.platform.account_fixtures import page_csrf, session_cookie

HOST = "attendwise.test"


@pytest.fixture
def officer(make_school: Callable[..., Organisation], make_user: Callable[..., User]) -> User:
    return make_user(make_school(), "attendance_officer")


def replay(client: FlaskClient, app: Flask, token: str) -> Any:
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], token, domain=HOST)
    return client.get("/")


def signed_in_token(client: FlaskClient, app: Flask, login: Callable[..., Any], user: User) -> str:
    assert login(user).status_code == 302
    token = session_cookie(client, app, HOST)
    assert token
    assert client.get("/").status_code == 200
    return token


def row_for(db_session: Any, token: str) -> WebSession:
    row = db_session.scalar(
        select(WebSession).where(WebSession.id == hashlib.sha256(token.encode()).hexdigest())
    )
    assert row is not None
    return row


def test_replaying_the_cookie_after_logout_is_refused(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    token = signed_in_token(client, app, login, officer)
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    response = replay(client, app, token)
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_replaying_the_cookie_after_the_account_is_disabled_is_refused(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    token = signed_in_token(client, app, login, officer)
    officer.active = False
    revoke_user_sessions(officer.id)
    db_session.commit()
    assert replay(client, app, token).status_code == 302


def test_a_disabled_account_is_refused_even_if_its_session_row_survived(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    token = signed_in_token(client, app, login, officer)
    officer.active = False
    db_session.commit()
    assert replay(client, app, token).status_code == 302


def test_revoking_sessions_signs_the_user_out_everywhere(
    app: Flask, login: Callable[..., Any], officer: User, db_session: Any, client: FlaskClient
) -> None:
    token = signed_in_token(client, app, login, officer)
    revoke_user_sessions(officer.id)
    db_session.commit()
    assert replay(client, app, token).status_code == 302


def test_sign_in_issues_a_new_session_id_and_ends_the_old_one(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    client.get("/auth/login")
    before = session_cookie(client, app, HOST)
    assert before
    token = signed_in_token(client, app, login, officer)
    assert token != before
    assert row_for(db_session, before).revoked_at is not None
    assert row_for(db_session, token).user_id == officer.id


def test_the_cookie_holds_only_a_random_token(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    token = signed_in_token(client, app, login, officer)
    assert len(token) >= 43  # 32 random bytes, url-safe base64
    assert "." not in token  # not a signed payload like Flask's default cookie session
    assert db_session.get(WebSession, token) is None  # stored only as its hash


def test_thirty_minutes_idle_ends_the_session(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    token = signed_in_token(client, app, login, officer)
    key = hashlib.sha256(token.encode()).hexdigest()
    db_session.execute(
        update(WebSession)
        .where(WebSession.id == key)
        .values(last_seen_at=utcnow() - dt.timedelta(minutes=29))
    )
    db_session.commit()
    assert client.get("/").status_code == 200  # 29 minutes idle: still signed in
    db_session.execute(
        update(WebSession)
        .where(WebSession.id == key)
        .values(last_seen_at=utcnow() - dt.timedelta(minutes=31))
    )
    db_session.commit()
    assert client.get("/").status_code == 302


def test_page_views_refresh_last_seen_once_a_minute_not_on_every_request(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    token = signed_in_token(client, app, login, officer)
    key = hashlib.sha256(token.encode()).hexdigest()

    def seen_ago(seconds: int) -> dt.datetime:
        at = utcnow() - dt.timedelta(seconds=seconds)
        db_session.execute(update(WebSession).where(WebSession.id == key).values(last_seen_at=at))
        db_session.commit()
        return at

    def last_seen() -> dt.datetime:
        db_session.expire_all()
        return db_session.get(WebSession, key).last_seen_at.replace(tzinfo=dt.UTC)

    recent = seen_ago(20)
    assert client.get("/").status_code == 200
    assert last_seen() == recent  # seen 20 s ago: no write
    seen_ago(90)
    before = utcnow()
    assert client.get("/").status_code == 200
    assert last_seen() >= before  # 90 s stale: refreshed


def test_twelve_hours_ends_the_session_however_active(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User, db_session: Any
) -> None:
    token = signed_in_token(client, app, login, officer)
    row = row_for(db_session, token)
    assert row.expires_at - row.created_at == dt.timedelta(hours=12)
    db_session.execute(
        update(WebSession)
        .where(WebSession.id == row.id)
        .values(expires_at=utcnow() - dt.timedelta(seconds=1))
    )
    db_session.commit()
    assert client.get("/").status_code == 302


def test_session_cookie_flags(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    response = login(officer)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("aw_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


def test_production_cookie_is_secure_and_host_only(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    production = Settings(env="production", secret_key="x" * 40).flask_config()
    assert production["SESSION_COOKIE_SECURE"] is True
    assert production["SESSION_COOKIE_NAME"].startswith("__Host-")
    saved = {k: app.config[k] for k in ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_NAME")}
    app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_NAME=production["SESSION_COOKIE_NAME"])
    try:
        response = client.get("/auth/login", base_url=f"https://{HOST}")
    finally:
        app.config.update(saved)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("__Host-aw_session="))
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert "Domain" not in cookie


def test_the_account_page_signs_out_every_other_browser(
    app: Flask, client: FlaskClient, login: Callable[..., Any], officer: User
) -> None:
    other = FreshGlobalsClient(app, app.response_class, use_cookies=True)
    login(officer)
    assert "signed in only here" in client.get("/account").get_data(as_text=True)
    page = other.get("/auth/login").get_data(as_text=True)
    other.post(
        "/auth/login",
        data={"email": officer.email, "password": TEST_PASSWORD, "csrf_token": page_csrf(page)},
    )
    assert other.get("/").status_code == 200
    account = client.get("/account").get_data(as_text=True)
    assert "also signed in on 1 other browser or device" in account
    ended = client.post("/account/sessions/end-others", data={"csrf_token": page_csrf(account)})
    assert ended.status_code == 302
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 302
    assert "signed in only here" in client.get("/account").get_data(as_text=True)
