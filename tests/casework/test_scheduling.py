"""The policy runs for each school once a day, on the school's own clock, after its MIS sync.

The clock is injected (``now``): the dispatcher is called as the periodic job would call it at
that moment. Friday 23 October 2026 is in British Summer Time (UTC+1), Friday 30 October 2026,
after the clocks went back, in Greenwich Mean Time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from attendwise.casework.jobs import PERIODIC, dispatch_due_evaluations
from attendwise.casework.models import Case, ScheduledEvaluation, Task
from attendwise.integrations.models import ConnectorSettings, RunStatus, SyncRun
from attendwise.platform import tenancy
from attendwise.platform.jobs import periodic_jobs
from attendwise.tenants.models import Organisation
from tests.casework.conftest import CaseworkSchool

UTC = dt.UTC
BST_FRIDAY = dt.date(2026, 10, 23)
GMT_FRIDAY = dt.date(2026, 10, 30)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """A moment in UTC."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=UTC)


def dispatch(now: dt.datetime) -> list[int]:
    with tenancy.system_context("test: the periodic dispatcher"):
        return dispatch_due_evaluations(now)


def runs(session: Session, school: Organisation) -> list[tuple[dt.date, str]]:
    with tenancy.tenant_context(school.id):
        return [
            (r.school_day, r.after)
            for r in session.scalars(select(ScheduledEvaluation).order_by(ScheduledEvaluation.school_day))
        ]


def connect_mis(session: Session, school: Organisation, sync_at: dt.time) -> None:
    with tenancy.tenant_context(school.id):
        session.add(
            ConnectorSettings(
                connector="wonde",
                mis_school_id="A1930499544",
                token_encrypted="encrypted-token",
                sync_at=sync_at,
                enabled=True,
            )
        )
        session.flush()


def sync_run(session: Session, school: Organisation, started: dt.datetime, status: RunStatus) -> SyncRun:
    with tenancy.tenant_context(school.id):
        run = SyncRun(connector="wonde", source="A1930499544", status=status, started_at=started)
        if status != RunStatus.RUNNING:
            run.finished_at = started + dt.timedelta(minutes=4)
        session.add(run)
        session.flush()
        return run


def test_a_school_is_evaluated_after_half_past_six_on_its_own_clock_in_summer_and_winter_time(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    school = casework_school(pupils=3, absent_pupils=1).school

    assert dispatch(at(BST_FRIDAY, 17, 29)) == []  # 18:29 BST
    assert dispatch(at(BST_FRIDAY, 17, 30)) == [school.id]  # 18:30 BST
    assert dispatch(at(GMT_FRIDAY, 17, 30)) == []  # 17:30 GMT: an hour to go in winter
    assert dispatch(at(GMT_FRIDAY, 18, 29)) == []
    assert dispatch(at(GMT_FRIDAY, 18, 30)) == [school.id]
    assert runs(db_session, school) == [(BST_FRIDAY, "no_sync"), (GMT_FRIDAY, "no_sync")]


def test_the_day_is_the_schools_local_day_and_another_time_zone_runs_on_its_own_clock(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    london = casework_school(pupils=3, absent_pupils=1, estab=2001).school
    gibraltar = casework_school(pupils=3, absent_pupils=1, estab=2002).school
    gibraltar.timezone = "Europe/Gibraltar"  # UTC+1 in winter
    db_session.flush()

    assert dispatch(at(GMT_FRIDAY, 17, 31)) == [gibraltar.id]
    assert dispatch(at(GMT_FRIDAY, 18, 31)) == [london.id]
    # 23:30 GMT on Friday is 00:30 on Saturday in Gibraltar: a new day there, not yet due.
    assert dispatch(at(GMT_FRIDAY, 23, 30)) == []
    assert dispatch(at(GMT_FRIDAY + dt.timedelta(days=1), 17, 31)) == [gibraltar.id]
    assert runs(db_session, gibraltar) == [(GMT_FRIDAY, "no_sync"), (dt.date(2026, 10, 31), "no_sync")]
    assert runs(db_session, london) == [(GMT_FRIDAY, "no_sync")]


def test_each_school_is_queued_once_per_local_day_however_often_the_dispatcher_looks(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    school = casework_school(pupils=3, absent_pupils=1).school

    assert dispatch(at(GMT_FRIDAY, 18, 35)) == [school.id]
    assert dispatch(at(GMT_FRIDAY, 18, 40)) == []
    assert dispatch(at(GMT_FRIDAY, 23, 59)) == []
    # Missed Saturday and Sunday (the scheduler was down): Monday is still run, once.
    monday = GMT_FRIDAY + dt.timedelta(days=3)
    assert dispatch(at(monday, 19, 0)) == [school.id]
    assert dispatch(at(monday, 19, 5)) == []
    assert [day for day, _after in runs(db_session, school)] == [GMT_FRIDAY, monday]


def test_a_school_with_an_evening_mis_sync_is_evaluated_once_that_days_sync_has_finished(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    school = casework_school(pupils=3, absent_pupils=1).school
    connect_mis(db_session, school, dt.time(19, 0))
    sync_run(db_session, school, at(GMT_FRIDAY - dt.timedelta(days=1), 19, 0), RunStatus.SUCCEEDED)

    assert dispatch(at(GMT_FRIDAY, 18, 45)) == []  # yesterday's sync does not count
    run = sync_run(db_session, school, at(GMT_FRIDAY, 19, 2), RunStatus.RUNNING)
    assert dispatch(at(GMT_FRIDAY, 19, 5)) == []  # today's is still running
    with tenancy.tenant_context(school.id):
        run.status = RunStatus.SUCCEEDED
        run.finished_at = at(GMT_FRIDAY, 19, 9)
        db_session.flush()
    assert dispatch(at(GMT_FRIDAY, 19, 10)) == [school.id]
    assert runs(db_session, school) == [(GMT_FRIDAY, "sync")]


def test_a_failed_sync_counts_as_finished_and_a_sync_that_never_ends_delays_the_run_three_hours(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    failed = casework_school(pupils=3, absent_pupils=1, estab=2001).school
    stuck = casework_school(pupils=3, absent_pupils=1, estab=2002).school
    for school in (failed, stuck):
        connect_mis(db_session, school, dt.time(19, 0))
    sync_run(db_session, failed, at(BST_FRIDAY, 18, 0), RunStatus.FAILED)  # 19:00 BST
    sync_run(db_session, stuck, at(BST_FRIDAY, 18, 0), RunStatus.RUNNING)

    assert dispatch(at(BST_FRIDAY, 18, 10)) == [failed.id]
    assert dispatch(at(BST_FRIDAY, 20, 59)) == []  # 21:59 BST
    assert dispatch(at(BST_FRIDAY, 21, 0)) == [stuck.id]  # 22:00 BST, three hours after 19:00
    assert runs(db_session, stuck) == [(BST_FRIDAY, "sync_overdue")]


def test_a_school_without_a_policy_or_closed_is_never_queued(
    db_session: Session,
    casework_school: Callable[..., CaseworkSchool],
    make_school: Callable[..., Organisation],
) -> None:
    make_school()  # no policy
    closed = casework_school(pupils=3, absent_pupils=1).school
    closed.active = False
    db_session.flush()
    assert dispatch(at(GMT_FRIDAY, 20, 0)) == []


def test_the_queued_job_evaluates_the_school_on_its_day_records_the_outcome_and_runs_once(
    db_session: Session, casework_school: Callable[..., CaseworkSchool]
) -> None:
    school = casework_school(pupils=6, absent_pupils=2).school
    friday = dt.date(2026, 9, 11)  # BST; the Spetisbury policy runs weekly on Fridays

    assert dispatch(at(friday, 17, 31)) == [school.id]
    db_session.commit()  # the job starts after the commit (inline here: no Redis)
    db_session.expire_all()

    with tenancy.tenant_context(school.id):
        (run,) = db_session.scalars(select(ScheduledEvaluation)).all()
        assert run.finished_at is not None
        assert (run.evaluated, run.transitions) == (6, 2)
        cases = db_session.scalar(select(func.count()).select_from(Case))
        tasks = db_session.scalar(select(func.count()).select_from(Task))
    assert cases == 2
    assert tasks == run.tasks_created > 0

    assert dispatch(at(friday, 20, 0)) == []
    db_session.commit()
    with tenancy.tenant_context(school.id):
        assert db_session.scalar(select(func.count()).select_from(Case)) == cases
        assert db_session.scalar(select(func.count()).select_from(Task)) == tasks


def test_the_scheduler_runs_the_dispatcher_every_five_minutes_on_the_evaluation_queue() -> None:
    (job,) = PERIODIC
    assert job in periodic_jobs()
    assert (job.queue, job.interval, job.cron) == ("evaluation", 300, None)
    assert job.func == "attendwise.casework.jobs.dispatch_due_evaluations"
