"""Staff SSO in Debian's Chromium against a real OpenID provider (npm oidc-provider on loopback).

An admin configures the provider on the settings page; an invited member then signs in through
the provider's own sign-in page and signs out, which ends the provider's session too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from attendwise.tenants import services
from attendwise.tenants.models import User
from tests.browser.conftest import LiveServer, PageProblems
from tests.conftest import TEST_PASSWORD
from tests.platform.sso_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    RealProvider,
    start_real_provider,
    stop_real_provider,
)


@pytest.fixture(scope="module")
def real_provider(_live_server: LiveServer) -> Iterator[RealProvider]:
    n = _live_server.next_id()
    users = {"robin": {"email": f"robin@sso{n}.test", "name": "Robin Okafor"}}
    process, provider = start_real_provider(
        redirect_uri=f"{_live_server.url}/auth/sso/callback",
        post_logout_uri=f"{_live_server.url}/auth/login",
        users=users,
    )
    try:
        yield provider
    finally:
        stop_real_provider(process)


def _user(live_server: LiveServer, email: str, school: Any, role: str) -> User:
    def build(session: Session) -> User:
        name = email.partition("@")[0].title()
        user = services.create_user(session, email=email, display_name=name, password=TEST_PASSWORD)
        services.add_membership(session, user=user, org=session.merge(school), role_key=role)
        return user

    return live_server.setup(build)


def test_admin_sets_up_sso_and_a_member_signs_in_and_out_through_the_provider(
    page: Any, page_problems: PageProblems, live_server: LiveServer, real_provider: RealProvider,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None], screenshot: Callable[[Any, str], Any],
) -> None:  # fmt: skip
    # The provider's development sign-in page links a web font; the test stays on loopback.
    page.route(re.compile(r"^https://fonts\.googleapis\.com/"), lambda route: route.abort())
    page_problems.expect(r"fonts\.googleapis\.com")
    school = live_server.make_school()
    domain = real_provider.users["robin"]["email"].split("@")[1]
    admin = _user(live_server, f"admin@{domain}", school, "school_admin")
    _user(live_server, real_provider.users["robin"]["email"], school, "attendance_officer")

    sign_in(admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Single sign-on").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Single sign-on")
    page.get_by_label("Another OpenID Connect provider").check()
    page.get_by_label("Discovery URL").fill(real_provider.discovery_url)
    page.get_by_label("Client ID").fill(CLIENT_ID)
    page.get_by_label("Client secret").fill(CLIENT_SECRET)
    page.get_by_label("Email domains").fill(domain)
    assert_accessible(page)
    screenshot(page, "sso-settings")
    page.get_by_role("button", name="Save single sign-on settings").click()
    expect(page.get_by_text("Single sign-on settings saved.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    page.get_by_role("link", name="Sign in with your organisation's account").click()
    assert_accessible(page)
    page.get_by_label("Work email address").fill(real_provider.users["robin"]["email"])
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(re.compile(re.escape(real_provider.issuer) + "/interaction/"))
    screenshot(page, "sso-provider-sign-in")
    page.locator("input[name=login]").fill("robin")
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").first.click()

    expect(page).to_have_url(re.compile(re.escape(live_server.url) + "/$"))
    expect(page.get_by_role("banner")).to_contain_text("Robin")
    screenshot(page, "sso-signed-in")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(re.escape(real_provider.issuer) + "/session/end"))
    screenshot(page, "sso-provider-sign-out")
    page.get_by_role("button", name=re.compile("Yes, sign me out", re.I)).click()
    expect(page).to_have_url(re.compile(re.escape(live_server.url) + "/auth/login"))
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
