"""The worklist costs the same number of SQL statements for 50 cases as for 300 (no N+1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance_services
from attendwise.attendance.models import Pupil
from attendwise.casework.models import Case, Task, TaskKind
from attendwise.platform import tenancy
from attendwise.platform.db import db
from attendwise.tenants.models import Organisation, User
from tests.attendance.records import make_upn

TODAY = dt.date(2026, 11, 18)


def add_cases(session: Session, school: Organisation, n: int, estab: int) -> None:
    """``n`` open cases, each with a task overdue, one due today, one later this week and a sign-off."""
    with tenancy.tenant_context(school.id):
        attendance_services.upsert_pupils(
            session,
            school.id,
            [
                attendance_services.PupilRecord(
                    upn=make_upn(i, estab=estab),
                    legal_forename=f"P{i}",
                    legal_surname="Case",
                    date_of_birth=dt.date(2015, 1, 1),
                    year_group="4",
                )
                for i in range(1, n + 1)
            ],
        )
        for pupil_id in session.scalars(select(Pupil.id)):
            case = Case(
                pupil_id=pupil_id,
                stage=1,
                stage_name="Persistent absence identified",
                stage_entered_on=TODAY,
                ladder_entered_on=TODAY,
                opened_on=TODAY,
            )
            session.add(case)
            session.flush()
            for offset, kind, signoff in (
                (-2, "letter", False),
                (0, "phone_call", False),
                (2, "meeting", False),
                (1, "referral", True),
            ):
                session.add(
                    Task(
                        case_id=case.id,
                        pupil_id=pupil_id,
                        kind=TaskKind(kind),
                        title=kind,
                        due_on=TODAY + dt.timedelta(days=offset),
                        assignee_role="attendance_officer",
                        needs_signoff=signoff,
                        signoff_role="senior_attendance_champion" if signoff else None,
                    )
                )
        session.flush()


@contextmanager
def counting() -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def statements_for_worklist(client: FlaskClient) -> tuple[int, str]:
    with counting() as statements:
        page = client.get("/worklist?scope=school").get_data(as_text=True)
    return len(statements), page


def test_the_worklist_query_count_does_not_grow_with_the_number_of_cases(
    client: FlaskClient,
    db_session: Session,
    login: Callable[..., Any],
    make_user: Callable[..., User],
    make_school: Callable[..., Organisation],
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("attendwise.attendance.queries.today", lambda: TODAY)
    small, large = make_school(), make_school()
    add_cases(db_session, small, 50, estab=3001)
    add_cases(db_session, large, 300, estab=3002)

    login(make_user(small, "attendance_officer"))
    few, small_page = statements_for_worklist(client)
    login(make_user(large, "attendance_officer"))
    many, large_page = statements_for_worklist(client)

    assert "50 overdue, 50 due today, 50 later this week" in small_page
    assert "300 overdue, 300 due today, 300 later this week" in large_page
    assert few == many, f"{few} statements for 50 cases but {many} for 300"
