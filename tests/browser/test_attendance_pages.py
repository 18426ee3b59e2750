"""Attendance pages in Debian's Chromium: the pupil list and pupil page, axe- and CSP-clean, screenshotted."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from attendwise.attendance import queries, services
from tests.attendance.records import HALF_TERMS_2026, make_upn, pupil
from tests.attendance.test_views_pupils import TODAY


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "today", lambda: TODAY)


def _seed(school_id: int) -> Callable[[Session], None]:
    def build(session: Session) -> None:
        services.set_school_calendar(session, school_id, 2026, HALF_TERMS_2026)
        services.upsert_pupils(
            session,
            school_id,
            [
                pupil(1, surname="Okafor", year_group="4", fsm=True),
                pupil(2, surname="Okafor", year_group="6", sen_status="sen_support"),
                pupil(3, surname="Lindqvist", year_group="4"),
            ],
        )
        services.upsert_contacts(
            session,
            school_id,
            [
                services.ContactRecord(
                    forename="Ada",
                    surname="Okafor",
                    title="Ms",
                    postcode="DT11 9QQ",
                    address_lines=("4 Mill Road", "Blandford Forum"),
                    phones=(("mobile", "07700 900111"),),
                    emails=("ada.okafor@example.test",),
                    links=(
                        services.ContactLink(make_upn(1), "Mother", True, True),
                        services.ContactLink(make_upn(2), "Mother", True, True),
                    ),
                )
            ],
        )
        calendar = services.school_calendar(session, school_id, 2026)
        days = calendar.school_days(dt.date(2026, 9, 2), TODAY)[:50]
        pattern = ["/", "/", "I", "/", "L", "/", "/", "N", "/", "G"]
        rows = []
        for serial, codes in ((1, pattern * 5), (2, ["/"] * 50), (3, ["/"] * 45 + ["O"] * 5)):
            for day, code in zip(days, codes, strict=True):
                rows.append(services.MarkRow(make_upn(serial), day, "AM", code, 10 if code == "L" else None))
                rows.append(services.MarkRow(make_upn(serial), day, "PM", "\\" if code in "/L" else code))
        services.store_marks(session, school_id, rows, "mis")
        corrected = [
            services.MarkRow(make_upn(1), days[7], "AM", "I"),
            services.MarkRow(make_upn(1), days[7], "PM", "I"),
        ]
        services.store_marks(session, school_id, corrected, "manual")

    return build


def test_pupil_list_and_page_in_a_browser(
    page: Any,
    live_server: Any,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    school = live_server.make_school(name=f"Willow Primary {live_server.next_id()}")
    live_server.setup(_seed(school.id))
    officer = live_server.make_user([(school, "attendance_officer")], display_name="Dee Officer")
    sign_in(officer)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pupils").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pupils")
    expect(page.locator("#pupil-count")).to_contain_text("3 pupils")
    assert_accessible(page)
    screenshot(page, "attendance-pupil-list")

    page.get_by_label("Persistent absence (10% or more)").check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#pupil-count")).to_contain_text("2 pupils")  # Lindqvist is at exactly 10%
    page.get_by_role("link", name=re.compile("Okafor, Pupil1")).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Pupil1 Okafor")
    expect(page.get_by_test_id("headline")).to_contain_text("70.0%")
    first_week = page.get_by_test_id("register-1")
    expect(first_week.locator(".aw-mark--unauthorised").first).to_have_attribute("title", re.compile("G"))
    screenshot(page, "attendance-pupil-page")
    page.get_by_text("Every session as a table").click()
    expect(page.get_by_test_id("session-table")).to_contain_text(
        "Illness (not medical or dental appointment)"
    )
    expect(page.get_by_test_id("changes-table")).to_contain_text("N")
    expect(page.get_by_test_id("siblings-table")).to_contain_text("Pupil2 Okafor")
    assert_accessible(page)


def test_school_calendar_page_and_its_errors_are_accessible(
    page: Any,
    live_server: Any,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
) -> None:
    school = live_server.make_school(name=f"Hazel Primary {live_server.next_id()}")
    admin = live_server.make_user([(school, "school_admin")], display_name="Ash Admin")
    sign_in(admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("School calendar 2026/27")
    assert_accessible(page)
    page.get_by_label("Half-terms").fill("name,start,end\nAutumn 1,2026-09-03,2026-08-01\n")
    page.get_by_role("button", name="Save calendar").click()
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    assert_accessible(page)
