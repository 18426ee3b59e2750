"""Unpaid penalty notices: past the 28-day payment period the ledger says prosecution must be
considered or the notice withdrawn, the officer is told and the queue flags it; withdrawn
notices do not count towards the limit of two in three years; the 6-month prosecution limit."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.platform import tenancy
from attendwise.referrals import jobs, penalty, queries, services
from attendwise.referrals.models import KindKey, OutboxMessage, PenaltyNotice, ReceivedReferral
from attendwise.referrals.services import ReferralError
from tests.referrals.conftest import SUBMIT_ON, World, sign_in_officer

ISSUED_ON = dt.date(2026, 11, 23)
LAST_DAY_TO_PAY = ISSUED_ON + dt.timedelta(days=28)  # received the day it was issued
OFFENCE_ON = dt.date(2026, 11, 9)  # the last absent session in the window
PROSECUTION_LIMIT = dt.date(2027, 5, 9)


def _notice(session: Session, world: World) -> tuple[ReceivedReferral, PenaltyNotice]:
    with tenancy.tenant_context(world.school.id):
        referral = services.start(session, pupil_id=world.pupil.id, kind=KindKey.PENALTY_NOTICE, user_id=None)
        services.supply(session, referral, "warning_letter", "Letter posted 12 October")
        services.supply(session, referral, "support", "Mentoring")
        services.sign_off(session, referral, user_id=world.champion.id, role_key="senior_attendance_champion")
        received_id = services.submit(session, referral, user_id=None, on=SUBMIT_ON).id
    with tenancy.tenant_context(world.la.id):
        received = session.get_one(ReceivedReferral, received_id)
        services.acknowledge(session, received)
        services.accept(session, received)
        parent = queries.parents_of(received)[0]
        notice = services.issue_notice(
            session,
            received,
            parent=parent,
            sessions=queries.unused_window_sessions(session, received, parent["parent_key"], 0),
            issued_on=ISSUED_ON,
            received_on=ISSUED_ON,
            user_id=None,
        )
    assert notice.offence_on == OFFENCE_ON
    assert notice.prosecution_deadline == PROSECUTION_LIMIT
    return received, notice


def test_unpaid_after_28_days_is_flagged_once_and_the_officer_is_told(
    db_session: Session, world: World
) -> None:
    _received, notice = _notice(db_session, world)
    with tenancy.system_context("test: the morning job"):
        assert services.flag_unpaid(db_session, LAST_DAY_TO_PAY) == []
        assert notice.status is penalty.NoticeStatus.ISSUED
        assert [n.id for n in services.flag_unpaid(db_session, LAST_DAY_TO_PAY + dt.timedelta(days=1))] == [
            notice.id
        ]
        assert notice.status is penalty.NoticeStatus.UNPAID
        assert services.flag_unpaid(db_session, LAST_DAY_TO_PAY + dt.timedelta(days=2)) == []
        mail = db_session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == f"penalty-notice-{notice.id}-unpaid")
        ).all()
    assert len(mail) == 1
    assert mail[0].to_addr == "attendance-team@la.example.test"
    assert "consider prosecution or withdraw" in mail[0].subject
    assert "Prosecution must start by 2027-05-09" in mail[0].body
    with tenancy.tenant_context(world.la.id), pytest.raises(ReferralError, match="not awaiting payment"):
        services.record_payment(db_session, notice, paid_on=LAST_DAY_TO_PAY, amount=160)


def test_assigned_officer_gets_the_email_from_the_periodic_job(db_session: Session, world: World) -> None:
    received, notice = _notice(db_session, world)
    with tenancy.tenant_context(world.la.id):
        services.assign(db_session, received, world.officer.id)
    with tenancy.system_context("test: the morning job"):
        assert jobs.flag_unpaid_notices((LAST_DAY_TO_PAY + dt.timedelta(days=3)).isoformat()) == 1
        row = db_session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == f"penalty-notice-{notice.id}-unpaid")
        ).one()
    assert row.to_addr == world.officer.email


def test_queue_flags_a_referral_with_an_unpaid_notice_before_and_after_the_job(
    db_session: Session, world: World
) -> None:
    received, notice = _notice(db_session, world)
    with tenancy.tenant_context(world.la.id):
        on_time = queries.queue(db_session, queries.QueueFilters(), LAST_DAY_TO_PAY)
        assert [r.unpaid_notices for r in on_time if r.received.id == received.id] == [0]
        late = LAST_DAY_TO_PAY + dt.timedelta(days=1)
        assert [r.unpaid_notices for r in queries.queue(db_session, queries.QueueFilters(), late)] == [1]
        only_unpaid = queries.QueueFilters.from_args({"unpaid": "1"})
        assert [r.received.id for r in queries.queue(db_session, only_unpaid, late)] == [received.id]
        assert queries.queue(db_session, only_unpaid, LAST_DAY_TO_PAY) == []
        services.withdraw_notice(db_session, notice, "Issued to the wrong address")
        assert queries.queue(db_session, only_unpaid, late) == []


def test_prosecution_limit_warns_and_then_refuses(db_session: Session, world: World) -> None:
    _received, notice = _notice(db_session, world)
    with tenancy.tenant_context(world.la.id):
        assert services.notice_clock(notice, dt.date(2027, 1, 5)).warning is None
        warning = services.notice_clock(notice, dt.date(2027, 4, 20)).warning
        assert warning == "Only 19 days left to prosecute absence ending 2026-11-09 (limit 2027-05-09)."
        with pytest.raises(
            ReferralError, match="6-month limit for prosecuting absence ending 2026-11-09 passed"
        ):
            services.consider_prosecution(db_session, notice, dt.date(2027, 5, 10))
        with pytest.raises(ReferralError, match="only an unpaid notice"):
            services.consider_prosecution(db_session, notice, LAST_DAY_TO_PAY)
        services.consider_prosecution(db_session, notice, dt.date(2027, 4, 20))
        assert notice.status is penalty.NoticeStatus.PROSECUTION_CONSIDERED


def test_withdrawn_notices_do_not_count_towards_two_in_three_years(db_session: Session, world: World) -> None:
    received, first = _notice(db_session, world)
    parent = queries.parents_of(received)[0]
    other_sessions = [(dt.date(2026, 9, d), s) for d in (7, 8, 9, 10, 11) for s in ("AM", "PM")]
    with tenancy.tenant_context(world.la.id):
        second = services.issue_notice(
            db_session,
            received,
            parent=parent,
            sessions=other_sessions,
            issued_on=dt.date(2026, 12, 1),
            received_on=dt.date(2026, 12, 1),
            user_id=None,
        )
        assert (second.sequence, second.amount, second.early_amount) == (2, 160, None)
        third_sessions = [(dt.date(2026, 9, d), s) for d in (14, 15, 16, 17, 18) for s in ("AM", "PM")]
        refused = services.assess_notice(
            db_session, received, parent["parent_key"], third_sessions, dt.date(2026, 12, 2)
        )
        assert isinstance(refused, penalty.Refusal)
        # The panel says so first, even though the window's sessions are all used already.
        panel = queries.penalty_panel(db_session, received, dt.date(2026, 12, 2))
        assert isinstance(panel.ledgers[0].next_notice, penalty.Refusal)
        with pytest.raises(ReferralError, match="a third cannot be issued"):
            services.issue_notice(
                db_session,
                received,
                parent=parent,
                sessions=third_sessions,
                issued_on=dt.date(2026, 12, 2),
                received_on=dt.date(2026, 12, 2),
                user_id=None,
            )
        services.withdraw_notice(db_session, second, "Material error in the dates")
        again = services.issue_notice(
            db_session,
            received,
            parent=parent,
            sessions=third_sessions,
            issued_on=dt.date(2026, 12, 2),
            received_on=dt.date(2026, 12, 2),
            user_id=None,
        )
        assert again.sequence == 2
        services.record_payment(db_session, first, paid_on=ISSUED_ON, amount=80)
        with pytest.raises(ReferralError, match="paid early and cannot be withdrawn"):
            services.withdraw_notice(db_session, first, "Changed our mind")


def test_ledger_page_says_what_to_do_with_an_unpaid_notice(
    client: FlaskClient,
    login: Callable[..., Any],
    db_session: Session,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received, notice = _notice(db_session, world)
    monkeypatch.setattr(attendance_queries, "today", lambda: dt.date(2027, 4, 20))
    sign_in_officer(client, login, world.officer)
    queue_page = client.get("/referrals/queue?unpaid=1").get_data(as_text=True)
    assert 'data-testid="unpaid-flag"' in queue_page
    page = client.get(f"/referrals/received/{received.id}").get_data(as_text=True)
    assert 'data-testid="notice-unpaid">Unpaid: prosecution to be considered or notice withdrawn.' in page
    assert "Only 19 days left to prosecute absence ending 2026-11-09" in page
    assert "Record payment" not in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        f"/referrals/notices/{notice.id}", data={"csrf_token": token.group(1), "action": "prosecute"}
    )
    assert response.status_code == 302
    page = client.get(f"/referrals/received/{received.id}").get_data(as_text=True)
    assert 'data-testid="notice-status">Prosecution considered' in page
    assert 'data-testid="notice-unpaid"' not in page
