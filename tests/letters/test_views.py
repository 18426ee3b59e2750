"""The letter pages: downloads are permission-checked, tenant-scoped and audited; a school
edits its own template safely; a registration certificate shows every session."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.letters import services
from attendwise.letters.models import Letter, LetterStatus
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.tenants.models import Organisation
from tests.conftest import csrf_token
from tests.letters.conftest import ON, LetterSchool, Received


def pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def _queue(session: Session, place: LetterSchool, key: str = "dothill-reminder", **kwargs: Any) -> int:
    with tenancy.tenant_context(place.school.id):
        [letter_id] = services.queue_letter(
            session, place.school.id, place.pupil.id, key, None, [place.mother_id], on=ON, **kwargs
        )
        session.commit()
    return letter_id


def _actions(session: Session, org_id: int) -> list[str]:
    with tenancy.tenant_context(org_id):
        return list(session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == org_id)))


def test_staff_download_a_letter_and_the_download_is_audited(
    db_session: Session,
    client: FlaskClient,
    letter_school: LetterSchool,
    make_user: Callable,
    login: Callable,
    make_school: Callable[..., Organisation],
) -> None:
    letter_id = _queue(db_session, letter_school)
    login(make_user(letter_school.school, "attendance_officer"))
    page = client.get("/letters")
    assert page.status_code == 200
    assert "dothill-reminder" in page.get_data(as_text=True)
    response = client.get(f"/letters/{letter_id}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert "Pupil1 has missed" in pdf_text(response.data)
    assert "letter.download" in _actions(db_session, letter_school.school.id)


def test_another_schools_letter_is_not_found(
    db_session: Session,
    client: FlaskClient,
    letter_school: LetterSchool,
    make_user: Callable,
    login: Callable,
    make_school: Callable[..., Organisation],
) -> None:
    outsider = make_user(make_school(name="Other School"), "attendance_officer")
    letter_id = _queue(db_session, letter_school)
    pupil_id = letter_school.pupil.id
    login(outsider)
    assert client.get(f"/letters/{letter_id}/pdf").status_code == 404
    assert (
        client.get(f"/pupils/{pupil_id}/registration-certificate?from=2026-09-07&to=2026-10-02").status_code
        == 404
    )


def test_a_parents_emailed_link_opens_the_letter_and_a_forged_one_does_not(
    db_session: Session, client: FlaskClient, letter_school: LetterSchool, smtp_server: Received
) -> None:
    from attendwise.letters.models import LetterSettings

    with tenancy.tenant_context(letter_school.school.id):
        db_session.add(LetterSettings(org_id=letter_school.school.id, email_mode="link"))
        db_session.flush()
    letter_id = _queue(db_session, letter_school, channel="email")
    [message] = smtp_server.messages
    body = message.get_payload(decode=True).decode()
    link = next(word for word in body.split() if "/letters/download?t=" in word)
    path = link.split("attendwise.test", 1)[-1].split("127.0.0.1:5000", 1)[-1]
    response = client.get(path)
    assert response.status_code == 200, path
    assert "Pupil1 has missed" in pdf_text(response.data)
    assert client.get(path[:-3] + "xyz").status_code == 404
    with tenancy.tenant_context(letter_school.school.id):
        assert db_session.get(Letter, letter_id).status == LetterStatus.SENT  # type: ignore[union-attr]
    assert "letter.download" in _actions(db_session, letter_school.school.id)


def test_a_school_edits_a_template_safely_and_new_letters_use_it(
    db_session: Session,
    client: FlaskClient,
    letter_school: LetterSchool,
    make_user: Callable,
    login: Callable,
) -> None:
    login(make_user(letter_school.school, "attendance_officer"))
    path = "/letters/templates/edit?key=dothill-reminder"
    assert "Letter template dothill-reminder" in client.get(path).get_data(as_text=True)
    token = csrf_token(client, path)
    refused = client.post(
        path, data={"csrf_token": token, "action": "save", "source": "{{ config.items() }}"}
    )
    assert refused.status_code == 422
    assert "cannot be used" in refused.get_data(as_text=True)
    own = (
        '{% extends "common/_layout.html" %}{% block body %}<p>Our own words for {{ pupil.forename }}.</p>'
        '{% include "common/_figures.html" %}{% endblock %}'
    )
    preview = client.post(path, data={"csrf_token": token, "action": "preview", "source": own})
    assert preview.mimetype == "application/pdf"
    assert "Our own words for Sam." in pdf_text(preview.data)
    saved = client.post(path, data={"csrf_token": token, "action": "save", "source": own})
    assert saved.status_code == 302
    letter_id = _queue(db_session, letter_school)
    with tenancy.tenant_context(letter_school.school.id):
        letter = db_session.get(Letter, letter_id)
        assert letter is not None
        assert letter.template_version == 1
    assert "Our own words for Pupil1." in pdf_text(client.get(f"/letters/{letter_id}/pdf").data)


def test_read_only_staff_cannot_edit_templates(
    client: FlaskClient, letter_school: LetterSchool, make_user: Callable, login: Callable
) -> None:
    login(make_user(letter_school.school, "school_staff"))
    assert client.get("/letters/templates/edit?key=dothill-reminder").status_code == 403


def test_a_registration_certificate_shows_every_session_and_the_totals(
    db_session: Session,
    client: FlaskClient,
    letter_school: LetterSchool,
    make_user: Callable,
    login: Callable,
) -> None:
    login(make_user(letter_school.school, "attendance_officer"))
    pupil_id = letter_school.pupil.id
    response = client.get(f"/pupils/{pupil_id}/registration-certificate?from=2026-09-07&to=2026-10-02")
    assert response.status_code == 200
    text = pdf_text(response.data)
    assert "Registration certificate" in text
    assert "7 September 2026 to 2 October 2026" in text
    assert "Possible sessions" in text
    assert " O " in f" {text} "
    assert "I certify that this is a true copy" in text
    assert "pupil.registration_certificate" in _actions(db_session, letter_school.school.id)
    bad = client.get(f"/pupils/{pupil_id}/registration-certificate?from=2026-10-02&to=2026-09-07")
    assert bad.status_code == 422
    assert "must end on or after" in bad.get_data(as_text=True)
