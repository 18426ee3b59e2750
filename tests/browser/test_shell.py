"""The web shell in a real browser: sign in, the layout, switching organisation, signing out,
navigation by role, htmx with CSRF, error pages and the API docs — all axe-clean."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from attendwise.platform import web
from attendwise.tenants.roles import Perm
from tests.browser.conftest import LiveServer, PageProblems


@pytest.fixture
def two_school_user(live_server: LiveServer) -> tuple[Any, Any, Any]:
    """Someone who is an attendance officer at one school and read-only staff at another."""
    oak = live_server.make_school(name=f"Oak Primary {live_server.next_id()}")
    elm = live_server.make_school(name=f"Elm Academy {live_server.next_id()}")
    user = live_server.make_user(
        [(oak, "attendance_officer"), (elm, "school_staff")], display_name="Priya Shah"
    )
    return user, oak, elm


def test_sign_in_switch_organisation_and_sign_out(
    page: Any,
    two_school_user: tuple[Any, Any, Any],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    user, oak, elm = two_school_user

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/auth/login\?next=(/|%2F)$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Attendwise")
    expect(page.locator("html")).to_have_class(re.compile("govuk-template"))
    expect(page.locator("body")).to_have_class(re.compile("js-enabled"))  # the nonce'd inline script ran
    assert_accessible(page)
    screenshot(page, "shell-login")

    page.get_by_label("Email address").fill(user.email)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    assert_accessible(page)

    page.get_by_label("Password", exact=True).fill("correct-horse-battery-staple")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))

    banner = page.get_by_role("banner")
    expect(banner.get_by_role("link", name="Attendwise")).to_be_visible()
    expect(banner).to_contain_text("Priya Shah")
    organisation = page.get_by_role("region", name="Organisation")
    expect(organisation).to_contain_text(oak.name)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Home")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.get_by_role("heading", level=1)).to_have_text(oak.name)
    assert_accessible(page)
    screenshot(page, "shell-home")

    switcher = page.get_by_label("Switch organisation")
    expect(switcher.locator("option")).to_have_text(sorted([oak.name, elm.name], key=str.lower))
    switcher.select_option(label=elm.name)
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(elm.name)
    expect(organisation).to_contain_text(elm.name)
    expect(page.get_by_label("Switch organisation")).to_have_value(str(elm.id))
    screenshot(page, "shell-home-switched")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/auth/login$"))
    expect(page.get_by_role("region", name="Important")).to_contain_text("You have signed out.")
    assert_accessible(page)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_someone_in_one_organisation_gets_no_switcher(
    page: Any, live_server: LiveServer, sign_in: Callable[..., None]
) -> None:
    school = live_server.make_school()
    sign_in(live_server.make_user([(school, "attendance_officer")]))
    expect(page.get_by_role("region", name="Organisation")).to_contain_text(school.name)
    expect(page.get_by_label("Switch organisation")).to_have_count(0)


def test_navigation_shows_only_what_the_role_allows(
    page: Any,
    live_server: LiveServer,
    sign_in: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web, "_nav", dict(web._nav))
    web.register_nav(endpoint="api-docs.openapi_redoc", label="API", perm=Perm.API_TOKENS, order=50)
    web.register_nav(endpoint="feature.not_installed", label="Not installed", order=10)
    school = live_server.make_school()
    officer = live_server.make_user([(school, "attendance_officer")])
    staff = live_server.make_user([(school, "school_staff")])

    sign_in(officer)
    main_nav = page.get_by_role("navigation", name="Main")
    expect(main_nav.get_by_role("link").first).to_have_text("Home")
    expect(main_nav.get_by_role("link", name="API", exact=True)).to_be_visible()
    expect(main_nav.get_by_role("link", name="Not installed")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()

    sign_in(staff)
    expect(main_nav.get_by_role("link").first).to_have_text("Home")
    expect(main_nav.get_by_role("link", name="API", exact=True)).to_have_count(0)


def test_htmx_requests_carry_the_csrf_token(
    page: Any, two_school_user: tuple[Any, Any, Any], sign_in: Callable[..., None]
) -> None:
    user, oak, elm = two_school_user
    sign_in(user)
    expect(page.get_by_role("heading", level=1)).to_have_text(oak.name)

    with page.expect_response(lambda r: r.url.endswith("/auth/switch")) as switched:
        page.evaluate(
            "orgId => htmx.ajax('POST', '/auth/switch', {values: {org_id: orgId}, swap: 'none'})", elm.id
        )
    assert switched.value.request.headers.get("x-csrftoken")
    assert switched.value.status == 302
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text(elm.name)


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_error_page(
    page: Any,
    live_server: LiveServer,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
    signed_in: bool,
) -> None:
    if signed_in:
        school = live_server.make_school()
        sign_in(live_server.make_user([(school, "attendance_officer")]))
    response = page.goto("/no-such-page")
    assert response is not None
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(page).to_have_title("Page not found \u2013 Attendwise")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    next_step = "Go to your home page" if signed_in else "Sign in to Attendwise"
    expect(page.get_by_role("link", name=next_step)).to_be_visible()
    assert_accessible(page)
    screenshot(page, f"shell-404-{'signed-in' if signed_in else 'anonymous'}")


def test_api_docs_render_under_the_content_security_policy(
    page: Any, page_problems: PageProblems, screenshot: Callable[[Any, str], Any]
) -> None:
    # ReDoc hard-codes its vendor logo from cdn.redoc.ly; the policy must stop that request
    # leaving the browser (the image then hides itself). Anything else still fails the test.
    page_problems.expect(r"cdn\.redoc\.ly/redoc/logo-mini\.svg")
    page.goto("/api/v1/docs")
    expect(page.get_by_role("heading", name=re.compile("Attendwise API"))).to_be_visible(timeout=30000)
    screenshot(page, "api-docs")
    assert any("cdn.redoc.ly" in v and "img-src" in v for v in page_problems.csp_violations)


def test_navigation_collapses_behind_a_menu_button_on_a_phone(
    page: Any,
    live_server: LiveServer,
    sign_in: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    screenshot: Callable[[Any, str], Any],
) -> None:
    monkeypatch.setattr(web, "_nav", dict(web._nav))
    web.register_nav(endpoint="api-docs.openapi_redoc", label="API", order=50)
    school = live_server.make_school()
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(live_server.make_user([(school, "attendance_officer")]))

    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()  # GOV.UK Frontend's JavaScript started the component
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("link", name="API", exact=True)).to_be_hidden()
    menu.click()
    expect(page.get_by_role("link", name="API", exact=True)).to_be_visible()
    screenshot(page, "shell-home-phone-menu")


def test_moj_macros_render_timeline_badge_and_sub_navigation(live_server: LiveServer) -> None:
    import datetime as dt

    template = live_server.app.jinja_env.from_string(
        '{% from "platform/macros/moj.html" import mojBadge, mojSubNavigation, mojTimeline %}'
        '{{ mojBadge({"text": "Urgent", "classes": "moj-badge--red"}) }}'
        '{{ mojSubNavigation({"label": "Case", "items": [{"text": "Timeline", "href": "/t", "active": true},'
        ' {"text": "Letters", "href": "/l"}]}) }}'
        '{{ mojTimeline({"items": [{"label": "Letter sent", "byline": "Sam", "datetime": when,'
        ' "text": "First warning letter"}]}) }}'
    )
    with live_server.app.test_request_context("/"):
        html = template.render(when=dt.datetime(2026, 6, 3, 13, 5, tzinfo=dt.UTC))
    assert '<span class="moj-badge moj-badge--red">Urgent</span>' in html
    assert 'aria-current="page" href="/t">Timeline</a>' in html
    assert 'href="/l">Letters</a>' in html
    assert "Letter sent" in html
    assert "by Sam" in html
    # 13:05 UTC in June is 2:05pm in London.
    assert '<time datetime="2026-06-03T13:05:00+00:00">3 June 2026 at 2:05pm</time>' in html
