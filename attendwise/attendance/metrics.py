"""Attendance metrics, exactly as the DfE computes them, for many pupils at once.

The input is a :class:`MarkMatrix`: one row per pupil (or enrolment), two columns per calendar
day from its ``start`` (column ``2*d`` is the morning session of day ``d``, ``2*d+1`` the
afternoon), each cell a code's byte value from :mod:`attendwise.attendance.codes` (0 = no mark).
Each row belongs to a :class:`~attendwise.attendance.calendar.SchoolCalendar` (its school's),
which fixes its half-terms and school weeks.

Method (domain sheet §2 and §8):

* possible sessions = marked sessions whose code is not NOT_COUNTED;
* attendance % = (PRESENT + APPROVED_ACTIVITY) / possible; absence % = (AUTHORISED +
  UNAUTHORISED) / possible (both ``nan`` when there is no possible session);
* persistent absence: absence ≥ 10% of possible; severe absence: ≥ 50% (inclusive, exact
  integer comparison, no floating point);
* late before close = L (present); late after close = U (unauthorised absence), also per half-term;
* penalty-notice window: G, N, O and U sessions in every run of 10 consecutive school weeks —
  Monday-to-Sunday weeks with at least one school day inside the period — whatever terms or
  years they cross; with fewer than 10 school weeks the period's school weeks form the one
  window. School days are the pupil's calendar's, plus any day on which a pupil sharing that
  calendar has a mark other than ``#``, unless the calendar says otherwise (outside every
  half-term, an INSET day or a planned closure);
* a pupil's school day, for day counts, is a day with at least one possible session; a day of
  unauthorised absence is one where every possible session is UNAUTHORISED; the consecutive
  run skips days with no possible session and is broken by any other day;
* a school day missed is one where every possible session is an absence (a day of illness: every
  possible session I);
* trend over the last N school weeks: attendance % of the period minus attendance % of the
  period up to the start of its last N school weeks; trend since a date: minus attendance % of
  the period up to the day before that date (percentage points; ``nan`` when undefined).

Only marks inside the period count. The computation is vectorised with numpy: it works on
blocks of rows that share a calendar, never looping over marks in Python.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache
from typing import Any

import numpy as np

from attendwise.attendance import codes as codes_mod
from attendwise.attendance.calendar import SchoolCalendar, week_start
from attendwise.attendance.codes import CODE_INDEX, CODE_ORDER, DEFAULT_TABLE, CodeTable, StatClass

PN_WINDOW_WEEKS = 10
PN_THRESHOLD = 10
PERSISTENT_PERCENT = 10
SEVERE_PERCENT = 50
DEFAULT_TREND_WEEKS = 6
BLOCK_ROWS = 2048
NCODES = len(CODE_ORDER) + 1
_KEY_WIDTH = 64  # > NCODES, a power of two for the bincount key


@dataclass(frozen=True)
class Period:
    """A closed date range ``[start, end]`` with a label."""

    start: date
    end: date
    name: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def half_term(cls, calendar: SchoolCalendar, name: str) -> Period:
        for h in calendar.half_terms:
            if h.name == name:
                return cls(h.start, h.end, name)
        raise KeyError(f"no half-term named {name!r}")

    @classmethod
    def term(cls, calendar: SchoolCalendar, name: str) -> Period:
        for t in calendar.terms:
            if t.name == name:
                return cls(t.start, t.end, name)
        raise KeyError(f"no term named {name!r}")

    @classmethod
    def year_to_date(cls, calendar: SchoolCalendar, today: date) -> Period:
        return cls(calendar.start, min(today, calendar.end), "Year to date")

    @classmethod
    def last_school_weeks(cls, calendar: SchoolCalendar, n: int, end: date) -> Period:
        """The last ``n`` school weeks of ``calendar`` up to ``end`` (from the Monday of the first)."""
        weeks = calendar.school_weeks(calendar.start, end)
        if not weeks:
            return cls(end, end, f"Last {n} school weeks")
        return cls(max(weeks[-n:][0], calendar.start), end, f"Last {n} school weeks")


@dataclass(frozen=True)
class MarkMatrix:
    """Marks of many pupils: ``codes[row, 2*d + s]`` is session ``s`` (0 AM, 1 PM) of ``start + d``."""

    start: date
    codes: np.ndarray
    pupils: Sequence[Any]
    calendar_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def __post_init__(self) -> None:
        if self.codes.dtype != np.uint8 or self.codes.ndim != 2 or self.codes.shape[1] % 2:
            raise ValueError("codes must be a 2-D uint8 array with an even number of columns")
        if len(self.pupils) != self.codes.shape[0]:
            raise ValueError("one pupil label per row is required")
        if len(self.calendar_of) == 0:
            object.__setattr__(self, "calendar_of", np.zeros(self.codes.shape[0], dtype=np.int32))
        elif len(self.calendar_of) != self.codes.shape[0]:
            raise ValueError("one calendar index per row is required")

    @property
    def days(self) -> int:
        return self.codes.shape[1] // 2

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    def column(self, day: date, session: str) -> int:
        return 2 * (day - self.start).days + (1 if session == "PM" else 0)


@dataclass(frozen=True)
class PupilMetrics:
    """Every metric for every row of a :class:`MarkMatrix`, as arrays in row order."""

    pupils: Sequence[Any]
    period: Period
    half_term_names: list[list[str]]
    """Per calendar: names of the half-terms columns of ``late_*_by_half_term`` refer to."""
    calendar_of: np.ndarray
    possible: np.ndarray
    present: np.ndarray
    approved_activity: np.ndarray
    authorised: np.ndarray
    unauthorised: np.ndarray
    not_counted: np.ndarray
    code_counts: np.ndarray
    """``code_counts[row, i]``: sessions with the code whose byte value is ``i`` (column 0: unmarked)."""
    late_before_close: np.ndarray
    late_after_close: np.ndarray
    late_before_close_by_half_term: np.ndarray
    late_after_close_by_half_term: np.ndarray
    penalty_sessions: np.ndarray
    school_weeks: np.ndarray
    max_unauthorised_in_10_school_weeks: np.ndarray
    max_window_start: np.ndarray
    max_window_end: np.ndarray
    windows_at_threshold: np.ndarray
    longest_unauthorised_run_days: np.ndarray
    current_unauthorised_run_days: np.ndarray
    school_days_with_possible: np.ndarray
    school_days_missed: np.ndarray
    school_days_missed_illness: np.ndarray
    trend_weeks: int
    trend_last_weeks: np.ndarray
    trend_since_date: date | None
    trend_since: np.ndarray

    @property
    def attended(self) -> np.ndarray:
        return self.present + self.approved_activity

    @property
    def absent(self) -> np.ndarray:
        return self.authorised + self.unauthorised

    @property
    def attendance_pct(self) -> np.ndarray:
        return _pct(self.attended, self.possible)

    @property
    def absence_pct(self) -> np.ndarray:
        return _pct(self.absent, self.possible)

    @property
    def persistent_absence(self) -> np.ndarray:
        return (self.possible > 0) & (100 * self.absent >= PERSISTENT_PERCENT * self.possible)

    @property
    def severe_absence(self) -> np.ndarray:
        return (self.possible > 0) & (100 * self.absent >= SEVERE_PERCENT * self.possible)

    def __len__(self) -> int:
        return len(self.pupils)

    def record(self, row: int) -> dict[str, Any]:
        """One row as a plain dict (JSON-ready; percentages at full precision, ``None`` if undefined)."""
        cal = int(self.calendar_of[row])
        names = self.half_term_names[cal]
        has_window = self.school_weeks[row] > 0
        return {
            "pupil": self.pupils[row],
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
            "possible_sessions": int(self.possible[row]),
            "present": int(self.present[row]),
            "approved_activity": int(self.approved_activity[row]),
            "authorised": int(self.authorised[row]),
            "unauthorised": int(self.unauthorised[row]),
            "not_counted": int(self.not_counted[row]),
            "attendance_pct": _float(self.attendance_pct[row]),
            "absence_pct": _float(self.absence_pct[row]),
            "persistent_absence": bool(self.persistent_absence[row]),
            "severe_absence": bool(self.severe_absence[row]),
            "late_before_close": int(self.late_before_close[row]),
            "late_after_close": int(self.late_after_close[row]),
            "lates_by_half_term": {
                name: {
                    "late_before_close": int(self.late_before_close_by_half_term[row, i]),
                    "late_after_close": int(self.late_after_close_by_half_term[row, i]),
                }
                for i, name in enumerate(names)
            },
            "penalty_notice_sessions": int(self.penalty_sessions[row]),
            "school_weeks": int(self.school_weeks[row]),
            "max_unauthorised_in_10_school_weeks": int(self.max_unauthorised_in_10_school_weeks[row]),
            "max_window_start": _day(self.max_window_start[row]) if has_window else None,
            "max_window_end": _day(self.max_window_end[row]) if has_window else None,
            "windows_at_penalty_threshold": int(self.windows_at_threshold[row]),
            "longest_unauthorised_run_school_days": int(self.longest_unauthorised_run_days[row]),
            "current_unauthorised_run_school_days": int(self.current_unauthorised_run_days[row]),
            "school_days_with_possible_sessions": int(self.school_days_with_possible[row]),
            "school_days_missed": int(self.school_days_missed[row]),
            "school_days_missed_illness": int(self.school_days_missed_illness[row]),
            f"trend_last_{self.trend_weeks}_school_weeks": _float(self.trend_last_weeks[row]),
            "trend_since": _float(self.trend_since[row]) if self.trend_since_date else None,
            "trend_since_date": self.trend_since_date.isoformat() if self.trend_since_date else None,
            "counts_by_code": {
                CODE_ORDER[i - 1]: int(n) for i, n in enumerate(self.code_counts[row]) if i and n
            },
        }

    def records(self) -> list[dict[str, Any]]:
        return [self.record(i) for i in range(len(self))]


@dataclass(frozen=True)
class Window:
    """A run of 10 school weeks (clipped to the period) and its G/N/O/U sessions."""

    start: date
    end: date
    sessions: int


def _pct(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 100.0 * num / np.maximum(den, 1), np.nan)


def _float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _day(value: np.datetime64) -> str:
    return str(value.astype("datetime64[D]"))


# -- lookup tables ------------------------------------------------------------------------------
# Each day's two sessions, read as one little-endian uint16 (AM byte low), index two tables:
#  WEEK: eight 4-bit counts, so the seven days of a week sum without one field carrying into the
#        next: sessions attended, possible, G/N/O/U and "/"; and whether the day has a possible
#        session, is missed (every possible session an absence), is illness (every one I), is
#        unauthorised (every one unauthorised).
#  DAY:  whether every possible session is unauthorised, or the day has a possible session and
#        is not (which ends a run of unauthorised days).
_F_ATTENDED, _F_POSSIBLE, _F_PENALTY, _F_SLASH, _F_DAY_UNAUTH, _F_DAY_POSSIBLE, _F_DAY_MISSED, _F_DAY_ILL = (
    range(8)
)
_SHIFTS = np.arange(0, 32, 4, dtype=np.uint32)
_DAY_UNAUTH, _DAY_BREAK = 1, 2
_SLASH, _BACKSLASH = CODE_INDEX["/"], CODE_INDEX["\\"]
_REAL_MARK = ~np.isin(np.arange(65536) & 0xFF, [0, CODE_INDEX[codes_mod.PLANNED_CLOSURE]]) | ~np.isin(
    np.arange(65536) >> 8, [0, CODE_INDEX[codes_mod.PLANNED_CLOSURE]]
)
_COMMON = max(_SLASH, _BACKSLASH)  # bytes 0, 1, 2 (none, "/", "\\") come from WEEK; the rest: bincount


@cache
def _luts(table_key: tuple[tuple[str, str], ...]) -> tuple[np.ndarray, np.ndarray]:
    table = CodeTable(dict(table_key)) if table_key else DEFAULT_TABLE
    byte = np.arange(256)
    session_class = table.class_lut[byte]
    attended = np.isin(session_class, [StatClass.PRESENT.number, StatClass.APPROVED_ACTIVITY.number])
    possible = (session_class >= 1) & (session_class <= StatClass.UNAUTHORISED.number)
    absent = np.isin(session_class, [StatClass.AUTHORISED.number, StatClass.UNAUTHORISED.number])
    unauth = session_class == StatClass.UNAUTHORISED.number
    pn = np.isin(byte, [CODE_INDEX[c] for c in codes_mod.PENALTY_NOTICE_CODES])
    ill = byte == CODE_INDEX[codes_mod.ILLNESS]

    pair = np.arange(65536)
    am, pm = pair & 0xFF, pair >> 8

    def both(flags: np.ndarray) -> np.ndarray:
        return flags[am].astype(np.int64) + flags[pm]

    n_possible = both(possible)
    any_possible = n_possible > 0
    all_unauth = any_possible & (both(unauth) == n_possible)
    fields = {
        _F_ATTENDED: both(attended),
        _F_POSSIBLE: n_possible,
        _F_PENALTY: both(pn),
        _F_SLASH: both(byte == _SLASH),
        _F_DAY_UNAUTH: all_unauth,
        _F_DAY_POSSIBLE: any_possible,
        _F_DAY_MISSED: any_possible & (both(absent) == n_possible),
        _F_DAY_ILL: any_possible & (both(ill) == n_possible),
    }
    week = np.zeros(65536, dtype=np.int64)
    for which, values in fields.items():
        week |= values.astype(np.int64) << int(_SHIFTS[which])
    day = np.where(all_unauth, _DAY_UNAUTH, 0) | np.where(any_possible & ~all_unauth, _DAY_BREAK, 0)
    return week.astype(np.uint32), day.astype(np.uint8)


def _class_matrix(table: CodeTable) -> np.ndarray:
    """(_KEY_WIDTH, 5) one-hot: which class each byte value counts towards."""
    out = np.zeros((_KEY_WIDTH, len(StatClass)), dtype=np.int64)
    for c in table:
        out[c.index, c.stat_class.number - 1] = 1
    return out


# -- calendar geometry for one period ------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    ndays: int
    week_starts: np.ndarray  # day offsets (within the period) where each Mon-Sun week starts
    week_of_day: np.ndarray  # per day: its week's number
    open_days: np.ndarray  # per day: a school day by the calendar
    markable: np.ndarray  # per day: a mark would make it a school day
    school_week: np.ndarray  # per week: at least one school day in the period
    day_segment: np.ndarray  # per day: half-term number + 1 (0 = none)
    half_term_names: list[str]


def _geometry(calendar: SchoolCalendar, period: Period) -> _Geometry:
    ndays = (period.end - period.start).days + 1
    offset = period.start.weekday()
    week_starts = np.arange(-offset, ndays, 7)
    week_starts[0] = 0
    open_days = calendar.open_mask(period.start, ndays)
    school_week = np.add.reduceat(open_days.astype(np.int32), week_starts) > 0
    ht = calendar.half_term_index(period.start, ndays)
    used = sorted({int(i) for i in np.unique(ht) if i >= 0})
    renumber = np.zeros(len(calendar.half_terms) + 1, dtype=np.int64)
    for new, old in enumerate(used, start=1):
        renumber[old + 1] = new
    return _Geometry(
        ndays=ndays,
        week_starts=week_starts,
        week_of_day=(np.arange(ndays) + offset) // 7,
        open_days=open_days,
        markable=calendar.markable_mask(period.start, ndays),
        school_week=school_week,
        day_segment=renumber[ht.astype(np.int64) + 1],
        half_term_names=[calendar.half_terms[i].name for i in used],
    )


def _with_marked_school_days(geo: _Geometry, group: np.ndarray) -> _Geometry:
    """Any day with a mark other than ``#`` is a school day unless the calendar says otherwise
    (outside every half-term, an INSET day, a planned closure): a Saturday session makes its
    week a school week. ``group`` holds the period's marks of every row sharing the calendar."""
    candidates = np.flatnonzero(geo.markable & ~geo.open_days)
    if not candidates.size or not group.shape[0]:
        return geo
    marked = _REAL_MARK[np.take(group.view("<u2"), candidates, axis=1)].any(axis=0)
    if not marked.any():
        return geo
    open_days = geo.open_days.copy()
    open_days[candidates[marked]] = True
    school_week = np.add.reduceat(open_days.astype(np.int32), geo.week_starts) > 0
    return replace(geo, open_days=open_days, school_week=school_week)


def _marked_days(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The days on which any row of ``block`` has a mark, and those days' (AM, PM) pairs.

    Days nobody has a mark on change no figure, and in a school's year they are about half of
    all days (weekends, holidays), so dropping them first halves the work that follows.
    """
    pairs = block.view("<u2")
    used = np.flatnonzero(pairs.any(axis=0))
    return used, np.take(pairs, used, axis=1)


# -- the engine ---------------------------------------------------------------------------------


def compute(
    matrix: MarkMatrix,
    calendars: Sequence[SchoolCalendar],
    period: Period,
    *,
    table: CodeTable = DEFAULT_TABLE,
    trend_weeks: int = DEFAULT_TREND_WEEKS,
    trend_since: date | None = None,
    block_rows: int = BLOCK_ROWS,
) -> PupilMetrics:
    """Every metric for every row of ``matrix`` over ``period`` (clipped to the matrix's dates).

    ``calendars[matrix.calendar_of[row]]`` is the calendar of ``row``. Rows are processed in
    blocks of at most ``block_rows`` (bounding memory: about 60 bytes per row and session).
    """
    clipped = Period(max(period.start, matrix.start), min(period.end, matrix.end), period.name)
    if clipped.end < clipped.start:
        raise ValueError("the period does not overlap the marks")
    period = clipped
    npupils = matrix.codes.shape[0]
    if npupils and int(matrix.codes.max()) >= NCODES:
        raise ValueError(f"the marks hold a byte ({int(matrix.codes.max())}) that encodes no attendance code")
    week_lut, day_lut = _luts(tuple(sorted((k, v.value) for k, v in table.overrides.items())))
    class_onehot = _class_matrix(table)
    d0 = (period.start - matrix.start).days
    geometries = [_geometry(c, period) for c in calendars]
    max_segments = max((len(g.half_term_names) for g in geometries), default=0)

    out: dict[str, np.ndarray] = {
        name: np.zeros(npupils, dtype=np.int32)
        for name in (
            "possible",
            "present",
            "approved_activity",
            "authorised",
            "unauthorised",
            "not_counted",
            "late_before_close",
            "late_after_close",
            "penalty_sessions",
            "school_weeks",
            "max_pn",
            "windows_at_threshold",
            "longest_run",
            "current_run",
            "days_possible",
            "days_missed",
            "days_ill",
        )
    }
    code_counts = np.zeros((npupils, NCODES), dtype=np.int32)
    late_l_ht = np.zeros((npupils, max(max_segments, 1)), dtype=np.int32)
    late_u_ht = np.zeros_like(late_l_ht)
    window_start = np.full(npupils, np.datetime64(period.start, "D"))
    window_end = np.full(npupils, np.datetime64(period.end, "D"))
    trend_last = np.full(npupils, np.nan)
    trend_since_out = np.full(npupils, np.nan)
    since_day = None if trend_since is None else (trend_since - period.start).days

    order = np.argsort(matrix.calendar_of, kind="stable")
    cal_sorted = matrix.calendar_of[order]
    bounds = np.flatnonzero(np.diff(cal_sorted)) + 1
    group_starts = np.concatenate(([0], bounds))
    group_ends = np.concatenate((bounds, [npupils]))
    identity = bool(np.all(order == np.arange(npupils)))
    present_col, approved_col = StatClass.PRESENT.number - 1, StatClass.APPROVED_ACTIVITY.number - 1
    late_l, late_u = CODE_INDEX[codes_mod.LATE_BEFORE_CLOSE], CODE_INDEX[codes_mod.LATE_AFTER_CLOSE]
    pn_cols = [CODE_INDEX[c] for c in sorted(codes_mod.PENALTY_NOTICE_CODES)]

    def run_block(b_start: int, b_end: int, geo: _Geometry) -> None:
        nseg = len(geo.half_term_names) + 1
        rows = slice(b_start, b_end) if identity else order[b_start:b_end]
        block = matrix.codes[rows, 2 * d0 : 2 * (d0 + geo.ndays)]
        nrow = block.shape[0]
        used, pairs = _marked_days(block)
        weekly = _Weekly(week_lut[pairs], used, geo, period)

        # counts by code: "/" and "\\" (most marks) from the weekly sums, the rest with one
        # bincount over (row, code) of just those marks; L and U also per half-term segment
        sessions = pairs.reshape(-1).view(np.uint8)
        rare = np.flatnonzero(sessions > _COMMON)
        row_of, column = np.divmod(rare, 2 * len(used))
        rare_codes = sessions[rare]
        counts = np.bincount(row_of * _KEY_WIDTH + rare_codes, minlength=nrow * _KEY_WIDTH).reshape(
            nrow, _KEY_WIDTH
        )
        # "/" and "\\" are verified PRESENT, so "\\" is what attended leaves unexplained
        rare_attended = (counts @ class_onehot)[:, [present_col, approved_col]].sum(axis=1)
        counts[:, _SLASH] = weekly.total(_F_SLASH)
        counts[:, _BACKSLASH] = weekly.total(_F_ATTENDED) - counts[:, _SLASH] - rare_attended
        classes = counts @ class_onehot
        code_counts[rows] = counts[:, :NCODES]
        out["present"][rows] = classes[:, StatClass.PRESENT.number - 1]
        out["approved_activity"][rows] = classes[:, StatClass.APPROVED_ACTIVITY.number - 1]
        out["authorised"][rows] = classes[:, StatClass.AUTHORISED.number - 1]
        out["unauthorised"][rows] = classes[:, StatClass.UNAUTHORISED.number - 1]
        out["not_counted"][rows] = classes[:, StatClass.NOT_COUNTED.number - 1]
        out["possible"][rows] = classes[:, :4].sum(axis=1)
        out["late_before_close"][rows] = counts[:, late_l]
        out["late_after_close"][rows] = counts[:, late_u]
        out["penalty_sessions"][rows] = counts[:, pn_cols].sum(axis=1)
        is_late = (rare_codes == late_l) | (rare_codes == late_u)
        if nseg > 1 and is_late.any():
            segment = np.repeat(geo.day_segment[used], 2)[column[is_late]]
            key = (row_of[is_late] * nseg + segment) * 2 + (rare_codes[is_late] == late_u)
            lates = np.bincount(key, minlength=nrow * nseg * 2).reshape(nrow, nseg, 2)
            late_l_ht[rows, : nseg - 1] = lates[:, 1:, 0]
            late_u_ht[rows, : nseg - 1] = lates[:, 1:, 1]

        out["school_weeks"][rows] = weekly.nweeks
        if weekly.nweeks:
            sums = weekly.window_sums()
            best = sums.argmax(axis=1)
            out["max_pn"][rows] = sums[np.arange(nrow), best]
            out["windows_at_threshold"][rows] = (sums >= PN_THRESHOLD).sum(axis=1)
            starts, ends = weekly.window_dates()
            window_start[rows] = starts[best]
            window_end[rows] = ends[best]
        attended = out["present"][rows] + out["approved_activity"][rows]
        possible = out["possible"][rows]
        trend_last[rows] = weekly.trend_last(attended, possible, trend_weeks)
        if since_day is not None:
            trend_since_out[rows] = weekly.trend_since(attended, possible, since_day)
        out["days_possible"][rows] = weekly.total(_F_DAY_POSSIBLE)
        out["days_missed"][rows] = weekly.total(_F_DAY_MISSED)
        out["days_ill"][rows] = weekly.total(_F_DAY_ILL)
        _unauthorised_runs(pairs, day_lut, weekly.total(_F_DAY_UNAUTH) > 0, rows, out)

    for g_start, g_end in zip(group_starts, group_ends, strict=True):
        if g_start == g_end:
            continue
        group_rows = slice(int(g_start), int(g_end)) if identity else order[g_start:g_end]
        geo = geometries[int(cal_sorted[g_start])]
        geo = _with_marked_school_days(geo, matrix.codes[group_rows, 2 * d0 : 2 * (d0 + geo.ndays)])
        for b_start in range(int(g_start), int(g_end), block_rows):
            run_block(b_start, min(b_start + block_rows, int(g_end)), geo)

    return PupilMetrics(
        pupils=matrix.pupils,
        period=period,
        half_term_names=[g.half_term_names for g in geometries],
        calendar_of=matrix.calendar_of,
        possible=out["possible"],
        present=out["present"],
        approved_activity=out["approved_activity"],
        authorised=out["authorised"],
        unauthorised=out["unauthorised"],
        not_counted=out["not_counted"],
        code_counts=code_counts,
        late_before_close=out["late_before_close"],
        late_after_close=out["late_after_close"],
        late_before_close_by_half_term=late_l_ht,
        late_after_close_by_half_term=late_u_ht,
        penalty_sessions=out["penalty_sessions"],
        school_weeks=out["school_weeks"],
        max_unauthorised_in_10_school_weeks=out["max_pn"],
        max_window_start=window_start,
        max_window_end=window_end,
        windows_at_threshold=out["windows_at_threshold"],
        longest_unauthorised_run_days=out["longest_run"],
        current_unauthorised_run_days=out["current_run"],
        school_days_with_possible=out["days_possible"],
        school_days_missed=out["days_missed"],
        school_days_missed_illness=out["days_ill"],
        trend_weeks=trend_weeks,
        trend_last_weeks=trend_last,
        trend_since_date=trend_since,
        trend_since=trend_since_out,
    )


class _Weekly:
    """One block's WEEK fields summed per Monday-to-Sunday week, and its school weeks."""

    def __init__(self, packed: np.ndarray, used: np.ndarray, geo: _Geometry, period: Period) -> None:
        self.packed = packed
        self.used = used
        self.weeks = np.zeros((packed.shape[0], len(geo.week_starts)), dtype=packed.dtype)
        if len(used):
            week = geo.week_of_day[used]
            starts = np.flatnonzero(np.concatenate(([True], week[1:] != week[:-1])))
            self.weeks[:, week[starts]] = np.add.reduceat(packed, starts, axis=1)
        self.school_weeks = np.flatnonzero(geo.school_week)
        self.nweeks = len(self.school_weeks)
        self.period = period
        self.first_monday = np.datetime64(week_start(period.start), "D")

    def total(self, which: int) -> np.ndarray:
        """Per row: the sum of one field over the period."""
        return _field_sum(self.weeks, which)

    def window_sums(self) -> np.ndarray:
        pn = ((self.weeks[:, self.school_weeks] >> _SHIFTS[_F_PENALTY]) & 0xF).astype(np.int32)
        cs = np.zeros((pn.shape[0], self.nweeks + 1), dtype=np.int32)
        np.cumsum(pn, axis=1, out=cs[:, 1:])
        width = min(PN_WINDOW_WEEKS, self.nweeks)
        return cs[:, width:] - cs[:, : self.nweeks + 1 - width]

    def window_dates(self) -> tuple[np.ndarray, np.ndarray]:
        width = min(PN_WINDOW_WEEKS, self.nweeks)
        mondays = self.first_monday + 7 * self.school_weeks.astype("timedelta64[D]")
        first = mondays[: self.nweeks + 1 - width]
        last = mondays[width - 1 :] + np.timedelta64(6, "D")
        lo, hi = np.datetime64(self.period.start, "D"), np.datetime64(self.period.end, "D")
        return np.maximum(first, lo), np.minimum(last, hi)

    def trend_last(self, attended: np.ndarray, possible: np.ndarray, n: int) -> np.ndarray:
        if n <= 0 or self.nweeks <= n:
            return np.full(len(possible), np.nan)
        before = self.weeks[:, : int(self.school_weeks[self.nweeks - n])]
        return _trend(attended, possible, _field_sum(before, _F_ATTENDED), _field_sum(before, _F_POSSIBLE))

    def trend_since(self, attended: np.ndarray, possible: np.ndarray, since_day: int) -> np.ndarray:
        before = self.packed[:, : int(np.searchsorted(self.used, since_day))]
        return _trend(attended, possible, _field_sum(before, _F_ATTENDED), _field_sum(before, _F_POSSIBLE))


def _field_sum(packed: np.ndarray, which: int) -> np.ndarray:
    return ((packed >> _SHIFTS[which]) & 0xF).sum(axis=1, dtype=np.int64)


def _trend(
    attended: np.ndarray, possible: np.ndarray, base_att: np.ndarray, base_pos: np.ndarray
) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        now = 100.0 * attended / possible
        then = 100.0 * base_att / base_pos
    return np.where((possible > 0) & (base_pos > 0), now - then, np.nan)


def _unauthorised_runs(
    pairs: np.ndarray,
    day_lut: np.ndarray,
    candidates: np.ndarray,
    rows: slice | np.ndarray,
    out: dict[str, np.ndarray],
) -> None:
    """The longest and the current run of whole days of unauthorised absence.

    Only rows with a whole unauthorised day can have one. With ``u`` the running count of
    unauthorised days, a run's length on any day is ``u`` minus ``u`` at the last day that broke
    it; days without a possible session change neither, so they are skipped.
    """
    longest = np.zeros(pairs.shape[0], dtype=np.int32)
    current = np.zeros(pairs.shape[0], dtype=np.int32)
    which = np.flatnonzero(candidates)
    if which.size and pairs.shape[1]:
        flags = day_lut[pairs[which]]
        cumulative = np.cumsum(flags & _DAY_UNAUTH, axis=1, dtype=np.int32)
        at_last_break = np.maximum.accumulate(np.where(flags & _DAY_BREAK, cumulative, 0), axis=1)
        run = cumulative - at_last_break
        longest[which] = run.max(axis=1)
        current[which] = run[:, -1]
    out["longest_run"][rows] = longest
    out["current_run"][rows] = current


def penalty_windows(
    matrix: MarkMatrix,
    calendars: Sequence[SchoolCalendar],
    period: Period,
    row: int,
    *,
    table: CodeTable = DEFAULT_TABLE,
) -> list[Window]:
    """Every 10-school-week window of one row over ``period`` with its G/N/O/U sessions."""
    period = Period(max(period.start, matrix.start), min(period.end, matrix.end), period.name)
    week_lut, _ = _luts(tuple(sorted((k, v.value) for k, v in table.overrides.items())))
    geo = _geometry(calendars[int(matrix.calendar_of[row])], period)
    d0 = (period.start - matrix.start).days
    same = np.flatnonzero(matrix.calendar_of == matrix.calendar_of[row])
    geo = _with_marked_school_days(geo, matrix.codes[same, 2 * d0 : 2 * (d0 + geo.ndays)])
    used, pairs = _marked_days(matrix.codes[row : row + 1, 2 * d0 : 2 * (d0 + geo.ndays)])
    weekly = _Weekly(week_lut[pairs], used, geo, period)
    if not weekly.nweeks:
        return []
    sums = weekly.window_sums()[0]
    starts, ends = weekly.window_dates()
    return [
        Window(start.astype(date), end.astype(date), int(n))
        for start, end, n in zip(starts, ends, sums, strict=True)
    ]


# -- aggregation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupSummary:
    """The figures of a group of enrolments (a school, year group, pupil group, trust or LA)."""

    group: Hashable
    enrolments: int
    enrolments_with_possible: int
    possible: int
    present: int
    approved_activity: int
    authorised: int
    unauthorised: int
    late_before_close: int
    late_after_close: int
    persistent_absentees: int
    severe_absentees: int
    at_penalty_threshold: int

    @property
    def attendance_pct(self) -> float | None:
        return 100.0 * (self.present + self.approved_activity) / self.possible if self.possible else None

    @property
    def absence_pct(self) -> float | None:
        return 100.0 * (self.authorised + self.unauthorised) / self.possible if self.possible else None

    @property
    def persistent_absence_rate(self) -> float | None:
        """Share (%) of enrolments with a possible session that are persistently absent."""
        n = self.enrolments_with_possible
        return 100.0 * self.persistent_absentees / n if n else None

    @property
    def severe_absence_rate(self) -> float | None:
        n = self.enrolments_with_possible
        return 100.0 * self.severe_absentees / n if n else None


def aggregate(metrics: PupilMetrics, groups: Sequence[Hashable] | np.ndarray) -> list[GroupSummary]:
    """Sum sessions per group; PA/SA rates as shares of enrolments with any possible session.

    ``groups[row]`` labels the group of each row; enrolments with no possible session are
    excluded from the rates, as in the DfE statistics.
    """
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    n = len(labels)
    with_possible = metrics.possible > 0

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values.astype(np.float64), minlength=n).astype(np.int64)

    columns = {
        "enrolments": np.bincount(inverse, minlength=n),
        "enrolments_with_possible": total(with_possible),
        "possible": total(metrics.possible),
        "present": total(metrics.present),
        "approved_activity": total(metrics.approved_activity),
        "authorised": total(metrics.authorised),
        "unauthorised": total(metrics.unauthorised),
        "late_before_close": total(metrics.late_before_close),
        "late_after_close": total(metrics.late_after_close),
        "persistent_absentees": total(metrics.persistent_absence),
        "severe_absentees": total(metrics.severe_absence),
        "at_penalty_threshold": total(metrics.max_unauthorised_in_10_school_weeks >= PN_THRESHOLD),
    }
    return [
        GroupSummary(group=labels[i].item(), **{k: int(v[i]) for k, v in columns.items()}) for i in range(n)
    ]
