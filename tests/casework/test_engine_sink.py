"""The engine's decisions as cases and tasks: idempotent, and events move pupils as the policy says."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.casework import services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case, CaseStatus, MeetingStatus, StageChange, Task, TaskKind
from attendwise.platform import tenancy
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
