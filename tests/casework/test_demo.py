"""The demo's casework: cases at every stage of each school's policy, and a week of work.

Building the demo replays the whole autumn term, and the pilot school's last summer term too (about
30 s): one test checks everything.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance.calendar import academic_year_of
from attendwise.attendance.demo import MARKS_TO
from attendwise.casework.demo import FINAL_WEEK
from attendwise.casework.models import Case, CaseStatus, StageChange, Task, TaskStatus
from attendwise.platform import demo, tenancy
from attendwise.policies import services as policy_services


def test_the_demo_has_cases_at_every_stage_and_a_week_of_tasks_all_from_the_engine(
    db_session: Session,
) -> None:
    built = demo.build(db_session)
    missing = []
    due: Counter[dt.date] = Counter()
    overdue = waiting = next_week = 0
    friday_calls = 0
    penalty_notice_ladders: list[dt.date] = []
    for school in built.schools:
        preset = built.presets[school.id]
        with tenancy.tenant_context(school.id):
            policy = policy_services.policy_on(policy_services.get_policy(db_session), MARKS_TO)
            assert policy is not None
            open_at = set(db_session.scalars(select(Case.stage).where(Case.status == CaseStatus.OPEN)))
            missing += [
                (preset, stage.number)
                for stage in policy.stages
                if stage.number != policy.base_stage and stage.number not in open_at
            ]
            # Every move is the engine's decision (or a person's sign-off of one), never a row
            # written by the demo: each carries the engine's decision key.
            keys = db_session.scalars(select(StageChange.decision_key)).all()
            assert keys, f"{school.name}: no case ever moved"
            assert all(keys), f"{school.name}: a stage change without an engine decision"
            tasks = db_session.scalars(select(Task)).all()
            due.update(t.due_on for t in tasks if FINAL_WEEK <= t.due_on <= MARKS_TO)
            still_open = [t for t in tasks if t.status == TaskStatus.OPEN]
            overdue += sum(t.due_on < MARKS_TO and not t.needs_signoff for t in still_open)
            waiting += sum(t.waiting_for_signoff for t in still_open)
            next_week += sum(MARKS_TO < t.due_on <= MARKS_TO + dt.timedelta(days=7) for t in still_open)
            if preset == "spetisbury":
                friday_calls = sum(
                    t.due_on == MARKS_TO and t.title.startswith("Phone call: Weekly Friday call")
                    for t in still_open
                )
                penalty_notice_ladders = list(
                    db_session.scalars(
                        select(Case.ladder_entered_on).where(Case.status == CaseStatus.OPEN, Case.stage == 5)
                    )
                )

    assert missing == []
    # Spetisbury's stage 5 comes "following a period of 12 or more weeks" on the ladder: more
    # than this autumn's marks span, so its pupils there joined the ladder last summer term, the
    # pilot school's first on Attendwise, and their weeks count across the summer holiday.
    assert penalty_notice_ladders
    assert all(academic_year_of(day) < academic_year_of(MARKS_TO) for day in penalty_notice_ladders)

    assert sorted(day.weekday() for day in due) == [0, 1, 2, 3, 4], f"tasks due in the last week: {due}"
    assert overdue > 0
    assert waiting > 0
    assert next_week > 0
    assert friday_calls > 0
