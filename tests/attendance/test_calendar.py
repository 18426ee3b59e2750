"""Calendars: the default England year and the five named ways of counting time."""

from __future__ import annotations

from datetime import date

import pytest

from attendwise.attendance.calendar import (
    CalendarError,
    HalfTerm,
    SchoolCalendar,
    academic_year_of,
    add_working_days,
    calendar_days,
    is_working_day,
    working_days,
)


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026, 2027])
def test_default_england_year_has_six_half_terms_190_days_and_5_inset_days(year: int) -> None:
    cal = SchoolCalendar.england_default(year)
    assert [h.name for h in cal.half_terms] == [
        "Autumn 1",
        "Autumn 2",
        "Spring 1",
        "Spring 2",
        "Summer 1",
        "Summer 2",
    ]
    assert [t.name for t in cal.terms] == ["Autumn", "Spring", "Summer"]
    days = cal.school_days(cal.start, cal.end)
    assert len(days) == 190
    assert cal.sessions(cal.start, cal.end) == 380
    assert len(cal.inset_days) == 5
    assert all(d.weekday() < 5 for d in days)
    assert not set(days) & cal.bank_holidays
    assert cal.academic_year == year


def test_bank_holidays_come_from_the_holidays_package_and_close_school() -> None:
    cal = SchoolCalendar.england_default(2024)
    assert date(2025, 5, 5) in cal.bank_holidays  # Early May bank holiday, inside Summer 1
    assert cal.half_term_of(date(2025, 5, 5)).name == "Summer 1"
    assert not cal.is_school_day(date(2025, 5, 5))
    assert cal.is_school_day(date(2025, 5, 6))


def test_the_five_counts_are_different_things() -> None:
    cal = SchoolCalendar.england_default(2024)
    start, end = date(2025, 5, 1), date(2025, 5, 31)  # bank holidays 5 and 26 May, half-term 26-30 May
    assert calendar_days(start, end) == 31
    assert working_days(start, end) == 20
    assert len(cal.school_days(start, end)) == 16
    assert cal.sessions(start, end) == 32
    assert cal.school_weeks(start, end) == [
        date(2025, 4, 28),
        date(2025, 5, 5),
        date(2025, 5, 12),
        date(2025, 5, 19),
    ]


def test_working_days_skip_weekends_and_bank_holidays() -> None:
    assert not is_working_day(date(2024, 12, 25))
    assert not is_working_day(date(2024, 12, 28))
    assert add_working_days(date(2024, 12, 20), 10) == date(2025, 1, 8)


def test_academic_year_starts_on_1_august() -> None:
    assert academic_year_of(date(2024, 7, 31)) == 2023
    assert academic_year_of(date(2024, 8, 1)) == 2024


def test_calendar_file_round_trip() -> None:
    cal = SchoolCalendar.england_default(2024)
    again = SchoolCalendar.from_csv(cal.to_csv())
    assert again.half_terms == cal.half_terms


def test_calendar_file_problems_are_all_reported_with_rows() -> None:
    text = (
        "name,start,end\n"
        "Autumn 1,2024-09-02,2024-10-25\n"
        ",2024-11-04,2024-12-20\n"
        "Spring 1,2025-13-01,2025-02-14\n"
    )
    with pytest.raises(CalendarError) as exc:
        SchoolCalendar.from_csv(text)
    assert str(exc.value).splitlines() == [
        "calendar file row 3: name is empty",
        "calendar file row 4: start and end must be ISO dates (YYYY-MM-DD)",
    ]
    with pytest.raises(CalendarError, match="header must be name,start,end"):
        SchoolCalendar.from_csv("half,from,to\n")
    with pytest.raises(CalendarError, match="overlap"):
        SchoolCalendar.from_csv("name,start,end\nA,2024-09-02,2024-10-25\nB,2024-10-21,2024-12-20\n")
    with pytest.raises(CalendarError, match=r"ends .* before it starts"):
        SchoolCalendar.from_csv("name,start,end\nA,2024-09-02,2024-08-25\n")


def test_marked_days_become_school_days_and_all_hash_days_closures() -> None:
    cal = SchoolCalendar((HalfTerm("Autumn 1", date(2024, 9, 2), date(2024, 10, 25)),))
    saturday, monday = date(2024, 9, 7), date(2024, 9, 9)
    marked = cal.with_marked_days([saturday], closed=[monday])
    assert marked.is_school_day(saturday)
    assert not marked.is_school_day(monday)
    inferred = SchoolCalendar.inferred([date(2024, 9, 3), date(2024, 9, 7)])
    assert inferred.school_days(date(2024, 9, 1), date(2024, 9, 30)) == [date(2024, 9, 3), date(2024, 9, 7)]
    assert [h.name for h in inferred.half_terms] == ["2024/25"]
