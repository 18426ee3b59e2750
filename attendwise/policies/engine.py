"""The policy engine: where each pupil stands on the school's ladder today, and what must happen.

The engine is pure and vectorised over pupils. Its inputs are

* a compiled :class:`~attendwise.policies.document.Policy`;
* a :class:`LadderState`: each pupil's stage, the day they entered it and their first stage of
  this episode (the ladder), with a snapshot of their counts on each of those days;
* :class:`Facts`: this year's metrics from :mod:`attendwise.attendance.metrics` (one
  computation over the year to date serves every condition: "since stage entry" windows are the
  counts now minus the snapshot), school-day and school-week clocks from each pupil's calendar,
  staff-recorded events and recorded support.

Each condition compiles to a numpy mask over pupils, so a whole local authority costs a few
dozen array operations per stage. Only pupils who move are explained in Python.

Rules, in order, for a pupil due for evaluation (their stage's monitoring cadence, or an event
recorded today):

1. a pupil who already moved today stays put (evaluating twice changes nothing);
2. a new academic year returns every pupil to the base stage when the policy starts afresh;
3. the current stage's ``leave`` rules, in document order (events, plan closed, de-escalation);
4. otherwise the highest stage the pupil may enter (``from``, ``after_weeks``, ``when``);
5. a move into a stage with an action of legal weight is *proposed* to the sign-off role unless
   sign-off is taken as given; a stage with a support-first gate waits for recorded support.

Decisions reach casework through a :class:`DecisionSink`; the engine writes no tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from attendwise.attendance.calendar import SchoolCalendar, academic_year_of
from attendwise.attendance.codes import CODE_INDEX
from attendwise.attendance.metrics import PN_THRESHOLD, PupilMetrics
from attendwise.policies.document import (
    Action,
    AllOf,
    AnyOf,
    AtStage,
    Comparison,
    Condition,
    EventSeen,
    Flag,
    Metric,
    NotOf,
    Policy,
    Recurring,
    Stage,
)

SNAP_FIELDS = ("attended", "possible", "absent", "unauthorised", "unexplained", "late_l", "late_u")
_SNAP = {name: i for i, name in enumerate(SNAP_FIELDS)}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def academic_years(ordinals: np.ndarray) -> np.ndarray:
    """The academic year (named by the year it starts, 1 August) of each date ordinal."""
    days = (np.asarray(ordinals, dtype=np.int64) - dt.date(1970, 1, 1).toordinal()).astype("datetime64[D]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (days.astype("datetime64[M]").astype(np.int64) % 12) + 1
    return np.where(month >= 8, year, year - 1)


def fmt_date(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


# --------------------------------------------------------------------------- state


@dataclass
class LadderState:
    """Where every pupil of one school stands. Dates are ordinals (``date.toordinal()``), 0 = never."""

    upns: list[str]
    stage: np.ndarray
    entered: np.ndarray
    ladder_entered: np.ndarray
    snap: np.ndarray
    snap_year: np.ndarray
    ladder_snap: np.ndarray
    ladder_year: np.ndarray
    attendance_at_entry: np.ndarray

    @classmethod
    def initial(cls, upns: Sequence[str], base_stage: int) -> LadderState:
        n = len(upns)
        return cls(
            upns=list(upns),
            stage=np.full(n, base_stage, dtype=np.int16),
            entered=np.zeros(n, dtype=np.int64),
            ladder_entered=np.zeros(n, dtype=np.int64),
            snap=np.zeros((n, len(SNAP_FIELDS))),
            snap_year=np.zeros(n, dtype=np.int32),
            ladder_snap=np.zeros((n, len(SNAP_FIELDS))),
            ladder_year=np.zeros(n, dtype=np.int32),
            attendance_at_entry=np.full(n, np.nan),
        )

    def copy(self) -> LadderState:
        return LadderState(
            upns=self.upns,
            stage=self.stage.copy(),
            entered=self.entered.copy(),
            ladder_entered=self.ladder_entered.copy(),
            snap=self.snap.copy(),
            snap_year=self.snap_year.copy(),
            ladder_snap=self.ladder_snap.copy(),
            ladder_year=self.ladder_year.copy(),
            attendance_at_entry=self.attendance_at_entry.copy(),
        )


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Clock:
    """School days and school weeks of one calendar, counted along a day axis.

    ``cum_days[i]``: school days from the axis start to day ``i`` inclusive; ``cum_weeks[i]``:
    school weeks (Monday to Sunday, at least one school day) whose Monday is on or before day
    ``i``. Differences of these give "school days / school weeks since" in one gather.
    """

    axis_start: int
    cum_days: np.ndarray
    cum_weeks: np.ndarray

    @classmethod
    def of(cls, calendar: SchoolCalendar, start: dt.date, end: dt.date) -> Clock:
        ndays = (end - start).days + 1
        open_days = calendar.open_mask(start, ndays)
        week_id = (np.arange(ndays) + start.weekday()) // 7
        week_open = np.bincount(week_id, weights=open_days.astype(np.float64)) > 0
        return cls(
            axis_start=start.toordinal(),
            cum_days=np.cumsum(open_days),
            cum_weeks=np.cumsum(week_open)[week_id],
        )


@dataclass
class EventLog:
    """Staff-recorded events: for each event name, each pupil's event dates (ordinals), sorted."""

    dates: dict[str, dict[int, list[int]]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, dt.date, str]]) -> EventLog:
        log = cls()
        for row, day, name in rows:
            log.dates.setdefault(name, {}).setdefault(row, []).append(day.toordinal())
        for per_pupil in log.dates.values():
            for days in per_pupil.values():
                days.sort()
        return log

    def latest(self, name: str, n: int, on: int) -> np.ndarray:
        """Per pupil, the latest day of ``name`` on or before ``on`` (0 when none)."""
        out = np.zeros(n, dtype=np.int64)
        for row, days in self.dates.get(name, {}).items():
            earlier = [d for d in days if d <= on]
            if earlier:
                out[row] = earlier[-1]
        return out

    def rows_on(self, on: int) -> set[int]:
        return {row for per_pupil in self.dates.values() for row, days in per_pupil.items() if on in days}

    def any_between(self, names: Sequence[str], row: int, after: int, on: int) -> bool:
        return any(after < d <= on for name in names for d in self.dates.get(name, {}).get(row, []))


@dataclass
class Facts:
    """What is known about every pupil of a school on one day."""

    on: dt.date
    metrics: PupilMetrics
    half_term_column: np.ndarray
    """Per pupil: the column of today's half-term in the metrics' lates by half-term (-1: none)."""
    clocks: Sequence[Clock]
    calendar_of: np.ndarray
    events: EventLog = field(default_factory=EventLog)
    support: np.ndarray | None = None
    previous_year_attendance: np.ndarray | None = None
    window: Callable[[str], PupilMetrics] | None = None
    """Metrics over another named window (half_term, term, last_N_weeks), computed on demand."""
    _cache: dict[Any, np.ndarray] = field(default_factory=dict, repr=False)
    _windows: dict[str, PupilMetrics] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.metrics)

    @property
    def ordinal(self) -> int:
        return self.on.toordinal()

    @property
    def year(self) -> int:
        return academic_year_of(self.on)

    def counts(self) -> np.ndarray:
        """This year's counts in :data:`SNAP_FIELDS` order (n x 7)."""
        if "counts" not in self._cache:
            m = self.metrics
            self._cache["counts"] = np.stack(
                [
                    m.attended,
                    m.possible,
                    m.absent,
                    m.unauthorised,
                    m.code_counts[:, CODE_INDEX["N"]],
                    m.late_before_close,
                    m.late_after_close,
                ],
                axis=1,
            ).astype(np.float64)
        return self._cache["counts"]

    def half_term_lates(self, kind: str) -> np.ndarray:
        key = ("half_term_lates", kind)
        if key not in self._cache:
            m = self.metrics
            col = self.half_term_column
            rows = np.arange(self.n)
            safe = np.maximum(col, 0)
            width = m.late_before_close_by_half_term.shape[1]
            safe = np.minimum(safe, max(width - 1, 0))
            early = m.late_before_close_by_half_term[rows, safe] if width else np.zeros(self.n)
            after = m.late_after_close_by_half_term[rows, safe] if width else np.zeros(self.n)
            value = {"L": early, "U": after, "any": early + after}[kind]
            self._cache[key] = np.where(col >= 0, value, 0)
        return self._cache[key]

    def weeks_since(self, ordinals: np.ndarray) -> np.ndarray:
        """School weeks from each pupil's ``ordinals`` day to today, on the pupil's own calendar."""
        return self._since("cum_weeks", ordinals)

    def days_since(self, ordinals: np.ndarray) -> np.ndarray:
        """School days after each pupil's ``ordinals`` day up to today, on the pupil's own calendar."""
        return self._since("cum_days", ordinals)

    def _since(self, which: str, ordinals: np.ndarray) -> np.ndarray:
        key = ("clock", which)
        if key not in self._cache:
            start = self.clocks[0].axis_start
            width = max(len(c.cum_days) for c in self.clocks)
            table = np.zeros((len(self.clocks), width), dtype=np.int64)
            for i, clock in enumerate(self.clocks):
                if clock.axis_start != start:
                    raise ValueError("every clock of one evaluation must start on the same day")
                values = getattr(clock, which)
                table[i, : len(values)] = values
                table[i, len(values) :] = values[-1]
            self._cache[key] = table
        table = self._cache[key]
        cal = np.asarray(self.calendar_of, dtype=np.int64)
        last = table.shape[1] - 1
        today = np.clip(self.ordinal - self.clocks[0].axis_start, 0, last)
        then = np.clip(ordinals - self.clocks[0].axis_start, 0, last)
        return np.where(ordinals > 0, table[cal, today] - table[cal, then], 0)

    def other_window(self, name: str) -> PupilMetrics:
        """Metrics over another window, computed once per day however many conditions use it."""
        if self.window is None:
            raise ValueError(f"no metrics are available for the window {name!r}")
        if name not in self._windows:
            self._windows[name] = self.window(name)
        return self._windows[name]

    def latest_event(self, name: str) -> np.ndarray:
        """Per pupil, the latest day (ordinal) ``name`` was recorded on or before today; 0 if never."""
        latest = self._cache.get(("event", name))
        if latest is None:
            latest = self.events.latest(name, self.n, self.ordinal)
            self._cache[("event", name)] = latest
        return latest

    def event_seen(self, name: str, since: np.ndarray) -> np.ndarray:
        latest = self.latest_event(name)
        return (latest > 0) & (latest > since)


def take_rows(metrics: PupilMetrics, rows: np.ndarray) -> PupilMetrics:
    """The metrics of some rows only (e.g. the pupils of the schools sharing one policy)."""
    n = len(metrics)
    changes: dict[str, Any] = {
        f.name: getattr(metrics, f.name)[rows]
        for f in dataclasses.fields(metrics)
        if isinstance(getattr(metrics, f.name), np.ndarray) and getattr(metrics, f.name).shape[:1] == (n,)
    }
    changes["pupils"] = _Rows(metrics.pupils, rows)
    return dataclasses.replace(metrics, **changes)


class _Rows(Sequence[Any]):
    """Some items of a sequence, by position, without copying them."""

    def __init__(self, items: Sequence[Any], rows: np.ndarray) -> None:
        self._items = items
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._items[int(i)] for i in self._rows[index]]
        return self._items[int(self._rows[index])]


def half_term_columns(metrics: PupilMetrics, calendars: Sequence[SchoolCalendar], on: dt.date) -> np.ndarray:
    """Per pupil, the column of ``on``'s half-term in the metrics' lates by half-term (-1: none)."""
    per_calendar = np.full(len(calendars), -1, dtype=np.int64)
    for i, calendar in enumerate(calendars):
        half_term = calendar.half_term_of(on)
        names = metrics.half_term_names[i]
        if half_term is not None and half_term.name in names:
            per_calendar[i] = names.index(half_term.name)
    return per_calendar[np.asarray(metrics.calendar_of, dtype=np.int64)]


# --------------------------------------------------------------------------- decisions


class ActionDecision(NamedTuple):
    """One thing to do for one pupil, keyed so that recording it twice creates it once.

    A named tuple: a whole LA's weekly calls and rewards are created in one evaluation."""

    key: str
    upn: str
    on: dt.date
    kind: str
    detail: str
    stage: int
    source: str
    policy: str
    params: tuple[tuple[str, Any], ...] = ()
    sign_off: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "detail": self.detail}
        params = dict(self.params)
        if self.kind == "referral":
            out["referral_kind"] = params["referral_kind"]
        return out


_new_action: Callable[[tuple[Any, ...]], ActionDecision] = functools.partial(tuple.__new__, ActionDecision)
"""Build an :class:`ActionDecision` from a tuple of its fields without the named tuple's Python-level
``__new__`` (an LA's weekly actions number in the hundreds of thousands)."""


class TransitionDecision(NamedTuple):
    """A move of one pupil between stages (or a proposed move), with its reason and entry actions."""

    key: str
    upn: str
    on: dt.date
    from_stage: int
    to_stage: int
    to_name: str
    reason: str
    explanation: str
    policy: str
    status: str
    """``applied``; ``proposed`` (waits for ``sign_off``); ``awaiting_support`` (support-first gate)."""
    sign_off: str | None
    actions: tuple[ActionDecision, ...]


_new_transition: Callable[[tuple[Any, ...]], TransitionDecision] = functools.partial(
    tuple.__new__, TransitionDecision
)


class DecisionSink(Protocol):
    """Where decisions go. Casework implements it with cases and tasks; it must be idempotent by key."""

    def transition(self, decision: TransitionDecision) -> None: ...

    def action(self, decision: ActionDecision) -> None: ...


@dataclass
class MemorySink:
    """Keeps decisions in memory (simulations and dry runs); a key seen before is ignored."""

    transitions: dict[str, TransitionDecision] = field(default_factory=dict)
    actions: dict[str, ActionDecision] = field(default_factory=dict)

    def transition(self, decision: TransitionDecision) -> None:
        self.transitions.setdefault(decision.key, decision)

    def action(self, decision: ActionDecision) -> None:
        self.actions.setdefault(decision.key, decision)


@dataclass
class Evaluation:
    state: LadderState
    transitions: list[TransitionDecision]
    actions: list[ActionDecision]

    def publish(self, sink: DecisionSink) -> None:
        with _collector_paused():
            for t in self.transitions:
                sink.transition(t)
            for a in self.actions:
                sink.action(a)


# --------------------------------------------------------------------------- conditions


@dataclass
class _Context:
    """One evaluation: the facts, the state before it, and every mask and value computed so far
    (keyed by the condition object), so explaining a pupil never recomputes a whole column."""

    facts: Facts
    state: LadderState
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    values: dict[Any, np.ndarray] = field(default_factory=dict)

    def column(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """A per-pupil column computed at most once in this evaluation."""
        if name not in self.values:
            self.values[name] = compute()
        return self.values[name]

    def weeks(self, which: str) -> np.ndarray:
        key = ("weeks", which)
        if key not in self.values:
            self.values[key] = self.facts.weeks_since(self.since(which))
        return self.values[key]

    def since(self, which: str) -> np.ndarray:
        return self.state.entered if which == "stage_entry" else self.state.ladder_entered

    def window_counts(self, window: str) -> np.ndarray:
        """Counts (n x 7) since stage or ladder entry: now minus the snapshot of the same year."""
        now = self.facts.counts()
        if window == "since_stage_entry":
            snap, year = self.state.snap, self.state.snap_year
        else:
            snap, year = self.state.ladder_snap, self.state.ladder_year
        same_year = (year == self.facts.year)[:, None]
        return now - np.where(same_year, snap, 0.0)


_COUNT_FIELD = {
    "sessions_missed": "absent",
    "unauthorised_sessions": "unauthorised",
    "unexplained_sessions": "unexplained",
}


def metric_values(ctx: _Context, metric: Metric) -> np.ndarray:
    values = ctx.values.get(id(metric))
    if values is None:
        values = _metric_values(ctx, metric)
        ctx.values[id(metric)] = values
    return values


def _metric_values(ctx: _Context, metric: Metric) -> np.ndarray:
    facts, window = ctx.facts, metric.cmp.window or "year_to_date"
    name = metric.metric
    if name == "improvement":
        gain = facts.metrics.attendance_pct - ctx.state.attendance_at_entry
        return np.nan_to_num(gain, nan=0.0)
    if name == "weeks_in_stage":
        return ctx.weeks("stage_entry").astype(np.float64)
    if name == "weeks_on_ladder":
        return ctx.weeks("ladder_entry").astype(np.float64)
    if name == "school_days_in_stage":
        return facts.days_since(ctx.state.entered).astype(np.float64)
    if name == "end_of_year_attendance":
        if facts.previous_year_attendance is None:
            return np.full(facts.n, np.nan)
        return facts.previous_year_attendance
    if name == "lates" and window == "half_term":
        return facts.half_term_lates(metric.late_kind).astype(np.float64)
    if window in ("since_stage_entry", "since_ladder_entry"):
        counts = ctx.window_counts(window)
        return _from_counts(counts, name, metric.late_kind)
    if window == "year_to_date":
        return _from_counts(facts.counts(), name, metric.late_kind)
    other = facts.other_window(window)
    counts = np.stack(
        [
            other.attended,
            other.possible,
            other.absent,
            other.unauthorised,
            other.code_counts[:, CODE_INDEX["N"]],
            other.late_before_close,
            other.late_after_close,
        ],
        axis=1,
    ).astype(np.float64)
    return _from_counts(counts, name, metric.late_kind)


def _from_counts(counts: np.ndarray, name: str, late_kind: str) -> np.ndarray:
    if name == "attendance":
        possible = counts[:, _SNAP["possible"]]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(possible > 0, 100.0 * counts[:, _SNAP["attended"]] / possible, np.nan)
    if name == "lates":
        early, after = counts[:, _SNAP["late_l"]], counts[:, _SNAP["late_u"]]
        return {"L": early, "U": after, "any": early + after}[late_kind]
    return counts[:, _SNAP[_COUNT_FIELD[name]]]


def compare(values: np.ndarray, cmp: Comparison) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        mask = ~np.isnan(values)
        if cmp.below is not None:
            mask &= values < cmp.below
        if cmp.at_most is not None:
            mask &= values <= cmp.at_most
        if cmp.at_least is not None:
            mask &= values >= cmp.at_least
        if cmp.above is not None:
            mask &= values > cmp.above
    return mask


def flag_values(ctx: _Context, name: str) -> np.ndarray:
    m = ctx.facts.metrics
    if name == "persistent_absence":
        return np.asarray(m.persistent_absence)
    if name == "severe_absence":
        return np.asarray(m.severe_absence)
    if name == "penalty_notice_threshold":
        return np.asarray(m.max_unauthorised_in_10_school_weeks >= PN_THRESHOLD)
    support = ctx.facts.support
    recorded = np.zeros(ctx.facts.n, dtype=bool) if support is None else support.copy()
    for event in ("support_accepted", "support_declined"):
        recorded |= ctx.facts.event_seen(event, np.zeros(ctx.facts.n, dtype=np.int64))
    return recorded


def holds(cond: Condition, ctx: _Context) -> np.ndarray:
    """The pupils for whom ``cond`` is true, as a boolean mask (computed once per evaluation)."""
    mask = ctx.masks.get(id(cond))
    if mask is None:
        mask = _holds(cond, ctx)
        ctx.masks[id(cond)] = mask
    return mask


def _holds(cond: Condition, ctx: _Context) -> np.ndarray:
    if isinstance(cond, AllOf):
        mask = np.ones(ctx.facts.n, dtype=bool)
        for item in cond.items:
            mask &= holds(item, ctx)
        return mask
    if isinstance(cond, AnyOf):
        mask = np.zeros(ctx.facts.n, dtype=bool)
        for item in cond.items:
            mask |= holds(item, ctx)
        return mask
    if isinstance(cond, NotOf):
        return ~holds(cond.item, ctx)
    if isinstance(cond, Flag):
        values = flag_values(ctx, cond.name)
        return values if cond.value else ~values
    if isinstance(cond, EventSeen):
        return ctx.facts.event_seen(cond.event, ctx.since(cond.since))
    if isinstance(cond, AtStage):
        return np.isin(ctx.state.stage, cond.numbers)
    return compare(metric_values(ctx, cond), cond.cmp)


# --------------------------------------------------------------------------- explanations

_WINDOW_WORDS = {
    "year_to_date": "this year",
    "half_term": "this half-term",
    "term": "this term",
    "since_stage_entry": "since the stage began",
    "since_ladder_entry": "since the pupil's first stage",
}
_METRIC_WORDS = {
    "sessions_missed": "sessions missed",
    "unauthorised_sessions": "unauthorised or unexplained sessions",
    "unexplained_sessions": "unexplained (N) sessions",
}


def _window_words(window: str | None) -> str:
    w = window or "year_to_date"
    if w.startswith("last_"):
        return f"over the last {w.split('_')[1]} school weeks"
    return _WINDOW_WORDS[w]


def explain(cond: Condition, ctx: _Context, rows: np.ndarray) -> list[list[str]]:
    """For each pupil in ``rows``, the parts of ``cond`` that hold, in words with their figures.

    Vectorised over the pupils: each part is one template formatted with a column of values.
    """
    n = len(rows)
    if isinstance(cond, AllOf | AnyOf):
        parts: list[list[str]] = [[] for _ in range(n)]
        for item in cond.items:
            picked = np.arange(n) if isinstance(cond, AllOf) else np.flatnonzero(holds(item, ctx)[rows])
            if picked.size:
                for j, words in zip(picked.tolist(), explain(item, ctx, rows[picked]), strict=True):
                    parts[j].extend(words)
        return parts
    if isinstance(cond, NotOf):
        return [[f"not ({'; '.join(words) or 'condition'})"] for words in explain(cond.item, ctx, rows)]
    if isinstance(cond, Flag):
        return [[text if cond.value else f"not {text}"] for text in _flag_words(cond.name, ctx, rows)]
    if isinstance(cond, EventSeen):
        event = cond.event.replace("_", " ")
        since = ctx.since(cond.since)[rows].tolist()
        latest = ctx.facts.latest_event(cond.event)[rows].tolist()
        return [
            [f"{event} ({_day(last) if last > start else 'not yet'})"]
            for start, last in zip(since, latest, strict=True)
        ]
    if isinstance(cond, AtStage):
        return [[f"at stage {stage}"] for stage in ctx.state.stage[rows].tolist()]
    values = metric_values(ctx, cond)[rows].tolist()
    if cond.metric == "improvement":
        entered = ctx.state.entered[rows].tolist()
        bound = cond.cmp.describe()
        return [
            [f"improvement of {v:+.1f} points{f' since {_day(e)}' if e else ''} ({bound})"]
            for v, e in zip(values, entered, strict=True)
        ]
    template = _metric_template(cond)
    return [[template.format(v)] for v in values]


@functools.cache
def _day(ordinal: int) -> str:
    return fmt_date(dt.date.fromordinal(ordinal))


def _flag_words(name: str, ctx: _Context, rows: np.ndarray) -> list[str]:
    m = ctx.facts.metrics
    if name in ("persistent_absence", "severe_absence"):
        word = "persistently" if name == "persistent_absence" else "severely"
        absence = ctx.column("absence_pct", lambda: m.absence_pct)[rows].tolist()
        return [f"{word} absent (absence {a:.1f}%)" for a in absence]
    if name == "penalty_notice_threshold":
        sessions = m.max_unauthorised_in_10_school_weeks[rows].tolist()
        return [
            f"{s} unauthorised sessions in 10 school weeks (the penalty-notice threshold)" for s in sessions
        ]
    return ["support on record"] * len(rows)


def _metric_template(cond: Metric) -> str:
    """A ``str.format`` template for one value, e.g. "attendance {:.1f}% this year (below 90%)"."""
    name, bound = cond.metric, cond.cmp.describe().replace("{", "{{").replace("}", "}}")
    if name in ("attendance", "end_of_year_attendance"):
        where = (
            "at the end of last year" if name == "end_of_year_attendance" else _window_words(cond.cmp.window)
        )
        return f"attendance {{:.1f}}% {where} ({cond.cmp.describe('%')})"
    if name in ("weeks_in_stage", "weeks_on_ladder"):
        place = "at this stage" if name == "weeks_in_stage" else "since the first stage"
        return f"{{:.0f}} school weeks {place} ({bound})"
    if name == "school_days_in_stage":
        return f"{{:.0f}} school days at this stage ({bound})"
    if name == "lates":
        kind = {"L": "late arrivals before the register closed", "U": "late arrivals after it closed"}
        return (
            f"{{:.0f}} {kind.get(cond.late_kind, 'late arrivals')} {_window_words(cond.cmp.window)} ({bound})"
        )
    return f"{{:.0f}} {_METRIC_WORDS[name]} {_window_words(cond.cmp.window)} ({bound})"


# --------------------------------------------------------------------------- evaluation


def needs_sign_off(stage: Stage, extra: Sequence[Action] = ()) -> str | None:
    for action in (*stage.on_entry, *extra):
        if action.needs_sign_off:
            return action.sign_off
    return stage.sign_off


def _prepared(
    actions: Sequence[Action],
) -> tuple[tuple[str, str, tuple[tuple[str, Any], ...], str | None], ...]:
    return tuple((a.kind, a.summary(), a.params, a.sign_off) for a in actions)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small decision objects.

    An LA-wide evaluation creates hundreds of thousands of tuples that are never cyclic; with the
    collector running, its full passes over them cost more than the evaluation itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def evaluate(
    policy: Policy,
    state: LadderState,
    facts: Facts,
    *,
    due: np.ndarray | None = None,
    approve_all: bool = False,
    assume_support: bool = False,
    recurring_today: Callable[[str], bool] | None = None,
) -> Evaluation:
    """Evaluate every pupil in ``state`` on ``facts.on``; returns the new state and the decisions.

    ``due`` limits stage changes to pupils whose cadence falls today (default: all).
    ``recurring_today(every)`` says whether recurring actions with that ``every`` fall today.
    Sign-off is taken as given with ``approve_all`` and support-first gates as met with
    ``assume_support`` (simulations); otherwise such moves are proposed or wait.
    """
    with _collector_paused():
        return _evaluate(
            policy,
            state,
            facts,
            due=due,
            approve_all=approve_all,
            assume_support=assume_support,
            recurring_today=recurring_today,
        )


def _evaluate(
    policy: Policy,
    state: LadderState,
    facts: Facts,
    *,
    due: np.ndarray | None = None,
    approve_all: bool = False,
    assume_support: bool = False,
    recurring_today: Callable[[str], bool] | None = None,
) -> Evaluation:
    """The evaluation itself; see :func:`evaluate`."""
    n = len(state.upns)
    today = facts.ordinal
    base = policy.base_stage
    ctx = _Context(facts, state)
    due_mask = np.ones(n, dtype=bool) if due is None else due.copy()
    due_mask &= state.entered != today
    target = state.stage.copy()
    moved = np.zeros(n, dtype=bool)
    rule_of = np.full(n, -1, dtype=np.int32)
    rules: list[tuple[str, Stage, Any]] = []

    if policy.new_academic_year == "start_afresh":
        entered_year = np.where(state.entered > 0, academic_years(state.entered), facts.year)
        afresh = due_mask & (state.stage != base) & (entered_year < facts.year)
        rules.append(("afresh", Stage(base, policy.stage_name(base)), None))
        target[afresh], moved[afresh], rule_of[afresh] = base, True, len(rules) - 1

    for stage in policy.stages:
        here = due_mask & ~moved & (state.stage == stage.number)
        if not here.any():
            continue
        for leave in stage.leave:
            hit = here & ~moved & holds(leave.when, ctx)
            if hit.any():
                rules.append(("leave", stage, leave))
                target[hit], moved[hit], rule_of[hit] = leave.to, True, len(rules) - 1

    for stage in sorted(policy.stages, key=lambda s: -s.number):
        enter = stage.enter
        if enter is None:
            continue
        if enter.from_stages is not None:
            eligible = np.isin(state.stage, enter.from_stages)
        else:
            eligible = state.stage < stage.number
        eligible &= due_mask & ~moved
        if not eligible.any():
            continue
        if enter.after_weeks is not None:
            eligible &= ctx.weeks(enter.weeks_counted_from) >= enter.after_weeks.low
        if enter.when is not None and eligible.any():
            eligible &= holds(enter.when, ctx)
        if eligible.any():
            rules.append(("enter", stage, enter))
            target[eligible], moved[eligible], rule_of[eligible] = stage.number, True, len(rules) - 1

    transitions: list[TransitionDecision] = []
    new = state.copy()
    counts = facts.counts()
    on = facts.on
    today_words = fmt_date(facts.on)
    for index, (kind, source_stage, rule) in enumerate(rules):
        rows = np.flatnonzero(moved & (rule_of == index))
        if not rows.size:
            continue
        to = base if kind == "afresh" else (rule.to if kind == "leave" else source_stage.number)
        to_stage = policy.stage(to)
        extra: tuple[Action, ...] = rule.actions if kind == "leave" else ()
        details: list[list[str]]
        if kind == "afresh":
            head, details = "a new academic year: the policy starts every pupil afresh", [[] for _ in rows]
        else:
            head = rule.reason if kind == "leave" else (rule.reason or f"enters {source_stage.label}")
            details = explain(rule.when, ctx, rows) if rule.when is not None else [[] for _ in rows]
        if kind == "enter" and rule.after_weeks is not None:
            where = "at stage" if rule.weeks_counted_from == "stage_entry" else "since the first stage"
            for words, weeks in zip(details, ctx.weeks(rule.weeks_counted_from)[rows].tolist(), strict=True):
                words.append(f"after {weeks} school weeks {where} ({rule.after_weeks} weeks)")
        escalates = (
            to_stage is not None
            and kind != "afresh"
            and to > (source_stage.number if kind == "leave" else -1)
        )
        entry = _prepared((*(to_stage.on_entry if to_stage is not None and escalates else ()), *extra))
        role = needs_sign_off(to_stage, extra) if to_stage is not None and escalates else None
        status = np.full(len(rows), "applied", dtype=object)
        if role is not None and not approve_all:
            status[:] = "proposed"
        elif escalates and to_stage is not None and to_stage.support_first and not assume_support:
            supported = ctx.column("support_recorded", lambda: flag_values(ctx, "support_recorded"))[rows]
            status[~supported] = "awaiting_support"
        name, version = policy.stage_name(to), policy.key
        label = f"Stage {to}" if to_stage is not None else name
        for row, words, state_now, from_stage, entered in zip(
            rows.tolist(),
            details,
            status.tolist(),
            state.stage[rows].tolist(),
            state.entered[rows].tolist(),
            strict=True,
        ):
            upn = state.upns[row]
            reason = f"{head}: {'; '.join(words)}" if words else head
            if state_now == "applied":
                explanation = f"{label} since {today_words}: {reason}"
            else:
                explanation = (
                    f"Stage {from_stage}, move to stage {to} {state_now.replace('_', ' ')}: {reason}"
                )
            key = f"{policy.id}:{upn}:{from_stage}:{entered}:{to}"
            actions = tuple(
                [
                    _new_action((f"{key}:{i}", upn, on, a_kind, detail, to, key, version, params, sign_off))
                    for i, (a_kind, detail, params, sign_off) in enumerate(entry)
                ]
            )
            transitions.append(
                _new_transition(
                    (
                        key,
                        upn,
                        facts.on,
                        from_stage,
                        to,
                        name,
                        reason,
                        explanation,
                        version,
                        state_now,
                        role,
                        actions,
                    )
                )
            )
        applied = rows[status == "applied"]
        new.stage[applied] = to
        new.entered[applied] = today
        new.snap[applied] = counts[applied]
        new.snap_year[applied] = facts.year
        new.attendance_at_entry[applied] = facts.metrics.attendance_pct[applied]
        if to in (base, 0):
            new.ladder_entered[applied] = 0
        else:
            starts = applied[(state.ladder_entered[applied] == 0) | np.isin(state.stage[applied], [0, base])]
            new.ladder_entered[starts] = today
            new.ladder_snap[starts] = counts[starts]
            new.ladder_year[starts] = facts.year

    recurring = _recurring(policy, new, facts, recurring_today) if recurring_today else []
    return Evaluation(new, transitions, recurring)


def _recurring(
    policy: Policy, state: LadderState, facts: Facts, recurring_today: Callable[[str], bool]
) -> list[ActionDecision]:
    ctx = _Context(facts, state)
    out: list[ActionDecision] = []
    jobs: list[tuple[str, int | None, int, Recurring]] = [
        ("rule", None, i, r) for i, r in enumerate(policy.rules)
    ]
    for st in policy.stages:
        jobs.extend(("stage", st.number, i, r) for i, r in enumerate(st.while_in_stage))
    day, version = facts.on.isoformat(), policy.key
    for source, stage_number, index, item in jobs:
        if not recurring_today(item.every):
            continue
        mask = np.ones(facts.n, dtype=bool) if stage_number is None else state.stage == stage_number
        if item.when is not None and mask.any():
            mask &= holds(item.when, ctx)
        rows = np.flatnonzero(mask)
        prepared = _prepared(item.actions)
        stages = state.stage[rows].tolist() if stage_number is None else [stage_number] * len(rows)
        suffix = f"{day}:{source}:{stage_number}:{index}"
        on, upns, append = facts.on, state.upns, out.append
        for row, number in zip(rows.tolist(), stages, strict=True):
            upn = upns[row]
            tag = f"{policy.id}:{upn}:{suffix}"
            for i, (kind, detail, params, sign_off) in enumerate(prepared):
                append(
                    _new_action((f"{tag}:{i}", upn, on, kind, detail, number, tag, version, params, sign_off))
                )
    return out
