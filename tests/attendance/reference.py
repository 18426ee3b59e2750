"""A plain, obviously correct implementation of every attendance metric, one pupil at a time.

It follows the rules in the ``attendwise.attendance.metrics`` docstring word for word, with
Python loops, sets and exact fractions, so the vectorised engine can be checked against it.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from attendwise.attendance.calendar import SchoolCalendar, days_between, week_start
from attendwise.attendance.codes import DEFAULT_TABLE, CodeTable, StatClass

PN_CODES = {"G", "N", "O", "U"}


def _pct(num: int, den: int) -> Fraction | None:
    return Fraction(100 * num, den) if den else None


def reference_metrics(
    marks: dict[tuple[date, str], str],
    calendar: SchoolCalendar,
    start: date,
    end: date,
    *,
    table: CodeTable = DEFAULT_TABLE,
    trend_weeks: int = 6,
    trend_since: date | None = None,
    marked_days: frozenset[date] = frozenset(),
) -> dict[str, Any]:
    """``marks`` maps (day, "AM"/"PM") to a code; the period is ``start``..``end`` inclusive.

    ``marked_days``: days on which any pupil with this calendar has a mark other than ``#``.
    """
    inside = {(d, s): c for (d, s), c in marks.items() if start <= d <= end}

    def klass(code: str) -> StatClass:
        return table.class_of(code)

    def count(cls: StatClass, which: dict[tuple[date, str], str] = inside) -> int:
        return sum(1 for c in which.values() if klass(c) is cls)

    def attended_possible(which: dict[tuple[date, str], str]) -> tuple[int, int]:
        att = sum(1 for c in which.values() if klass(c) in (StatClass.PRESENT, StatClass.APPROVED_ACTIVITY))
        pos = sum(1 for c in which.values() if klass(c) is not StatClass.NOT_COUNTED)
        return att, pos

    present = count(StatClass.PRESENT)
    approved = count(StatClass.APPROVED_ACTIVITY)
    authorised = count(StatClass.AUTHORISED)
    unauthorised = count(StatClass.UNAUTHORISED)
    possible = present + approved + authorised + unauthorised
    absence = Fraction(authorised + unauthorised, possible) if possible else None

    # half-terms overlapping the period, with L and U per half-term
    lates: dict[str, dict[str, int]] = {}
    for h in calendar.half_terms:
        if h.start <= end and h.end >= start:
            in_half = [c for (d, _s), c in inside.items() if h.start <= d <= h.end]
            lates[h.name] = {
                "late_before_close": in_half.count("L"),
                "late_after_close": in_half.count("U"),
            }

    # school weeks: Mondays of weeks with a school day inside the period; a marked day is a
    # school day unless the calendar says otherwise
    def school_day(d: date) -> bool:
        if calendar.is_school_day(d):
            return True
        return (
            d in marked_days
            and calendar.contains(d)
            and d not in calendar.inset_days
            and d not in calendar.closures
        )

    school_weeks = sorted({week_start(d) for d in days_between(start, end) if school_day(d)})
    k = len(school_weeks)
    windows: list[tuple[date, date, int]] = []
    if k:
        width = min(10, k)
        for j in range(k - width + 1):
            weeks = school_weeks[j : j + width]
            sessions = sum(1 for (d, _s), c in inside.items() if c in PN_CODES and week_start(d) in weeks)
            windows.append((max(start, weeks[0]), min(end, weeks[-1] + timedelta(days=6)), sessions))
    best = max(windows, key=lambda w: w[2]) if windows else None  # max() keeps the first of equals

    # day-level: a pupil's school days are the days with a possible session
    by_day: dict[date, list[str]] = {}
    for (d, _s), c in inside.items():
        if klass(c) is not StatClass.NOT_COUNTED:
            by_day.setdefault(d, []).append(c)
    longest = run = 0
    missed = ill = 0
    for d in sorted(by_day):
        day_codes = by_day[d]
        if all(klass(c) is StatClass.UNAUTHORISED for c in day_codes):
            run += 1
            longest = max(longest, run)
        else:
            run = 0
        if all(klass(c) in (StatClass.AUTHORISED, StatClass.UNAUTHORISED) for c in day_codes):
            missed += 1
        if all(c == "I" for c in day_codes):
            ill += 1

    now = _pct(present + approved, possible)

    def change_since(cutoff: date) -> float | None:
        att, pos = attended_possible({k: c for k, c in inside.items() if k[0] < cutoff})
        then = _pct(att, pos)
        if now is None or then is None:
            return None
        return float(now - then)

    trend_last = change_since(school_weeks[k - trend_weeks]) if k > trend_weeks else None

    return {
        "possible_sessions": possible,
        "present": present,
        "approved_activity": approved,
        "authorised": authorised,
        "unauthorised": unauthorised,
        "not_counted": count(StatClass.NOT_COUNTED),
        "attendance_pct": None if now is None else float(now),
        "absence_pct": None if absence is None else float(100 * absence),
        "persistent_absence": absence is not None and absence >= Fraction(1, 10),
        "severe_absence": absence is not None and absence >= Fraction(1, 2),
        "late_before_close": sum(1 for c in inside.values() if c == "L"),
        "late_after_close": sum(1 for c in inside.values() if c == "U"),
        "lates_by_half_term": lates,
        "penalty_notice_sessions": sum(1 for c in inside.values() if c in PN_CODES),
        "school_weeks": k,
        "max_unauthorised_in_10_school_weeks": best[2] if best else 0,
        "max_window_start": best[0].isoformat() if best else None,
        "max_window_end": best[1].isoformat() if best else None,
        "windows_at_penalty_threshold": sum(1 for w in windows if w[2] >= 10),
        "windows": windows,
        "longest_unauthorised_run_school_days": longest,
        "current_unauthorised_run_school_days": run,
        "school_days_with_possible_sessions": len(by_day),
        "school_days_missed": missed,
        "school_days_missed_illness": ill,
        f"trend_last_{trend_weeks}_school_weeks": trend_last,
        "trend_since": change_since(trend_since) if trend_since else None,
        "counts_by_code": dict(Counter(inside.values())),
    }
