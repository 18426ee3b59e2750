"""The LA overview: referrals by kind, status and school; service-level performance; how often
each school's referrals come back for more information."""

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
from attendwise.referrals import queries, services
from attendwise.referrals.models import DecisionKind, KindKey, ReceivedReferral, Referral
from attendwise.tenants.models import Organisation
from tests.referrals.conftest import SUBMIT_ON, World, sign_in_officer

TODAY = dt.date(2026, 12, 10)  # after the first referrals' service level (due 4 December)


def _submit(session: Session, world: World, school: Organisation, pupil_id: int, kind: KindKey) -> int:
    with tenancy.tenant_context(school.id):
        referral = services.start(session, pupil_id=pupil_id, kind=kind, user_id=None)
        services.supply(session, referral, "warning_letter", "Letter posted 12 October")
        services.supply(session, referral, "support", "Mentoring")
        services.sign_off(session, referral, user_id=world.champion.id, role_key="senior_attendance_champion")
        return services.submit(session, referral, user_id=None, on=SUBMIT_ON).id


def _history(session: Session, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A: sent back for 3 working days, decided in 3 (on time). B: declined late after 14.
    C: still waiting, past its service level."""
    a = _submit(session, world, world.school, world.pupil.id, KindKey.PENALTY_NOTICE)
    b = _submit(session, world, world.other_school, world.other_pupil.id, KindKey.PENALTY_NOTICE)
    _submit(session, world, world.school, world.pupil.id, KindKey.EARLY_HELP)
    with tenancy.tenant_context(world.la.id):
        received_a = session.get_one(ReceivedReferral, a)
        services.acknowledge(session, received_a)
        services.request_information(
            session, received_a, user_id=None, author="LA", body="Send the letter", on=dt.date(2026, 11, 23)
        )
    with tenancy.tenant_context(world.school.id):
        referral = session.scalars(select(Referral).where(Referral.received_id == a)).one()
        services.school_reply(
            session, referral, user_id=None, author="School", body="Attached", on=dt.date(2026, 11, 26)
        )
    with tenancy.tenant_context(world.la.id):
        services.accept(session, received_a)
        services.decide(session, received_a, DecisionKind.NTI_ISSUED, user_id=None, on=dt.date(2026, 11, 30))
        monkeypatch.setattr(attendance_queries, "today", lambda: TODAY)
        services.decline(session, session.get_one(ReceivedReferral, b), "No support offered first")


def test_overview_counts_and_service_level(
    db_session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(db_session, world, monkeypatch)
    with tenancy.tenant_context(world.la.id):
        o = queries.overview(db_session, TODAY)
    assert o.total == 3
    assert o.by_kind == [("Penalty notice request", 2), ("Early help referral", 1)]
    assert o.by_status == [("Submitted", 1), ("Decided", 1), ("Declined", 1)]
    assert [(s.school, s.referrals, s.open, s.sent_back) for s in o.schools] == [
        (world.school.name, 2, 1, 1),
        (world.other_school.name, 1, 0, 0),
    ]
    assert o.schools[0].sent_back_pct == 50.0
    assert o.concluded == 2
    assert o.within_sla == 1
    assert o.within_sla_pct == 50.0
    assert o.median_working_days == 8.5  # 3 (6 less 3 paused) and 14
    assert o.overdue_now == 1


def test_overview_page_for_an_officer(
    client: FlaskClient,
    login: Callable[..., Any],
    db_session: Session,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _history(db_session, world, monkeypatch)
    sign_in_officer(client, login, world.officer)
    page = client.get("/referrals/overview")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.get_data(as_text=True))
    assert 'data-testid="within-sla">50% (1 of 2)' in text
    assert 'data-testid="median">8.5 working days' in text
    assert 'data-testid="overdue">1<' in text
    assert f"{world.school.name}</th>" in text
    assert "1 (50%)" in text
    assert "Ada" not in text  # counts, not pupils
