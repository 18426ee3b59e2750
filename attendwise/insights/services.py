"""Insights: each school's figures precomputed, and comparisons of a trust's or an LA's schools.

:func:`refresh` recomputes one school's figures from its marks and stores them
(:mod:`attendwise.insights.models`); it runs as a job after each evaluation run and from
``attendwise insights refresh``. The pages and the API answer from those rows only, through
:func:`comparison` (a trust, an LA or one school) and :func:`national_reference`.

How a refresh computes. Per school year, one pass over the school's marks: each day's (AM, PM)
bytes map, through one lookup table built from the code table's classes (admin overrides
applied), to packed counts of present, approved-activity, authorised and unauthorised sessions
(possible sessions are those four, as in :mod:`attendwise.attendance.metrics`). The counts are
summed between consecutive boundaries (every Monday and every start and end of a compared
period: this half-term, this term, the year to date, last year, and the same periods a year
earlier) and accumulated, so each period's and each trend week's per-pupil counts are a
difference of two columns. Persistent and severe absence are then read from those counts with
the attendance core's own definitions (:class:`~attendwise.attendance.metrics.PupilMetrics`),
never re-implemented here, and every breakdown (school, year group, pupil group) is one product
of 0/1 group masks with the per-pupil figures.

What a refresh skips. The stored figures are in parts (:func:`units`): each period's rows and
each year's trend weeks. Each part has a fingerprint of what it is computed from: its year's
marks version (:func:`attendwise.attendance.queries.marks_version`, which changes whenever any
pupil's marks of that year are written or deleted), the pupils and their year groups and
characteristics, the code table's classes, and the part's dates. A part whose fingerprint and
last day are unchanged is kept as stored (it would be computed to the same rows); a period
whose fingerprint is unchanged but that now runs to a later day is carried on from the stored
per-pupil counts, counting only the days in between; everything else is computed afresh. So
after an evaluation run, this year's figures (its marks changed) are recomputed, last year's
whole-year figures and weeks are kept, and last year's "same period" figures (which move on
with the day) cost only the days since the last refresh. A changed mark of last year changes
that year's marks version, so all of last year is recomputed.

Small-group suppression: outside the school itself, any figure that comes from fewer than
:data:`SUPPRESS_BELOW` pupils is withheld (shown as "x"), as in the DfE's statistics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import pickle
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from attendwise.attendance import metrics
from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import SchoolCalendar, academic_year_label, academic_year_of, week_start
from attendwise.attendance.codes import CodeTable, StatClass
from attendwise.casework import queries as casework_queries
from attendwise.insights.models import (
    NationalFigure,
    SchoolCasework,
    SchoolFigures,
    SchoolSource,
    SchoolWeek,
)
from attendwise.letters import services as letter_services
from attendwise.platform import audit, tenancy
from attendwise.platform.db import utcnow
from attendwise.referrals import queries as referral_queries
from attendwise.referrals import services as referral_services
from attendwise.tenants.models import Organisation, OrgKind

PERIODS: dict[str, str] = {
    "half_term": "This half-term",
    "term": "This term",
    "ytd": "Year to date",
    "last_year": "Last year",
}
"""The periods a comparison can be asked for, with their labels (the first is not the default:
:data:`DEFAULT_PERIOD` is)."""

DEFAULT_PERIOD = "ytd"
LAST_YEAR_SUFFIX = "_ly"
SUPPRESS_BELOW = 5
STACK_BLOCK_ROWS = 16384  # rows of the stacked 7-day matrix per block: about 14 MB of work arrays
SUPPRESSED = "x"

PUPIL_GROUPS: dict[str, str] = {
    "sen_support": "SEN support",
    "ehcp": "Education, health and care plan",
    "fsm": "Free school meals",
    "eal": "English as an additional language",
    "looked_after": "Looked after",
}

MEASURES: dict[str, str] = {
    "attendance": "Attendance",
    "authorised": "Authorised absence",
    "unauthorised": "Unauthorised absence",
    "persistent": "Persistent absence",
    "severe": "Severe absence",
}
"""The attendance measures of a comparison, each a percentage (see :class:`Figures`)."""

NATIONAL_MEASURES = ("absence", "authorised", "unauthorised", "persistent", "severe")
NATIONAL_PHASES = ("all", "primary", "secondary", "special")


class InsightsError(ValueError):
    """A request for figures that cannot be answered as asked (an unknown period, say)."""


class NotVisible(LookupError):
    """The organisation does not exist or the current tenant may not see its figures."""


_MEASURE_PROPERTY = {
    "attendance": "attendance",
    "absence": "absence",
    "authorised": "authorised_rate",
    "unauthorised": "unauthorised_rate",
    "persistent": "persistent_rate",
    "severe": "severe_rate",
}


# ---- the figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Attendance figures of a group of pupils over one period (sessions and pupils summed).

    ``suppressed`` figures come from fewer than :data:`SUPPRESS_BELOW` pupils and are shown
    outside the school: every percentage and count is then ``None``.
    """

    pupils: int = 0
    possible: int = 0
    attended: int = 0
    authorised: int = 0
    unauthorised: int = 0
    persistent: int = 0
    severe: int = 0
    suppressed: bool = False

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.pupils + other.pupils,
            self.possible + other.possible,
            self.attended + other.attended,
            self.authorised + other.authorised,
            self.unauthorised + other.unauthorised,
            self.persistent + other.persistent,
            self.severe + other.severe,
        )

    def suppress_if_small(self, suppress: bool) -> Figures:
        if suppress and self.pupils < SUPPRESS_BELOW:
            return Figures(suppressed=True)
        return self

    def _share(self, part: int, whole: int) -> float | None:
        if self.suppressed or not whole:
            return None
        return 100.0 * part / whole

    @property
    def pupil_count(self) -> int | None:
        return None if self.suppressed else self.pupils

    @property
    def attendance(self) -> float | None:
        return self._share(self.attended, self.possible)

    @property
    def absence(self) -> float | None:
        return self._share(self.authorised + self.unauthorised, self.possible)

    @property
    def authorised_rate(self) -> float | None:
        return self._share(self.authorised, self.possible)

    @property
    def unauthorised_rate(self) -> float | None:
        return self._share(self.unauthorised, self.possible)

    @property
    def persistent_rate(self) -> float | None:
        """Persistent absentees as a share of pupils with a possible session (DfE)."""
        return self._share(self.persistent, self.pupils)

    @property
    def severe_rate(self) -> float | None:
        return self._share(self.severe, self.pupils)

    def measure(self, key: str) -> float | None:
        """One of :data:`MEASURES` (or ``absence``) as a percentage."""
        return getattr(self, _MEASURE_PROPERTY[key])

    def as_dict(self) -> dict[str, Any]:
        return {
            "suppressed": self.suppressed,
            "pupils": self.pupil_count,
            "possible_sessions": None if self.suppressed else self.possible,
            "attendance_pct": self.attendance,
            "absence_pct": self.absence,
            "authorised_pct": self.authorised_rate,
            "unauthorised_pct": self.unauthorised_rate,
            "persistent_absentees": None if self.suppressed else self.persistent,
            "persistent_pct": self.persistent_rate,
            "severe_absentees": None if self.suppressed else self.severe,
            "severe_pct": self.severe_rate,
        }


@dataclass(frozen=True)
class Count:
    """A casework count; ``None`` when suppressed (from 1 to 4 pupils, outside the school)."""

    label: str
    value: int | None

    @property
    def suppressed(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Casework:
    """Casework in figures: open cases by stage, open cases, and this term's letters,
    meetings and referrals (with referrals by the LA's outcome)."""

    stages: list[Count] = field(default_factory=list)
    open_cases: Count = Count("Open cases", 0)
    letters: Count = Count("Letters this term", 0)
    meetings: Count = Count("Meetings this term", 0)
    referrals: Count = Count("Referrals this term", 0)
    referral_outcomes: list[Count] = field(default_factory=list)


@dataclass(frozen=True)
class SchoolRow:
    """One school of a comparison."""

    school_id: int
    name: str
    urn: str | None
    phase: str
    figures: Figures
    last_year: Figures | None
    casework: Casework
    refreshed_at: dt.datetime | None


@dataclass(frozen=True)
class GroupRow:
    """The total over the compared schools for one breakdown: a phase, year group or pupil group."""

    breakdown: str  # "phase", "year" or "group"
    key: str
    label: str
    figures: Figures
    last_year: Figures | None


@dataclass(frozen=True)
class WeekPoint:
    """One school week of the trend: this year's week and the same week number a year earlier."""

    number: int
    week_start: dt.date
    figures: Figures
    last_year: Figures | None


@dataclass(frozen=True)
class NationalValue:
    measure: str
    phase: str
    value: float
    academic_year: int
    period_kind: str
    source: str

    @property
    def year_label(self) -> str:
        kind = "full year" if self.period_kind == "year" else f"{self.period_kind} term"
        return f"{academic_year_label(self.academic_year)} {kind}"


@dataclass(frozen=True)
class Comparison:
    """Figures of a trust's or an LA's schools (or of one school), per school and in total."""

    scope_id: int
    scope_name: str
    scope_kind: str
    period: str
    period_label: str
    period_start: dt.date | None
    period_end: dt.date | None
    suppressed_outside_school: bool
    schools: list[SchoolRow]
    total: Figures
    total_last_year: Figures | None
    groups: list[GroupRow]
    weeks: list[WeekPoint]
    casework: Casework
    national: list[NationalValue]

    def national_value(self, measure: str, phase: str = "all") -> NationalValue | None:
        return next((n for n in self.national if n.measure == measure and n.phase == phase), None)


# ---- refresh: from the marks to the stored figures ------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A period of one academic year: ``[start, end]``."""

    key: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class RefreshResult:
    school_id: int
    on: dt.date
    pupils: int
    figure_rows: int
    week_rows: int
    kept: frozenset[str] = frozenset()
    """The parts (:func:`units`) whose stored rows were still current and were kept."""
    extended: frozenset[str] = frozenset()
    """The periods whose stored counts were carried on to the new day (:func:`plan`)."""


def spans(calendar: SchoolCalendar, previous: SchoolCalendar, on: dt.date) -> list[Span]:
    """The periods of :data:`PERIODS` as of ``on``, and the same periods a year earlier.

    This half-term and this term run from their start to ``on`` (the last half-term begun, in a
    holiday); the same period last year is last year's half-term or term of the same position,
    to the same number of days in, and the year to date last year runs as many days from the
    start of last year's calendar. ``last_year`` is the whole of last year.
    """
    end = min(max(on, calendar.start), calendar.end)
    out = [Span("ytd", calendar.start, end)]
    started = [i for i, h in enumerate(calendar.half_terms) if h.start <= end]
    index = calendar.half_terms.index(calendar.half_term_of(end)) if calendar.half_term_of(end) else None
    if index is None:
        index = started[-1] if started else 0
    half = calendar.half_terms[index]
    term = next(t for t in calendar.terms if half in t.half_terms)
    half_end, term_end = min(max(end, half.start), half.end), min(max(end, term.start), term.end)
    out += [Span("half_term", half.start, half_end), Span("term", term.start, term_end)]
    out.append(Span("last_year", previous.start, previous.end))

    def same_days(start: dt.date, stop: dt.date, days: int) -> dt.date:
        return min(start + dt.timedelta(days=days), stop)

    out.append(
        Span(
            "ytd" + LAST_YEAR_SUFFIX,
            previous.start,
            same_days(previous.start, previous.end, (end - calendar.start).days),
        )
    )
    if index < len(previous.half_terms):
        ly_half = previous.half_terms[index]
        ly_term = next(t for t in previous.terms if ly_half in t.half_terms)
        out.append(
            Span(
                "half_term" + LAST_YEAR_SUFFIX,
                ly_half.start,
                same_days(ly_half.start, ly_half.end, (half_end - half.start).days),
            )
        )
        out.append(
            Span(
                "term" + LAST_YEAR_SUFFIX,
                ly_term.start,
                same_days(ly_term.start, ly_term.end, (term_end - term.start).days),
            )
        )
    return out


def refresh(
    session: Session, school_id: int, *, on: dt.date | None = None, full: bool = False
) -> RefreshResult:
    """Recompute and store one school's figures as of ``on`` (today by default).

    Only the parts whose inputs changed since the last refresh are recomputed (see
    :func:`units`): after an evaluation run this year's figures are, but last year's whole-year
    figures and trend weeks are kept while last year's marks, the pupils and the code table are
    unchanged, last year's "same period" figures are carried on from the last refresh's counts,
    and a school with nothing changed keeps all its figures (its marks are not even read).
    ``full`` recomputes every part regardless (the ``attendwise insights refresh`` command, to
    repair figures). Casework counts are always recounted. Replaces the rows in one go (the
    caller's transaction) and records the refresh in the school's audit log.
    """
    on = on or attendance_queries.today()
    with tenancy.tenant_context(school_id):
        year = academic_year_of(on)
        calendars = [attendance_services.school_calendar(session, school_id, y) for y in (year, year - 1)]
        traits = attendance_queries.pupil_traits(session, school_id)
        table = attendance_services.code_table(session)
        periods = spans(calendars[0], calendars[1], on)
        pupils = pupils_source(traits, table)
        sources = [
            year_source(attendance_queries.marks_version(session, school_id, cal.academic_year), pupils)
            for cal in calendars
        ]
        stored = {
            row.unit: Stored(Part(row.fingerprint, row.through), row.counts)
            for row in session.execute(
                select(
                    SchoolSource.unit, SchoolSource.fingerprint, SchoolSource.through, SchoolSource.counts
                ).where(SchoolSource.org_id == school_id)
            )
            if not full
        }
        now = utcnow()
        done = recompute(
            school_id,
            traits,
            list(zip(calendars, sources, strict=True)),
            lambda cal: attendance_queries.mark_matrix(session, school_id, cal.academic_year, traits.ids),
            periods,
            table,
            stored,
            now,
        )
        computed, kept, carried = done.computed, done.kept, done.carried
        _store(
            session, school_id, computed, _casework_rows(session, school_id, periods, now), done.current, kept
        )
        audit.record(
            session,
            org_id=school_id,
            action="insights.refresh",
            object_type="organisation",
            object_id=school_id,
            detail={
                "on": on.isoformat(),
                "pupils": len(traits.ids),
                "figure_rows": len(computed.figures),
                "kept": sorted(kept),
                "extended": sorted(carried),
            },
        )
    return RefreshResult(
        school_id,
        on,
        len(traits.ids),
        len(computed.figures),
        len(computed.weeks),
        frozenset(kept),
        frozenset(carried),
    )


@dataclass(frozen=True)
class Recomputed:
    computed: Computed
    current: dict[str, Part]
    kept: frozenset[str]
    carried: dict[str, Carried]


def recompute(
    school_id: int,
    traits: attendance_queries.PupilTraits,
    years: Sequence[tuple[SchoolCalendar, str]],
    marks: Callable[[SchoolCalendar], metrics.MarkMatrix],
    periods: Sequence[Span],
    table: CodeTable,
    stored: dict[str, Stored],
    now: dt.datetime,
) -> Recomputed:
    """What a refresh computes for one school from ``years`` (each calendar with its
    :func:`year_source`) and the parts the last refresh ``stored``: only the parts that changed
    (:func:`plan`), reading the marks (``marks(calendar)``) only of the years that need them.
    No database access of its own: the benchmark times exactly this."""
    of_year = [units([cal], [source], periods) for cal, source in years]
    current = {unit: part for parts in of_year for unit, part in parts.items()}
    kept, carried = plan(current, stored, len(traits.ids))
    wanted = [
        SchoolYear(cal, marks(cal))
        for (cal, _), parts in zip(years, of_year, strict=True)
        if set(parts) - kept
    ]
    computed = school_rows(school_id, traits, wanted, periods, table, now, kept=kept, carried=carried)
    return Recomputed(computed, current, kept, carried)


FORMAT = "2"
"""Part of every fingerprint: change it when the refresh computes differently, so that no figure
computed by older code is kept."""


def pupils_source(traits: attendance_queries.PupilTraits, table: CodeTable) -> str:
    """A fingerprint of what every year's figures of a school are computed from besides its marks:
    the pupils with the characteristics the breakdowns use, and the code table's classes (admin
    overrides applied)."""
    digest = hashlib.sha256(FORMAT.encode())
    digest.update(np.asarray(traits.ids, dtype=np.int64).tobytes())
    digest.update(pickle.dumps(traits.year_group.tolist(), protocol=5))
    for key in PUPIL_GROUPS:
        digest.update(np.asarray(traits.flags[key], dtype=bool).tobytes())
    digest.update(np.asarray(table.class_lut, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def year_source(marks_version: object, pupils: str) -> str:
    """A fingerprint of what one school year's figures are computed from: the year's marks (their
    version, :func:`attendwise.attendance.queries.marks_version`) and :func:`pupils_source`."""
    return _fingerprint(marks_version, pupils)


def _in_year(calendar: SchoolCalendar, periods: Sequence[Span]) -> list[Span]:
    return [s for s in periods if calendar.start <= s.start <= calendar.end]


def _weeks_stop(in_year: Sequence[Span]) -> dt.date:
    """The day after the last week counted: the end of the year's latest period."""
    return max(s.end for s in in_year) + dt.timedelta(days=1)


@dataclass(frozen=True)
class Part:
    """One part of a school's stored figures (:func:`units`): the fingerprint of what it is
    computed from and, for a period, the last day it counts."""

    fingerprint: str
    through: dt.date | None = None


@dataclass(frozen=True)
class Stored:
    """A part as the last refresh stored it, with a period's per-pupil counts (packed)."""

    part: Part
    counts: bytes | None = None


@dataclass(frozen=True)
class Carried:
    """A period's per-pupil packed class counts through a day, to carry on from."""

    through: dt.date
    counts: np.ndarray


def units(
    calendars: Sequence[SchoolCalendar], sources: Sequence[str], periods: Sequence[Span]
) -> dict[str, Part]:
    """Every part of a school's stored figures with what it depends on.

    ``figures:<period>``: a period's rows, from its year's :func:`year_source`, its key and
    start, counted through its end. ``weeks:<academic year>``: the trend weeks, from the year's
    source and start and the last week counted. A part equal to the stored one would be computed
    to the same rows, so a refresh keeps it (last year's whole-year figures and weeks, while last
    year's marks and the pupils stay); a period with the same fingerprint but a later end
    (last year's "same period", which moves on with ``on``) is carried on from its stored counts.
    """
    out: dict[str, Part] = {}
    for calendar, source in zip(calendars, sources, strict=True):
        in_year = _in_year(calendar, periods)
        if not in_year:
            continue
        for span in in_year:
            out[f"figures:{span.key}"] = Part(_fingerprint(source, span.key, span.start), span.end)
        out[f"weeks:{calendar.academic_year}"] = Part(
            _fingerprint(source, "weeks", calendar.start, _weeks_stop(in_year))
        )
    return out


def plan(
    current: dict[str, Part], stored: dict[str, Stored], pupils: int
) -> tuple[frozenset[str], dict[str, Carried]]:
    """Which parts a refresh keeps as stored, and which periods it carries on from stored counts
    (same fingerprint, an earlier end, counts for every pupil); the rest it computes afresh."""
    kept = frozenset(unit for unit, part in current.items() if unit in stored and stored[unit].part == part)
    carried = {}
    for unit, part in current.items():
        old = stored.get(unit)
        if (
            old is not None
            and old.counts is not None
            and len(old.counts) == 8 * pupils
            and old.part.fingerprint == part.fingerprint
            and old.part.through is not None
            and part.through is not None
            and old.part.through < part.through
        ):
            carried[unit] = Carried(old.part.through, np.frombuffer(old.counts, dtype="<u8"))
    return kept, carried


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@dataclass(frozen=True)
class SchoolYear:
    """One academic year of a school: its calendar and its pupils' marks (rows as ``traits.ids``)."""

    calendar: SchoolCalendar
    marks: metrics.MarkMatrix


_CLASSES = (StatClass.PRESENT, StatClass.APPROVED_ACTIVITY, StatClass.AUTHORISED, StatClass.UNAUTHORISED)
_FIELDS = tuple(c.value for c in _CLASSES)  # "present", "approved_activity", "authorised", "unauthorised"
_FIELD_BITS = 16  # a field counts at most a year's sessions (2 x 366): far fewer than 65,536
_SET = {"pupils", "period", "half_term_names", "calendar_of", "trend_weeks", "trend_since_date", "possible"}
_UNREAD = tuple(f.name for f in fields(metrics.PupilMetrics) if f.name not in _SET | set(_FIELDS))
"""Figures of :class:`PupilMetrics` a period's sums leave empty: nothing here reads them."""
_NOTHING = np.zeros(0, dtype=np.int64)
_FIGURE_KEYS = ("pupils", "possible", "attended", "authorised", "unauthorised", "persistent", "severe")


@functools.cache
def _pair_lut(class_lut: bytes) -> np.ndarray:
    """Per day's (AM, PM) byte pair: a count in the packed field of each session's class.

    A session's class is the code table's (``class_lut``, admin overrides applied); possible
    sessions are those in the four classes other than NOT_COUNTED, as the attendance core counts
    them. Each class has a 16-bit field of a 64-bit value, in :data:`_FIELDS` order from the
    lowest bits, so summing values sums every field at once (no field carries within a year) and
    a sum viewed as four little-endian ``uint16`` is the four counts.
    """
    classes = np.frombuffer(class_lut, dtype=np.uint8)[:256].astype(np.int64)
    single = np.zeros(256, dtype=np.uint64)
    for i, cls in enumerate(_CLASSES):
        single[classes == cls.number] = np.uint64(1) << np.uint64(i * _FIELD_BITS)
    pair = np.arange(65536)
    return single[pair & 0xFF] + single[pair >> 8]


def _day(year: SchoolYear, day: dt.date) -> int:
    return (day - year.marks.start).days


def _sums_to(year: SchoolYear, bounds: Sequence[int], table: CodeTable) -> np.ndarray:
    """Per pupil, the packed class counts (:func:`_pair_lut`) of the sessions from day
    ``bounds[0]`` to each day of ``bounds`` (ascending): shape ``(pupils, len(bounds))``, so
    ``[:, j] - [:, i]`` counts the days ``[bounds[i], bounds[j])`` and :func:`_unpack` reads it."""
    codes = year.marks.codes[:, 2 * bounds[0] : 2 * bounds[-1]]
    highest = codes.max(axis=0) if codes.shape[0] else np.zeros(codes.shape[1], dtype=np.uint8)
    if highest.size and int(highest.max()) >= metrics.NCODES:
        raise ValueError(f"the marks hold a byte ({int(highest.max())}) that encodes no attendance code")
    lut = _pair_lut(np.asarray(table.class_lut, dtype=np.uint8).tobytes())
    pairs = codes.view("<u2")
    # days nobody has a mark on (weekends, holidays: about half) count nothing: drop them first,
    # and end with a zero column so that a piece with no marked day sums to nothing
    used = np.flatnonzero(highest.reshape(-1, 2).any(axis=1))
    # a 2-D take with an axis is slow; gathering the columns, then a flat clip-mode take (no
    # bounds errors to raise: a pair is always below 65,536) is several times faster
    values = lut.take(pairs[:, np.append(used, 0)], mode="clip")
    values[:, -1] = 0
    first = np.searchsorted(used, np.asarray(bounds[:-1]) - bounds[0])
    pieces = np.add.reduceat(values, first, axis=1)
    pieces[:, first == np.append(first[1:], len(used))] = 0  # reduceat gives an empty piece's next day
    out = np.zeros((codes.shape[0], len(bounds)), dtype=np.uint64)
    np.cumsum(pieces, axis=1, out=out[:, 1:])
    return out


def _unpack(packed: np.ndarray) -> np.ndarray:
    """Packed counts of shape ``(pupils, k)`` as ``(class, k, pupils)`` integers."""
    fields = np.ascontiguousarray(packed).view(np.uint16).reshape(*packed.shape, len(_FIELDS))
    return np.ascontiguousarray(fields.transpose(2, 1, 0), dtype=np.int64)


def _group_masks(traits: attendance_queries.PupilTraits) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The breakdowns of a school (whole school, each year group, each pupil group with members)
    and their membership, one row of 0/1 per breakdown over the pupils."""
    n = len(traits.ids)
    keys: list[tuple[str, str]] = [("all", "all")]
    masks = [np.ones(n, dtype=bool)]
    values = traits.year_group.tolist()
    distinct = set(values)
    labels = sorted({str(v) for v in distinct})
    number = {label: i for i, label in enumerate(labels)}
    index = {v: number[str(v)] for v in distinct}
    year_of = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=n)
    keys += [("year", label) for label in labels]
    masks += list(year_of[None, :] == np.arange(len(labels))[:, None])
    for key in PUPIL_GROUPS:
        if traits.flags[key].any():
            keys.append(("group", key))
            masks.append(np.asarray(traits.flags[key], dtype=bool))
    return keys, np.array(masks, dtype=np.float64)


@dataclass(frozen=True)
class Computed:
    """What :func:`school_rows` computed: figure and week rows, and per period computed, each
    pupil's class counts (packed, ``uint64`` per pupil in ``traits.ids`` order) to carry on from."""

    figures: list[dict[str, Any]]
    weeks: list[dict[str, Any]]
    counts: dict[str, np.ndarray]


def school_rows(
    school_id: int,
    traits: attendance_queries.PupilTraits,
    years: Sequence[SchoolYear],
    periods: Sequence[Span],
    table: CodeTable,
    now: dt.datetime,
    *,
    kept: Collection[str] = frozenset(),
    carried: Mapping[str, Carried] | None = None,
) -> Computed:
    """The figure rows (every period of ``periods`` x breakdown) and week rows of one school,
    computed from its marks with no database access (the benchmark times exactly this), leaving
    out the parts named in ``kept`` (:func:`units`: their stored rows are still current) and
    counting a ``carried`` period only from the day after its stored counts.

    Per school year, one pass over the marks sums every pupil's sessions up to each period
    boundary (and each Monday, when the year's weeks are wanted); every period's and week's
    per-pupil counts are differences of those sums, persistent and severe absence are read from
    them with the attendance core's own definitions
    (:class:`~attendwise.attendance.metrics.PupilMetrics`), and every breakdown is one product of
    group masks with the per-pupil figures.
    """
    carried = carried or {}
    out = Computed([], [], {})
    counted: list[tuple[list[Span], np.ndarray]] = []  # per year: its periods and their counts
    n = len(traits.ids)
    keys, masks = _group_masks(traits) if n else ([], np.zeros((0, 0)))
    for year in years:
        cal = year.calendar
        in_year = _in_year(cal, periods)
        wanted = [s for s in in_year if f"figures:{s.key}" not in kept]
        with_weeks = bool(in_year) and f"weeks:{cal.academic_year}" not in kept
        if not n:
            zeros = [[[0] * len(_FIGURE_KEYS)] for _ in wanted]
            out.figures.extend(_figure_rows(school_id, wanted, [("all", "all")], zeros, now))
            continue
        if not wanted and not with_weeks:
            continue
        stop = _weeks_stop(in_year)
        mondays = [cal.start]
        monday = week_start(cal.start) + dt.timedelta(days=7)
        while with_weeks and monday < stop:
            mondays.append(monday)
            monday += dt.timedelta(days=7)
        begins = {}
        for s in wanted:
            carry = carried.get(f"figures:{s.key}")
            begins[s.key] = carry.through + dt.timedelta(days=1) if carry else s.start
        days = {*mondays, stop} if with_weeks else set()
        for s in wanted:
            days |= {begins[s.key], s.end + dt.timedelta(days=1)}
        ordered = sorted(days)
        at = {d: i for i, d in enumerate(ordered)}
        cumulative = _sums_to(year, [_day(year, d) for d in ordered], table)

        if wanted:
            starts = [at[begins[s.key]] for s in wanted]
            ends = [at[s.end + dt.timedelta(days=1)] for s in wanted]
            packed = cumulative[:, ends] - cumulative[:, starts]
            for i, s in enumerate(wanted):
                carry = carried.get(f"figures:{s.key}")
                if carry is not None:
                    packed[:, i] += carry.counts
                out.counts[f"figures:{s.key}"] = packed[:, i]
            counted.append((wanted, packed))
        if with_weeks:
            week_ends = [at[d] for d in [*mondays[1:], stop]]
            by_week = cumulative[:, week_ends] - cumulative[:, [at[d] for d in mondays]]
            out.weeks.extend(_week_rows(school_id, cal.academic_year, mondays, by_week))
    if counted:
        every = [span for spans_, _ in counted for span in spans_]
        packed = np.hstack([p for _, p in counted])
        out.figures.extend(_period_rows(school_id, every, _unpack(packed), keys, masks, now))
    return out


def _period_rows(
    school_id: int,
    in_year: Sequence[Span],
    by_span: np.ndarray,
    keys: Sequence[tuple[str, str]],
    masks: np.ndarray,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """``by_span[c, s, i]``: pupil ``i``'s sessions of class ``_FIELDS[c]`` in span ``s``."""
    counts = {name: by_span[c] for c, name in enumerate(_FIELDS)}
    pupils = metrics.PupilMetrics(
        pupils=range(by_span.shape[2]),
        period=metrics.Period(in_year[0].start, in_year[0].end),
        half_term_names=[],
        calendar_of=_NOTHING,
        possible=by_span.sum(axis=0),
        **counts,
        **dict.fromkeys(_UNREAD, _NOTHING),
        trend_weeks=0,
        trend_since_date=None,
    )
    per_pupil = np.stack(
        [
            pupils.possible > 0,
            pupils.possible,
            pupils.attended,
            pupils.authorised,
            pupils.unauthorised,
            pupils.persistent_absence,
            pupils.severe_absence,
        ],
    ).astype(np.float64)  # (figure, span, pupil)
    totals = per_pupil.reshape(-1, per_pupil.shape[2]) @ masks.T  # exact: integers far below 2**53
    values = np.rint(totals).astype(np.int64).reshape(len(_FIGURE_KEYS), len(in_year), len(keys))
    return _figure_rows(school_id, in_year, keys, values.transpose(1, 2, 0).tolist(), now)


def _figure_rows(
    school_id: int,
    spans: Sequence[Span],
    keys: Sequence[tuple[str, str]],
    values: list[list[list[int]]],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The rows of ``spans`` x breakdowns (``keys``); ``values[s][g]``: the figures of
    :data:`_FIGURE_KEYS` of span ``s`` and breakdown ``g``."""
    return [  # dict displays: several times faster than dict(zip(...)) for these 14 keys
        {
            "org_id": school_id,
            "period": span.key,
            "breakdown": breakdown,
            "group": group,
            "period_start": span.start,
            "period_end": span.end,
            "computed_at": now,
            "pupils": pupils,
            "possible": possible,
            "attended": attended,
            "authorised": authorised,
            "unauthorised": unauthorised,
            "persistent": persistent,
            "severe": severe,
        }
        for span, of_span in zip(spans, values, strict=True)
        for (breakdown, group), (
            pupils,
            possible,
            attended,
            authorised,
            unauthorised,
            persistent,
            severe,
        ) in zip(keys, of_span, strict=True)
    ]


def _week_rows(
    school_id: int, academic_year: int, mondays: Sequence[dt.date], by_week: np.ndarray
) -> list[dict[str, Any]]:
    """The school's sessions per Monday-to-Sunday week (weeks with a possible session only);
    ``by_week[i, w]``: pupil ``i``'s packed class counts (:func:`_pair_lut`) in the week of
    ``mondays[w]`` (a pupil with a possible session that week has a non-zero value)."""
    fields = np.ascontiguousarray(by_week).view(np.uint16).reshape(*by_week.shape, len(_FIELDS))
    present, approved, authorised, unauthorised = fields.sum(axis=0, dtype=np.int64).T.tolist()
    pupils = np.count_nonzero(by_week, axis=0).tolist()
    return [
        {
            "org_id": school_id,
            "academic_year": academic_year,
            "week_start": week_start(monday),
            "pupils": pupils[w],
            "possible": present[w] + approved[w] + authorised[w] + unauthorised[w],
            "attended": present[w] + approved[w],
            "authorised": authorised[w],
            "unauthorised": unauthorised[w],
        }
        for w, monday in enumerate(mondays)
        if pupils[w]
    ]


def _casework_rows(
    session: Session, school_id: int, periods: Sequence[Span], now: dt.datetime
) -> list[dict[str, Any]]:
    term = next(s for s in periods if s.key == "term")
    counts = casework_queries.casework_counts(session, term.start, term.end)
    referrals = referral_queries.referrals_by_status(session, term.start, term.end)
    values: list[tuple[str, str, int]] = [
        ("stage", name, n) for name, n in sorted(counts.open_by_stage.items())
    ]
    values += [
        ("open_cases", "", counts.open_cases),
        ("letters", "", letter_services.letters_made(session, term.start, term.end)),
        ("meetings", "", counts.meetings),
        ("referrals", "", sum(referrals.values())),
    ]
    outcomes = referral_services.outcomes_of_school(session, school_id, term.start, term.end)
    values += [("referral_outcome", label, n) for label, n in sorted(outcomes.items())]
    return [
        {"org_id": school_id, "measure": m, "key": k, "pupils": n, "computed_at": now} for m, k, n in values
    ]


def _store(
    session: Session,
    school_id: int,
    computed: Computed,
    casework: list[dict[str, Any]],
    current: dict[str, Part],
    kept: Collection[str],
) -> None:
    """Replace the school's rows of every part of ``current`` not ``kept`` (and drop the rows and
    records of parts no longer computed, such as an older year's weeks), its casework rows, and
    the records (:class:`SchoolSource`) of the parts written."""
    kept_periods = {unit.split(":", 1)[1] for unit in kept if unit.startswith("figures:")}
    kept_years = {int(unit.split(":", 1)[1]) for unit in kept if unit.startswith("weeks:")}
    session.execute(
        delete(SchoolFigures).where(
            SchoolFigures.org_id == school_id, SchoolFigures.period.not_in(kept_periods)
        )
    )
    session.execute(
        delete(SchoolWeek).where(SchoolWeek.org_id == school_id, SchoolWeek.academic_year.not_in(kept_years))
    )
    session.execute(delete(SchoolCasework).where(SchoolCasework.org_id == school_id))
    session.execute(
        delete(SchoolSource).where(SchoolSource.org_id == school_id, SchoolSource.unit.not_in(kept))
    )
    now = utcnow()
    sources = [
        {
            "org_id": school_id,
            "unit": unit,
            "fingerprint": part.fingerprint,
            "through": part.through,
            "counts": computed.counts[unit].astype("<u8").tobytes() if unit in computed.counts else None,
            "computed_at": now,
        }
        for unit, part in current.items()
        if unit not in kept
    ]
    for model, values in (
        (SchoolFigures, computed.figures),
        (SchoolWeek, computed.weeks),
        (SchoolCasework, casework),
        (SchoolSource, sources),
    ):
        if values:
            session.execute(insert(model), values)
    session.flush()


def refresh_all(session: Session, *, on: dt.date | None = None) -> list[RefreshResult]:
    """Refresh every school (the ``attendwise insights refresh`` command; system context)."""
    ids = session.scalars(
        select(Organisation.id).where(Organisation.kind == OrgKind.SCHOOL).order_by(Organisation.id)
    ).all()
    return [refresh(session, school_id, on=on) for school_id in ids]


# ---- reading: comparisons ------------------------------------------------------------------------


@dataclass(frozen=True)
class SchoolInfo:
    id: int
    name: str
    urn: str | None
    phase: str | None


def _school_ids(scope: Organisation) -> Any:
    """The ids of the schools a comparison covers, as a subquery (one bound parameter, however
    many schools): a trust's members, an LA's schools, or the school itself."""
    if scope.kind == OrgKind.SCHOOL:
        return select(Organisation.id).where(Organisation.id == scope.id)
    column = Organisation.trust_id if scope.kind == OrgKind.TRUST else Organisation.la_id
    return select(Organisation.id).where(
        column == scope.id, Organisation.kind == OrgKind.SCHOOL, Organisation.active.is_(True)
    )


def schools_in_scope(session: Session, scope: Organisation) -> list[SchoolInfo]:
    """The schools a comparison covers, by name."""
    if scope.kind not in (OrgKind.SCHOOL, OrgKind.TRUST, OrgKind.LA):
        return []
    rows = session.execute(
        select(Organisation.id, Organisation.name, Organisation.urn, Organisation.phase)
        .where(Organisation.id.in_(_school_ids(scope)))
        .order_by(Organisation.name)
    ).all()
    return [SchoolInfo(r.id, r.name, r.urn, r.phase) for r in rows]


def _visible_scope(session: Session, scope_org_id: int) -> Organisation:
    """The organisation if the current tenant may see its figures: its own organisation, or a
    school it reads (a trust's member school); anything else is not found."""
    ctx = tenancy.require()
    scope = session.get(Organisation, scope_org_id)
    if scope is None:
        raise NotVisible(f"no organisation {scope_org_id}")
    if ctx.system or ctx.org_id == scope.id or (scope.kind == OrgKind.SCHOOL and ctx.can_read(scope.id)):
        return scope
    raise NotVisible(f"organisation {scope_org_id} is not visible from organisation {ctx.org_id}")


def last_refreshed(session: Session, scope_org_id: int) -> dt.datetime | None:
    """When any part of the figures of the organisation's schools was last computed (system
    context: the what-works sweeper asks this for trusts and LAs)."""
    scope = session.get(Organisation, scope_org_id)
    if scope is None:
        return None
    return session.scalar(
        select(func.max(SchoolSource.computed_at)).where(SchoolSource.org_id.in_(_school_ids(scope)))
    )


@contextlib.contextmanager
def _reading(school_ids: Sequence[int], scope: Organisation) -> Iterator[None]:
    """Read the aggregate rows of ``school_ids``.

    A trust's or a school's own context already reads them. An LA's context does not (an LA
    reads no school's rows but its referrals), so its comparison reads these aggregate tables
    alone in an explicit system context, for exactly the LA's schools (every query below
    names them), and only aggregate, suppressed figures leave this module.
    """
    ctx = tenancy.require()
    if all(ctx.can_read(i) for i in school_ids):
        yield
        return
    with tenancy.system_context(f"insights: aggregate figures of the schools of LA {scope.id}"):
        yield


def _sum_columns() -> list[Any]:
    return [
        func.sum(SchoolFigures.pupils),
        func.sum(SchoolFigures.possible),
        func.sum(SchoolFigures.attended),
        func.sum(SchoolFigures.authorised),
        func.sum(SchoolFigures.unauthorised),
        func.sum(SchoolFigures.persistent),
        func.sum(SchoolFigures.severe),
    ]


def _figures_of(values: Sequence[Any]) -> Figures:
    pupils, possible, attended, authorised, unauthorised, persistent, severe = (int(v or 0) for v in values)
    return Figures(pupils, possible, attended, authorised, unauthorised, persistent, severe)


def comparison(
    session: Session, scope_org_id: int, period: str, *, suppress: bool | None = None
) -> Comparison:
    """The figures of a trust's or an LA's schools, or one school's, for one of :data:`PERIODS`.

    Per school and in total, against the same period last year, by phase, year group and pupil
    group, with the weekly trend, casework counts and the national figures. Outside the school
    itself (``suppress`` defaults to that), figures from fewer than 5 pupils are suppressed.

    Raises :class:`InsightsError` for an unknown period and :class:`NotVisible` when the
    current tenant may not see the organisation's figures.
    """
    if period not in PERIODS:
        raise InsightsError(f"period {period!r} is not one of: {', '.join(PERIODS)}")
    scope = _visible_scope(session, scope_org_id)
    ctx = tenancy.require()
    if suppress is None:
        suppress = not (scope.kind == OrgKind.SCHOOL and ctx.org_id == scope.id)
    schools = schools_in_scope(session, scope)
    ids = [s.id for s in schools]
    in_scope = _school_ids(scope)
    ly = period + LAST_YEAR_SUFFIX
    with _reading(ids, scope):
        own = session.execute(
            select(
                SchoolFigures.org_id,
                SchoolFigures.period,
                SchoolFigures.period_start,
                SchoolFigures.period_end,
                SchoolFigures.computed_at,
                SchoolFigures.pupils,
                SchoolFigures.possible,
                SchoolFigures.attended,
                SchoolFigures.authorised,
                SchoolFigures.unauthorised,
                SchoolFigures.persistent,
                SchoolFigures.severe,
            ).where(
                SchoolFigures.org_id.in_(in_scope),
                SchoolFigures.period.in_((period, ly)),
                SchoolFigures.breakdown == "all",
            )
        ).all()
        grouped = session.execute(
            select(SchoolFigures.breakdown, SchoolFigures.group, SchoolFigures.period, *_sum_columns())
            .where(
                SchoolFigures.org_id.in_(in_scope),
                SchoolFigures.period.in_((period, ly)),
                SchoolFigures.breakdown != "all",
            )
            .group_by(SchoolFigures.breakdown, SchoolFigures.group, SchoolFigures.period)
        ).all()
        weekly = session.execute(
            select(
                SchoolWeek.academic_year,
                SchoolWeek.week_start,
                func.sum(SchoolWeek.pupils),
                func.sum(SchoolWeek.possible),
                func.sum(SchoolWeek.attended),
                func.sum(SchoolWeek.authorised),
                func.sum(SchoolWeek.unauthorised),
            )
            .where(SchoolWeek.org_id.in_(in_scope))
            .group_by(SchoolWeek.academic_year, SchoolWeek.week_start)
            .order_by(SchoolWeek.week_start)
        ).all()
        casework = session.execute(
            select(
                SchoolCasework.org_id, SchoolCasework.measure, SchoolCasework.key, SchoolCasework.pupils
            ).where(SchoolCasework.org_id.in_(in_scope))
        ).all()

    current: dict[int, Figures] = {}
    previous: dict[int, Figures] = {}
    refreshed: dict[int, dt.datetime] = {}
    starts, ends = [], []
    for row in own:
        figures = _figures_of(row[5:])
        if row.period == period:
            current[row.org_id] = figures
            refreshed[row.org_id] = row.computed_at
            starts.append(row.period_start)
            ends.append(row.period_end)
        else:
            previous[row.org_id] = figures
    case_rows: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for org_id, measure, key, n in casework:
        case_rows[org_id].append((measure, key, int(n)))

    previous = {k: v for k, v in previous.items() if v.pupils}  # no marks last year: no comparison
    rows = [
        SchoolRow(
            school_id=s.id,
            name=s.name,
            urn=s.urn,
            phase=s.phase or "Not recorded",
            figures=current.get(s.id, Figures()).suppress_if_small(suppress),
            last_year=previous[s.id].suppress_if_small(suppress) if s.id in previous else None,
            casework=_casework(case_rows.get(s.id, []), suppress),
            refreshed_at=refreshed.get(s.id),
        )
        for s in schools
    ]
    total = sum(current.values(), Figures())
    total_ly = sum(previous.values(), Figures()) if previous else None
    groups = _phase_rows(schools, current, previous, suppress)
    groups += _group_rows(grouped, period, suppress)
    return Comparison(
        scope_id=scope.id,
        scope_name=scope.name,
        scope_kind=scope.kind.value,
        period=period,
        period_label=PERIODS[period],
        period_start=min(starts) if starts else None,
        period_end=max(ends) if ends else None,
        suppressed_outside_school=suppress,
        schools=rows,
        total=total.suppress_if_small(suppress),
        total_last_year=total_ly.suppress_if_small(suppress) if total_ly is not None else None,
        groups=groups,
        weeks=_week_points(weekly, suppress),
        casework=_casework([c for cs in case_rows.values() for c in cs], suppress),
        national=national_reference(session),
    )


def _phase_rows(
    schools: Sequence[SchoolInfo], current: dict[int, Figures], previous: dict[int, Figures], suppress: bool
) -> list[GroupRow]:
    phases = sorted({s.phase or "Not recorded" for s in schools})
    if len(phases) < 2:
        return []
    out = []
    for phase in phases:
        members = [s.id for s in schools if (s.phase or "Not recorded") == phase]
        now = sum((current.get(i, Figures()) for i in members), Figures())
        before = [previous[i] for i in members if i in previous]
        out.append(
            GroupRow(
                "phase",
                phase.lower(),
                phase,
                now.suppress_if_small(suppress),
                sum(before, Figures()).suppress_if_small(suppress) if before else None,
            )
        )
    return out


def _year_order(key: str) -> tuple[int, str]:
    order = {y: i for i, y in enumerate(attendance_services.YEAR_GROUPS)}
    return order.get(key, 99), key


def _group_rows(grouped: Sequence[Any], period: str, suppress: bool) -> list[GroupRow]:
    now: dict[tuple[str, str], Figures] = {}
    before: dict[tuple[str, str], Figures] = {}
    for row in grouped:
        figures = _figures_of(row[3:])
        if row.period == period:
            now[(row.breakdown, row.group)] = figures
        elif figures.pupils:
            before[(row.breakdown, row.group)] = figures
    years = sorted((k for b, k in now if b == "year"), key=_year_order)
    out = [
        GroupRow(
            "year",
            y,
            f"Year {y}" if y.isdigit() else y,
            now[("year", y)].suppress_if_small(suppress),
            before[("year", y)].suppress_if_small(suppress) if ("year", y) in before else None,
        )
        for y in years
    ]
    out += [
        GroupRow(
            "group",
            key,
            label,
            now[("group", key)].suppress_if_small(suppress),
            before[("group", key)].suppress_if_small(suppress) if ("group", key) in before else None,
        )
        for key, label in PUPIL_GROUPS.items()
        if ("group", key) in now
    ]
    return out


def _week_points(weekly: Sequence[Any], suppress: bool) -> list[WeekPoint]:
    if not weekly:
        return []
    latest = max(int(r.academic_year) for r in weekly)
    this_year = [r for r in weekly if r.academic_year == latest]
    last_year = [r for r in weekly if r.academic_year == latest - 1]

    def figures(row: Any) -> Figures:
        return _figures_of([*row[2:7], 0, 0]).suppress_if_small(suppress)

    return [
        WeekPoint(
            i + 1,
            row.week_start,
            figures(row),
            figures(last_year[i]) if i < len(last_year) else None,
        )
        for i, row in enumerate(this_year)
    ]


def _casework(rows: Sequence[tuple[str, str, int]], suppress: bool) -> Casework:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for measure, key, n in rows:
        sums[(measure, key)] += n

    def count(label: str, n: int) -> Count:
        return Count(label, None if suppress and 0 < n < SUPPRESS_BELOW else n)

    return Casework(
        stages=[count(k, n) for (m, k), n in sorted(sums.items()) if m == "stage"],
        open_cases=count("Open cases", sums.get(("open_cases", ""), 0)),
        letters=count("Letters this term", sums.get(("letters", ""), 0)),
        meetings=count("Meetings this term", sums.get(("meetings", ""), 0)),
        referrals=count("Referrals this term", sums.get(("referrals", ""), 0)),
        referral_outcomes=[count(k, n) for (m, k), n in sorted(sums.items()) if m == "referral_outcome"],
    )


# ---- national reference figures ------------------------------------------------------------------


def national_reference(session: Session) -> list[NationalValue]:
    """The national figures to compare with: for each measure and phase, the latest full year's,
    whatever the period (this year's national figures are published only after it ends)."""
    latest: dict[tuple[str, str], NationalFigure] = {}
    for r in session.scalars(select(NationalFigure).where(NationalFigure.period_kind == "year")):
        key = (r.measure, r.phase)
        if key not in latest or r.academic_year > latest[key].academic_year:
            latest[key] = r
    return [
        NationalValue(r.measure, r.phase, r.value, r.academic_year, r.period_kind, r.source)
        for (measure, phase), r in sorted(
            latest.items(),
            key=lambda kv: (NATIONAL_MEASURES.index(kv[0][0]), NATIONAL_PHASES.index(kv[0][1])),
        )
    ]


def national_figures(session: Session) -> list[NationalFigure]:
    """Every stored national figure, newest year first (the platform admin's page)."""
    return sorted(
        session.scalars(select(NationalFigure)).all(),
        key=lambda r: (
            -r.academic_year,
            r.period_kind,
            NATIONAL_MEASURES.index(r.measure),
            NATIONAL_PHASES.index(r.phase),
        ),
    )


@dataclass(frozen=True)
class NationalInput:
    academic_year: int
    period_kind: str
    measure: str
    phase: str
    value: float
    source: str


def check_national(values: NationalInput) -> list[str]:
    """What is wrong with a national figure, each naming the field (empty when it is valid)."""
    problems = []
    if not 2000 <= values.academic_year <= 2100:
        problems.append(f"academic_year: {values.academic_year} is not a year between 2000 and 2100")
    if values.period_kind not in ("year", "autumn", "spring", "summer"):
        problems.append(f"period_kind: {values.period_kind!r} is not one of year, autumn, spring, summer")
    if values.measure not in NATIONAL_MEASURES:
        problems.append(f"measure: {values.measure!r} is not one of {', '.join(NATIONAL_MEASURES)}")
    if values.phase not in NATIONAL_PHASES:
        problems.append(f"phase: {values.phase!r} is not one of {', '.join(NATIONAL_PHASES)}")
    if not 0 <= values.value <= 100:
        problems.append(f"value: {values.value} is not a percentage between 0 and 100")
    if not values.source.strip():
        problems.append("source: say where the figure was published")
    elif len(values.source) > 2000:
        problems.append("source: keep it under 2,000 characters")
    return problems


def save_national(
    session: Session, values: NationalInput, *, user_id: int | None, actor_org_id: int
) -> NationalFigure:
    """Add or replace the national figure for (year, period kind, measure, phase); audited in the
    platform organisation's log. Raises :class:`InsightsError` naming every bad field."""
    problems = check_national(values)
    if problems:
        raise InsightsError("; ".join(problems))
    row = session.scalar(
        select(NationalFigure).where(
            NationalFigure.academic_year == values.academic_year,
            NationalFigure.period_kind == values.period_kind,
            NationalFigure.measure == values.measure,
            NationalFigure.phase == values.phase,
        )
    )
    before = None if row is None else {"value": row.value, "source": row.source}
    if row is None:
        row = NationalFigure(
            academic_year=values.academic_year,
            period_kind=values.period_kind,
            measure=values.measure,
            phase=values.phase,
            value=values.value,
            source=values.source.strip(),
        )
        session.add(row)
    else:
        row.value, row.source = values.value, values.source.strip()
    row.updated_by_user_id = user_id
    session.flush()
    audit.record(
        session,
        org_id=actor_org_id,
        action="insights.national_figure",
        object_type="national_figure",
        object_id=row.id,
        detail={
            "academic_year": values.academic_year,
            "period_kind": values.period_kind,
            "measure": values.measure,
            "phase": values.phase,
            "before": before,
            "after": {"value": row.value, "source": row.source},
        },
    )
    return row
