"""Referrals this term by the LA's outcome: the decision's kind once decided, else where they stand."""

from __future__ import annotations

from sqlalchemy import select

from attendwise.insights import services as insights
from attendwise.platform import tenancy
from attendwise.referrals import services as referrals
from attendwise.referrals.models import DecisionKind, KindKey, ReceivedReferral
from tests.referrals.conftest import SUBMIT_ON, world

__all__ = ["world"]


def _submit(session, school, pupil, officer, champion):
    with tenancy.tenant_context(school.id):
        referral = referrals.start(
            session, pupil_id=pupil.id, kind=KindKey.PENALTY_NOTICE, user_id=officer.id
        )
        referrals.supply(session, referral, "warning_letter", "Stage 2 letter posted 2026-10-12")
        referrals.supply(session, referral, "support", "Weekly mentoring since 2026-11-02")
        referrals.sign_off(session, referral, user_id=champion.id, role_key="senior_attendance_champion")
        received_id = referrals.submit(session, referral, user_id=champion.id, on=SUBMIT_ON).id
    with tenancy.tenant_context(school.la_id):
        return session.scalars(select(ReceivedReferral).where(ReceivedReferral.id == received_id)).one()


def test_the_school_sees_its_referrals_by_decision_and_the_la_sees_them_suppressed(
    db_session, world, make_user
):
    decided = _submit(db_session, world.school, world.pupil, world.attendance_officer, world.champion)
    other = world.other_school
    declined = _submit(
        db_session,
        other,
        world.other_pupil,
        make_user(other, "attendance_officer"),
        make_user(other, "senior_attendance_champion"),
    )
    with tenancy.tenant_context(world.la.id):
        referrals.acknowledge(db_session, decided)
        referrals.accept(db_session, decided)
        referrals.decide(db_session, decided, DecisionKind.NTI_ISSUED, user_id=world.officer.id, on=SUBMIT_ON)
        referrals.decline(db_session, declined, "No evidence of support offered")
    for school in (world.school, other):
        insights.refresh(db_session, school.id, on=SUBMIT_ON)

    def outcomes(scope):
        with tenancy.tenant_context(scope.id):
            found = insights.comparison(db_session, scope.id, "term").casework.referral_outcomes
        return {c.label: c.value for c in found}

    assert outcomes(world.school) == {"Notice to improve issued": 1}
    assert outcomes(other) == {"Declined": 1}
    assert outcomes(world.la) == {"Notice to improve issued": None, "Declined": None}  # 1 to 4: suppressed
