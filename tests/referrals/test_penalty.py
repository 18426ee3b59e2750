"""Penalty-notice eligibility and the national-framework ledger on hand-built mark sequences."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from attendwise.attendance.calendar import SchoolCalendar, merge
from attendwise.referrals import penalty
from attendwise.referrals.penalty import LedgerEntry, NoticeStatus, PenaltyError, Refusal, Terms

Y2024 = SchoolCalendar.england_default(2024)
Y2025 = SchoolCalendar.england_default(2025)
TWO_YEARS = merge([Y2024, Y2025])


def _present_all(calendar: SchoolCalendar, start: date, end: date) -> dict[tuple[date, str], str]:
    days = calendar.school_days(start, end)
    return {(d, s): "/" if s == "AM" else "\\" for d in days for s in ("AM", "PM")}


def _with(marks: dict[tuple[date, str], str], absences: dict[tuple[date, str], str]) -> dict:
    out = dict(marks)
    for key, code in absences.items():
        assert key in out, f"{key} is not a school session"
        out[key] = code
    return out


def _first_five(*runs: list[date]) -> list[tuple[date, str]]:
    return [key for days in runs for key in [(d, s) for d in days for s in ("AM", "PM")][:5]]


def _school_days(calendar: SchoolCalendar, start: date, n: int) -> list[date]:
    return calendar.school_days(start, calendar.end)[:n]


AUTUMN_MARKS = _present_all(Y2024, Y2024.start, date(2024, 12, 20))


def test_exactly_ten_sessions_in_ten_school_weeks_is_eligible_and_lists_them() -> None:
    days = _school_days(Y2024, date(2024, 9, 16), 5)
    marks = _with(AUTUMN_MARKS, {(d, s): "O" for d in days for s in ("AM", "PM")})
    windows = penalty.eligibility(marks, Y2024)
    assert windows
    assert all(w.count == 10 for w in windows)
    assert [(s.day, s.session) for s in windows[0].sessions] == [(d, s) for d in days for s in ("AM", "PM")]
    assert all(w.start <= days[0] and days[-1] <= w.end for w in windows)


def test_nine_sessions_is_not_eligible() -> None:
    days = _school_days(Y2024, date(2024, 9, 16), 5)
    keys = [(d, s) for d in days for s in ("AM", "PM")][:9]
    marks = _with(AUTUMN_MARKS, dict.fromkeys(keys, "N"))
    assert penalty.eligibility(marks, Y2024) == []


def test_l_does_not_count_but_u_does() -> None:
    days = _school_days(Y2024, date(2024, 9, 16), 5)
    keys = [(d, s) for d in days for s in ("AM", "PM")]
    nine = dict.fromkeys(keys[:9], "G")
    with_l = _with(AUTUMN_MARKS, {**nine, keys[9]: "L"})
    with_u = _with(AUTUMN_MARKS, {**nine, keys[9]: "U"})
    assert penalty.eligibility(with_l, Y2024) == []
    windows = penalty.eligibility(with_u, Y2024)
    assert windows
    assert {s.code for s in windows[0].sessions} == {"G", "U"}


def test_authorised_absence_does_not_count() -> None:
    days = _school_days(Y2024, date(2024, 9, 16), 5)
    keys = [(d, s) for d in days for s in ("AM", "PM")]
    marks = _with(AUTUMN_MARKS, {**dict.fromkeys(keys[:9], "O"), keys[9]: "I"})
    assert penalty.eligibility(marks, Y2024) == []


def test_window_spans_the_october_half_term() -> None:
    # Five sessions in the last school week before half-term, five in the first after it: the
    # holiday week is not a school week, so they sit in one 10-school-week window.
    before = _school_days(Y2024, date(2024, 10, 21), 3)
    after = _school_days(Y2024, date(2024, 11, 4), 3)
    keys = _first_five(before, after)
    marks = _with(AUTUMN_MARKS, dict.fromkeys(keys, "O"))
    windows = penalty.eligibility(marks, Y2024)
    assert windows
    assert all(w.count == 10 for w in windows)
    assert all(w.start <= date(2024, 10, 21) and date(2024, 11, 4) <= w.end for w in windows)


def test_sessions_eleven_school_weeks_apart_are_not_one_window() -> None:
    first = _school_days(Y2024, date(2024, 9, 9), 3)
    # 11 school weeks later (the half-term week does not count as a school week).
    late = _school_days(Y2024, date(2024, 12, 2), 3)
    keys = _first_five(first, late)
    marks = _with(AUTUMN_MARKS, dict.fromkeys(keys, "O"))
    assert penalty.eligibility(marks, Y2024) == []


def test_window_spans_the_end_of_the_academic_year() -> None:
    marks = _present_all(TWO_YEARS, date(2025, 5, 1), date(2025, 10, 31))
    july = _school_days(TWO_YEARS, date(2025, 7, 14), 3)
    september = _school_days(TWO_YEARS, Y2025.start, 3)
    keys = _first_five(july, september)
    windows = penalty.eligibility(_with(marks, dict.fromkeys(keys, "G")), TWO_YEARS)
    assert windows
    assert all(w.start.year == 2025 and w.start.month <= 7 and w.end.month >= 9 for w in windows)


def test_sessions_used_by_another_notice_are_not_counted_again() -> None:
    days = _school_days(Y2024, date(2024, 9, 16), 6)
    keys = [(d, s) for d in days for s in ("AM", "PM")]
    marks = _with(AUTUMN_MARKS, dict.fromkeys(keys, "O"))
    assert penalty.eligibility(marks, Y2024)
    assert penalty.eligibility(marks, Y2024, used=keys[:3]) == []
    remaining = penalty.eligibility(marks, Y2024, used=keys[:2])
    assert remaining
    assert all(s.key not in keys[:2] for s in remaining[0].sessions)


def test_unknown_code_is_a_clear_error() -> None:
    with pytest.raises(PenaltyError, match=r"unknown attendance code 'QQ' on 2024-09-16 AM"):
        penalty.eligibility({(date(2024, 9, 16), "AM"): "QQ"}, Y2024)


# -- ledger ---------------------------------------------------------------------------------------

S1 = frozenset({(date(2024, 9, 16), "AM")})
S2 = frozenset({(date(2025, 1, 13), "AM")})
S3 = frozenset({(date(2025, 5, 12), "AM")})


def test_first_notice_is_80_within_21_days_or_160_within_28() -> None:
    terms = penalty.assess([], date(2024, 10, 1), S1)
    assert isinstance(terms, Terms)
    assert (terms.sequence, terms.early_amount, terms.amount) == (1, 80, 160)
    early, last = terms.deadlines(date(2024, 10, 3))
    assert (early, last) == (date(2024, 10, 24), date(2024, 10, 31))
    assert penalty.payment_status(terms, date(2024, 10, 3), date(2024, 10, 24), 80) is NoticeStatus.PAID_EARLY
    assert penalty.payment_status(terms, date(2024, 10, 3), date(2024, 10, 25), 160) is NoticeStatus.PAID
    with pytest.raises(PenaltyError, match="£80 is less than the £160 owed"):
        penalty.payment_status(terms, date(2024, 10, 3), date(2024, 10, 25), 80)
    with pytest.raises(PenaltyError, match="after the last day to pay"):
        penalty.payment_status(terms, date(2024, 10, 3), date(2024, 11, 1), 160)
    assert penalty.overdue(terms, date(2024, 10, 3), date(2024, 11, 1))
    assert not penalty.overdue(terms, date(2024, 10, 3), date(2024, 10, 31))


def test_second_notice_within_three_years_is_a_flat_160() -> None:
    history = [LedgerEntry(date(2024, 10, 1), NoticeStatus.PAID_EARLY, S1, "School A")]
    terms = penalty.assess(history, date(2025, 2, 1), S2)
    assert isinstance(terms, Terms)
    assert (terms.sequence, terms.early_amount, terms.amount) == (2, None, 160)
    assert terms.deadlines(date(2025, 2, 1))[0] is None
    with pytest.raises(PenaltyError, match="£80 is less than the £160"):
        penalty.payment_status(terms, date(2025, 2, 1), date(2025, 2, 5), 80)


def test_third_notice_within_three_years_is_refused_across_schools() -> None:
    history = [
        LedgerEntry(date(2024, 10, 1), NoticeStatus.PAID, S1, "School A"),
        LedgerEntry(date(2025, 2, 1), NoticeStatus.UNPAID, S2, "School B"),
    ]
    result = penalty.assess(history, date(2025, 6, 1), S3)
    assert isinstance(result, Refusal)
    assert "already had 2 penalty notices" in result.reason
    assert result.earliest_allowed == date(2027, 10, 1)
    assert any("s444" in route for route in result.alternatives)
    assert any("supervision order" in route for route in result.alternatives)
    assert any("attendance contract" in route for route in result.alternatives)


def test_withdrawn_notices_do_not_count() -> None:
    history = [
        LedgerEntry(date(2024, 10, 1), NoticeStatus.WITHDRAWN, S1),
        LedgerEntry(date(2025, 2, 1), NoticeStatus.PAID, S2),
    ]
    terms = penalty.assess(history, date(2025, 6, 1), S3)
    assert isinstance(terms, Terms)
    assert terms.sequence == 2


def test_notices_older_than_three_years_drop_off() -> None:
    history = [
        LedgerEntry(date(2022, 6, 1), NoticeStatus.PAID, S1),
        LedgerEntry(date(2024, 2, 1), NoticeStatus.PAID, S2),
    ]
    assert isinstance(penalty.assess(history, date(2025, 5, 31), S3), Refusal)
    terms = penalty.assess(history, date(2025, 6, 1), S3)
    assert isinstance(terms, Terms)
    assert terms.sequence == 2


def test_marks_cannot_found_two_notices_unless_the_first_was_withdrawn() -> None:
    history = [LedgerEntry(date(2024, 10, 1), NoticeStatus.PAID, S1)]
    with pytest.raises(PenaltyError, match="already used for another notice: 2024-09-16 AM"):
        penalty.assess(history, date(2025, 2, 1), S1 | S2)
    withdrawn = [LedgerEntry(date(2024, 10, 1), NoticeStatus.WITHDRAWN, S1)]
    assert isinstance(penalty.assess(withdrawn, date(2025, 2, 1), S1 | S2), Terms)


def test_six_month_prosecution_limit_is_tracked_and_warned_about() -> None:
    sessions = [(date(2024, 8, 30), "AM"), (date(2024, 8, 31), "PM")]
    clock = penalty.prosecution_clock(sessions, date(2024, 12, 1))
    assert clock.last_day == date(2025, 2, 28)
    assert clock.warning is None
    soon = penalty.prosecution_clock(sessions, date(2025, 2, 10))
    assert soon.warning is not None
    assert "18 days left" in soon.warning
    gone = penalty.prosecution_clock(sessions, date(2025, 3, 1))
    assert gone.expired
    assert gone.warning is not None
    assert "passed on 2025-02-28" in gone.warning


def test_prosecution_clock_runs_from_the_last_session_of_a_window() -> None:
    days = _school_days(Y2024, date(2024, 9, 16), 5)
    marks = _with(AUTUMN_MARKS, {(d, s): "O" for d in days for s in ("AM", "PM")})
    window = penalty.eligibility(marks, Y2024)[0]
    clock = penalty.prosecution_clock(window.sessions, date(2024, 10, 1))
    assert clock.offence_on == days[-1]
    assert clock.last_day == penalty.add_months(days[-1], 6)
    assert clock.last_day - days[-1] > timedelta(days=180)
