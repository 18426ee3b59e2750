"""A school and its LA officer, each in their own browser context (Debian's Chromium), through the
whole penalty-notice pipeline.

The school's senior attendance champion refers a pupil for a penalty notice; the LA's checklist
flags the missing warning letter and support, the school supplies them, signs off and submits.
The officer (TOTP set up in the browser with the code pyotp computes from the key on the page)
asks for more information, the school answers, the officer accepts, issues a notice to improve,
then a penalty notice; the payment is recorded; with an earlier notice already on the ledger for
the same parent and child, a third is refused. axe runs on every page; screenshots go to
docs/screenshots/8-*.png.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from attendwise.attendance import queries
from attendwise.letters import render
from attendwise.platform import tenancy
from attendwise.referrals import services, webhooks
from attendwise.referrals.models import PenaltyNotice, WebhookEvent
from attendwise.referrals.penalty import NoticeStatus
from attendwise.tenants.models import Organisation, User
from tests.browser.conftest import ROOT, LiveServer, PageProblems
from tests.conftest import TEST_PASSWORD
from tests.referrals.conftest import SUBMIT_ON, school_with_pupil

SHOTS = ROOT / "docs" / "screenshots"
EARLIER_NOTICE_ON = dt.date(2025, 6, 2)
RENDER_TIMEOUT = 60_000  # ms


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "today", lambda: SUBMIT_ON)


@pytest.fixture(scope="module", autouse=True)
def _stop_pdf_renderer() -> Iterator[None]:
    """Submission renders the bundle in the letters render process; stop it after this module."""
    yield
    render.renderer().close()


def _seed(live_server: LiveServer, school: Organisation) -> dict[str, int]:
    """The school's LA with its default referral kinds; a pupil with ten unauthorised sessions in
    October and November, a case and a mother with parental responsibility; and an earlier
    penalty notice to the same mother for the same child, paid, on the LA's ledger."""

    def run(session: Session) -> dict[str, int]:
        la_id = session.get_one(Organisation, school.id).la_id
        assert la_id is not None
        with tenancy.tenant_context(la_id):
            services.ensure_la_setup(session, la_id)
        pupil, case = school_with_pupil(
            session, session.get_one(Organisation, school.id), 3000 + school.id % 900, True
        )
        with tenancy.tenant_context(la_id):
            session.add(
                PenaltyNotice(
                    org_id=la_id,
                    school_org_id=school.id,
                    parent_key=services.parent_key("Grace", "Reed", "SW1A 1AA"),
                    child_key=services.child_key(pupil.upn, pupil.date_of_birth),
                    parent_name="Grace Reed",
                    child_name=f"{pupil.legal_forename} {pupil.legal_surname}",
                    sequence=1,
                    issued_on=EARLIER_NOTICE_ON,
                    received_on=EARLIER_NOTICE_ON,
                    amount=160,
                    early_amount=80,
                    sessions=[["2025-05-12", "AM"]],
                    offence_on=dt.date(2025, 5, 12),
                    prosecution_deadline=dt.date(2025, 11, 12),
                    status=NoticeStatus.PAID_EARLY,
                    paid_on=dt.date(2025, 6, 9),
                    paid_amount=80,
                )
            )
            session.flush()
        return {"la": la_id, "pupil": pupil.id, "case": case.id}

    return live_server.setup(run)


def _context(browser: Any, live_server: LiveServer, problems: PageProblems) -> Any:
    """A separate browser context (own cookies) whose page records what a user would see go wrong."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20000)
    page = context.new_page()
    page.on(
        "console",
        lambda m: problems.csp_violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda error: problems.script_errors.append(str(error)))
    page.on(
        "response",
        lambda r: (
            problems.broken_assets.append(f"{r.status} {r.url}")
            if "/static/" in r.url and r.status >= 400
            else None
        ),
    )
    return page


@pytest.fixture
def officer_page(browser: Any, live_server: LiveServer, page_problems: PageProblems) -> Iterator[Any]:
    page = _context(browser, live_server, page_problems)
    try:
        yield page
    finally:
        page.context.close()


def _shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"8-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _sign_in(page: Any, user: User) -> None:
    page.goto("/auth/login")
    page.get_by_label("Email address").fill(user.email)
    page.get_by_label("Password", exact=True).fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _sign_in_with_totp(page: Any, user: User) -> None:
    """The LA officer's role requires two-factor authentication: set it up as a user would, with
    the code an authenticator app computes from the key shown on the page."""
    _sign_in(page, user)
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    key = page.locator("#manual-key").inner_text().replace(" ", "")
    page.get_by_label("6-digit code").fill(pyotp.TOTP(key).now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    page.wait_for_load_state()


def test_school_and_la_officer_take_a_penalty_notice_request_to_a_refused_third_notice(
    page: Any,
    officer_page: Any,
    live_server: LiveServer,
    assert_accessible: Callable[[Any], None],
) -> None:
    school_page = page
    school = live_server.make_school(name="Reed Lane Primary")
    ids = _seed(live_server, school)
    la = live_server.setup(lambda s: s.get_one(Organisation, ids["la"]))
    champion = live_server.make_user([(school, "senior_attendance_champion")], display_name="Pat Champion")
    officer = live_server.make_user([(la, "la_attendance_officer")], display_name="Lee Officer")

    # -- the school starts the referral from the case and sees what the LA's checklist lacks
    _sign_in(school_page, champion)
    school_page.goto(f"/cases/{ids['case']}")
    school_page.get_by_test_id("refer-link").click()
    school_page.get_by_label("Penalty notice request").check()
    school_page.get_by_label("Why you are referring").fill("Ten unauthorised sessions this term")
    school_page.get_by_role("button", name="Start referral").click()
    expect(school_page.get_by_test_id("check-warning_letter")).to_contain_text("Missing")
    expect(school_page.get_by_test_id("check-support")).to_contain_text("Missing")
    expect(school_page.get_by_test_id("check-registration_certificate")).to_contain_text("Present")
    assert_accessible(school_page)
    _shot(school_page, "school-checklist-missing")
    referral_url = school_page.url

    school_page.get_by_label("Describe the evidence you hold: Warning letter sent").fill(
        "Stage 2 warning letter posted 12 October 2026; certificate of posting held"
    )
    school_page.get_by_role("button", name="Add warning letter sent").click()
    school_page.get_by_label("Describe the evidence you hold: Support offered").fill(
        "Weekly mentoring since 2 November 2026"
    )
    school_page.get_by_role("button", name="Add support offered").click()
    expect(school_page.get_by_test_id("check-warning_letter")).to_contain_text("Present")
    expect(school_page.get_by_test_id("check-support")).to_contain_text("Present")
    school_page.get_by_role("button", name="Sign off").click()
    school_page.get_by_role("button", name="Submit to the local authority").click()
    # Submission renders the bundle PDF (the render process starts on first use): allow for it.
    expect(school_page.get_by_test_id("referral-status")).to_have_text("Submitted", timeout=RENDER_TIMEOUT)
    assert_accessible(school_page)

    # -- the officer, in another context, finds it in the queue and asks for more
    _sign_in_with_totp(officer_page, officer)
    officer_page.goto("/referrals/queue")
    expect(officer_page.get_by_test_id("queue")).to_contain_text("Reed Lane Primary")
    assert_accessible(officer_page)
    _shot(officer_page, "la-queue")
    officer_page.get_by_test_id("queue").get_by_role("link").first.click()
    expect(officer_page.get_by_test_id("received-status")).to_have_text("Submitted")
    expect(officer_page.get_by_test_id("bundle-hash")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    officer_page.get_by_label("Ask the school for more information").fill(
        "Please send the dates of the mentoring sessions attended."
    )
    officer_page.get_by_role("button", name="Request more information").click()
    expect(officer_page.get_by_test_id("received-status")).to_have_text("More information requested")
    assert_accessible(officer_page)

    # -- the school answers
    school_page.goto(referral_url)
    expect(school_page.get_by_test_id("referral-status")).to_have_text("More information requested")
    expect(school_page.get_by_test_id("message")).to_contain_text("dates of the mentoring sessions")
    assert_accessible(school_page)
    _shot(school_page, "school-more-information-requested")
    school_page.get_by_label("Your answer").fill("Mentoring on 2, 9 and 16 November; Ada attended all three.")
    school_page.get_by_role("button", name="Send answer").click()
    expect(school_page.get_by_test_id("referral-status")).to_have_text("Acknowledged")

    # -- the officer accepts, issues a notice to improve, then a penalty notice
    officer_page.reload()
    expect(officer_page.get_by_test_id("message").last).to_contain_text("attended all three")
    officer_page.get_by_role("button", name="Accept").click()
    expect(officer_page.get_by_test_id("received-status")).to_have_text("Accepted")
    officer_page.get_by_label("Decision").select_option("nti_issued")
    officer_page.get_by_role("button", name="Record decision").click()
    expect(officer_page.get_by_test_id("decision")).to_contain_text(
        "Notice to improve issued, improvement period ends"
    )
    expect(officer_page.get_by_test_id("pn-next")).to_contain_text("notice 2: £160")
    officer_page.get_by_role("button", name="Issue penalty notice to Grace Reed").click()
    notices = officer_page.get_by_test_id("notice")
    expect(notices).to_have_count(2)
    expect(notices.last).to_contain_text("Notice 2 issued 20 November 2026: £160")
    expect(notices.last.get_by_test_id("notice-status")).to_have_text("Issued")
    assert_accessible(officer_page)

    # -- the payment, then the third notice is refused
    notices.last.get_by_label("Paid on").fill("2026-11-27")
    notices.last.get_by_label("Amount (£)").fill("160")
    notices.last.get_by_role("button", name="Record payment").click()
    expect(officer_page.get_by_test_id("notice").last.get_by_test_id("notice-status")).to_have_text("Paid")
    expect(officer_page.get_by_test_id("pn-refused")).to_contain_text(
        "This parent has already had 2 penalty notices for this child in the last 3 years"
    )
    expect(officer_page.get_by_role("button", name="Issue penalty notice to Grace Reed")).to_have_count(0)
    assert_accessible(officer_page)
    _shot(officer_page, "la-third-notice-refused")

    officer_page.goto("/referrals/overview")
    expect(officer_page.get_by_test_id("concluded")).to_have_text("1")
    expect(officer_page.get_by_test_id("by-school")).to_contain_text("1 (100%)")
    assert_accessible(officer_page)
    _shot(officer_page, "la-overview")

    # -- the school sees the outcome on its referral
    school_page.goto(referral_url)
    expect(school_page.get_by_test_id("referral-status")).to_have_text("Decided")
    expect(school_page.get_by_text("Decision: Penalty notice issued")).to_be_visible()
    assert_accessible(school_page)


class _FlakyReceiver(BaseHTTPRequestHandler):
    """The LA's case-management system: down for the first two attempts, then accepting."""

    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append(self.headers["Attendwise-Signature"])
        self.send_response(503 if len(type(self).calls) <= 2 else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def receiver_url() -> Iterator[str]:
    _FlakyReceiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_la_administrator_sets_the_code_of_conduct_a_kind_and_a_webhook(
    page: Any,
    live_server: LiveServer,
    receiver_url: str,
    assert_accessible: Callable[[Any], None],
) -> None:
    school = live_server.make_school()
    la = live_server.setup(lambda s: s.get_one(Organisation, s.get_one(Organisation, school.id).la_id))
    admin = live_server.make_user([(la, "la_admin")], display_name="Ash Admin")
    _sign_in_with_totp(page, admin)

    page.goto("/referrals/settings")
    page.get_by_label("Improvement period after a notice to improve (school days)").fill("14")
    page.get_by_role("button", name="Save code of conduct").click()
    expect(page.get_by_test_id("error")).to_contain_text("must be between 15 and 30, not 14")
    page.get_by_label("Improvement period after a notice to improve (school days)").fill("20")
    page.get_by_label("Team mailbox for new and overdue referrals").fill("attendance@la.example.test")
    page.get_by_role("button", name="Save code of conduct").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    assert_accessible(page)
    _shot(page, "la-settings")

    page.get_by_role("link", name="Penalty notice request").click()
    page.get_by_label("Service level (working days)").fill("15")
    page.get_by_label("Weeks, item 2").fill("12")
    page.get_by_role("button", name="Save referral kind").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_label("Weeks, item 2")).to_have_value("12")
    assert_accessible(page)

    page.goto("/referrals/webhooks")
    page.get_by_label("Address (https)").fill(receiver_url)
    page.get_by_label("Description (optional)").fill("Case-management system")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_test_id("webhook-secret")).to_contain_text("whsec_")
    assert_accessible(page)

    def send_and_retry(session: Session) -> None:
        with tenancy.tenant_context(la.id):
            webhooks.emit(session, la.id, WebhookEvent.REFERRAL_STATUS_CHANGED, {"referral_id": 1})
            now = dt.datetime.now(dt.UTC)
            for _ in range(3):
                webhooks.deliver_due(session, now)
                now = now + dt.timedelta(hours=1)

    live_server.setup(send_and_retry)
    page.get_by_role("link", name=receiver_url).click()
    expect(page.get_by_test_id("attempt")).to_have_count(3)
    expect(page.get_by_test_id("delivery-status")).to_have_text("Delivered")
    assert [a.inner_text().split("\t")[1] for a in page.get_by_test_id("attempt").all()] == [
        "503",
        "503",
        "204",
    ]
    assert len(_FlakyReceiver.calls) == 3
    assert_accessible(page)
    _shot(page, "la-webhook-attempts")
