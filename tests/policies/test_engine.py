"""Engine rules that no single seed exercises fully: a new academic year, closed Fridays, due days."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from attendwise.attendance.calendar import SchoolCalendar, merge
from attendwise.policies import simulate
from tests.policies.helpers import CALENDAR, d, replay, upn

PUPIL = upn(71)


def misses_mornings(_: dt.date) -> tuple[str, str]:
    return "I", "\\"


def test_a_new_academic_year_starts_every_pupil_afresh_when_the_policy_says_so() -> None:
    """Dormston counts missed sessions per year ("evaluation: new_academic_year: start_afresh"): the
    first evaluation of September returns the pupil to no stage before this year's count applies."""
    two_years = merge([SchoolCalendar.england_default(2025), SchoolCalendar.england_default(2026)])
    out = replay("dormston@2", {PUPIL: misses_mornings}, "2026-06-26", "2026-09-18", calendar=two_years)
    assert out.moves(PUPIL) == [
        ("2026-06-26", 0, 3),  # 175 sessions missed by the end of June
        ("2026-09-11", 3, 0),  # the first Friday of 2026/27 (school opens Wed 9 Sep after INSET)
        ("2026-09-18", 0, 1),  # 8 sessions missed this year
    ]
    assert out.transition_to(PUPIL, 0).reason == "a new academic year: the policy starts every pupil afresh"


def test_weekly_evaluation_moves_to_the_last_school_day_before_a_closed_friday() -> None:
    closed_friday = d("2025-10-17")
    calendar = replace(CALENDAR, closures=frozenset({closed_friday}))
    days = simulate.Days(calendar)
    assert not days.weekly(closed_friday, "friday")
    assert days.weekly(d("2025-10-16"), "friday")
    assert not days.weekly(d("2025-10-15"), "friday")
    assert days.weekly(d("2025-10-10"), "friday")


def test_recurring_every_half_term_falls_on_the_last_school_day_of_each() -> None:
    days = simulate.Days(CALENDAR)
    last_days = [
        d
        for h in CALENDAR.half_terms
        for d in CALENDAR.school_days(h.start, h.end)
        if days.falls("half_term", d, "friday")
    ]
    assert last_days == [max(CALENDAR.school_days(h.start, h.end)) for h in CALENDAR.half_terms]
    assert [
        d
        for d in CALENDAR.school_days(CALENDAR.start, CALENDAR.end)
        if days.falls("end_of_year", d, "friday")
    ] == [max(CALENDAR.school_days(CALENDAR.start, CALENDAR.end))]
