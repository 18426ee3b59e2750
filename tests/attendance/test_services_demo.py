"""The demo term looks like a real school's: realistic absence, history, siblings across schools."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from attendwise.attendance import demo, queries
from attendwise.attendance.models import HouseholdKey, MarkChange, Pupil
from attendwise.platform import tenancy
from attendwise.platform.demo import DEMO_SCHOOLS, DemoOrgs
from attendwise.tenants import services as tenants
from attendwise.tenants.models import OrgKind


def test_demo_schools_get_a_realistic_autumn_term(db_session):
    with tenancy.system_context("test: build demo organisations"):
        la = tenants.create_organisation(db_session, kind=OrgKind.LA, name="Dorset", la_code="835")
        trust = tenants.create_organisation(db_session, kind=OrgKind.TRUST, name="Chalk Downs")
        schools = [
            tenants.create_organisation(
                db_session,
                kind=OrgKind.SCHOOL,
                name=name,
                urn=urn,
                laestab=f"835{urn[-4:]}",
                phase=phase,
                la=la,
                trust=trust if phase == "Primary" else None,
            )
            for urn, name, phase, _preset in DEMO_SCHOOLS
        ]
        orgs = DemoOrgs(platform=la, la=la, trust=trust, schools=schools)
        demo.seed(db_session, orgs)
        shared_keys = db_session.scalar(
            select(func.count()).select_from(
                select(HouseholdKey.key)
                .group_by(HouseholdKey.key)
                .having(func.count(func.distinct(HouseholdKey.school_id)) > 1)
                .subquery()
            )
        )
        changes = set(db_session.execute(select(MarkChange.old_code, MarkChange.new_code)).all())
    assert shared_keys > 0
    assert changes == {("N", "I"), ("N", "O")}

    sizes = {}
    for school in schools:
        with tenancy.tenant_context(school.id):
            sizes[school.phase, school.name] = db_session.scalar(select(func.count(Pupil.id)))
            listing = queries.pupil_list(
                db_session, school.id, queries.PupilFilters(), on=dt.date(2026, 11, 20)
            )
        whole = listing.groups[0]
        assert 120 <= whole.pupils <= 200
        assert 91 <= whole.attendance_pct <= 96
        assert 8 <= whole.persistent_pct <= 30
        assert whole.severe >= 1
        assert listing.period.period.start == dt.date(2026, 9, 1)
    biggest = max(sizes.items(), key=lambda kv: kv[1])[0]
    assert biggest[0] == "Secondary"
