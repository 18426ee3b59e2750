"""A trust of two schools with a term of marks, a term of evaluations and refreshed figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.orm import Session

from attendwise.casework.jobs import evaluate_on
from attendwise.insights import services as insights_services
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.casework.conftest import build_school

ON = dt.date(2026, 11, 20)
FRIDAYS = [dt.date(2026, 9, 25), dt.date(2026, 10, 2), dt.date(2026, 10, 9), dt.date(2026, 11, 6)]


def build_trust(
    session: Session,
    make_trust: Callable[..., Organisation],
    make_school: Callable[..., Organisation],
    *,
    names: tuple[str, str] = ("Hill Primary", "Vale Primary"),
) -> Organisation:
    """Hill: 10 of 30 pupils miss one day in four; Vale: 4 of 24. Both evaluated on four Fridays."""
    trust = make_trust(name="Chalk Downs Learning Trust")
    schools = [
        build_school(session, make_school(trust=trust, name=names[0]), pupils=30, absent_pupils=10),
        build_school(
            session, make_school(trust=trust, name=names[1]), pupils=24, absent_pupils=4, estab=2002
        ),
    ]
    for built in schools:
        with tenancy.tenant_context(built.school.id):
            for friday in FRIDAYS:
                evaluate_on(session, built.school.id, friday)
            insights_services.refresh(session, built.school.id, on=ON)
    return trust


def member_ids(session: Session, trust: Organisation) -> set[int]:
    with tenancy.system_context("test: the trust's member schools"):
        return {s.id for s in insights_services.schools_in_scope(session, trust)}
