"""Dothill Primary (seed 003): bands OR lates per half-term OR unexplained/unauthorised absence.

"Stage One: Universal Support" holds every pupil at 96-100%, so pupils start at stage 1.
"""

from __future__ import annotations

import datetime as dt

from attendwise.attendance.calendar import SchoolCalendar
from tests.policies.helpers import absent_on, d, marks_on, present, replay, upn

BAND = upn(31)
LATE = upn(32)
UNAUTH = upn(33)
PN = upn(34)
PERFECT = upn(35)


def ill_mondays(days: list[str]) -> dict[dt.date, tuple[str, str]]:
    return {d(day): ("I", "\\") for day in days}


def test_universal_stage_one_holds_everyone() -> None:
    """ "Stage One: Universal Support - 96% - 100% attendance"."""
    out = replay("dothill", {PERFECT: present}, "2025-09-01", "2025-10-10")
    assert out.pupils[PERFECT].stage == 1
    assert out.pupils[PERFECT].stage_name == "Universal Support"
    assert out.moves(PERFECT) == []


def test_band_93_to_95_is_stage_two() -> None:
    """Stage Two: "Initiate support at this level if any of the following criteria are met: 93% - 95%
    attendance"; actions: informal discussion, reminder letter, "First warning letter issued - SAL1",
    early help offer."""
    pattern = marks_on(ill_mondays(["2025-09-15", "2025-09-29", "2025-10-13", "2025-11-03"]))
    out = replay("dothill", {BAND: pattern}, "2025-09-01", "2025-11-14")
    # 2 of 46 sessions missed by Fri 3 Oct: 95.7%
    assert out.moves(BAND) == [("2025-10-03", 1, 2)]
    assert "attendance 95.7% this year (below 96%)" in out.transition_to(BAND, 2).reason
    stage2 = out.transition_to(BAND, 2).actions
    assert [a.kind for a in stage2] == ["meeting", "letter", "letter", "early_help"]
    assert stage2[2].detail.startswith("letter dothill-sal1")


def test_late_arrivals_per_half_term() -> None:
    """Stage Two: "Three or more late arrivals over a half-term period"; Stage Three: "Five or more late
    arrivals over a half term period"; Stage Four: "Continued late arrivals despite support offered at
    previous tiers"."""
    lates = {
        d(day): ("L", "\\")
        for day in ("2025-09-08", "2025-09-15", "2025-09-22", "2025-09-29", "2025-10-06", "2025-10-13")
    }
    out = replay("dothill", {LATE: marks_on(lates)}, "2025-09-01", "2025-10-24")
    assert out.moves(LATE) == [
        ("2025-09-26", 1, 2),  # third late this half-term (L counts as present: attendance 100%)
        ("2025-10-10", 2, 3),  # fifth
        ("2025-10-17", 3, 4),  # one more at stage three
    ]
    assert "3 late arrivals this half-term (at least 3)" in out.transition_to(LATE, 2).reason
    assert out.transition_to(LATE, 3).actions[0].detail.startswith("letter dothill-sal2")
    assert out.kinds(LATE, 4) == ["letter", "review"]


def test_lates_are_counted_per_half_term() -> None:
    """Two lates before half-term and two after are never three "over a half-term period"."""
    lates = {d(day): ("L", "\\") for day in ("2025-10-13", "2025-10-20", "2025-11-03", "2025-11-10")}
    out = replay("dothill", {LATE: marks_on(lates)}, "2025-09-01", "2025-11-21")
    assert out.moves(LATE) == []


def test_unexplained_or_unauthorised_absence() -> None:
    """Stage Two: "An unexplained or unauthorised absence"; Stage Three: "Subsequent unexplained or
    unauthorised absences"; Stage Four: "Continued unexplained or unauthorised absences despite
    support offered at previous tiers". One session each time, so the bands never apply."""
    sessions = {d("2025-11-03"): ("N", "\\"), d("2025-11-10"): ("O", "\\"), d("2025-11-17"): ("/", "O")}
    out = replay("dothill", {UNAUTH: marks_on(sessions)}, "2025-09-01", "2025-11-28")
    assert out.moves(UNAUTH) == [("2025-11-07", 1, 2), ("2025-11-14", 2, 3), ("2025-11-21", 3, 4)]
    assert (
        "1 unauthorised or unexplained sessions this year (at least 1)" in out.transition_to(UNAUTH, 2).reason
    )


def test_below_90_and_the_legal_threshold() -> None:
    """Stage Four: "Attendance below 90%", with daily checks ("Lorna Mellish to do daily checks");
    Stage Five: "Any of the thresholds for legal action have been met" - 10 unauthorised sessions in
    10 school weeks, seen on the day it is reached because stage four is checked daily."""
    out = replay("dothill", {PN: absent_on([0, 1])}, "2025-09-01", "2025-10-10")
    # Mondays and Tuesdays unauthorised: the tenth session is Mon 22 Sep, two weeks into stage four.
    assert out.moves(PN) == [("2025-09-12", 1, 4), ("2025-09-22", 4, 5)]
    reason = out.transition_to(PN, 5).reason
    assert "10 unauthorised sessions in 10 school weeks (the penalty-notice threshold)" in reason
    assert "at least 4 (stage four weeks)" not in reason
    stage5 = out.transition_to(PN, 5).actions
    assert [a.kind for a in stage5] == ["referral", "attendance_contract"]
    assert dict(stage5[0].params)["referral_kind"] == "la_notification"


def test_ending_the_year_below_90() -> None:
    """ "Ending the academic year below 90%": "Report sent home in July stating attendance is not
    acceptable", "Letter in July to invite to attendance panel", the panel and its action plan."""
    calendar = SchoolCalendar.england_default(2025)
    last_day = max(calendar.school_days(calendar.start, calendar.end))
    out = replay(
        "dothill",
        {PN: absent_on([0], code="I"), PERFECT: present},
        "2026-07-01",
        last_day.isoformat(),
        calendar=calendar,
    )
    july = [(a.on, a.kind) for a in out.pupils[PN].recurring]
    assert july == [
        (last_day, "letter"),
        (last_day, "letter"),
        (last_day, "meeting"),
        (last_day, "action_plan"),
    ]
    assert last_day.month == 7
    assert out.pupils[PERFECT].recurring == []
