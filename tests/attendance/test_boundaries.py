"""Boundaries a school, an LA or a court would check by hand."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from attendwise.attendance.calendar import HalfTerm, SchoolCalendar, merge, week_start
from attendwise.attendance.codes import encode
from attendwise.attendance.metrics import MarkMatrix, Period, aggregate, compute, penalty_windows

AUTUMN_2024 = SchoolCalendar.england_default(2024)


def _matrix(rows: list[dict[tuple[date, str], str]], start: date = date(2024, 8, 1), days: int = 365):
    codes = np.zeros((len(rows), 2 * days), dtype=np.uint8)
    for r, marks in enumerate(rows):
        for (d, s), code in marks.items():
            codes[r, 2 * (d - start).days + (s == "PM")] = encode(code)
    return MarkMatrix(start, codes, [f"p{i}" for i in range(len(rows))])


def _sessions(days: list[date], code_for) -> dict[tuple[date, str], str]:  # type: ignore[no-untyped-def]
    return {(d, s): code_for(i, d, s) for i, d in enumerate(days) for s in ("AM", "PM")}


@pytest.mark.parametrize(
    ("possible", "absent", "persistent", "severe"),
    [
        (20, 2, True, False),  # exactly 10%
        (70, 7, True, False),  # exactly 10%, a ratio that is not exact in binary floating point
        (380, 38, True, False),
        (380, 37, False, False),  # 9.7%
        (30, 3, True, False),
        (29, 2, False, False),  # 6.9%
        (10, 5, True, True),  # exactly 50%
        (380, 190, True, True),
        (380, 189, True, False),  # 49.7%
        (6, 3, True, True),
    ],
)
def test_persistent_and_severe_absence_are_inclusive(
    possible: int, absent: int, persistent: bool, severe: bool
) -> None:
    days = AUTUMN_2024.school_days(AUTUMN_2024.start, AUTUMN_2024.end)
    sessions = [(d, s) for d in days for s in ("AM", "PM")][:possible]
    marks = {key: ("O" if i < absent else "/") for i, key in enumerate(sessions)}
    record = compute(_matrix([marks]), [AUTUMN_2024], Period(AUTUMN_2024.start, AUTUMN_2024.end)).record(0)
    assert record["possible_sessions"] == possible
    assert record["persistent_absence"] is persistent
    assert record["severe_absence"] is severe


def test_not_counted_and_unmarked_sessions_are_not_possible() -> None:
    day = date(2024, 9, 9)
    marks = {(day, "AM"): "Y4", (day, "PM"): "I", (day + timedelta(days=1), "AM"): "L"}
    record = compute(_matrix([marks]), [AUTUMN_2024], Period(day, day + timedelta(days=4))).record(0)
    assert record["possible_sessions"] == 2
    assert record["not_counted"] == 1
    assert record["attendance_pct"] == 50.0
    assert record["late_before_close"] == 1


def test_a_bank_holiday_week_with_one_session_is_a_school_week() -> None:
    # Summer 1 2025: Monday 5 May is the Early May bank holiday. Close Tuesday to Thursday and
    # open only on Friday morning's register: the week still counts.
    calendar = SchoolCalendar(
        AUTUMN_2024.half_terms,
        inset_days=AUTUMN_2024.inset_days,
        closures=frozenset({date(2025, 5, 6), date(2025, 5, 7), date(2025, 5, 8)}),
    )
    assert calendar.school_days(date(2025, 5, 5), date(2025, 5, 11)) == [date(2025, 5, 9)]
    assert date(2025, 5, 5) in calendar.school_weeks(date(2025, 4, 28), date(2025, 5, 25))
    # five N sessions each week from 28 April: the 10-week window from 28 April holds 50 only
    # if the bank-holiday week counts as one of the 10 school weeks
    days = calendar.school_days(date(2025, 4, 28), date(2025, 7, 31))
    marks = {(d, "AM"): "N" for d in days}
    result = compute(_matrix([marks]), [calendar], Period(date(2025, 4, 28), date(2025, 7, 21)))
    windows = penalty_windows(_matrix([marks]), [calendar], Period(date(2025, 4, 28), date(2025, 7, 21)), 0)
    first = windows[0]
    assert first.start == date(2025, 4, 28)
    # ten school weeks: 28 Apr, 5 May (bank holiday + one day), 12, 19 May, [half-term], 2 Jun ... 7 Jul
    assert first.end == date(2025, 7, 13)
    assert first.sessions == 4 + 1 + 2 * 5 + 6 * 5  # 28 Apr is an INSET day, 9 May the only day
    # 21 July, the last day of Summer 2, is an INSET day: that week has no session
    assert result.record(0)["school_weeks"] == 11


def test_a_half_term_week_is_not_a_school_week() -> None:
    weeks = AUTUMN_2024.school_weeks(date(2024, 9, 2), date(2024, 12, 20))
    assert date(2024, 10, 28) not in weeks
    assert date(2024, 10, 21) in weeks
    assert date(2024, 11, 4) in weeks
    assert len(weeks) == 15
    # one G session in each autumn week: the first window of 10 school weeks spans 11 calendar
    # weeks because half-term is skipped
    days = AUTUMN_2024.school_days(date(2024, 9, 2), date(2024, 12, 20))
    marks = {(d, "AM"): "G" for d in days if d.weekday() == 2}
    windows = penalty_windows(
        _matrix([marks]), [AUTUMN_2024], Period(date(2024, 9, 2), date(2024, 12, 20)), 0
    )
    assert (windows[0].start, windows[0].end, windows[0].sessions) == (
        date(2024, 9, 2),
        date(2024, 11, 17),
        10,
    )
    assert len(windows) == 15 - 10 + 1


def test_penalty_window_crosses_the_summer_holiday_into_a_new_academic_year() -> None:
    two_years = merge([SchoolCalendar.england_default(2024), SchoolCalendar.england_default(2025)])
    start = date(2024, 8, 1)
    matrix_days = 365 + 365
    # five U sessions in the last school week of 2024/25 and five N in the first days of 2025/26
    last_week = two_years.school_days(date(2025, 7, 14), date(2025, 7, 21))
    first_week = two_years.school_days(date(2025, 9, 1), date(2025, 9, 12))
    marks = {(d, "AM"): "U" for d in last_week[-5:]} | {(d, "PM"): "N" for d in first_week[:5]}
    matrix = _matrix([marks], start, matrix_days)
    period = Period(date(2024, 9, 2), date(2025, 12, 19))
    record = compute(matrix, [two_years], period).record(0)
    assert record["max_unauthorised_in_10_school_weeks"] == 10
    assert record["windows_at_penalty_threshold"] >= 1
    assert date.fromisoformat(record["max_window_start"]) < date(2025, 7, 31)
    assert date.fromisoformat(record["max_window_end"]) > date(2025, 9, 1)
    # in either academic year alone the pupil is below the threshold
    for year_period in (
        Period(date(2024, 9, 2), date(2025, 7, 31)),
        Period(date(2025, 8, 1), date(2025, 12, 19)),
    ):
        assert compute(matrix, [two_years], year_period).record(0)["max_unauthorised_in_10_school_weeks"] == 5


def test_penalty_window_crosses_a_term_boundary() -> None:
    # G on Mondays and Thursdays across Christmas and the February half-term: the window of 10
    # school weeks from 2 December is 3 autumn weeks, 6 in Spring 1 and 1 in Spring 2
    days = AUTUMN_2024.school_days(date(2024, 12, 2), date(2025, 3, 7))
    marks = {(d, "AM"): "G" for d in days if d.weekday() in (0, 3)}
    period = Period(date(2024, 12, 2), date(2025, 3, 7))
    windows = penalty_windows(_matrix([marks]), [AUTUMN_2024], period, 0)
    assert windows[0].start == date(2024, 12, 2)
    assert windows[0].end == date(2025, 3, 2)
    assert windows[0].sessions == 6 + 1 + 10 + 2  # 6 January (Monday) is an INSET day


def test_consecutive_unauthorised_days_skip_weekends_and_holidays_but_not_attended_days() -> None:
    days = AUTUMN_2024.school_days(date(2024, 10, 14), date(2024, 11, 15))
    # N every day from 14 Oct except a present day on 6 Nov; half-term in between is skipped
    marks = _sessions(days, lambda _i, d, _s: "/" if d == date(2024, 11, 6) else "N")
    record = compute(_matrix([marks]), [AUTUMN_2024], Period(date(2024, 9, 2), date(2024, 11, 15))).record(0)
    # 14 Oct - 5 Nov: 10 school days before half-term + 2 after = 12; then 7 Nov - 15 Nov: 7
    assert record["longest_unauthorised_run_school_days"] == 12
    assert record["current_unauthorised_run_school_days"] == 7
    assert record["school_days_missed"] == 19


def test_a_partly_attended_day_breaks_the_run_and_is_not_a_day_missed() -> None:
    days = AUTUMN_2024.school_days(date(2024, 9, 9), date(2024, 9, 20))
    marks = _sessions(days, lambda i, _d, s: "/" if (i == 4 and s == "PM") else "O")
    record = compute(_matrix([marks]), [AUTUMN_2024], Period(date(2024, 9, 9), date(2024, 9, 20))).record(0)
    assert record["longest_unauthorised_run_school_days"] == 5
    assert record["school_days_missed"] == 9


def test_lates_are_counted_per_half_term() -> None:
    marks = {
        (date(2024, 10, 24), "AM"): "L",
        (date(2024, 10, 25), "AM"): "U",
        (date(2024, 11, 4), "AM"): "L",
        (date(2024, 11, 5), "PM"): "L",
    }
    record = compute(_matrix([marks]), [AUTUMN_2024], Period(AUTUMN_2024.start, AUTUMN_2024.end)).record(0)
    assert record["lates_by_half_term"]["Autumn 1"] == {"late_before_close": 1, "late_after_close": 1}
    assert record["lates_by_half_term"]["Autumn 2"] == {"late_before_close": 2, "late_after_close": 0}
    assert record["late_after_close"] == 1
    assert record["unauthorised"] == 1  # U is unauthorised absence
    assert record["present"] == 3  # L is present


def test_trend_is_the_change_over_the_last_school_weeks() -> None:
    days = AUTUMN_2024.school_days(date(2024, 9, 2), date(2024, 10, 25))
    # present for 6 school weeks, then absent (I) for the last 2 weeks of Autumn 1
    cutoff = date(2024, 10, 14)
    marks = _sessions(days, lambda _i, d, _s: "/" if d < cutoff else "I")
    period = Period(date(2024, 9, 2), date(2024, 10, 25))
    record = compute(_matrix([marks]), [AUTUMN_2024], period, trend_weeks=2, trend_since=cutoff).record(0)
    possible = record["possible_sessions"]
    expected = 100 * (possible - 20) / possible - 100.0
    assert record["trend_last_2_school_weeks"] == pytest.approx(expected)
    assert record["trend_since"] == pytest.approx(expected)
    assert record["trend_since_date"] == "2024-10-14"


def test_marks_on_a_day_outside_every_half_term_are_still_counted_but_make_no_school_week() -> None:
    calendar = SchoolCalendar((HalfTerm("Autumn 1", date(2024, 9, 2), date(2024, 9, 6)),))
    marks = {(date(2024, 9, 9), "AM"): "N", (date(2024, 9, 2), "AM"): "N"}
    record = compute(_matrix([marks]), [calendar], Period(date(2024, 9, 2), date(2024, 9, 13))).record(0)
    assert record["possible_sessions"] == 2
    assert record["school_weeks"] == 1
    assert record["max_unauthorised_in_10_school_weeks"] == 1


def test_school_weeks_and_half_term_names_follow_each_pupils_own_calendar() -> None:
    other = SchoolCalendar(
        (HalfTerm("Autumn 1", date(2024, 9, 4), date(2024, 10, 18)),),
    )
    day = date(2024, 10, 22)  # in Autumn 1 of the default calendar, half-term of the other
    matrix = _matrix([{(day, "AM"): "L"}, {(day, "AM"): "L"}])
    matrix = MarkMatrix(matrix.start, matrix.codes, matrix.pupils, np.array([0, 1], dtype=np.int32))
    result = compute(matrix, [AUTUMN_2024, other], Period(date(2024, 9, 2), date(2024, 10, 25)))
    assert result.record(0)["lates_by_half_term"] == {
        "Autumn 1": {"late_before_close": 1, "late_after_close": 0}
    }
    assert result.record(1)["lates_by_half_term"] == {
        "Autumn 1": {"late_before_close": 0, "late_after_close": 0}
    }
    assert result.record(0)["school_weeks"] == 8
    assert result.record(1)["school_weeks"] == 7
    assert week_start(day) == date(2024, 10, 21)


def test_a_corrupt_code_byte_is_refused_rather_than_miscounted() -> None:
    matrix = _matrix([{(date(2024, 9, 9), "AM"): "/"}])
    matrix.codes[0, 1] = 200
    with pytest.raises(ValueError, match=r"byte \(200\) that encodes no attendance code"):
        compute(matrix, [AUTUMN_2024], Period(AUTUMN_2024.start, AUTUMN_2024.end))


def test_named_periods_follow_the_calendar() -> None:
    assert Period.half_term(AUTUMN_2024, "Spring 2") == Period(
        date(2025, 2, 24), date(2025, 4, 11), "Spring 2"
    )
    assert Period.term(AUTUMN_2024, "Autumn") == Period(date(2024, 9, 2), date(2024, 12, 20), "Autumn")
    assert Period.year_to_date(AUTUMN_2024, date(2024, 11, 13)).start == date(2024, 9, 2)
    last = Period.last_school_weeks(AUTUMN_2024, 3, date(2024, 11, 13))
    assert (last.start, last.end) == (date(2024, 10, 21), date(2024, 11, 13))  # half-term skipped
    with pytest.raises(KeyError, match="Autumn 3"):
        Period.half_term(AUTUMN_2024, "Autumn 3")


def test_school_and_la_figures_sum_sessions_and_rate_enrolments() -> None:
    days = AUTUMN_2024.school_days(date(2024, 9, 9), date(2024, 9, 13))  # 10 sessions
    full = _sessions(days, lambda _i, _d, _s: "/")
    one_off = _sessions(days, lambda i, _d, s: "I" if (i, s) == (0, "AM") else "/")  # 10%: PA
    matrix = _matrix([full, one_off, {}])
    result = compute(matrix, [AUTUMN_2024], Period(date(2024, 9, 9), date(2024, 9, 13)))
    school_a, school_b = aggregate(result, ["A", "A", "B"])
    assert (school_a.group, school_a.possible, school_a.authorised) == ("A", 20, 1)
    assert school_a.attendance_pct == 95.0
    assert school_a.persistent_absence_rate == 50.0
    # an enrolment with no possible session is left out of the rates, as in the DfE statistics
    assert (school_b.enrolments, school_b.enrolments_with_possible) == (1, 0)
    assert school_b.persistent_absence_rate is None
    assert school_b.attendance_pct is None


def test_a_saturday_session_makes_a_closed_week_a_school_week() -> None:
    week = [date(2024, 10, 14) + timedelta(days=n) for n in range(5)]
    calendar = SchoolCalendar(
        AUTUMN_2024.half_terms, inset_days=AUTUMN_2024.inset_days, closures=frozenset(week)
    )
    saturday = date(2024, 10, 19)
    period = Period(date(2024, 10, 7), date(2024, 10, 27))
    without = compute(_matrix([{(date(2024, 10, 7), "AM"): "/"}]), [calendar], period).record(0)
    assert without["school_weeks"] == 2  # 7 and 21 October; the closed week is not one
    # one pupil's Saturday mark opens the week for every pupil on that calendar; '#' does not
    marks = [{(saturday, "AM"): "N"}, {(date(2024, 10, 7), "AM"): "/"}]
    assert [r["school_weeks"] for r in compute(_matrix(marks), [calendar], period).records()] == [3, 3]
    closed = compute(_matrix([{(saturday, "AM"): "#"}]), [calendar], period).record(0)
    assert closed["school_weeks"] == 2
