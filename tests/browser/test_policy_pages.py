"""Policy pages in Debian's Chromium: start from a preset, live validation, publish, ladder and dry run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from attendwise.attendance import queries
from attendwise.policies import views
from tests.attendance.test_views_pupils import TODAY
from tests.browser.test_attendance_pages import _seed


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "today", lambda: TODAY)
    monkeypatch.setattr(views, "_today", lambda: TODAY)


def test_policy_ladder_editor_and_dry_run(
    page: Any,
    live_server: Any,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    school = live_server.make_school(name=f"Spetisbury Primary {live_server.next_id()}")
    live_server.setup(_seed(school.id))
    champion = live_server.make_user([(school, "senior_attendance_champion")], display_name="Sam Champion")
    sign_in(champion)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Policy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Attendance policy")
    page.get_by_label("Start from").select_option("spetisbury")
    page.get_by_label("Takes effect on").fill("2026-09-01")
    page.get_by_role("button", name="Start the policy").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Edit Staggered approach")
    page.wait_for_load_state("networkidle")  # htmx has wired up the editor
    editor = page.get_by_label("Policy document (YAML)")
    text = editor.input_value()
    editor.fill(text.replace("after_weeks: 5-8", "after_weeks: soon"))
    editor.press("End")
    expect(page.get_by_test_id("policy-check")).to_contain_text(
        "stage 3: `after_weeks` must be a range like 5-8, got 'soon'", timeout=20_000
    )
    screenshot(page, "policy-editor-live-validation")
    editor.fill(text)
    editor.press("End")
    expect(page.get_by_test_id("policy-check")).to_contain_text("No problems found", timeout=20_000)
    page.get_by_role("button", name="Save draft").click()

    page.get_by_role("link", name="Dry run on this school's data").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dry run: version 1 (draft)")
    expect(page.get_by_test_id("dry-run-stages")).to_contain_text("Persistent absence identified")
    assert_accessible(page)
    screenshot(page, "policy-dry-run")

    page.goto("/policy/edit")
    page.get_by_role("button", name="Publish version 1").click()
    expect(page.get_by_test_id("policy-ladder")).to_contain_text("Court warning referral")
    expect(page.get_by_test_id("policy-ladder")).to_contain_text(
        "Needs sign-off by the senior attendance champion"
    )
    assert_accessible(page)
    screenshot(page, "policy-ladder")
