"""An attendance officer's week in Debian's Chromium, on a Spetisbury school's term of marks.

Sign in, open the worklist, log a call, invite a parent to the stage 2 meeting, record it as
missed and see the case move to stage 3 as Spetisbury's policy says ("If this meeting is missed
stage 3 is immediately followed"), record the TAC meeting's minutes and an action plan; then the
senior attendance champion approves a court-warning referral that waits for sign-off, which is
refused until the support the policy's support-first gate asks for is on record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import queries
from attendwise.attendance import services as attendance_services
from attendwise.casework import services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case, CaseStatus
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.casework.conftest import build_school

TODAY = dt.date(2026, 11, 17)
FRIDAYS = (
    dt.date(2026, 9, 11),
    dt.date(2026, 9, 18),
    dt.date(2026, 9, 25),
    dt.date(2026, 10, 2),
    dt.date(2026, 10, 9),
)


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "today", lambda: TODAY)


def _seed(school_id: int, estab: int) -> Callable[[Session], list[int]]:
    """Two persistently absent pupils at stage 2, siblings with one mother; the second has missed
    both meetings, so the move to stage 4 (a court-warning referral) waits for the champion's
    sign-off."""

    def run(session: Session) -> list[int]:
        school = session.get_one(Organisation, school_id)
        build_school(session, school, pupils=8, absent_pupils=2, marks_to=dt.date(2026, 11, 13), estab=estab)
        with tenancy.tenant_context(school_id):
            for friday in FRIDAYS:
                evaluate_on(session, school_id, friday)
            cases = session.scalars(
                select(Case).where(Case.status == CaseStatus.OPEN).order_by(Case.id)
            ).all()
            for day in (dt.date(2026, 11, 16), TODAY):
                services.record_event(session, cases[1], "meeting_missed", day)
                evaluate_on(session, school_id, day)
            mother = attendance_services.ContactRecord(
                forename="Jane",
                surname="Example",
                title="Ms",
                links=tuple(
                    attendance_services.ContactLink(c.pupil.upn, "Mother", True, True, 1) for c in cases
                ),
                address_lines=("1 High Street", "Spetisbury"),
                postcode="DT11 9DF",
                emails=("jane@example.test",),
            )
            attendance_services.upsert_contacts(session, school_id, [mother])
            return [c.id for c in cases]

    return run


def test_an_attendance_officers_week(
    page: Any,
    live_server: Any,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    school = live_server.make_school(name=f"Spetisbury Primary {live_server.next_id()}")
    case_ids = live_server.setup(_seed(school.id, 4000 + live_server.next_id() % 900))
    officer = live_server.make_user([(school, "attendance_officer")], display_name="Olu Officer")
    champion = live_server.make_user([(school, "senior_attendance_champion")], display_name="Sam Champion")

    sign_in(officer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    page.get_by_role("link", name="Whole school").click()
    expect(page.get_by_test_id("worklist-summary")).to_contain_text("waiting for sign-off")
    assert_accessible(page)
    screenshot(page, "casework-worklist")

    page.goto(f"/cases/{case_ids[0]}")
    expect(page.get_by_test_id("case-stage")).to_have_text("Stage 2: Meeting with AB")
    page.get_by_label("How").select_option("phone")
    page.get_by_label("What happened").select_option("spoke_to")
    page.get_by_label("Note").fill("Spoke to mum: she will come in on Tuesday.")
    page.get_by_role("button", name="Log contact").click()
    expect(page.get_by_test_id("timeline")).to_contain_text("Phone with Ms Jane Example: spoke to")

    page.get_by_label("Date", exact=True).fill(TODAY.isoformat())
    page.get_by_label("Time", exact=True).fill("09:30")
    page.get_by_label("Place").fill("School office")
    page.get_by_label("Invitees, one a line").fill("Parent\nAB")
    page.get_by_role("button", name="Record invitation").click()
    expect(page.get_by_test_id("timeline")).to_contain_text("Meeting invitation")
    assert_accessible(page)
    screenshot(page, "casework-case-invited")

    page.get_by_label("Did the meeting happen?").select_option("missed")
    page.get_by_role("button", name="Record attendance").click()
    expect(page.get_by_test_id("case-stage")).to_have_text("Stage 3: TAC meeting")
    expect(page.get_by_test_id("timeline")).to_contain_text(
        "Stage 2 (Meeting with AB) to stage 3 (TAC meeting) by the policy"
    )
    screenshot(page, "casework-case-moved-to-stage-3")

    page.get_by_label("Date", exact=True).fill(TODAY.isoformat())
    page.get_by_label("Time", exact=True).fill("14:00")
    page.get_by_label("Place").fill("Meeting room 2")
    page.get_by_label("Invitees, one a line").fill("Parent\nAB\nPupil services (NDFAZ)")
    page.get_by_role("button", name="Record invitation").click()
    page.get_by_label("Did the meeting happen?").select_option("attended")
    page.get_by_role("button", name="Record attendance").click()
    page.get_by_label("Who attended").fill("Mum, AB, NDFAZ officer")
    page.get_by_label("What is going well").fill("Walks to school with her brother on time")
    page.get_by_label("What we are worried about").fill("Mondays missed; anxiety about PE")
    page.get_by_label("Well-being goals").fill("Feel safe in PE lessons")
    page.get_by_label("Agreed actions").fill("Breakfast club on Mondays; PE plan with class teacher")
    page.get_by_role("button", name="Save minutes").click()
    expect(page.get_by_test_id("timeline")).to_contain_text("Meeting minutes recorded")

    page.get_by_label("Target: attendance above (%)").fill("92")
    page.get_by_label("Over the next (weeks)").fill("6")
    page.get_by_label("Breakfast club").first.check()
    page.get_by_label("Owners, separated by commas").first.fill("AB, class teacher")
    page.get_by_label("Review date").last.fill("2027-01-15")
    page.get_by_role("button", name="Record plan").click()
    expect(page.get_by_test_id("timeline")).to_contain_text(
        "Attendance action plan: attendance above 92% over the next 6 weeks"
    )
    assert_accessible(page)
    screenshot(page, "casework-case-minutes-and-plan")

    page.context.clear_cookies()
    sign_in(champion)
    page.goto("/worklist?scope=mine")
    signoff = page.get_by_test_id("signoff")
    expect(signoff).to_contain_text("Sign off: move to stage 4 (Court warning referral)")
    signoff.get_by_role("link").first.click()
    expect(page.get_by_test_id("case-stage")).to_have_text("Stage 3: TAC meeting")
    page.get_by_label("Reason (needed to decline)").fill(
        "Support offered twice and refused; evidence complete."
    )
    page.get_by_role("button", name="Approve").click()
    # Stage 4 is behind Spetisbury's support-first gate and this case has no support on record.
    expect(page.locator(".govuk-error-summary")).to_contain_text("this case has no support recorded")
    expect(page.get_by_test_id("case-stage")).to_have_text("Stage 3: TAC meeting")
    assert_accessible(page)
    screenshot(page, "casework-signoff-refused-without-support")
    page.get_by_label("Support offered", exact=True).fill("Family worker from the LBI early help offer")
    page.get_by_label("Answer").select_option("offered")
    page.get_by_role("button", name="Record support").click()
    page.get_by_label("Reason (needed to decline)").fill(
        "Support offered twice and refused; evidence complete."
    )
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("case-stage")).to_have_text("Stage 4: Court warning referral")
    expect(page.get_by_test_id("timeline")).to_contain_text("Approved: Sign off: move to stage 4")
    assert_accessible(page)
    screenshot(page, "casework-signoff-approved")

    page.get_by_role("link", name="Household view: siblings and their cases").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("and siblings")
    expect(page.get_by_test_id("household")).to_contain_text("Pupil1 Family1")
    assert_accessible(page)
    screenshot(page, "casework-household")
