"""Replaying a policy over a period of marks, on the policy's own cadence, with no database.

This is what ``attendwise policy simulate`` and the dry run use. Each school day of the period
is a possible evaluation day: pupils whose stage is monitored daily are evaluated every school
day, the others on the policy's weekly day (or the last school day before it, in a week when
that day is not a school day), and any pupil with an event recorded that day is evaluated that
day. Recurring actions fall on their own days. Each day uses the version of the policy in
effect that day, unless a version is pinned.

In a simulation every step that needs sign-off is taken as approved and every support-first
gate as met, so the output shows the policy's own timing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attendwise.attendance.calendar import (
    SchoolCalendar,
    academic_year_end,
    academic_year_of,
    days_between,
    week_start,
)
from attendwise.attendance.cli import school_calendar_for
from attendwise.attendance.codes import CODE_INDEX
from attendwise.attendance.marks_file import MarkRow, check_upn
from attendwise.attendance.metrics import MarkMatrix, Period, PupilMetrics, compute
from attendwise.policies import document
from attendwise.policies.document import AllOf, AnyOf, Condition, Metric, NotOf, Policy
from attendwise.policies.engine import (
    WEEKDAYS,
    ActionDecision,
    Clock,
    Evaluation,
    EventLog,
    Facts,
    LadderState,
    MemorySink,
    TransitionDecision,
    evaluate,
    half_term_columns,
)
from attendwise.policies.schema import EVENTS
from attendwise.policies.versions import version_on

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
CLI_EVENTS = tuple(e for e in EVENTS if e != "slt_decision")


class SimulationError(ValueError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_text(name: str) -> str:
    if name not in preset_names():
        raise SimulationError([f"there is no preset {name!r}; presets: {', '.join(preset_names())}"])
    return (PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8")


def load_preset(spec: str) -> tuple[list[Policy], int | None]:
    """``NAME`` or ``NAME@VERSION``: the preset's versions and the pinned version number, if any."""
    name, _, version = spec.partition("@")
    policies = document.load(preset_text(name))
    return policies, pin_version(policies, version, f"preset {name}")


def pin_version(policies: Sequence[Policy], version: str, what: str) -> int | None:
    if not version:
        return None
    numbers = [p.version for p in policies]
    if not version.isdigit() or int(version) not in numbers:
        raise SimulationError(
            [f"{what} has no version {version!r}; versions: {', '.join(str(n) for n in numbers)}"]
        )
    return int(version)


# --------------------------------------------------------------------------- events file


@dataclass(frozen=True)
class EventRow:
    row: int
    upn: str
    date: dt.date
    event: str


def parse_events(text: str) -> list[EventRow]:
    """The events CSV ``upn,date,event``; raises :class:`SimulationError` listing every bad row."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip().lower() for h in next(reader, [])]
    if header != ["upn", "date", "event"]:
        raise SimulationError(["events file row 1: the header must be upn,date,event"])
    problems: list[str] = []
    rows: list[EventRow] = []
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != 3:
            problems.append(f"events file row {number}: expected 3 values, found {len(values)}")
            continue
        raw_upn, raw_date, raw_event = (v.strip() for v in values)
        errors = []
        upn = raw_upn
        try:
            upn, _ = check_upn(raw_upn)
        except ValueError as exc:
            errors.append(str(exc) if raw_upn else "the UPN is empty")
        try:
            day = dt.date.fromisoformat(raw_date)
        except ValueError:
            errors.append(f"date {raw_date!r} is not an ISO date (YYYY-MM-DD)")
            day = dt.date.min
        event = raw_event.lower()
        if event not in CLI_EVENTS:
            errors.append(f"unknown event {raw_event!r}; events: {', '.join(CLI_EVENTS)}")
        if errors:
            problems.extend(f"events file row {number}: {e}" for e in errors)
        else:
            rows.append(EventRow(number, upn, day, event))
    if problems:
        raise SimulationError(problems)
    return rows


# --------------------------------------------------------------------------- calendar days


@dataclass
class Days:
    """Which recurring ``every`` values and cadences fall on a school day of one calendar."""

    calendar: SchoolCalendar

    def _none_open(self, start: dt.date, end: dt.date) -> bool:
        return not any(self.calendar.is_school_day(d) for d in days_between(start, end))

    def weekly(self, day: dt.date, weekday: str) -> bool:
        target = WEEKDAYS.index(weekday)
        if day.weekday() > target or not self.calendar.is_school_day(day):
            return False
        last = week_start(day) + dt.timedelta(days=target)
        return day == last or self._none_open(day + dt.timedelta(days=1), last)

    def last_of(self, day: dt.date, end: dt.date) -> bool:
        return self.calendar.is_school_day(day) and self._none_open(day + dt.timedelta(days=1), end)

    def falls(self, every: str, day: dt.date, policy_day: str) -> bool:
        if every == "day":
            return self.calendar.is_school_day(day)
        if every == "week":
            return self.weekly(day, policy_day)
        if every in WEEKDAYS:
            return self.calendar.is_school_day(day) and WEEKDAYS[day.weekday()] == every
        half_term = self.calendar.half_term_of(day)
        if half_term is None:
            return False
        if every == "half_term":
            return self.last_of(day, half_term.end)
        if every == "term":
            term = next(t for t in self.calendar.terms if half_term in t.half_terms)
            return self.last_of(day, term.end)
        year_end = min(self.calendar.end, academic_year_end(academic_year_of(day)))
        return self.last_of(day, year_end)


def year_start(calendar: SchoolCalendar, day: dt.date) -> dt.date:
    """The first day of the calendar's academic year containing ``day``."""
    year = academic_year_of(day)
    starts = [h.start for h in calendar.half_terms if academic_year_of(h.start) == year]
    return min(starts) if starts else calendar.start


# --------------------------------------------------------------------------- simulation


@dataclass
class PupilResult:
    upn: str
    stage: int
    stage_name: str
    transitions: list[TransitionDecision] = field(default_factory=list)
    recurring: list[ActionDecision] = field(default_factory=list)

    def as_dict(self, with_recurring: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "upn": self.upn,
            "stage": self.stage,
            "stage_name": self.stage_name,
            "transitions": [
                {
                    "date": t.on.isoformat(),
                    "from": t.from_stage,
                    "to": t.to_stage,
                    "reason": t.reason,
                    "actions": [a.as_dict() for a in t.actions],
                }
                for t in self.transitions
            ],
        }
        if with_recurring:
            out["recurring_actions"] = [{"date": a.on.isoformat(), **a.as_dict()} for a in self.recurring]
        return out


@dataclass
class Simulation:
    pupils: list[PupilResult]
    state: LadderState
    policy: Policy

    def as_dict(self, with_recurring: bool = False) -> dict[str, Any]:
        return {"pupils": [p.as_dict(with_recurring) for p in self.pupils]}


def _uses(cond: Condition | None, metric: str) -> bool:
    if cond is None:
        return False
    if isinstance(cond, AllOf | AnyOf):
        return any(_uses(c, metric) for c in cond.items)
    if isinstance(cond, NotOf):
        return _uses(cond.item, metric)
    return isinstance(cond, Metric) and cond.metric == metric


def uses_metric(policy: Policy, metric: str) -> bool:
    conditions: list[Condition | None] = [r.when for r in policy.rules]
    for s in policy.stages:
        conditions.append(s.enter.when if s.enter else None)
        conditions.extend(lv.when for lv in s.leave)
        conditions.extend(r.when for r in s.while_in_stage)
    return any(_uses(c, metric) for c in conditions)


class Replay:
    """Marks, calendar and events of one school, ready to evaluate on any day."""

    def __init__(
        self,
        matrix: MarkMatrix,
        calendar: SchoolCalendar,
        events: Sequence[EventRow],
        end: dt.date,
        *,
        what: str = "marks file",
    ) -> None:
        """``matrix`` holds every pupil's marks from the start of the academic year to ``end``."""
        pupils = {upn: i for i, upn in enumerate(matrix.pupils)}
        unknown = [e for e in events if e.upn not in pupils]
        if unknown:
            raise SimulationError(
                [f"events file row {e.row}: pupil {e.upn} has no marks in the {what}" for e in unknown]
            )
        self.calendar = calendar
        self.days = Days(calendar)
        self.upns = [str(u) for u in matrix.pupils]
        self.axis_start = matrix.start
        self.end = end
        self.matrix = matrix
        self.clock = Clock.of(calendar, matrix.start, end)
        self.events = EventLog.from_rows((pupils[e.upn], e.date, e.event) for e in events)
        self.event_days: dict[dt.date, list[int]] = {}
        for e in events:
            self.event_days.setdefault(e.date, []).append(pupils[e.upn])
        self._previous: dict[int, np.ndarray] = {}

    @classmethod
    def from_marks(
        cls,
        marks: Sequence[MarkRow],
        calendar: SchoolCalendar | None,
        events: Sequence[EventRow],
        start: dt.date,
        end: dt.date,
    ) -> Replay:
        """From the rows of a marks file (the calendar defaults to the days with a mark)."""
        if not marks:
            raise SimulationError(["the marks file has no marks"])
        if end < start:
            raise SimulationError([f"--to ({end}) is before --from ({start})"])
        school_calendar = school_calendar_for(marks, calendar)
        pupils: dict[str, int] = {}
        for m in marks:
            pupils.setdefault(m.upn, len(pupils))
        first_mark = min(m.date for m in marks)
        axis_start = min(first_mark, start, year_start(school_calendar, start))
        ndays = (end - axis_start).days + 1
        codes = np.zeros((len(pupils), 2 * ndays), dtype=np.uint8)
        inside = [m for m in marks if axis_start <= m.date <= end]
        if inside:
            rows = np.fromiter((pupils[m.upn] for m in inside), dtype=np.int64, count=len(inside))
            cols = np.fromiter(
                (2 * (m.date - axis_start).days + (m.session == "PM") for m in inside),
                dtype=np.int64,
                count=len(inside),
            )
            codes[rows, cols] = np.fromiter(
                (CODE_INDEX[m.code] for m in inside), dtype=np.uint8, count=len(inside)
            )
        return cls(MarkMatrix(axis_start, codes, list(pupils)), school_calendar, events, end)

    def metrics(self, day: dt.date) -> PupilMetrics:
        return compute(
            self.matrix, [self.calendar], Period(year_start(self.calendar, day), day, "Year to date")
        )

    def previous_year_attendance(self, day: dt.date) -> np.ndarray:
        year = academic_year_of(day) - 1
        if year not in self._previous:
            start = max(dt.date(year, 8, 1), self.axis_start)
            end = min(dt.date(year + 1, 7, 31), self.end)
            if end < start or not self.calendar.school_days(start, end):
                self._previous[year] = np.full(len(self.upns), np.nan)
            else:
                self._previous[year] = compute(
                    self.matrix, [self.calendar], Period(start, end)
                ).attendance_pct
        return self._previous[year]

    def facts(self, day: dt.date, policy: Policy) -> Facts:
        metrics = self.metrics(day)
        previous = (
            self.previous_year_attendance(day) if uses_metric(policy, "end_of_year_attendance") else None
        )
        return Facts(
            on=day,
            metrics=metrics,
            half_term_column=half_term_columns(metrics, [self.calendar], day),
            clocks=[self.clock],
            calendar_of=np.zeros(len(self.upns), dtype=np.int64),
            events=self.events,
            previous_year_attendance=previous,
            window=lambda name: self._window(name, day),
        )

    def _window(self, name: str, day: dt.date) -> PupilMetrics:
        half_term = self.calendar.half_term_of(day)
        if name == "half_term" and half_term is not None:
            period = Period(half_term.start, day)
        elif name == "term" and half_term is not None:
            term = next(t for t in self.calendar.terms if half_term in t.half_terms)
            period = Period(term.start, day)
        elif name.startswith("last_"):
            weeks = self.calendar.school_weeks(self.axis_start, day)
            n = int(name.split("_")[1])
            period = Period(max(weeks[-n:][0], self.axis_start) if weeks else day, day)
        else:
            raise ValueError(f"no metrics are available for the window {name!r}")
        return compute(self.matrix, [self.calendar], period)


def evaluate_day(
    policy: Policy,
    replay: Replay,
    state: LadderState,
    day: dt.date,
    *,
    approve_all: bool = False,
    assume_support: bool = False,
) -> Evaluation | None:
    """One day on the policy's cadence: the pupils due (their stage's weekly or daily check, or an
    event recorded that day) and the recurring actions falling that day; ``None`` when nothing is
    due (not a school day, or no check and no recurring action)."""
    if not replay.calendar.is_school_day(day):
        return None
    monitoring = {s.number: s.monitoring for s in policy.stages}
    cadence = np.array([monitoring.get(int(s), policy.cadence) for s in state.stage])
    weekly_today = replay.days.weekly(day, policy.evaluation_day)
    due = (cadence == "daily") | ((cadence == "weekly") & weekly_today)
    for row in replay.event_days.get(day, ()):
        due[row] = True
    recurring = {
        every
        for every in {r.every for r in policy.rules}
        | {r.every for s in policy.stages for r in s.while_in_stage}
        if replay.days.falls(every, day, policy.evaluation_day)
    }
    if not due.any() and not recurring:
        return None
    return evaluate(
        policy,
        state,
        replay.facts(day, policy),
        due=due,
        approve_all=approve_all,
        assume_support=assume_support,
        recurring_today=recurring.__contains__,
    )


def run(
    policies: Sequence[Policy],
    replay: Replay,
    start: dt.date,
    end: dt.date,
    *,
    pinned: int | None = None,
    approve_all: bool = True,
    assume_support: bool = True,
    sink: MemorySink | None = None,
) -> Simulation:
    """Replay ``start``..``end``; decisions go to ``sink`` (a fresh :class:`MemorySink` by default)."""
    sink = sink if sink is not None else MemorySink()
    first = version_on(policies, start, pinned)
    state = LadderState.initial(replay.upns, first.base_stage)
    policy = first
    for day in days_between(start, end):
        policy = version_on(policies, day, pinned)
        result = evaluate_day(
            policy, replay, state, day, approve_all=approve_all, assume_support=assume_support
        )
        if result is None:
            continue
        result.publish(sink)
        state = result.state
    by_upn: dict[str, PupilResult] = {
        upn: PupilResult(upn, int(state.stage[i]), policy.stage_name(int(state.stage[i])))
        for i, upn in enumerate(state.upns)
    }
    for t in sorted(sink.transitions.values(), key=lambda t: (t.on, t.from_stage)):
        if t.status == "applied":
            by_upn[t.upn].transitions.append(t)
    for a in sorted(sink.actions.values(), key=lambda a: (a.on, a.key)):
        by_upn[a.upn].recurring.append(a)
    return Simulation(list(by_upn.values()), state, policy)


def dry_run(
    policies: Sequence[Policy], replay: Replay, day: dt.date, *, pinned: int | None = None
) -> dict[str, Any]:
    """What the policy would do on the data up to ``day``, creating nothing.

    Replays the academic year to ``day`` and reports how many pupils stand at each stage, the
    actions of the week ending on ``day`` by kind (referrals by their kind), and the pupils whose
    stage changes that week.
    """
    start = dt.date(academic_year_of(day), 8, 1)
    sink = MemorySink()
    result = run(policies, replay, start, day, pinned=pinned, sink=sink)
    policy = result.policy
    week_from = week_start(day)
    counts: dict[int, int] = {}
    for stage in result.state.stage:
        counts[int(stage)] = counts.get(int(stage), 0) + 1
    numbers = sorted({policy.base_stage, *(s.number for s in policy.stages), *counts})
    changes = [t for t in sink.transitions.values() if t.status == "applied" and week_from <= t.on <= day]
    actions = [a for t in changes for a in t.actions] + [
        a for a in sink.actions.values() if week_from <= a.on <= day
    ]
    by_kind: dict[str, int] = {}
    for a in actions:
        kind = a.kind if a.kind != "referral" else f"referral: {dict(a.params)['referral_kind']}"
        by_kind[kind] = by_kind.get(kind, 0) + 1
    return {
        "on": day.isoformat(),
        "policy": policy.key,
        "pupils": len(result.state.upns),
        "stages": [{"stage": n, "name": policy.stage_name(n), "pupils": counts.get(n, 0)} for n in numbers],
        "week": {
            "from": week_from.isoformat(),
            "to": day.isoformat(),
            "actions": dict(sorted(by_kind.items())),
            "stage_changes": [
                {
                    "upn": t.upn,
                    "date": t.on.isoformat(),
                    "from": t.from_stage,
                    "to": t.to_stage,
                    "explanation": t.explanation,
                }
                for t in sorted(changes, key=lambda t: (t.on, t.upn))
            ],
        },
    }
