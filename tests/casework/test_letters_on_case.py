"""Letters on the case: every letter emailed or posted is one contact-log entry and one timeline
entry, however often delivery is reported; parents get a copy of meeting minutes as letters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.casework import services
from attendwise.casework.models import (
    ContactChannel,
    ContactLog,
    Meeting,
    MeetingStatus,
    Task,
    TaskKind,
    TaskStatus,
    TimelineEntry,
)
from attendwise.letters import hooks, jobs
from attendwise.letters import services as letters
from attendwise.letters.models import Letter, LetterStatus
from attendwise.platform import tenancy
from attendwise.tenants.models import User
from tests.casework.conftest import CaseWithParents
from tests.conftest import csrf_token
from tests.letters import conftest as letter_fixtures
from tests.letters.conftest import Received

ON = dt.date(2026, 11, 20)
smtp = letter_fixtures.smtp_server  # a real SMTP server (the letters tests' fixture)


def letter_lines(session: Session, case_id: int) -> tuple[list[ContactLog], list[TimelineEntry]]:
    session.expire_all()
    logs = session.scalars(
        select(ContactLog).where(ContactLog.case_id == case_id, ContactLog.channel == ContactChannel.LETTER)
    ).all()
    entries = session.scalars(
        select(TimelineEntry).where(TimelineEntry.case_id == case_id, TimelineEntry.kind == "letter")
    ).all()
    return list(logs), list(entries)


def pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def test_an_emailed_letter_is_logged_on_the_case_once(
    db_session: Session, case_with_parents: CaseWithParents, smtp: Received
) -> None:
    school, case = case_with_parents.school, case_with_parents.case
    with tenancy.tenant_context(school.id):
        [letter_id] = letters.queue_letter(
            db_session,
            school.id,
            case.pupil_id,
            "spetisbury-stage-1",
            None,
            [case_with_parents.mother_id],
            case_id=case.id,
            channel="email",
            on=ON,
        )
        db_session.commit()  # the render and send jobs run after this commit
        assert len(smtp.messages) == 1
        [log], [entry] = letter_lines(db_session, case.id)
        assert log.letter_id == letter_id
        assert log.contact_id == case_with_parents.mother_id
        assert log.outcome.value == "sent"
        assert log.note == "Letter spetisbury-stage-1 sent by email to Ms Jane Family1"
        assert entry.title == "Letter sent by email to Ms Jane Family1: spetisbury-stage-1"
        letter = db_session.get(Letter, letter_id)
        assert letter is not None
        assert letter.status == LetterStatus.SENT
        assert entry.occurred_at == letter.sent_at == log.occurred_at

        # The send job delivered twice, and the delivery notice repeated: still one line each.
        assert jobs.send_letter(letter_id) is False
        event = hooks.LetterDelivered(
            org_id=school.id,
            letter_id=letter_id,
            pupil_id=case.pupil_id,
            case_id=case.id,
            template_key=letter.template_key,
            channel="email",
            recipient_name=letter.recipient_name,
            recipient_contact_id=letter.recipient_contact_id,
            at=letter.sent_at or ON,
        )
        hooks.delivered(db_session, event)
        hooks.delivered(db_session, event)
        db_session.commit()
        logs, entries = letter_lines(db_session, case.id)
        assert (len(logs), len(entries)) == (1, 1)

        # A letter about another pupil never lands on this case.
        hooks.delivered(db_session, dataclasses.replace(event, letter_id=letter_id + 1000, pupil_id=0))
        assert letter_lines(db_session, case.id)[0] == logs


def test_posted_letters_are_logged_when_the_batch_is_marked_posted_and_only_then(
    db_session: Session, case_with_parents: CaseWithParents
) -> None:
    school, case = case_with_parents.school, case_with_parents.case
    with tenancy.tenant_context(school.id):
        # Queued without a case: it goes on the pupil's open case.
        [letter_id] = letters.queue_letter(
            db_session,
            school.id,
            case.pupil_id,
            "spetisbury-stage-1",
            None,
            [case_with_parents.father_id],
            channel="post",
            on=ON,
        )
        db_session.commit()
        assert letter_lines(db_session, case.id) == ([], [])  # rendered, not yet posted
        batch = letters.print_batch(db_session, school.id, [letter_id])
        for _ in range(2):
            letters.mark_posted(
                db_session,
                school.id,
                batch,
                posted_on=ON,
                certificate_of_posting="CoP 123",
                user_id=None,
            )
            db_session.commit()
        [log], [entry] = letter_lines(db_session, case.id)
        assert log.letter_id == letter_id
        assert log.note == "Letter spetisbury-stage-1 sent by post to Mr John Family1"
        assert entry.title == "Letter sent by post to Mr John Family1: spetisbury-stage-1"


def test_parents_get_a_copy_of_the_minutes_by_email_or_post_once(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    case_with_parents: CaseWithParents,
    smtp: Received,
) -> None:
    school, case = case_with_parents.school, case_with_parents.case
    with tenancy.tenant_context(school.id):
        meeting = services.invite_to_meeting(
            db_session,
            case,
            starts_at=dt.datetime(2026, 11, 17, 9, 30),
            place="School office",
            invitees=["Ms Jane Family1", "Mr John Family1"],
            agenda="Attendance",
            by_user_id=None,
        )
        services.record_meeting_attendance(db_session, meeting, MeetingStatus.ATTENDED, by_user_id=None)
        db_session.flush()
        meeting_id = meeting.id
    login(make_user(school, "attendance_officer"))
    page = f"/cases/{case.id}"
    send = f"/meetings/{meeting_id}/minutes/send"
    too_early = client.post(send, data={"csrf_token": csrf_token(client, page)})
    assert too_early.status_code == 400
    assert "record the minutes before sending parents a copy" in too_early.get_data(as_text=True)

    with tenancy.tenant_context(school.id):
        meeting = db_session.get(Meeting, meeting_id)
        assert meeting is not None
        services.record_minutes(
            db_session,
            meeting,
            {
                "who_attended": "Ms Family1, Mr B (attendance officer)",
                "going_well": "Sam enjoys PE and art",
                "concerns": "Mornings are difficult since the move",
                "wellbeing_goals": "Sam feels safe arriving at school",
                "agreed_actions": "Breakfast club on Mondays",
            },
            by_user_id=None,
        )
        db_session.commit()
    shown = client.get(page).get_data(as_text=True)
    assert "Send the parents a copy of the minutes" in shown

    sent = client.post(send, data={"csrf_token": csrf_token(client, page)})
    assert sent.status_code == 302
    assert "on its way to 2 parents" in client.get(page).get_data(as_text=True)
    [message] = smtp.messages
    assert message["To"] == "jane@example.test"
    [attachment] = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    text = pdf_text(attachment.get_payload(decode=True))
    assert "Minutes of our meeting about Pupil1 Family1's attendance" in text
    assert "Mornings are difficult since the move" in text
    assert "Breakfast club on Mondays" in text
    assert "17 November 2026 at School office" in text

    db_session.expire_all()
    with tenancy.tenant_context(school.id):
        copies = db_session.scalars(
            select(Letter).where(Letter.template_key == services.MINUTES_LETTER).order_by(Letter.id)
        ).all()
        assert [(c.recipient_contact_id, c.channel, c.status) for c in copies] == [
            (case_with_parents.mother_id, "email", LetterStatus.SENT),
            (case_with_parents.father_id, "post", LetterStatus.RENDERED),
        ]
        logs, _ = letter_lines(db_session, case.id)
        assert [log.letter_id for log in logs] == [copies[0].id]  # the posted one is logged when posted
        timeline = db_session.scalars(
            select(TimelineEntry.title).where(TimelineEntry.kind == "minutes_copy")
        ).all()
        assert timeline == [
            "Copy of the minutes of 17 Nov 2026 sent to Ms Jane Family1 (email), Mr John Family1 (post)"
        ]
        emailed, case_id = copies[0].id, case.id
    listed = client.get(f"/api/v1/casework/contacts?case_id={case_id}").get_json()
    assert [(c["channel"], c["letter_id"]) for c in listed["items"] if c["letter_id"]] == [
        ("letter", emailed)
    ]

    again = client.post(send, data={"csrf_token": csrf_token(client, page)})
    assert again.status_code == 400
    assert "already been sent a copy of these minutes" in again.get_data(as_text=True)
    assert len(smtp.messages) == 1


def test_staff_who_cannot_send_letters_cannot_send_minutes(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    case_with_parents: CaseWithParents,
) -> None:
    school, case = case_with_parents.school, case_with_parents.case
    with tenancy.tenant_context(school.id):
        meeting = services.invite_to_meeting(
            db_session,
            case,
            starts_at=dt.datetime(2026, 11, 17, 9, 30),
            place="School office",
            invitees=["Ms Jane Family1"],
            agenda="",
            by_user_id=None,
        )
        db_session.flush()
        meeting_id = meeting.id
    login(make_user(school, "school_staff"))
    page = f"/cases/{case.id}"
    response = client.post(
        f"/meetings/{meeting_id}/minutes/send", data={"csrf_token": csrf_token(client, page)}
    )
    assert response.status_code == 403


def _letter_task(session: Session, case_id: int) -> Task:
    return session.scalars(
        select(Task).where(Task.case_id == case_id, Task.kind == TaskKind.LETTER).order_by(Task.id)
    ).first()  # type: ignore[return-value]


def test_sending_the_letter_a_task_asked_for_completes_that_task_once(
    db_session: Session, case_with_parents: CaseWithParents, smtp: Received
) -> None:
    school, case = case_with_parents.school, case_with_parents.case
    with tenancy.tenant_context(school.id):
        task = _letter_task(db_session, case.id)
        template = task.params["template"]
        # The same letter asked for again later (a second open task for the same template).
        later = Task(
            case_id=case.id,
            pupil_id=case.pupil_id,
            kind=TaskKind.LETTER,
            title=task.title,
            params=dict(task.params),
            due_on=task.due_on + dt.timedelta(days=14),
            assignee_role="attendance_officer",
        )
        db_session.add(later)
        db_session.flush()
        task_id, later_id = task.id, later.id

        # Another letter about the pupil completes nothing.
        letters.queue_letter(
            db_session,
            school.id,
            case.pupil_id,
            "spetisbury-stage-3" if template != "spetisbury-stage-3" else "spetisbury-stage-1",
            None,
            [case_with_parents.mother_id],
            case_id=case.id,
            channel="email",
            on=ON,
        )
        db_session.commit()
        assert len(smtp.messages) == 1
        db_session.expire_all()
        assert db_session.get(Task, task_id).status == TaskStatus.OPEN  # type: ignore[union-attr]

        # The letter the task asked for, to both parents: one emailed, one posted the same day.
        [emailed] = letters.queue_letter(
            db_session,
            school.id,
            case.pupil_id,
            template,
            None,
            [case_with_parents.mother_id],
            case_id=case.id,
            channel="email",
            on=ON,
        )
        [posted] = letters.queue_letter(
            db_session,
            school.id,
            case.pupil_id,
            template,
            None,
            [case_with_parents.father_id],
            case_id=case.id,
            channel="post",
            on=ON,
        )
        db_session.commit()
        db_session.expire_all()
        done = db_session.get(Task, task_id)
        assert done is not None
        assert done.status == TaskStatus.DONE
        assert done.completion_note == (
            f"Letter {template} (letter {emailed}) sent by email to Ms Jane Family1"
        )
        assert done.completed_at is not None

        batch = letters.print_batch(db_session, school.id, [posted])
        letters.mark_posted(
            db_session, school.id, batch, posted_on=ON, certificate_of_posting="CoP 9", user_id=None
        )
        db_session.commit()
        # The father's copy is the same letter: the later task stays open.
        db_session.expire_all()
        assert db_session.get(Task, later_id).status == TaskStatus.OPEN  # type: ignore[union-attr]

        # A repeated delivery notice completes nothing more.
        letter = db_session.get(Letter, emailed)
        assert letter is not None
        hooks.delivered(
            db_session,
            hooks.LetterDelivered(
                org_id=school.id,
                letter_id=emailed,
                pupil_id=case.pupil_id,
                case_id=case.id,
                template_key=template,
                channel="email",
                recipient_name=letter.recipient_name,
                recipient_contact_id=letter.recipient_contact_id,
                at=letter.sent_at or ON,
            ),
        )
        db_session.commit()
        db_session.expire_all()
        assert db_session.get(Task, later_id).status == TaskStatus.OPEN  # type: ignore[union-attr]
        done_lines = db_session.scalars(
            select(TimelineEntry.body).where(
                TimelineEntry.case_id == case.id, TimelineEntry.kind == "task_done"
            )
        ).all()
        assert done_lines == [done.completion_note]
