"""The frozen bundle as one indexed, paginated PDF: parts in the LA's reading order, an index
with page numbers, "Page X of Y" on every page, and bytes that later case edits never change."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, undefer

from attendwise.casework import services as case_services
from attendwise.casework.models import Case, ContactChannel, ContactOutcome, SupportStatus
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from attendwise.referrals import services
from attendwise.referrals.models import KindKey, ReceivedReferral
from attendwise.tenants.models import Organisation, User
from tests.referrals.conftest import SUBMIT_ON, World, sign_in_officer

PARTS_IN_ORDER = [
    "Registration certificate",
    "Letters",
    "Contact log",
    "Meetings and minutes",
    "Plans and reviews",
    "Support-first record",
    "Contacts with parental responsibility",
    "Case chronology",
]


def _casework(session: Session, world: World) -> None:
    case = session.get_one(Case, world.case.id)
    by = world.attendance_officer.id
    case_services.log_contact(
        session,
        case,
        channel=ContactChannel.PHONE,
        outcome=ContactOutcome.SPOKE_TO,
        note="Mother says Ada is anxious about maths",
        by_user_id=by,
        occurred_at=dt.datetime(2026, 10, 13, 9, 30, tzinfo=dt.UTC),
    )
    meeting = case_services.invite_to_meeting(
        session,
        case,
        starts_at=dt.datetime(2026, 10, 20, 15, 0, tzinfo=dt.UTC),
        place="Head's office",
        invitees=["Grace Reed"],
        agenda="Attendance",
        by_user_id=by,
    )
    case_services.record_minutes(
        session,
        meeting,
        {"who_attended": "Grace Reed, Mr Hall", "agreed_actions": "Daily check-in"},
        by_user_id=by,
    )
    case_services.create_plan(
        session,
        case,
        target_attendance=95.0,
        target_weeks=6,
        support_agreed=["Daily check-in"],
        owners=["Mr Hall"],
        starts_on=dt.date(2026, 10, 21),
        review_on=dt.date(2026, 11, 18),
        is_contract=False,
        review_period_weeks=None,
        by_user_id=by,
    )
    case_services.record_support(
        session,
        case,
        barriers=["anxiety"],
        support="Mentoring with the learning mentor",
        status=SupportStatus.OFFERED,
        agencies=["School nurse"],
        early_help_offered=True,
        early_help_started=False,
        on=dt.date(2026, 11, 2),
        by_user_id=by,
    )


def _submit(session: Session, world: World) -> ReceivedReferral:
    with tenancy.tenant_context(world.school.id):
        _casework(session, world)
        referral = services.start(
            session, pupil_id=world.pupil.id, kind=KindKey.PENALTY_NOTICE, user_id=world.attendance_officer.id
        )
        services.supply(
            session, referral, "warning_letter", "Stage 2 letter posted 12 October, proof of posting"
        )
        services.sign_off(session, referral, user_id=world.champion.id, role_key="senior_attendance_champion")
        received_id = services.submit(session, referral, user_id=world.champion.id, on=SUBMIT_ON).id
    with tenancy.tenant_context(world.la.id):
        return session.scalars(
            select(ReceivedReferral)
            .where(ReceivedReferral.id == received_id)
            .options(undefer(ReceivedReferral.bundle_pdf), selectinload(ReceivedReferral.items))
            .execution_options(populate_existing=True)
        ).one()


def _pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def test_bundle_pdf_has_an_index_with_page_numbers_and_parts_in_reading_order(
    db_session: Session, world: World
) -> None:
    received = _submit(db_session, world)
    assert received.bundle_pdf is not None
    assert received.bundle_pdf.startswith(b"%PDF-")
    assert received.bundle_pdf_sha256 == services.sha256(received.bundle_pdf)
    pages = _pages(received.bundle_pdf)
    total = len(pages)
    assert total >= len(PARTS_IN_ORDER) + 1  # the index page, then each part on its own page
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in text

    index = pages[0]
    assert "Ada Reed2001" in index
    assert received.bundle_hash in index.replace("\n", "")
    listed = re.findall(r"^(\d+)\. ([^:\n]+): .*?page (\d+)$", index, flags=re.MULTILINE | re.DOTALL)
    assert [section for _n, section, _page in listed] == sorted(
        [section for _n, section, _page in listed], key=PARTS_IN_ORDER.index
    )
    assert {section for _n, section, _page in listed} >= set(PARTS_IN_ORDER)
    for n, section, page in listed:
        # The index's page number is the page the part starts on.
        assert f"Part {n} · {section}" in pages[int(page) - 1]

    text = "\n".join(pages)
    positions = [text.index(f"· {section}") for section in PARTS_IN_ORDER]
    assert positions == sorted(positions)
    assert "Mother says Ada is anxious about maths" in text
    assert "Daily check-in" in text
    assert "Mentoring with the learning mentor" in text
    assert "Grace Reed" in text
    assert "Penalty-notice window" in text
    assert [i.position for i in received.items] == [int(n) for n, _s, _p in listed]


def test_pdf_and_hash_are_unchanged_after_the_school_edits_the_case(
    db_session: Session, world: World
) -> None:
    received = _submit(db_session, world)
    pdf, digest, pdf_digest = received.bundle_pdf, received.bundle_hash, received.bundle_pdf_sha256
    with tenancy.tenant_context(world.school.id):
        case = db_session.get_one(Case, world.case.id)
        case_services.log_contact(
            db_session,
            case,
            channel=ContactChannel.HOME_VISIT,
            outcome=ContactOutcome.SEEN,
            note="Home visit after submission",
            by_user_id=world.attendance_officer.id,
        )
        referral = services.start(
            db_session, pupil_id=world.pupil.id, kind=KindKey.PENALTY_NOTICE, user_id=None
        )
        fresh = services.assemble(db_session, referral, SUBMIT_ON)
        assert services.sha256(services.canonical(fresh.content)) != digest
        assert "Home visit after submission" in str(fresh.content)
    with tenancy.tenant_context(world.la.id):
        db_session.expire_all()
        again = db_session.scalars(select(ReceivedReferral).where(ReceivedReferral.id == received.id)).one()
        assert again.bundle_hash == digest
        assert again.bundle_pdf == pdf
        assert again.bundle_pdf_sha256 == pdf_digest
        assert again.bundle_pdf is not None
        assert "Home visit after submission" not in "\n".join(_pages(again.bundle_pdf))


def test_officer_downloads_the_pdf_and_the_view_is_audited_another_la_gets_404(
    client: FlaskClient,
    login: Callable[..., Any],
    db_session: Session,
    world: World,
    make_la: Callable[..., Organisation],
    make_user: Callable[..., User],
) -> None:
    received = _submit(db_session, world)
    path = f"/referrals/received/{received.id}/bundle.pdf"
    stranger = make_user(make_la(), "la_attendance_officer")
    sign_in_officer(client, login, stranger)
    assert client.get(path).status_code == 404
    sign_in_officer(client, login, world.officer)
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data == received.bundle_pdf
    with tenancy.tenant_context(world.la.id):
        actions = db_session.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.action == "referral.bundle.view", AuditEvent.object_id == str(received.id)
            )
        ).all()
    assert any('"form": "pdf"' in d for d in actions)
    detail = client.get(f"/api/v1/referrals/{received.id}").get_json()
    assert detail["bundle_pdf_sha256"] == received.bundle_pdf_sha256
    pulled = client.get(f"/api/v1/referrals/{received.id}/bundle.pdf")
    assert pulled.status_code == 200
    assert pulled.mimetype == "application/pdf"
    assert services.sha256(pulled.data) == detail["bundle_pdf_sha256"]
