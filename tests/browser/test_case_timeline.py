"""The case timeline's older and newer pages in Debian's Chromium: htmx swaps the timeline
section alone (the rest of the page, and anything typed into it, stays) and the address bar
follows, so the page can be reloaded or shared at the same place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case, TimelineEntry
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.casework.conftest import build_school

HISTORY_FROM = dt.datetime(2030, 9, 2, 8, 0, tzinfo=dt.UTC)  # newer than anything the engine wrote


def _seed(school_id: int, estab: int) -> Callable[[Session], int]:
    """One persistently absent pupil's case with 60 entries of history on its timeline."""

    def run(session: Session) -> int:
        school = session.get_one(Organisation, school_id)
        build_school(session, school, pupils=2, absent_pupils=1, marks_to=dt.date(2026, 9, 11), estab=estab)
        with tenancy.tenant_context(school_id):
            evaluate_on(session, school_id, dt.date(2026, 9, 11))
            case = session.scalars(select(Case)).one()
            for i in range(60):
                session.add(
                    TimelineEntry(
                        case_id=case.id,
                        kind="note",
                        title=f"History entry {i:04d}",
                        occurred_at=HISTORY_FROM + dt.timedelta(minutes=i),
                    )
                )
            session.flush()
            return case.id

    return run


def test_older_and_newer_timeline_pages_swap_in_place(
    page: Any, live_server: Any, sign_in: Callable[..., None]
) -> None:
    school = live_server.make_school()
    case_id = live_server.setup(_seed(school.id, 5000 + live_server.next_id() % 900))
    sign_in(live_server.make_user([(school, "attendance_officer")]))

    page.goto(f"/cases/{case_id}")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("History entry 0059")
    expect(timeline).not_to_contain_text("History entry 0009")
    note = page.get_by_label("Note")
    note.fill("Half-written note about this morning's call")

    page.get_by_role("link", name="Older entries").click()
    expect(timeline).to_contain_text("History entry 0009")
    expect(timeline).not_to_contain_text("History entry 0059")
    expect(page).to_have_url(f"{live_server.url}/cases/{case_id}?timeline_page=2&contacts_page=1#timeline")
    expect(note).to_have_value("Half-written note about this morning's call")  # no page load

    page.get_by_role("link", name="Newer entries").click()
    expect(timeline).to_contain_text("History entry 0059")
    expect(note).to_have_value("Half-written note about this morning's call")
