"""A trust leader reads the process measures and what-works pages in Debian's Chromium (axe-checked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from sqlalchemy.orm import Session

from attendwise.tenants import services
from attendwise.tenants.models import Organisation, OrgKind
from tests.insights.analysis_data import build_trust


def _seed(n: int) -> Callable[[Session], Organisation]:
    def run(session: Session) -> Organisation:
        la = services.create_organisation(
            session, kind=OrgKind.LA, name=f"Live LA {n}", la_code=str(100 + n % 800)
        )
        urns = iter(range(600000 + 10 * n, 600000 + 10 * n + 10))

        def make_trust(name: str) -> Organisation:
            return services.create_organisation(session, kind=OrgKind.TRUST, name=f"{name} {n}")

        def make_school(trust: Organisation, name: str) -> Organisation:
            return services.create_organisation(
                session,
                kind=OrgKind.SCHOOL,
                name=name,
                urn=str(next(urns)),
                phase="Primary",
                la=la,
                trust=trust,
            )

        return build_trust(session, make_trust, make_school)

    return run


def test_a_trust_leader_reads_process_measures_and_what_works(
    page: Any,
    live_server: Any,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    trust = live_server.setup(_seed(live_server.next_id()))
    sign_in(live_server.make_user([(trust, "trust_leader")], display_name="Tara Trust"))

    page.goto(f"{live_server.url}/insights/?period=term")
    with page.expect_download() as schools:
        page.get_by_test_id("dashboard-downloads").get_by_role("link", name="CSV file of schools").click()
    assert schools.value.suggested_filename.startswith("schools-chalk-downs-learning-trust")
    page.get_by_role("link", name="Process measures").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("How each school follows its process")
    table = page.get_by_test_id("process-table")
    expect(table.get_by_role("row", name="Hill Primary")).to_contain_text("10")
    expect(page.get_by_role("link", name="CSV file")).to_be_visible()
    assert_accessible(page)
    screenshot(page, "9-process-measures")

    page.get_by_role("link", name="What works").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What happened after each step")
    warning = page.locator(".govuk-warning-text")
    expect(warning).to_contain_text("does not show that the step caused the change")
    expect(page.get_by_test_id("what-works-table")).to_contain_text("Stage 1")
    assert_accessible(page)
    screenshot(page, "9-what-works")

    with page.expect_download() as download:
        page.get_by_role("link", name="Excel (XLSX) file").click()
    assert download.value.suggested_filename.startswith("what-works-chalk-downs-learning-trust")
