"""Fixtures for the onboarding and organisation-administration tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from attendwise.tenants.models import Organisation, User
from tests.platform.account_fixtures import enrol_from_setup_page, smtp_server

__all__ = ["smtp_server"]  # the real SMTP server fixture, shared with these tests


@pytest.fixture
def sign_in(client: FlaskClient, login: Callable[..., Any]) -> Callable[[User], None]:
    """Sign in through the real form; enrol in MFA first when the role requires it."""

    def do(user: User) -> None:
        response = login(user)
        assert response.status_code == 302, response.get_data(as_text=True)
        if "/auth/mfa/setup" in response.headers["Location"]:
            enrol_from_setup_page(client, "/auth/mfa/setup")

    return do


@pytest.fixture
def platform_admin(db_session: Any, make_user: Callable[..., User]) -> User:
    from attendwise.platform import tenancy
    from attendwise.tenants import services

    with tenancy.system_context("test factory"):
        platform = services.platform_organisation(db_session)
    return make_user(platform, "platform_admin")


@pytest.fixture
def school(make_school: Callable[..., Organisation]) -> Organisation:
    return make_school(name="Hill Top Primary")


@pytest.fixture
def school_admin(school: Organisation, make_user: Callable[..., User]) -> User:
    return make_user(school, "school_admin", email="head@hilltop.test")


def form_token(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def new_client(app: Any) -> Callable[[], FlaskClient]:
    """Another browser: its own cookie jar."""
    return app.test_client


def login_as(client: FlaskClient, user: User, password: str = "correct-horse-battery-staple") -> Any:
    page = client.get("/auth/login")
    return client.post(
        "/auth/login",
        data={
            "email": user.email,
            "password": password,
            "csrf_token": form_token(page.get_data(as_text=True)),
        },
    )


def post(client: FlaskClient, page_path: str, action: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """POST ``data`` to ``action`` with the CSRF token from ``page_path``, as the browser would."""
    token = form_token(client.get(page_path).get_data(as_text=True))
    return client.post(action, data={**data, "csrf_token": token}, **kwargs)
