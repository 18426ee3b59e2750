"""MIS data pages in Debian's Chromium: connect Wonde, the token never shown again, Sync now."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.integrations.test_connector import SCHOOL, TOKEN, populate
from tests.integrations.wonde_server import WondeServer, WondeState


@pytest.fixture
def wonde(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WondeServer]:
    state = WondeState(token=TOKEN, school=SCHOOL)
    populate(state)
    with WondeServer(state) as running:
        monkeypatch.setitem(live_server.app.config, "WONDE_BASE_URL", running.base_url)
        yield running


def test_a_school_admin_connects_wonde_and_syncs_now(
    page: Any,
    live_server: Any,
    wonde: WondeServer,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    school = live_server.make_school(name=f"Spetisbury Primary {live_server.next_id()}")
    admin = live_server.make_user([(school, "school_admin")], display_name="Sam Admin")
    sign_in(admin)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="MIS data").click()
    page.get_by_role("link", name="Set up the connection").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("MIS connection")
    page.get_by_role("button", name="Save connection").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the bearer token Wonde gave you")
    assert_accessible(page)

    page.get_by_label("Wonde school ID").fill(SCHOOL)
    page.get_by_label("Bearer token").fill(TOKEN)
    page.get_by_label("Daily sync time").fill("17:45")
    page.get_by_role("button", name="Save connection").click()

    expect(page.get_by_text("Connector settings saved.")).to_be_visible()
    expect(page.get_by_test_id("token-saved")).to_contain_text(
        "It is stored encrypted and is not shown again"
    )
    expect(page.get_by_label("Replace the token (optional)")).to_have_value("")
    expect(page.get_by_label("Daily sync time")).to_have_value("17:45")
    assert TOKEN not in page.content()
    assert_accessible(page)
    screenshot(page, "7-connector-settings")

    page.get_by_role("link", name="MIS data").first.click()
    expect(page.get_by_test_id("connector-summary")).to_contain_text(f"Wonde (school {SCHOOL})")
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_text("Sync started")).to_be_visible()
    expect(page.get_by_role("cell", name=f"wonde {SCHOOL}")).to_be_visible()
    expect(page.get_by_role("cell", name="succeeded")).to_be_visible()
    assert TOKEN not in page.content()
    assert_accessible(page)
    screenshot(page, "7-mis-data-sync-now")
