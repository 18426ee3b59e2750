"""Sign-in: generic errors, throttling per account and per IP (database and Redis), logging, rehash."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from attendwise.platform import throttle
from attendwise.platform.models import ThrottleBucket
from attendwise.platform.passwords import MEMORY_KIB
from attendwise.tenants.models import Identity, Organisation, User
from tests.conftest import TEST_PASSWORD, csrf_token
from tests.platform.account_fixtures import Clock, clock, throttle_store

__all__ = ["clock", "throttle_store"]

WRONG = "not-the-password-at-all"


def attempt(client: FlaskClient, email: str, password: str, ip: str = "192.0.2.10") -> Any:
    environ = {"REMOTE_ADDR": ip}
    token = csrf_token(client)
    return client.post(
        "/auth/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base=environ,
    )


@pytest.fixture
def officer(make_school: Callable[..., Organisation], make_user: Callable[..., User]) -> User:
    return make_user(make_school(), "attendance_officer")


def test_wrong_password_and_unknown_account_get_the_same_answer(client: FlaskClient, officer: User) -> None:
    wrong = attempt(client, officer.email, WRONG)
    unknown = attempt(client, "nobody@example.test", WRONG)
    assert wrong.status_code == unknown.status_code == 400
    for response in (wrong, unknown):
        assert "The email address or password is not right" in response.get_data(as_text=True)


def test_right_password_signs_in(client: FlaskClient, officer: User, db_session: Any) -> None:
    response = attempt(client, officer.email.upper(), TEST_PASSWORD)
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    identity = db_session.scalar(select(Identity).where(Identity.user_id == officer.id))
    db_session.refresh(identity)
    assert identity.issuer == Identity.LOCAL_ISSUER
    assert identity.last_used_at is not None
    db_session.refresh(officer)
    assert officer.last_login_at is not None


def test_ten_wrong_passwords_lock_the_account_until_the_delay_passes(
    client: FlaskClient, officer: User, throttle_store: str, clock: Clock
) -> None:
    for _ in range(10):
        assert attempt(client, officer.email, WRONG).status_code == 400
    locked = attempt(client, officer.email, TEST_PASSWORD)
    assert locked.status_code == 429
    assert "Too many attempts" in locked.get_data(as_text=True)
    assert "Wait 1 minute and try again" in locked.get_data(as_text=True)
    assert 0 < int(locked.headers["Retry-After"]) <= 60
    assert client.get("/").status_code == 302  # the right password did not sign in while locked
    clock.advance(seconds=61)
    assert attempt(client, officer.email, TEST_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200


def test_the_delay_grows_with_each_further_failure(
    client: FlaskClient, officer: User, throttle_store: str, clock: Clock
) -> None:
    for _ in range(10):
        attempt(client, officer.email, WRONG)
    clock.advance(seconds=61)
    assert attempt(client, officer.email, WRONG).status_code == 400  # 11th: processed, locks for 2 min
    clock.advance(seconds=61)
    assert attempt(client, officer.email, TEST_PASSWORD).status_code == 429
    clock.advance(seconds=60)
    assert attempt(client, officer.email, TEST_PASSWORD).status_code == 302


def test_a_success_clears_the_run_of_failures(
    client: FlaskClient, officer: User, throttle_store: str, clock: Clock
) -> None:
    for _ in range(9):
        attempt(client, officer.email, WRONG)
    assert attempt(client, officer.email, TEST_PASSWORD).status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    for _ in range(9):
        assert attempt(client, officer.email, WRONG).status_code == 400
    assert attempt(client, officer.email, TEST_PASSWORD).status_code == 302


def test_unknown_accounts_lock_too_so_locking_reveals_nothing(
    client: FlaskClient, throttle_store: str, clock: Clock
) -> None:
    for _ in range(10):
        attempt(client, "ghost@example.test", WRONG)
    assert attempt(client, "ghost@example.test", WRONG).status_code == 429


def test_no_more_than_100_failures_an_hour_are_processed_for_one_account(
    app: Flask, db_session: Any, throttle_store: str, clock: Clock
) -> None:
    """The owner signing in between guesses resets the run, but not the hourly count."""
    key = throttle.account_key("victim@example.test")
    processed = 0
    with app.test_request_context():
        for _ in range(30):
            for _ in range(9):
                if throttle.retry_after(key) is None:
                    throttle.record_failure(key)
                    processed += 1
            throttle.record_success(key)
            clock.advance(seconds=30)
        assert processed == 100
        wait = throttle.retry_after(key)
        assert wait is not None
        clock.advance(seconds=wait + 1)
        assert throttle.retry_after(key) is None


def test_one_address_is_limited_across_accounts(
    app: Flask, client: FlaskClient, officer: User, throttle_store: str, clock: Clock
) -> None:
    app.config["LOGIN_IP_MAX_FAILURES"] = 5
    try:
        for n in range(5):
            assert attempt(client, f"spray{n}@example.test", WRONG, ip="198.51.100.7").status_code == 400
        blocked = attempt(client, officer.email, TEST_PASSWORD, ip="198.51.100.7")
        assert blocked.status_code == 429
        assert attempt(client, officer.email, TEST_PASSWORD, ip="198.51.100.8").status_code == 302
    finally:
        del app.config["LOGIN_IP_MAX_FAILURES"]


def test_locked_account_is_visible_on_the_user_row(
    client: FlaskClient, officer: User, db_session: Any
) -> None:
    for _ in range(10):
        attempt(client, officer.email, WRONG)
    db_session.refresh(officer)
    assert officer.failed_logins == 10
    assert officer.locked_until is not None


def test_auth_decisions_are_logged_without_secrets(
    client: FlaskClient, officer: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="attendwise.auth")
    attempt(client, officer.email, WRONG)
    attempt(client, officer.email, TEST_PASSWORD)
    events = [(r.getMessage(), getattr(r, "user_id", None)) for r in caplog.records]
    assert ("login.failure", officer.id) in events
    assert ("login.success", officer.id) in events
    logged = " ".join(str(vars(r)) for r in caplog.records)
    assert WRONG not in logged
    assert TEST_PASSWORD not in logged
    assert officer.email not in logged


def test_a_weaker_hash_is_upgraded_at_sign_in(client: FlaskClient, officer: User, db_session: Any) -> None:
    officer.password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(TEST_PASSWORD)
    db_session.flush()
    assert attempt(client, officer.email, TEST_PASSWORD).status_code == 302
    db_session.refresh(officer)
    assert f"m={MEMORY_KIB},t=2" in (officer.password_hash or "")


def test_disabled_account_cannot_sign_in(client: FlaskClient, officer: User, db_session: Any) -> None:
    officer.active = False
    db_session.flush()
    response = attempt(client, officer.email, TEST_PASSWORD)
    assert response.status_code == 400
    assert "The email address or password is not right" in response.get_data(as_text=True)


def test_sign_in_only_follows_local_next_links(client: FlaskClient, officer: User) -> None:
    token = csrf_token(client)
    response = client.post(
        "/auth/login?next=https://evil.example/steal",
        data={"email": officer.email, "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]


def test_stale_database_counters_are_dropped(app: Flask, db_session: Any, clock: Clock) -> None:
    with app.test_request_context():
        throttle.record_failure(throttle.account_key("old@example.test"))
        clock.advance(days=1, seconds=1)
        throttle.record_failure(throttle.account_key("new@example.test"))
        keys = set(db_session.scalars(select(ThrottleBucket.key)).all())
    assert keys == {throttle.account_key("new@example.test")}
