"""The engine's decisions as cases and tasks: idempotent, and events move pupils as the policy says."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from attendwise.casework import services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case, CaseStatus, MeetingStatus, StageChange, Task, TaskKind
from attendwise.casework.services import CaseworkSink
from attendwise.platform import tenancy
from attendwise.policies import services as policy_services
from attendwise.policies.engine import LadderState, TransitionDecision
from tests.casework.conftest import CaseworkSchool

FRIDAYS = [dt.date(2026, 9, 4) + dt.timedelta(weeks=n) for n in range(11)]
FRIDAYS = [d for d in FRIDAYS if not dt.date(2026, 10, 24) <= d <= dt.date(2026, 11, 1)]


def counts(session: Session) -> tuple[int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(Case)) or 0,
        session.scalar(select(func.count()).select_from(Task)) or 0,
        session.scalar(select(func.count()).select_from(StageChange)) or 0,
    )


def test_evaluating_twice_creates_no_duplicate_cases_or_tasks(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    built = casework_school(pupils=30, absent_pupils=6)
    with tenancy.tenant_context(built.school.id):
        first = evaluate_on(db_session, built.school.id, FRIDAYS[2])
        after_first = counts(db_session)
        again = evaluate_on(db_session, built.school.id, FRIDAYS[2])
        after_second = counts(db_session)
        open_cases = db_session.scalars(select(Case).where(Case.status == CaseStatus.OPEN)).all()

    assert first.cases_opened == 6
    assert after_first[0] == 6
    assert after_first[1] > 6
    assert again.tasks_created == 0
    assert again.cases_opened == 0
    assert after_second == after_first
    assert {c.stage for c in open_cases} == {1}
    assert all("attendance" in c.explanation for c in open_cases)


def test_a_missed_stage_2_meeting_moves_the_case_to_stage_3_on_the_next_evaluation(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    built = casework_school(pupils=10, absent_pupils=2)
    school = built.school.id
    with tenancy.tenant_context(school):
        for friday in FRIDAYS[:6]:
            evaluate_on(db_session, school, friday)
        case = db_session.scalars(select(Case).where(Case.status == CaseStatus.OPEN)).first()
        assert case is not None
        assert case.stage == 2, case.explanation
        meeting = services.invite_to_meeting(
            db_session,
            case,
            starts_at=dt.datetime(2026, 11, 17, 9, 0),
            place="School office",
            invitees=["Parent", "AB"],
            agenda="Attendance since stage 1",
            by_user_id=None,
        )
        services.record_meeting_attendance(db_session, meeting, MeetingStatus.MISSED, by_user_id=None)
        evaluate_on(db_session, school, dt.date(2026, 11, 17))
        db_session.refresh(case)
        kinds = {
            t.kind for t in db_session.scalars(select(Task).where(Task.case_id == case.id, Task.stage == 3))
        }
        history = [c.to_stage for c in case.stage_changes]

    assert case.stage == 3
    assert "meeting was missed" in case.explanation
    assert {TaskKind.MEETING, TaskKind.LETTER, TaskKind.PHONE_CALL} <= kinds
    assert history == [1, 2, 3]


def _decision(upn: str, on: dt.date, from_stage: int, to: int, name: str) -> TransitionDecision:
    key = f"spetisbury:{upn}:{from_stage}:{on.toordinal()}:{to}"
    return TransitionDecision(
        key, upn, on, from_stage, to, name, "test", f"Stage {to}: test", "spetisbury@1", "applied", None, ()
    )


def test_a_pupil_has_one_open_case_and_re_entering_the_ladder_opens_a_new_episode(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    built = casework_school(pupils=2, absent_pupils=0)
    pupil = built.pupils[0]
    with tenancy.tenant_context(built.school.id):
        policy = policy_services.policy_on(policy_services.get_policy(db_session), dt.date(2026, 10, 1))
        assert policy is not None
        state = LadderState.initial([pupil.upn], 0)
        counts = np.zeros((1, 7))
        for on, (frm, to, name) in zip(
            (dt.date(2026, 9, 11), dt.date(2026, 10, 2), dt.date(2026, 11, 6)),
            (
                (0, 1, "Persistent absence identified"),
                (1, 0, "Not on a stage"),
                (0, 1, "Persistent absence identified"),
            ),
            strict=True,
        ):
            sink = CaseworkSink(db_session, policy, {pupil.upn: pupil.id})
            sink.transition(_decision(pupil.upn, on, frm, to, name))
            sink.finish(state, counts)
        cases = db_session.scalars(select(Case).where(Case.pupil_id == pupil.id).order_by(Case.episode)).all()
        assert [(c.episode, c.status) for c in cases] == [(1, CaseStatus.CLOSED), (2, CaseStatus.OPEN)]
        assert cases[0].closed_on == dt.date(2026, 10, 2)

        db_session.add(
            Case(
                pupil_id=pupil.id,
                episode=3,
                stage=1,
                stage_name="Persistent absence identified",
                stage_entered_on=dt.date(2026, 11, 6),
                ladder_entered_on=dt.date(2026, 11, 6),
                opened_on=dt.date(2026, 11, 6),
            )
        )
        with pytest.raises(IntegrityError):
            db_session.flush()
        db_session.rollback()
