"""The trust and LA insights dashboards in Debian's Chromium, on the demo's schools and term of marks:
charts with their tables, drill-down for the trust only, axe-clean. Screenshots go to
docs/screenshots/9-trust-dashboard.png and 9-la-dashboard.png."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from attendwise.attendance import demo as attendance_demo
from attendwise.insights import services as insights
from attendwise.platform.demo import DEMO_SCHOOLS, DemoOrgs
from attendwise.tenants import services as tenants
from attendwise.tenants.models import Organisation, OrgKind
from tests.browser.conftest import ROOT, LiveServer
from tests.conftest import TEST_PASSWORD

SHOTS = ROOT / "docs" / "screenshots"


def _shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"9-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _demo(live_server: LiveServer) -> DemoOrgs:
    n = live_server.next_id()

    def build(session: Session) -> DemoOrgs:
        la = tenants.create_organisation(
            session, kind=OrgKind.LA, name="Dorset Council", la_code=f"{600 + n}"
        )
        trust = tenants.create_organisation(session, kind=OrgKind.TRUST, name="Chalk Downs Learning Trust")
        schools = [
            tenants.create_organisation(
                session,
                kind=OrgKind.SCHOOL,
                name=name,
                urn=f"8{n:02d}{urn[-3:]}",
                laestab=f"{la.la_code}{urn[-4:]}",
                phase=phase,
                la=la,
                trust=trust if phase == "Primary" else None,
            )
            for urn, name, phase, _preset in DEMO_SCHOOLS
        ]
        orgs = DemoOrgs(platform=la, la=la, trust=trust, schools=schools)
        attendance_demo.seed(session, orgs)
        for school in schools:
            insights.refresh(session, school.id, on=attendance_demo.MARKS_TO)
        return orgs

    return live_server.setup(build, "browser test: the demo's schools and marks")


def _sign_in(page: Any, email: str, totp: bool = False) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    if totp:
        key = page.locator("#manual-key").inner_text().replace(" ", "")
        page.get_by_label("6-digit code").fill(pyotp.TOTP(key).now())
        page.get_by_role("button", name="Turn on two-factor authentication").click()
        page.wait_for_load_state()


def test_trust_and_la_dashboards_in_a_browser(
    page: Any,
    browser: Any,
    live_server: LiveServer,
    assert_accessible: Callable[[Any], None],
) -> None:
    orgs = _demo(live_server)
    leader = live_server.make_user([(orgs.trust, "trust_leader")], display_name="Tom Leader")
    officer = live_server.make_user([(orgs.la, "la_attendance_officer")], display_name="Lee Officer")
    primaries = [s for s in orgs.schools if s.phase == "Primary"]
    secondary: Organisation = next(s for s in orgs.schools if s.phase == "Secondary")

    _sign_in(page, leader.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Insights").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Chalk Downs Learning Trust")
    table = page.get_by_test_id("schools-table")
    for school in primaries:
        expect(table).to_contain_text(school.name)
    expect(table).not_to_contain_text(secondary.name)
    for chart in ("trend-chart", "bars-chart", "heat-chart"):
        expect(page.get_by_test_id(chart)).to_be_visible()
    page.get_by_text("Weekly attendance as a table").click()
    expect(page.get_by_test_id("trend-table")).to_contain_text("Same week last year")
    expect(page.get_by_test_id("heat-chart")).to_contain_text(min((s.name for s in primaries), key=len))
    assert_accessible(page)
    _shot(page, "trust-dashboard")

    page.get_by_label("Period").select_option("half_term")
    page.get_by_role("button", name="Show figures").click()
    expect(page.get_by_test_id("period-line")).to_contain_text("This half-term")
    table.get_by_role("link", name=primaries[0].name).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(primaries[0].name)
    expect(page.get_by_test_id("groups-table")).to_be_visible()
    assert_accessible(page)

    officer_context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    try:
        la_page = officer_context.new_page()
        _sign_in(la_page, officer.email, totp=True)
        la_page.goto("/insights/")
        expect(la_page.get_by_role("heading", level=1)).to_contain_text("Dorset Council")
        la_table = la_page.get_by_test_id("schools-table")
        for school in orgs.schools:
            expect(la_table).to_contain_text(school.name)
        expect(la_table.get_by_role("link")).to_have_count(0)  # aggregate only: no drill-down
        expect(la_page.get_by_test_id("groups-table")).to_contain_text("Secondary")
        assert_accessible(la_page)
        _shot(la_page, "la-dashboard")
    finally:
        officer_context.close()
