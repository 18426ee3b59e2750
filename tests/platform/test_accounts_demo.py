"""Every demo user can sign in; roles that require MFA enrol on first sign-in and use a code after."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from attendwise.platform import demo
from attendwise.tenants.roles import ROLES
from tests.conftest import FreshGlobalsClient
from tests.platform.account_fixtures import enrol_from_setup_page, next_step_code, page_csrf


def sign_in(client: FreshGlobalsClient, email: str) -> Any:
    page = client.get("/auth/login").get_data(as_text=True)
    return client.post(
        "/auth/login", data={"email": email, "password": demo.DEMO_PASSWORD, "csrf_token": page_csrf(page)}
    )


def test_every_demo_role_signs_in(app: Flask, db_session: Any) -> None:
    built = demo.build(db_session)
    db_session.commit()
    assert {role for _e, role, _o in built.users} == set(ROLES)
    for email, role, _org in built.users:
        client = FreshGlobalsClient(app, app.response_class, use_cookies=True)
        response = sign_in(client, email)
        assert response.status_code == 302, email
        if ROLES[role].mfa_required:
            assert response.headers["Location"].endswith("/auth/mfa/setup"), email
            key, codes, _page = enrol_from_setup_page(client, "/auth/mfa/setup")
            assert len(codes) == 10
            assert client.get("/").status_code == 200, email
            client.post(
                "/auth/logout", data={"csrf_token": page_csrf(client.get("/").get_data(as_text=True))}
            )
            assert sign_in(client, email).headers["Location"].endswith("/auth/mfa")
            page = client.get("/auth/mfa").get_data(as_text=True)
            verified = client.post(
                "/auth/mfa", data={"code": next_step_code(key), "csrf_token": page_csrf(page)}
            )
            assert verified.status_code == 302, email
        home = client.get("/")
        assert home.status_code == 200, email
        account = client.get("/account")
        assert account.status_code == 200, email
        assert re.search(r"Two-factor authentication", account.get_data(as_text=True))
