"""Scripted pupil histories for the policy scenarios: marks day by day, then a simulated replay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from stdnum.gb import upn as stdnum_upn

from attendwise.attendance.calendar import SchoolCalendar
from attendwise.attendance.marks_file import MarkRow
from attendwise.policies import simulate
from attendwise.policies.engine import MemorySink
from attendwise.policies.simulate import EventRow, PupilResult, Replay

CALENDAR = SchoolCalendar.england_default(2025)
"""2025/26: school opens Wed 3 Sep 2025 (INSET 1-2 Sep); autumn half-term 27-31 Oct."""

Pattern = Callable[[dt.date], tuple[str, str]]


def upn(n: int) -> str:
    body = f"8351234{n:04d}{n % 10}"
    return stdnum_upn.calc_check_digit(body) + body


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def present(_: dt.date) -> tuple[str, str]:
    return "/", "\\"


def absent_on(weekdays: Iterable[int], code: str = "O", until: dt.date | None = None) -> Pattern:
    """Absent all day (``code``) on these weekdays (0 = Monday), present otherwise."""
    days = set(weekdays)

    def pattern(day: dt.date) -> tuple[str, str]:
        if day.weekday() in days and (until is None or day <= until):
            return code, code
        return "/", "\\"

    return pattern


def marks_on(special: Mapping[dt.date, tuple[str, str]], default: Pattern = present) -> Pattern:
    """``default`` except on the listed days."""

    def pattern(day: dt.date) -> tuple[str, str]:
        return special.get(day, default(day))

    return pattern


def marks(pupils: Mapping[str, Pattern], end: dt.date, calendar: SchoolCalendar = CALENDAR) -> list[MarkRow]:
    rows: list[MarkRow] = []
    for pupil, pattern in pupils.items():
        for day in calendar.school_days(calendar.start, end):
            am, pm = pattern(day)
            rows.append(MarkRow(len(rows) + 2, pupil, day, "AM", am))
            rows.append(MarkRow(len(rows) + 2, pupil, day, "PM", pm))
    return rows


@dataclass
class Outcome:
    pupils: dict[str, PupilResult]
    sink: MemorySink

    def moves(self, pupil: str) -> list[tuple[str, int, int]]:
        return [(t.on.isoformat(), t.from_stage, t.to_stage) for t in self.pupils[pupil].transitions]

    def transition_to(self, pupil: str, stage: int) -> simulate.TransitionDecision:
        return next(t for t in self.pupils[pupil].transitions if t.to_stage == stage)

    def kinds(self, pupil: str, stage: int) -> list[str]:
        return [a.kind for a in self.transition_to(pupil, stage).actions]


def replay(
    preset: str,
    pupils: Mapping[str, Pattern],
    start: str,
    end: str,
    events: Iterable[tuple[str, str, str]] = (),
    calendar: SchoolCalendar = CALENDAR,
) -> Outcome:
    """Simulate ``preset`` (NAME or NAME@VERSION) over the scripted marks, as the CLI does."""
    policies, pinned = simulate.load_preset(preset)
    event_rows = [EventRow(i + 2, u, d(day), e) for i, (u, day, e) in enumerate(events)]
    rp = Replay.from_marks(marks(pupils, d(end), calendar), calendar, event_rows, d(start), d(end))
    sink = MemorySink()
    result = simulate.run(policies, rp, d(start), d(end), pinned=pinned, sink=sink)
    return Outcome({p.upn: p for p in result.pupils}, sink)
