"""Demo-shaped organisations with the attendance demo's pupils and marks, for the insights tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from attendwise.attendance import demo as attendance_demo
from attendwise.insights import services
from attendwise.platform import tenancy
from attendwise.platform.db import AttendwiseSession
from attendwise.platform.demo import DEMO_SCHOOLS, DemoOrgs
from attendwise.tenants import services as tenants
from attendwise.tenants.models import Organisation, OrgKind

DEMO_DAY = attendance_demo.MARKS_TO


@pytest.fixture
def demo_orgs(db_session: AttendwiseSession, make_la: Callable[..., Organisation]) -> DemoOrgs:
    """The demo LA, trust and five schools with the attendance demo's term of marks, refreshed."""
    with tenancy.system_context("test: build demo organisations"):
        platform = tenants.platform_organisation(db_session)
        la = make_la(name="Dorset Council")
        trust = tenants.create_organisation(db_session, kind=OrgKind.TRUST, name="Chalk Downs Learning Trust")
        schools = [
            tenants.create_organisation(
                db_session,
                kind=OrgKind.SCHOOL,
                name=name,
                urn=f"9{urn[1:]}",
                laestab=f"{la.la_code}{urn[-4:]}",
                phase=phase,
                la=la,
                trust=trust if phase == "Primary" else None,
            )
            for urn, name, phase, _preset in DEMO_SCHOOLS
        ]
        orgs = DemoOrgs(platform=platform, la=la, trust=trust, schools=schools)
        attendance_demo.seed(db_session, orgs)
    for school in schools:
        services.refresh(db_session, school.id, on=DEMO_DAY)
    return orgs


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)
