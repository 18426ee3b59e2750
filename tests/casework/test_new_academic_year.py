"""A policy that carries pupils on into a new academic year counts their weeks on the ladder
across the summer holiday: the school weeks of last summer term are weeks on the ladder too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance_services
from attendwise.casework.jobs import evaluate_on
from attendwise.casework.models import Case
from attendwise.platform import tenancy
from attendwise.policies import services as policy_services
from attendwise.tenants.models import Organisation
from tests.attendance.records import HALF_TERMS_2026, make_upn

FRIDAYS = (dt.date(2026, 7, 10), dt.date(2026, 7, 17), dt.date(2026, 9, 4), dt.date(2026, 9, 11))


def test_weeks_since_the_first_stage_count_last_summer_term(
    db_session: Session, make_school: Callable[..., Organisation]
) -> None:
    school = make_school()
    upn = make_upn(1, estab=3001)
    with tenancy.tenant_context(school.id):
        policy = policy_services.create_from_preset(
            db_session, preset="spetisbury", effective_from=dt.date(2026, 6, 1)
        )
        policy_services.publish(db_session, policy)
        attendance_services.set_school_calendar(db_session, school.id, 2026, HALF_TERMS_2026, [])
        attendance_services.upsert_pupils(
            db_session,
            school.id,
            [
                attendance_services.PupilRecord(
                    upn=upn,
                    legal_forename="Ada",
                    legal_surname="Example",
                    date_of_birth=dt.date(2017, 3, 1),
                    year_group="4",
                )
            ],
        )
        last_summer = attendance_services.school_calendar(db_session, school.id, 2025).school_days(
            dt.date(2026, 7, 6), dt.date(2026, 7, 31)
        )
        this_autumn = attendance_services.school_calendar(db_session, school.id, 2026).school_days(
            dt.date(2026, 9, 1), FRIDAYS[-1]
        )
        # One day in four missed last summer (80% by 10 July: stage 1), one in three this autumn.
        codes = [(day, "O" if n % 4 == 3 else "/") for n, day in enumerate(last_summer)]
        codes += [(day, "O" if n % 3 == 2 else "/") for n, day in enumerate(this_autumn)]
        attendance_services.store_marks(
            db_session,
            school.id,
            [attendance_services.MarkRow(upn, day, s, code) for day, code in codes for s in ("AM", "PM")],
            "mis",
        )
        for friday in FRIDAYS:
            evaluate_on(db_session, school.id, friday)
        case = db_session.scalars(select(Case)).one()

    assert case.ladder_entered_on == FRIDAYS[0]
    # Stage 2 comes after 3 school weeks since stage 1: the week of 13 July, the week of
    # 31 August and the week of 7 September (counting this autumn alone, it would be 25 September).
    assert (case.stage, case.stage_entered_on) == (2, FRIDAYS[-1])
    assert "after 3 school weeks since the first stage" in case.explanation
