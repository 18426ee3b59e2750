"""Demo-shaped organisations with the attendance demo's pupils and marks, for the insights tests."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from stdnum.gb import upn as stdnum_upn

from attendwise.attendance import demo as attendance_demo
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import SchoolCalendar
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


# ---- a small generated world: two years of marks, a trust, an LA and a foreign LA ------------------

ON = dt.date(2026, 11, 20)
CODES = ("/", "\\", "/", "\\", "L", "I", "M", "O", "G", "U", "B", "C")


@dataclass
class World:
    la: Organisation
    trust: Organisation
    big: Organisation  # in the trust: 30 pupils
    small: Organisation  # in the trust: 4 pupils, so its figures are suppressed outside it
    solo: Organisation  # the LA's school outside the trust
    foreign: Organisation  # another LA's school
    marks: dict[int, dict[str, dict[tuple[dt.date, str], str]]] = field(default_factory=dict)
    pupils: dict[int, list[attendance_services.PupilRecord]] = field(default_factory=dict)


def _records(
    rng: random.Random, school: Organisation, count: int, first: int
) -> list[attendance_services.PupilRecord]:
    out = []
    for i in range(count):
        serial = first + i
        body = f"835{2000 + school.id % 1000:04d}26{serial:03d}"
        upn = stdnum_upn.calc_check_digit(body) + body
        out.append(
            attendance_services.PupilRecord(
                upn=upn,
                legal_forename=f"Pupil{serial}",
                legal_surname=f"Canary{school.id}x{serial}",
                date_of_birth=dt.date(2015, 9, 1) + dt.timedelta(days=serial),
                year_group=rng.choice(("3", "4", "5")),
                sen_status=rng.choice(("none", "none", "none", "sen_support", "ehcp")),
                fsm=rng.random() < 0.3,
                eal=rng.random() < 0.2,
                looked_after=i == 0,
            )
        )
    return out


def _marks_for(
    rng: random.Random, records: list[attendance_services.PupilRecord]
) -> tuple[list[attendance_services.MarkRow], dict[str, dict[tuple[dt.date, str], str]]]:
    rows, by_pupil = [], {}
    for record in records:
        absence = rng.choice((0.02, 0.05, 0.12, 0.3, 0.6))
        marks: dict[tuple[dt.date, str], str] = {}
        for year, stop in ((2025, dt.date(2026, 7, 31)), (2026, ON)):
            calendar = SchoolCalendar.england_default(year)
            for day in calendar.school_days(calendar.start, stop):
                for session in ("AM", "PM"):
                    code = rng.choice(CODES[4:]) if rng.random() < absence else rng.choice(CODES[:4])
                    marks[(day, session)] = code
                    rows.append(attendance_services.MarkRow(record.upn, day, session, code))
        by_pupil[record.upn] = marks
    return rows, by_pupil


@pytest.fixture
def world(
    db_session: AttendwiseSession,
    make_la: Callable[..., Organisation],
    make_trust: Callable[..., Organisation],
    make_school: Callable[..., Organisation],
) -> World:
    """Generated pupils and two years of marks in four schools, every school refreshed as of ON."""
    rng = random.Random(20261205)
    la = make_la(name="Testshire")
    trust = make_trust(name="Wessex Schools Trust")
    w = World(
        la=la,
        trust=trust,
        big=make_school(la=la, trust=trust, name="Big Primary", phase="Primary"),
        small=make_school(la=la, trust=trust, name="Small Primary", phase="Primary"),
        solo=make_school(la=la, name="Solo Secondary", phase="Secondary"),
        foreign=make_school(name="Foreign Academy CanaryForeign", phase="Secondary"),
    )
    serial = 1
    for school, count in ((w.big, 30), (w.small, 4), (w.solo, 20), (w.foreign, 6)):
        records = _records(rng, school, count, serial)
        serial += count
        rows, by_pupil = _marks_for(rng, records)
        with tenancy.tenant_context(school.id):
            attendance_services.upsert_pupils(db_session, school.id, records)
            attendance_services.store_marks(db_session, school.id, rows, "mis")
        services.refresh(db_session, school.id, on=ON)
        w.marks[school.id] = by_pupil
        w.pupils[school.id] = records
    return w
