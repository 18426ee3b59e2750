"""This week's letters as one bulk run: preview, render all as one job with progress, one PDF
to print, the emails sent once when released (and never by the sweeper before that)."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.casework.models import Task, TaskKind
from attendwise.letters import jobs, services
from attendwise.letters.models import Letter, LetterRun, LetterStatus, RunStatus
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import utcnow
from attendwise.tenants.models import Organisation
from tests.conftest import csrf_token
from tests.letters.conftest import ON, LetterSchool, Received


def pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attendance_queries, "today", lambda: ON)


def add_task(session: Session, school_id: int, pupil_id: int, template: str | None, due_on: dt.date) -> int:
    with tenancy.tenant_context(school_id):
        task = Task(
            org_id=school_id,
            pupil_id=pupil_id,
            kind=TaskKind.LETTER,
            title=f"Letter: {template}",
            params={"template": template, "to": "parent"} if template else {},
            due_on=due_on,
        )
        session.add(task)
        session.commit()
        return task.id


@pytest.fixture
def week(db_session: Session, letter_school: LetterSchool) -> LetterSchool:
    """Due this week: a final warning (one per parent: mother by email, father by post) and a
    SAL1 (the first parent only) for pupil 1; a letter for a pupil with no parent on record;
    next week: a reminder that is not in this run."""
    school, pupil = letter_school.school, letter_school.pupil
    with tenancy.tenant_context(school.id):
        from attendwise.attendance.models import Pupil

        orphan = db_session.scalars(select(Pupil).where(Pupil.id != pupil.id).order_by(Pupil.id)).first()
        assert orphan is not None
    add_task(db_session, school.id, pupil.id, "dothill-final-warning", ON - dt.timedelta(days=3))
    add_task(db_session, school.id, pupil.id, "dothill-sal1", ON)
    add_task(db_session, school.id, orphan.id, "dothill-reminder", ON)
    add_task(db_session, school.id, pupil.id, "dothill-reminder", ON + dt.timedelta(days=7))
    return letter_school


def _run_id(location: str) -> int:
    match = re.search(r"/letters/runs/(\d+)$", location)
    assert match, location
    return int(match.group(1))


def test_this_weeks_letters_are_made_in_one_run_printed_as_one_pdf_and_emailed_once(
    db_session: Session,
    client: FlaskClient,
    week: LetterSchool,
    smtp_server: Received,
    make_user: Callable,
    login: Callable,
) -> None:
    school = week.school
    login(make_user(school, "attendance_officer"))
    preview = client.get("/letters/week")
    assert preview.status_code == 200
    page = preview.get_data(as_text=True)
    assert "dothill-final-warning" in page
    assert "Ms Jane Family1 (email)" in page
    assert "Mr John Family1 (post)" in page
    assert "has no contact with parental responsibility" in page
    assert "Render all 2 letters" in page  # next week's reminder and the orphan's are not in it

    started = client.post("/letters/runs", data={"csrf_token": csrf_token(client, "/letters/week")})
    assert started.status_code == 302
    run_id = _run_id(started.headers["Location"])
    shown = client.get(f"/letters/runs/{run_id}").get_data(as_text=True)
    assert "All 2 letter tasks done: 3 letters made" in shown
    assert "hx-trigger" not in shown  # finished: the page stops polling
    assert smtp_server.messages == []  # nothing is emailed before someone says so

    with tenancy.tenant_context(school.id):
        letters = services.run_letters(db_session, school.id, run_id)
        assert sorted((x.template_key, x.channel, x.status) for x in letters) == [
            ("dothill-final-warning", "email", "rendered"),
            ("dothill-final-warning", "post", "rendered"),
            ("dothill-sal1", "email", "rendered"),
        ]
        later = (utcnow() + dt.timedelta(hours=1)).isoformat()
        assert jobs.sweep_school(later)["send"] == 0  # the sweeper leaves held emails alone
        db_session.commit()
    assert smtp_server.messages == []

    link = re.search(r'href="(/letters/documents/\d+/pdf)"', shown)
    assert link, "no link to the PDF for printing"
    printed = client.get(link.group(1))
    assert printed.mimetype == "application/pdf"
    assert len(PdfReader(io.BytesIO(printed.data)).pages) == 1  # the one post letter, one page
    text = pdf_text(printed.data)
    assert "Dear Mr Family1" in text
    assert "Pupil1 has missed" in text

    token = csrf_token(client, f"/letters/runs/{run_id}")
    sent = client.post(f"/letters/runs/{run_id}/send", data={"csrf_token": token}, follow_redirects=True)
    assert "2 emails are being sent" in sent.get_data(as_text=True)
    assert (
        sorted(m["Subject"] for m in smtp_server.messages)
        == ["A letter from Dothill Primary School about Pupil1 Family1"] * 2
    )
    assert {m["To"] for m in smtp_server.messages} == {"jane@example.test"}
    again = client.post(f"/letters/runs/{run_id}/send", data={"csrf_token": token}, follow_redirects=True)
    assert "nothing was sent again" in again.get_data(as_text=True)
    with tenancy.tenant_context(school.id):
        assert jobs.sweep_school((utcnow() + dt.timedelta(hours=2)).isoformat())["send"] == 0
        db_session.commit()
    assert len(smtp_server.messages) == 2

    rerun = client.post("/letters/runs", data={"csrf_token": token})
    second = _run_id(rerun.headers["Location"])
    assert second != run_id
    assert "0 letters made" in client.get(f"/letters/runs/{second}").get_data(as_text=True)
    assert len(smtp_server.messages) == 2  # a second run makes and sends nothing twice
    with tenancy.tenant_context(school.id):
        assert db_session.scalar(select(Letter.id).where(Letter.run_id == second)) is None
        actions = set(db_session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == school.id)))
    assert {"letters.week_preview", "letter_run.emails_released", "document.download"} <= actions
    db_session.expire_all()
    week_page = client.get("/letters/week").get_data(as_text=True)
    assert week_page.count(">\n  Emailed\n<") == 2
    assert week_page.count(">\n  Ready to print\n<") == 1


def test_the_progress_fragment_polls_while_the_run_works(
    db_session: Session, client: FlaskClient, week: LetterSchool, make_user: Callable, login: Callable
) -> None:
    school = week.school
    with tenancy.tenant_context(school.id):
        run = LetterRun(
            org_id=school.id,
            week_start=ON - dt.timedelta(days=ON.weekday()),
            status=RunStatus.RENDERING.value,
            items=[],
            total=40,
            done=12,
            failed=1,
            errors=[],
        )
        db_session.add(run)
        db_session.commit()
        run_id = run.id
    login(make_user(school, "attendance_officer"))
    fragment = client.get(f"/letters/runs/{run_id}/progress").get_data(as_text=True)
    assert f'hx-get="/letters/runs/{run_id}/progress"' in fragment
    assert 'hx-trigger="every 2s"' in fragment
    assert "12 of 40 letter tasks done, 1 could not be made" in fragment
    assert '<progress class="aw-run-progress" max="40" value="12"' in fragment
    refused = client.post(
        f"/letters/runs/{run_id}/send",
        data={"csrf_token": csrf_token(client, f"/letters/runs/{run_id}")},
        follow_redirects=True,
    )
    assert "still being made" in refused.get_data(as_text=True)


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RENDERING])
def test_a_run_whose_job_was_lost_or_died_is_finished_by_the_sweeper(
    db_session: Session, week: LetterSchool, status: RunStatus
) -> None:
    """A run left ``queued`` (Redis lost its job) or ``rendering`` (the worker died) half an
    hour ago: no second run starts meanwhile, and the sweeper's job finishes it."""
    school = week.school
    with tenancy.tenant_context(school.id):
        items = [
            {
                "task": w.task_id,
                "pupil": w.pupil_id,
                "case": w.case_id,
                "template": w.template_key,
                "pupil_name": w.pupil_name,
            }
            for w in services.week_letters(db_session, school.id, ON)
            if w.problem is None
        ]
        run = LetterRun(
            org_id=school.id,
            week_start=ON - dt.timedelta(days=ON.weekday()),
            status=status.value,
            items=items,
            total=len(items),
            done=0,
            failed=0,
            errors=[],
        )
        db_session.add(run)
        db_session.flush()
        run_id = run.id
        db_session.execute(
            LetterRun.__table__.update()  # type: ignore[attr-defined]
            .where(LetterRun.id == run_id)
            .values(updated_at=utcnow() - dt.timedelta(minutes=30))
        )
        assert services.start_run(db_session, school.id, ON, user_id=None).id == run_id
        db_session.commit()
        db_session.expire_all()
        assert db_session.get_one(LetterRun, run_id).status == status  # no job ran
        assert jobs.sweep_school(utcnow().isoformat())["run"] == 1
        db_session.commit()  # the re-queued job runs now
        db_session.expire_all()
        finished = db_session.get_one(LetterRun, run_id)
        assert finished.status == RunStatus.RENDERED
        assert finished.done == finished.total == 2
        statuses = [x.status for x in services.run_letters(db_session, school.id, run_id)]
        assert statuses == [LetterStatus.RENDERED] * 3
        assert jobs.sweep_school((utcnow() + dt.timedelta(hours=1)).isoformat())["run"] == 0


def test_another_schools_run_is_not_found(
    db_session: Session,
    client: FlaskClient,
    week: LetterSchool,
    make_user: Callable,
    login: Callable,
    make_school: Callable[..., Organisation],
) -> None:
    with tenancy.tenant_context(week.school.id):
        run_id = services.start_run(db_session, week.school.id, ON, user_id=None).id
        db_session.commit()
    login(make_user(make_school(name="Other School"), "attendance_officer"))
    assert client.get(f"/letters/runs/{run_id}").status_code == 404
    assert client.get(f"/letters/runs/{run_id}/progress").status_code == 404
    token = csrf_token(client, "/letters/week")
    assert client.post(f"/letters/runs/{run_id}/send", data={"csrf_token": token}).status_code == 404
    assert "No letters are due this week" in client.get("/letters/week").get_data(as_text=True)


def test_read_only_staff_cannot_run_letters(
    client: FlaskClient, week: LetterSchool, make_user: Callable, login: Callable
) -> None:
    login(make_user(week.school, "school_staff"))
    assert client.get("/letters/week").status_code == 403


def test_a_letter_that_cannot_be_rendered_fails_alone_and_the_run_says_which(
    db_session: Session,
    client: FlaskClient,
    week: LetterSchool,
    make_user: Callable,
    login: Callable,
) -> None:
    """A run resumed after the school's template version it was queued with went missing:
    that letter fails with the reason, the others are made, and the run page lists it."""
    school = week.school
    with tenancy.tenant_context(school.id):
        [sal1] = [
            w for w in services.week_letters(db_session, school.id, ON) if w.template_key == "dothill-sal1"
        ]
        [letter_id] = services.queue_letter(
            db_session,
            school.id,
            week.pupil.id,
            "dothill-sal1",
            None,
            [week.mother_id],
            channel="email",
            idempotency_key=f"task-{sal1.task_id}",
            on=ON,
            enqueue_render=False,
        )
        letter = db_session.get_one(Letter, letter_id)
        letter.template_version = 99
        run = services.start_run(db_session, school.id, ON, user_id=None)
        letter.run_id = run.id
        db_session.commit()  # the run's job runs now
        db_session.expire_all()
        run = db_session.get_one(LetterRun, run.id)
        assert run.status == RunStatus.RENDERED
        assert run.failed == 1, run.errors
        assert run.errors == [
            "Pupil1 Family1 (dothill-sal1): could not render: version 99 of 'dothill-sal1' is missing"
        ]
        statuses = sorted(
            (x.template_key, x.status) for x in services.run_letters(db_session, school.id, run.id)
        )
        assert statuses == [
            ("dothill-final-warning", "rendered"),
            ("dothill-final-warning", "rendered"),
            ("dothill-sal1", "failed"),
        ]
    login(make_user(school, "attendance_officer"))
    page = client.get(f"/letters/runs/{run.id}").get_data(as_text=True)
    assert "Some letters could not be made" in page
    assert "version 99 of &#39;dothill-sal1&#39; is missing" in page
