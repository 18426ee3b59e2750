"""Letters from queue to a real SMTP server: once, and only once; post with a certificate."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.letters import hooks, jobs, services, storage
from attendwise.letters.models import Document, Letter, LetterSettings, LetterStatus, PostBatch
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import utcnow
from tests.letters.conftest import ON, LetterSchool, Received


@pytest.fixture
def delivered() -> Iterator[list[hooks.LetterDelivered]]:
    events: list[hooks.LetterDelivered] = []

    def collect(session: Session, event: hooks.LetterDelivered) -> None:
        events.append(event)

    hooks.on_delivered(collect)
    yield events
    hooks.remove(collect)


def _letter(session: Session, letter_id: int) -> Letter:
    session.expire_all()
    letter = session.get(Letter, letter_id)
    assert letter is not None
    return letter


def pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def test_an_emailed_letter_arrives_once_with_the_pdf_attached(
    db_session: Session, letter_school: LetterSchool, smtp_server: Received, delivered: list
) -> None:
    school = letter_school.school
    with tenancy.tenant_context(school.id):
        [letter_id] = services.queue_letter(
            db_session,
            school.id,
            letter_school.pupil.id,
            "dothill-sal1",
            None,
            [letter_school.mother_id],
            case_id=77,
            channel="email",
            on=ON,
        )
        db_session.commit()  # the render job, then the send job, run after this commit
        letter = _letter(db_session, letter_id)
        assert letter.status == LetterStatus.SENT
        assert letter.attempts == 1
        assert len(smtp_server.messages) == 1
        message = smtp_server.messages[0]
        assert message["To"] == "jane@example.test"
        assert message["Message-ID"] == letter.provider_message_id
        assert "about Pupil1 Family1" in message["Subject"]
        [attachment] = [part for part in message.walk() if part.get_content_type() == "application/pdf"]
        text = pdf_text(attachment.get_payload(decode=True))
        assert "Dear Ms Family1" in text
        assert "First attendance warning (SAL1)" in text
        assert "Pupil1 has missed" in text
        document = db_session.get(Document, letter.document_id)
        assert document is not None
        assert storage.store().get_pdf(school.id, document.sha256) == attachment.get_payload(decode=True)
        assert "Pupil1" in storage.store().get_html(school.id, document.sha256)
        assert [(e.letter_id, e.case_id, e.channel) for e in delivered] == [(letter_id, 77, "email")]

        # The job delivered twice (RQ retry, two workers): nothing more goes out.
        assert jobs.send_letter(letter_id) is False
        assert jobs.render_letter(letter_id) is False
        assert len(smtp_server.messages) == 1
        assert len(delivered) == 1

        # Queueing the same letter again the same day returns the same letter.
        again = services.queue_letter(
            db_session,
            school.id,
            letter_school.pupil.id,
            "dothill-sal1",
            None,
            [letter_school.mother_id],
            case_id=77,
            channel="email",
            on=ON,
        )
        db_session.commit()
        assert again == [letter_id]
        assert len(smtp_server.messages) == 1


def _worker_dies_mid_send(
    db_session: Session, letter_school: LetterSchool, monkeypatch: pytest.MonkeyPatch
) -> int:
    """Queue an email whose worker is killed while handing it to the mail server; its id."""
    school = letter_school.school

    def die(*args: object, **kwargs: object) -> str:
        raise SystemExit("worker killed while talking to the mail server")

    with tenancy.tenant_context(school.id), monkeypatch.context() as patch:
        patch.setattr(services, "send_email", die)
        services.queue_letter(
            db_session,
            school.id,
            letter_school.pupil.id,
            "dothill-sal2",
            None,
            [letter_school.mother_id],
            channel="email",
            on=ON,
        )
        with pytest.raises(SystemExit):
            db_session.commit()
        letter_id = db_session.scalar(select(Letter.id).where(Letter.template_key == "dothill-sal2"))
    assert letter_id is not None
    return letter_id


def test_a_worker_that_dies_mid_send_never_causes_a_second_email(
    db_session: Session, letter_school: LetterSchool, smtp_server: Received, monkeypatch: pytest.MonkeyPatch
) -> None:
    school = letter_school.school

    letter_id = _worker_dies_mid_send(db_session, letter_school, monkeypatch)
    with tenancy.tenant_context(school.id):
        letter = _letter(db_session, letter_id)
        assert letter.status == LetterStatus.SENDING  # the claim was committed before the send
        # The job runs again (RQ re-queued it): the claim is taken, nothing is sent.
        assert jobs.send_letter(letter_id) is False
        # The sweeper, after the timeout, does not resend blindly: it flags the letter for a person.
        later = (utcnow() + dt.timedelta(minutes=20)).isoformat()
        assert jobs.sweep_school(later) == {"render": 0, "send": 0, "uncertain": 1, "run": 0}
        db_session.commit()
        letter = _letter(db_session, letter_id)
        assert letter.status == LetterStatus.FAILED
        assert "delivery uncertain" in (letter.error or "")
        assert letter.provider_message_id in (letter.error or "")
        assert smtp_server.messages == []
        # A person checked the mail server's log and resends: exactly one message.
        assert services.resend(db_session, school.id, letter_id) is True
        db_session.commit()
        assert _letter(db_session, letter_id).status == LetterStatus.SENT
        assert len(smtp_server.messages) == 1
        assert smtp_server.messages[0]["Message-ID"] == letter.provider_message_id


def test_an_uncertain_email_found_in_the_mail_log_is_recorded_as_delivered_without_a_second_send(
    client,
    login,
    make_user,
    db_session: Session,
    letter_school: LetterSchool,
    smtp_server: Received,
    monkeypatch,
) -> None:
    school = letter_school.school
    delivered: list[int] = []
    monkeypatch.setattr(
        hooks, "_subscribers", [*hooks._subscribers, lambda _s, event: delivered.append(event.letter_id)]
    )

    letter_id = _worker_dies_mid_send(db_session, letter_school, monkeypatch)
    with tenancy.tenant_context(school.id):
        jobs.sweep_school((utcnow() + dt.timedelta(minutes=20)).isoformat())
        db_session.commit()
    login(make_user(school, "attendance_officer"))
    page = client.get("/letters").get_data(as_text=True)
    assert "It was delivered" in page
    assert "Send again" in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]

    response = client.post(f"/letters/{letter_id}/delivered", data={"csrf_token": token})
    assert response.status_code == 302
    again = client.post(f"/letters/{letter_id}/delivered", data={"csrf_token": token})
    assert again.status_code == 404  # it is no longer uncertain

    with tenancy.tenant_context(school.id):
        letter = _letter(db_session, letter_id)
        assert (letter.status, letter.error) == (LetterStatus.SENT, None)
        assert letter.sent_at is not None
        actions = db_session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.object_id == str(letter_id), AuditEvent.object_type == "letter"
            )
        ).all()
    assert "letter.delivery_confirmed" in actions
    assert delivered == [letter_id]  # on the case's contact log and timeline, once
    assert smtp_server.messages == []  # nothing was sent again
    assert "It was delivered" not in client.get("/letters").get_data(as_text=True)


def test_the_sweeper_requeues_a_letter_whose_job_was_lost(
    db_session: Session, letter_school: LetterSchool, smtp_server: Received
) -> None:
    school = letter_school.school
    with tenancy.tenant_context(school.id):
        [letter_id] = services.queue_letter(
            db_session,
            school.id,
            letter_school.pupil.id,
            "dothill-reminder",
            None,
            [letter_school.mother_id],
            channel="email",
            on=ON,
        )
        db_session.info.pop("aw_pending_jobs")  # Redis lost the render job
        db_session.commit()
        assert _letter(db_session, letter_id).status == LetterStatus.QUEUED
        assert jobs.sweep_school(utcnow().isoformat()) == {"render": 0, "send": 0, "uncertain": 0, "run": 0}
        later = (utcnow() + dt.timedelta(minutes=11)).isoformat()
        assert jobs.sweep_school(later)["render"] == 1
        db_session.commit()
        assert _letter(db_session, letter_id).status == LetterStatus.SENT
        assert len(smtp_server.messages) == 1
        assert jobs.sweep_school((utcnow() + dt.timedelta(minutes=30)).isoformat()) == {
            "render": 0,
            "send": 0,
            "uncertain": 0,
            "run": 0,
        }
        db_session.commit()
        assert len(smtp_server.messages) == 1


def test_a_refused_hand_over_is_retried_and_succeeds_once(
    db_session: Session,
    letter_school: LetterSchool,
    smtp_server: Received,
    app: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    school = letter_school.school
    port = app.config["MAIL_PORT"]  # type: ignore[attr-defined]
    monkeypatch.setitem(app.config, "MAIL_PORT", 1)  # type: ignore[attr-defined]  # nothing listens there
    with tenancy.tenant_context(school.id):
        [letter_id] = services.queue_letter(
            db_session,
            school.id,
            letter_school.pupil.id,
            "dothill-reminder",
            None,
            [letter_school.mother_id],
            channel="email",
            on=ON,
        )
        db_session.commit()
        letter = _letter(db_session, letter_id)
        assert letter.status == LetterStatus.RETRY
        assert "ConnectionRefusedError" in (letter.error or "")
        monkeypatch.setitem(app.config, "MAIL_PORT", port)  # type: ignore[attr-defined]
        assert jobs.sweep_school((utcnow() + dt.timedelta(minutes=11)).isoformat())["send"] == 1
        db_session.commit()
        letter = _letter(db_session, letter_id)
        assert letter.status == LetterStatus.SENT
        assert letter.attempts == 2
        assert len(smtp_server.messages) == 1


def test_a_school_that_links_instead_of_attaching_sends_a_link(
    db_session: Session, letter_school: LetterSchool, smtp_server: Received
) -> None:
    school = letter_school.school
    with tenancy.tenant_context(school.id):
        db_session.add(LetterSettings(org_id=school.id, email_mode="link"))
        db_session.flush()
        services.queue_letter(
            db_session,
            school.id,
            letter_school.pupil.id,
            "dothill-reminder",
            None,
            [letter_school.mother_id],
            channel="email",
            on=ON,
        )
        db_session.commit()
    [message] = smtp_server.messages
    assert not [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    assert "/letters/download?t=" in message.get_payload(decode=True).decode()


def test_legal_warnings_go_to_each_parent_and_post_is_recorded_once(
    db_session: Session, letter_school: LetterSchool, delivered: list
) -> None:
    school = letter_school.school
    with tenancy.tenant_context(school.id):
        ids = services.queue_letter(
            db_session,
            school.id,
            letter_school.pupil.id,
            "dothill-final-warning",
            {"dates": {"improvement_end": "18 December 2026"}},
            on=ON,
        )
        reminder = services.queue_letter(
            db_session, school.id, letter_school.pupil.id, "dothill-reminder", on=ON
        )
        db_session.commit()
        assert len(ids) == 2
        assert len(reminder) == 1
        letters = [_letter(db_session, i) for i in ids]
        assert {letter.recipient_contact_id for letter in letters} == {
            letter_school.mother_id,
            letter_school.father_id,
        }
        assert all(letter.status == LetterStatus.RENDERED for letter in letters)
        batch_id = services.print_batch(db_session, school.id)
        batch = db_session.get(PostBatch, batch_id)
        assert batch is not None
        document = db_session.get(Document, batch.document_id)
        assert document is not None
        merged = storage.store().get_pdf(school.id, document.sha256)
        text = pdf_text(merged)
        assert "Dear Ms Family1" in text
        assert "Dear Mr Family1" in text
        assert "by 18 December 2026" in text
        with pytest.raises(services.LetterError, match="certificate of posting"):
            services.mark_posted(
                db_session, school.id, batch_id, posted_on=ON, certificate_of_posting=" ", user_id=None
            )
        assert (
            services.mark_posted(
                db_session, school.id, batch_id, posted_on=ON, certificate_of_posting="PO-123", user_id=None
            )
            == 3
        )
        assert (
            services.mark_posted(
                db_session, school.id, batch_id, posted_on=ON, certificate_of_posting="PO-123", user_id=None
            )
            == 0
        )
        db_session.commit()
        assert {e.letter_id for e in delivered} == {*ids, *reminder}
        assert len(delivered) == 3
        assert all(_letter(db_session, i).status == LetterStatus.POSTED for i in ids)
        actions = set(db_session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == school.id)))
        assert "letter.posted" in actions


def test_a_letter_needs_someone_to_write_to(db_session: Session, letter_school: LetterSchool) -> None:
    school = letter_school.school
    with tenancy.tenant_context(school.id):
        with pytest.raises(services.LetterError, match="no email address"):
            services.queue_letter(
                db_session,
                school.id,
                letter_school.pupil.id,
                "dothill-reminder",
                None,
                [letter_school.father_id],
                channel="email",
                on=ON,
            )
        with pytest.raises(services.LetterError, match="no default letter template"):
            services.queue_letter(db_session, school.id, letter_school.pupil.id, "no-such-letter", on=ON)
