"""This week's letters in Debian's Chromium: preview the letters due, watch the run's progress
update in the page (htmx polling), download the one PDF to print and send the emails once."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import update
from sqlalchemy.orm import Session

from attendwise.attendance import queries
from attendwise.casework.models import Task, TaskKind
from attendwise.letters import services
from attendwise.letters.models import LetterRun, RunStatus
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.casework.conftest import build_school
from tests.letters.conftest import ON, Received, _Handler, add_parents


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "today", lambda: ON)


@pytest.fixture
def mailbox(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    received = Received()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(_Handler(received), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setitem(live_server.app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(live_server.app.config, "MAIL_PORT", port)
    try:
        yield received
    finally:
        controller.stop()


def _seed(school_id: int, estab: int) -> Callable[[Session], None]:
    """A final warning (to both parents: email and post), a first warning and a reminder due."""

    def run(session: Session) -> None:
        school = session.get_one(Organisation, school_id)
        built = build_school(
            session, school, pupils=6, absent_pupils=2, preset="dothill", marks_to=ON, estab=estab
        )
        pupil = built.pupils[0]
        with tenancy.tenant_context(school_id):
            add_parents(session, school, pupil)
            for key in ("dothill-final-warning", "dothill-sal1", "dothill-reminder"):
                session.add(
                    Task(
                        org_id=school_id,
                        pupil_id=pupil.id,
                        kind=TaskKind.LETTER,
                        title=f"Letter: {key}",
                        params={"template": key, "to": "parent"},
                        due_on=ON,
                    )
                )

    return run


def test_this_weeks_letters_in_the_browser(
    page: Any,
    live_server: Any,
    mailbox: Received,
    sign_in: Callable[..., None],
    assert_accessible: Callable[[Any], None],
    screenshot: Callable[[Any, str], Any],
) -> None:
    school = live_server.make_school(name=f"Dothill Primary {live_server.next_id()}")
    live_server.setup(_seed(school.id, 5000 + live_server.next_id() % 900))
    officer = live_server.make_user([(school, "attendance_officer")], display_name="Olu Officer")

    sign_in(officer)
    page.goto("/letters")
    page.get_by_role("link", name="This week's letters").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("This week's letters")
    table = page.get_by_test_id("week-letters")
    expect(table).to_contain_text("dothill-final-warning")
    expect(table).to_contain_text("Ms Jane Family1 (email)")
    expect(table).to_contain_text("Mr John Family1 (post)")
    assert_accessible(page)
    screenshot(page, "6-bulk-letters-preview")

    def started_but_stalled(session: Session) -> int:
        with tenancy.tenant_context(school.id):
            run = services.start_run(session, school.id, ON, user_id=None)
            run.status = RunStatus.RENDERING.value  # the job has not got to it yet
            return run.id

    run_id = live_server.setup(started_but_stalled)
    page.goto(f"/letters/runs/{run_id}")
    expect(page.get_by_test_id("run-progress")).to_contain_text("0 of 3 letter tasks done")
    assert_accessible(page)

    def job_runs(session: Session) -> None:
        with tenancy.tenant_context(school.id):
            session.execute(
                update(LetterRun).where(LetterRun.id == run_id).values(status=RunStatus.QUEUED.value)
            )
            assert services.render_run(session, run_id, ON)

    live_server.setup(job_runs)
    # the open page notices by itself (htmx polls the progress every 2 s): no reload
    expect(page.get_by_test_id("run-done")).to_contain_text("All 3 letter tasks done: 4 letters made")
    expect(page.get_by_test_id("run-letters")).to_contain_text("Ready to email")
    assert mailbox.messages == []
    assert_accessible(page)
    screenshot(page, "6-bulk-letters")

    href = page.get_by_test_id("print-pdf").get_attribute("href")
    pdf = page.request.get(href)
    assert pdf.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf.body()))
    assert len(reader.pages) == 1
    assert "Dear Mr Family1" in (reader.pages[0].extract_text() or "")

    page.get_by_test_id("send-emails").click()
    expect(page.get_by_test_id("emails-status")).to_contain_text("3 of 3 sent")
    assert len(mailbox.messages) == 3
    assert {m["To"] for m in mailbox.messages} == {"jane@example.test"}
    page.goto(f"/letters/runs/{run_id}")
    expect(page.get_by_test_id("send-emails")).to_have_count(0)
    assert len(mailbox.messages) == 3
