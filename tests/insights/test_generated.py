"""On generated marks over two years, every stored figure agrees with a plain per-mark computation."""

from __future__ import annotations

from sqlalchemy import select

from attendwise.attendance.calendar import SchoolCalendar, academic_year_of
from attendwise.insights.models import SchoolFigures, SchoolWeek
from attendwise.platform import tenancy
from tests.attendance.reference import reference_metrics
from tests.insights.conftest import ON

FLAG = {
    "sen_support": lambda r: r.sen_status == "sen_support",
    "ehcp": lambda r: r.sen_status == "ehcp",
    "fsm": lambda r: r.fsm,
    "eal": lambda r: r.eal,
    "looked_after": lambda r: r.looked_after,
}


def _member(record, breakdown, group):
    if breakdown == "all":
        return True
    if breakdown == "year":
        return record.year_group == group
    return bool(FLAG[group](record))


def _expected(world, school, row):
    calendar = SchoolCalendar.england_default(academic_year_of(row.period_start))
    totals = dict.fromkeys(
        ("pupils", "possible", "attended", "authorised", "unauthorised", "persistent", "severe"), 0
    )
    for record in world.pupils[school.id]:
        if not _member(record, row.breakdown, row.group):
            continue
        marks = world.marks[school.id][record.upn]
        ref = reference_metrics(marks, calendar, row.period_start, row.period_end)
        if not ref["possible_sessions"]:
            continue
        totals["pupils"] += 1
        totals["possible"] += ref["possible_sessions"]
        totals["attended"] += ref["present"] + ref["approved_activity"]
        totals["authorised"] += ref["authorised"]
        totals["unauthorised"] += ref["unauthorised"]
        totals["persistent"] += ref["persistent_absence"]
        totals["severe"] += ref["severe_absence"]
    return totals


def test_every_period_and_group_agrees_with_the_marks_this_year_and_last(db_session, world):
    periods = set()
    for school in (world.big, world.small, world.solo):
        with tenancy.tenant_context(school.id):
            rows = db_session.scalars(select(SchoolFigures)).all()
        for row in rows:
            stored = {k: getattr(row, k) for k in _expected(world, school, row)}
            where = (school.name, row.period, row.breakdown, row.group)
            assert stored == _expected(world, school, row), where
            periods.add(row.period)
    assert periods == {"half_term", "term", "ytd", "last_year", "half_term_ly", "term_ly", "ytd_ly"}


def test_same_period_last_year_runs_as_far_into_it_as_this_year(db_session, world):
    with tenancy.tenant_context(world.big.id):
        spans = {
            r.period: (r.period_start, r.period_end)
            for r in db_session.scalars(select(SchoolFigures).where(SchoolFigures.breakdown == "all"))
        }
    assert spans["term"][1] == ON
    assert (spans["term"][1] - spans["term"][0]).days == (spans["term_ly"][1] - spans["term_ly"][0]).days
    assert (spans["half_term"][1] - spans["half_term"][0]).days == (
        spans["half_term_ly"][1] - spans["half_term_ly"][0]
    ).days
    assert spans["last_year"] == (
        SchoolCalendar.england_default(2025).start,
        SchoolCalendar.england_default(2025).end,
    )


def test_weekly_points_match_the_marks_of_each_week(db_session, world):
    marks = world.marks[world.big.id]
    with tenancy.tenant_context(world.big.id):
        weeks = db_session.scalars(select(SchoolWeek).order_by(SchoolWeek.week_start)).all()
    assert {w.academic_year for w in weeks} == {2025, 2026}
    for week in weeks[::7]:
        days = {week.week_start.toordinal() + i for i in range(7)}
        codes = [c for pupil in marks.values() for (d, _s), c in pupil.items() if d.toordinal() in days]
        assert week.possible == len(codes)  # every generated code counts as a possible session
        assert week.attended == sum(1 for c in codes if c in ("/", "\\", "L", "B"))
        assert week.unauthorised == sum(1 for c in codes if c in ("G", "O", "U"))
