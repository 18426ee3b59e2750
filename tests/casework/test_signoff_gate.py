"""Sign-off honours the support-first gate even when the policy is not at hand: the proposal
carries the gate it was made under."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.casework import services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case, CaseStatus, SupportStatus, Task
from attendwise.platform import tenancy
from tests.casework.conftest import FRIDAYS, CaseworkSchool


def decide(session: Session, task: Task, *, approve: bool, reason: str) -> Task:
    """The champion decides with no policy at hand (as when the school's policy cannot be read)."""
    return services.decide_signoff(
        session,
        task,
        approve=approve,
        reason=reason,
        by_user_id=None,
        by_role="senior_attendance_champion",
        policy=None,
        on=dt.date(2026, 11, 18),
    )


GATE = "Support offered at stages 2 and 3 (family worker, LBI early help offer) is on record."


def test_a_gated_move_is_refused_until_support_is_recorded_and_declining_needs_no_support(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    built = casework_school(pupils=6, absent_pupils=2)
    school = built.school
    with tenancy.tenant_context(school.id):
        for friday in (*FRIDAYS, dt.date(2026, 10, 9)):
            evaluate_on(db_session, school.id, friday)
        cases = db_session.scalars(select(Case).where(Case.status == CaseStatus.OPEN).order_by(Case.id)).all()
        for case in cases:
            for day in (dt.date(2026, 11, 16), dt.date(2026, 11, 17)):
                services.record_event(db_session, case, "meeting_missed", day)
        evaluate_on(db_session, school.id, dt.date(2026, 11, 16))
        evaluate_on(db_session, school.id, dt.date(2026, 11, 17))
        first, second = db_session.scalars(
            select(Task).where(Task.needs_signoff.is_(True)).order_by(Task.case_id)
        ).all()
        assert first.proposed_move is not None
        assert first.proposed_move["support_first"] == GATE

        with pytest.raises(services.CaseworkError, match="cannot be approved yet") as refused:
            decide(db_session, first, approve=True, reason="")
        assert GATE.rstrip(".") in str(refused.value)
        assert first.waiting_for_signoff
        assert cases[0].stage == 3

        # Support declined is still an answer on record: the gate is about support being offered.
        services.record_support(
            db_session,
            cases[0],
            barriers=["EBSA"],
            support="School well-being service",
            status=SupportStatus.DECLINED,
            agencies=[],
            early_help_offered=True,
            early_help_started=False,
            on=dt.date(2026, 11, 18),
            by_user_id=None,
        )
        decide(db_session, first, approve=True, reason="Offered and refused")
        assert cases[0].stage == 4

        decide(db_session, second, approve=False, reason="Family worker started")
        assert cases[1].stage == 3
        assert not second.waiting_for_signoff
