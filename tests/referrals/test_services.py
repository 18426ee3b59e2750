"""The referral pipeline end to end through its services, on the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import socket
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance_services
from attendwise.attendance.models import Pupil
from attendwise.casework import services as case_services
from attendwise.casework.models import Case, SupportStatus
from attendwise.platform import tenancy
from attendwise.referrals import jobs, services
from attendwise.referrals.models import (
    DecisionKind,
    KindKey,
    OutboxMessage,
    OutboxStatus,
    ReceivedReferral,
    Referral,
    ReferralMessage,
    Status,
)
from attendwise.referrals.penalty import NoticeStatus
from attendwise.referrals.services import ReferralError
from tests.casework.conftest import school_days
from tests.referrals.conftest import ABSENT_DAYS, SUBMIT_ON, World


def _submitted(session: Session, world: World) -> tuple[Referral, ReceivedReferral]:
    with tenancy.tenant_context(world.school.id):
        referral = services.start(
            session, pupil_id=world.pupil.id, kind=KindKey.PENALTY_NOTICE, user_id=world.attendance_officer.id
        )
        services.supply(
            session, referral, "warning_letter", "Stage 2 letter posted 2026-10-12, proof of posting"
        )
        services.supply(session, referral, "support", "Weekly mentoring since 2026-11-02")
        services.sign_off(session, referral, user_id=world.champion.id, role_key="senior_attendance_champion")
        received = services.submit(session, referral, user_id=world.champion.id, on=SUBMIT_ON)
        received_id = received.id
    with tenancy.tenant_context(world.la.id):
        received = session.scalars(select(ReceivedReferral).where(ReceivedReferral.id == received_id)).one()
    return referral, received


def test_missing_items_are_listed_and_block_submission_until_supplied(
    db_session: Session, world: World
) -> None:
    with tenancy.tenant_context(world.school.id):
        referral = services.start(
            db_session, pupil_id=world.pupil.id, kind="penalty_notice", user_id=world.attendance_officer.id
        )
        assert referral.case_id == world.case.id
        bundle = services.assemble(db_session, referral, SUBMIT_ON)
        assert [line.label for line in bundle.missing] == ["Warning letter sent", "Support offered"]
        certificate = next(i for i in bundle.content["items"] if i["section"] == "registration_certificate")
        window = certificate["content"]["penalty_windows"][0]
        assert len(window["sessions"]) == 10
        assert {dt.date.fromisoformat(d) for d, _, _ in window["sessions"]} == set(ABSENT_DAYS)
        parents = [i for i in bundle.content["items"] if i["section"] == "parents"]
        assert [p["content"]["name"] for p in parents] == ["Grace Reed"]

        services.sign_off(
            db_session, referral, user_id=world.champion.id, role_key="senior_attendance_champion"
        )
        with pytest.raises(ReferralError, match="missing: Warning letter sent, Support offered"):
            services.submit(db_session, referral, user_id=world.champion.id, on=SUBMIT_ON)
        services.supply(db_session, referral, "warning_letter", "Letter posted 2026-10-12")
        services.supply(db_session, referral, "support", "Mentoring")
        with pytest.raises(ReferralError, match="signed off"):
            services.submit(db_session, referral, user_id=world.champion.id, on=SUBMIT_ON)
        services.sign_off(
            db_session, referral, user_id=world.champion.id, role_key="senior_attendance_champion"
        )
        received = services.submit(db_session, referral, user_id=world.champion.id, on=SUBMIT_ON)
        assert referral.status == Status.SUBMITTED
    assert received.org_id == world.la.id
    assert received.due_on == dt.date(2026, 12, 4)  # 10 working days
    assert received.bundle_hash == services.sha256(services.canonical(received.bundle))


def test_only_the_named_role_signs_off(db_session: Session, world: World) -> None:
    with tenancy.tenant_context(world.school.id):
        referral = services.start(db_session, pupil_id=world.pupil.id, kind="early_help", user_id=None)
        with pytest.raises(ReferralError, match="signed off by a Senior attendance champion"):
            services.sign_off(
                db_session, referral, user_id=world.attendance_officer.id, role_key="attendance_officer"
            )


def test_frozen_bundle_is_unchanged_after_the_school_edits_the_case(
    db_session: Session, world: World
) -> None:
    referral, received = _submitted(db_session, world)
    before = received.bundle_hash
    item_hashes = [i.sha256 for i in received.items]
    with tenancy.tenant_context(world.school.id):
        case = db_session.get(Case, world.case.id)
        assert case is not None
        case_services.record_support(
            db_session,
            case,
            barriers=["anxiety"],
            support="School counsellor weekly",
            status=SupportStatus.OFFERED,
            agencies=["CAMHS"],
            early_help_offered=True,
            early_help_started=False,
            on=SUBMIT_ON,
            by_user_id=world.attendance_officer.id,
        )
        upn = world.pupil.upn
        attendance_services.store_marks(
            db_session, world.school.id, [attendance_services.MarkRow(upn, ABSENT_DAYS[0], "AM", "I")], "mis"
        )
        fresh = services.assemble(db_session, referral, SUBMIT_ON)
        assert services.sha256(services.canonical(fresh.content)) != before
    with tenancy.tenant_context(world.la.id):
        db_session.expire_all()
        again = db_session.scalars(select(ReceivedReferral).where(ReceivedReferral.id == received.id)).one()
        assert again.bundle_hash == before
        assert services.sha256(services.canonical(again.bundle)) == before
        assert [i.sha256 for i in again.items] == item_hashes


def test_la_officer_sees_only_referred_rows(db_session: Session, world: World) -> None:
    _submitted(db_session, world)
    with tenancy.tenant_context(world.la.id):
        db_session.expunge_all()
        assert db_session.scalars(select(Pupil)).all() == []
        assert db_session.scalars(select(Case)).all() == []
        assert db_session.scalars(select(Referral)).all() == []
        assert len(db_session.scalars(select(ReceivedReferral)).all()) == 1
    with tenancy.tenant_context(world.other_school.id):
        db_session.expunge_all()
        assert db_session.scalars(select(ReceivedReferral)).all() == []
        assert db_session.scalars(select(Referral)).all() == []


def test_la_workflow_mirrors_status_and_pauses_the_clock(db_session: Session, world: World) -> None:
    referral, received = _submitted(db_session, world)
    with tenancy.tenant_context(world.la.id):
        services.acknowledge(db_session, received)
        services.request_information(
            db_session,
            received,
            user_id=world.officer.id,
            author="LA officer",
            body="Send the letter",
            on=SUBMIT_ON,
        )
        assert received.paused_on == SUBMIT_ON
        with pytest.raises(ReferralError, match="accept the referral before recording a decision"):
            services.decide(db_session, received, DecisionKind.NTI_ISSUED, user_id=None, on=SUBMIT_ON)
    with tenancy.tenant_context(world.school.id):
        db_session.refresh(referral)
        assert referral.status == Status.MORE_INFORMATION_REQUESTED
        thread = db_session.scalars(
            select(ReferralMessage).where(ReferralMessage.referral_id == referral.id)
        ).all()
        assert [m.body for m in thread] == ["Send the letter"]
        services.school_reply(
            db_session,
            referral,
            user_id=world.attendance_officer.id,
            author="School",
            body="Attached",
            on=dt.date(2026, 11, 25),
        )
    with tenancy.tenant_context(world.la.id):
        assert received.paused_on is None
        assert received.due_on == dt.date(2026, 12, 9)  # paused Mon 23 to Wed 25: three working days
        services.accept(db_session, received)
        nti = services.decide(
            db_session, received, DecisionKind.NTI_ISSUED, user_id=world.officer.id, on=SUBMIT_ON
        )
        assert nti.improvement_ends_on is not None
        # 30 school days of the school's own calendar: the Christmas holiday does not count.
        assert (
            nti.improvement_ends_on == school_days(SUBMIT_ON + dt.timedelta(days=1), dt.date(2027, 3, 1))[29]
        )
    with tenancy.tenant_context(world.school.id):
        db_session.refresh(referral)
        assert referral.status == Status.DECIDED
        assert referral.la_status_note == "Decision: Notice to improve issued"


def test_ledger_first_second_then_third_refused(db_session: Session, world: World) -> None:
    _, received = _submitted(db_session, world)
    parent = next(i for i in received.bundle["items"] if i["section"] == "parents")["content"]
    sessions = [(d, s) for d in ABSENT_DAYS for s in ("AM", "PM")]
    with tenancy.tenant_context(world.la.id):
        services.acknowledge(db_session, received)
        services.accept(db_session, received)
        first = services.issue_notice(
            db_session,
            received,
            parent=parent,
            sessions=sessions[:4],
            issued_on=SUBMIT_ON,
            received_on=SUBMIT_ON,
            user_id=world.officer.id,
        )
        assert (first.sequence, first.early_amount, first.amount) == (1, 80, 160)
        assert first.prosecution_deadline == dt.date(2027, 4, 6)
        services.record_payment(db_session, first, paid_on=dt.date(2026, 12, 1), amount=80)
        assert first.status is NoticeStatus.PAID_EARLY
        with pytest.raises(ReferralError, match="already used for another notice"):
            services.issue_notice(
                db_session,
                received,
                parent=parent,
                sessions=sessions[3:6],
                issued_on=SUBMIT_ON,
                received_on=SUBMIT_ON,
                user_id=None,
            )
        second = services.issue_notice(
            db_session,
            received,
            parent=parent,
            sessions=sessions[4:8],
            issued_on=dt.date(2026, 12, 1),
            received_on=dt.date(2026, 12, 3),
            user_id=None,
        )
        assert (second.sequence, second.early_amount, second.amount) == (2, None, 160)
        with pytest.raises(ReferralError, match=r"a third cannot be issued.*s444"):
            services.issue_notice(
                db_session,
                received,
                parent=parent,
                sessions=sessions[8:],
                issued_on=dt.date(2026, 12, 2),
                received_on=dt.date(2026, 12, 2),
                user_id=None,
            )
        services.withdraw_notice(db_session, second, "wrong recipient")
        third = services.issue_notice(
            db_session,
            received,
            parent=parent,
            sessions=sessions[8:],
            issued_on=dt.date(2026, 12, 2),
            received_on=dt.date(2026, 12, 2),
            user_id=None,
        )
        assert third.sequence == 2
        decision = services.decide(
            db_session, received, DecisionKind.PN_ISSUED, user_id=None, on=SUBMIT_ON, penalty_notice=third
        )
        assert decision.penalty_notice_id == third.id


# -- notifications through the outbox ------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_notification_survives_mail_being_down_and_is_sent_once(
    app: Flask, db_session: Session, world: World
) -> None:
    port = _free_port()
    saved = {k: app.config.get(k) for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USERNAME")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False, MAIL_USERNAME="")
    try:
        referral, received = _submitted(db_session, world)
        with tenancy.system_context("test: run the outbox sender"):
            assert jobs.send_outbox() == {"sent": 0, "failed": 1}
            row = db_session.scalars(select(OutboxMessage)).one()
            assert row.status is OutboxStatus.PENDING
            assert "could not send" in row.last_error
        with tenancy.tenant_context(world.school.id):
            assert db_session.get(Referral, referral.id) is not None
        handler = _Collector()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            with tenancy.system_context("test: run the outbox sender"):
                assert jobs.send_outbox() == {"sent": 1, "failed": 0}
                assert jobs.send_outbox() == {"sent": 0, "failed": 0}
                with tenancy.tenant_context(world.la.id):
                    services.notify(
                        db_session,
                        org_id=world.la.id,
                        key=f"referral-{received.id}-submitted",
                        to="attendance-team@la.example.test",
                        subject="again",
                        body="again",
                    )
                assert jobs.send_outbox() == {"sent": 0, "failed": 0}
        finally:
            controller.stop()
    finally:
        app.config.update(saved)
    assert len(handler.messages) == 1
    assert handler.messages[0]["To"] == "attendance-team@la.example.test"
    assert "Penalty notice request" in handler.messages[0]["Subject"]


def test_overdue_referrals_are_reported_once_per_due_date(db_session: Session, world: World) -> None:
    _, received = _submitted(db_session, world)
    with tenancy.system_context("test: run the overdue job"):
        assert jobs.warn_overdue(received.due_on.isoformat()) == 0
        assert jobs.warn_overdue("2026-12-07") == 1
        assert jobs.warn_overdue("2026-12-08") == 0
        subjects = [m.subject for m in db_session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert subjects[-1].startswith(f"Overdue referral R{received.id}")
    with tenancy.tenant_context(world.la.id):
        services.request_information(
            db_session, received, user_id=None, author="LA", body="More please", on=dt.date(2026, 12, 8)
        )
    with tenancy.system_context("test: run the overdue job"):
        assert jobs.warn_overdue("2026-12-20") == 0
