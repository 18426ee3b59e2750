"""A refresh recomputes only the parts of a school's figures whose marks, pupils or dates changed,
and every figure it keeps still agrees with a plain per-mark computation."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from attendwise.attendance import services as attendance_services
from attendwise.insights import services
from attendwise.insights.models import SchoolFigures, SchoolWeek
from attendwise.platform import tenancy
from tests.insights.conftest import ON
from tests.insights.test_generated import _expected

LAST_YEAR_DAY = dt.date(2026, 3, 10)  # a Tuesday in term, 2025/26
THIS_YEAR_DAY = dt.date(2026, 10, 6)  # a Tuesday in term, 2026/27
EVERY_PART = {
    "figures:ytd",
    "figures:term",
    "figures:half_term",
    "weeks:2026",
    "figures:last_year",
    "figures:ytd_ly",
    "figures:term_ly",
    "figures:half_term_ly",
    "weeks:2025",
}


def _change_a_mark(db_session, world, day):
    """Mark the big school's first pupil unauthorised absent (O) on ``day``'s morning."""
    upn = world.pupils[world.big.id][0].upn
    assert world.marks[world.big.id][upn][(day, "AM")] != "O"
    with tenancy.tenant_context(world.big.id):
        attendance_services.store_marks(
            db_session, world.big.id, [attendance_services.MarkRow(upn, day, "AM", "O")], "manual"
        )
    world.marks[world.big.id][upn][(day, "AM")] = "O"


def _rows(db_session, world):
    with tenancy.tenant_context(world.big.id):
        return {r.id: r for r in db_session.scalars(select(SchoolFigures))}


def _all_agree(db_session, world):
    rows = _rows(db_session, world).values()
    for row in rows:
        stored = {k: getattr(row, k) for k in _expected(world, world.big, row)}
        assert stored == _expected(world, world.big, row), (row.period, row.breakdown, row.group)
    return {r.period for r in rows}


def test_nothing_changed_keeps_every_figure_and_they_stay_right(db_session, world):
    before = _rows(db_session, world)
    result = services.refresh(db_session, world.big.id, on=ON)
    assert result.kept == EVERY_PART
    assert set(_rows(db_session, world)) == set(before)  # the very same rows, untouched
    assert len(_all_agree(db_session, world)) == 7


def test_a_changed_mark_last_year_refreshes_last_years_figures(db_session, world):
    before = _rows(db_session, world)
    old_last_year = {
        r.id: r.unauthorised for r in before.values() if r.period == "last_year" and r.breakdown == "all"
    }
    _change_a_mark(db_session, world, LAST_YEAR_DAY)
    result = services.refresh(db_session, world.big.id, on=ON)
    assert result.kept == {"figures:ytd", "figures:term", "figures:half_term", "weeks:2026"}
    assert result.extended == frozenset()
    after = _rows(db_session, world)
    (new_last_year,) = [r for r in after.values() if r.period == "last_year" and r.breakdown == "all"]
    assert new_last_year.unauthorised == next(iter(old_last_year.values())) + 1
    _all_agree(db_session, world)
    with tenancy.tenant_context(world.big.id):
        week = db_session.scalar(select(SchoolWeek).where(SchoolWeek.week_start == dt.date(2026, 3, 9)))
    assert week is not None
    codes = [
        c
        for pupil in world.marks[world.big.id].values()
        for (d, _s), c in pupil.items()
        if dt.date(2026, 3, 9) <= d <= dt.date(2026, 3, 15)
    ]
    assert week.unauthorised == sum(1 for c in codes if c in ("G", "O", "U"))


def test_a_changed_mark_this_year_replaces_this_years_figures_instead_of_adding(db_session, world):
    before = _rows(db_session, world)
    _change_a_mark(db_session, world, THIS_YEAR_DAY)
    result = services.refresh(db_session, world.big.id, on=ON)
    assert result.kept == {p for p in EVERY_PART if p.endswith(("_ly", "last_year", "2025"))}
    after = _rows(db_session, world)
    assert len(after) == len(before)
    replaced = {i for i, r in before.items() if r.period in ("ytd", "term", "half_term")}
    assert replaced
    assert not replaced & set(after)
    _all_agree(db_session, world)


def test_a_new_day_carries_the_periods_on_from_their_counts_and_keeps_last_years_whole_year(
    db_session, world
):
    monday = ON + dt.timedelta(days=3)
    result = services.refresh(db_session, world.big.id, on=monday)
    assert result.kept == {"figures:last_year", "weeks:2025"}
    assert result.extended == {p for p in EVERY_PART if p.startswith("figures:") and p != "figures:last_year"}
    with tenancy.tenant_context(world.big.id):
        ends = set(db_session.scalars(select(SchoolFigures.period_end).where(SchoolFigures.period == "ytd")))
    assert ends == {monday}
    _all_agree(db_session, world)


def test_a_day_carried_on_after_a_changed_mark_last_year_counts_the_change(db_session, world):
    services.refresh(db_session, world.big.id, on=ON + dt.timedelta(days=3))
    _change_a_mark(db_session, world, LAST_YEAR_DAY)
    result = services.refresh(db_session, world.big.id, on=ON + dt.timedelta(days=4))
    assert not {p for p in result.extended | result.kept if p.endswith(("_ly", "last_year", "2025"))}
    _all_agree(db_session, world)


def test_a_pupils_changed_characteristics_refresh_every_part(db_session, world):
    record = world.pupils[world.big.id][1]
    changed = attendance_services.PupilRecord(**{**record.__dict__, "fsm": not record.fsm})
    with tenancy.tenant_context(world.big.id):
        attendance_services.upsert_pupils(db_session, world.big.id, [changed])
    world.pupils[world.big.id][1] = changed
    result = services.refresh(db_session, world.big.id, on=ON)
    assert result.kept == frozenset()
    _all_agree(db_session, world)


def test_a_school_without_pupils_stores_zero_figures_for_every_period(db_session, make_school):
    school = make_school(name="Empty Primary", phase="Primary")
    result = services.refresh(db_session, school.id, on=ON)
    with tenancy.tenant_context(school.id):
        rows = db_session.scalars(select(SchoolFigures)).all()
    assert result.pupils == 0
    assert {r.period for r in rows} == {p.split(":", 1)[1] for p in EVERY_PART if p.startswith("figures:")}
    assert {(r.breakdown, r.group, r.pupils, r.possible, r.persistent) for r in rows} == {
        ("all", "all", 0, 0, 0)
    }
