"""School calendars and the five separately named ways of counting time.

* **sessions** — registers: two per school day (AM, PM);
* **school days** — days the school is open (inside a half-term, Monday to Friday, not a bank
  holiday, INSET day or planned closure; plus any day with a mark, which makes it a school day
  unless it falls outside the calendar);
* **school weeks** — Monday-to-Sunday weeks with at least one session: a week with a bank holiday
  and one session still counts, a half-term week does not (the penalty-notice window);
* **working days** — Monday to Friday, not an England bank holiday (LA service levels);
* **calendar days** — every day (penalty-notice payment periods).

Everything here is pure: no database, no clock.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache

import holidays
import numpy as np

HALF_TERM_NAMES = ("Autumn 1", "Autumn 2", "Spring 1", "Spring 2", "Summer 1", "Summer 2")
ONE_DAY = timedelta(days=1)


def academic_year_of(day: date) -> int:
    """The academic year containing ``day``, named by the calendar year it starts (1 August)."""
    return day.year if day.month >= 8 else day.year - 1


def academic_year_start(year: int) -> date:
    return date(year, 8, 1)


def academic_year_end(year: int) -> date:
    return date(year + 1, 7, 31)


def academic_year_label(year: int) -> str:
    return f"{year}/{(year + 1) % 100:02d}"


def days_between(start: date, end: date) -> Iterator[date]:
    """Every calendar day from ``start`` to ``end`` inclusive."""
    for n in range((end - start).days + 1):
        yield start + timedelta(days=n)


def week_start(day: date) -> date:
    """The Monday of the (Monday-to-Sunday) week containing ``day``."""
    return day - timedelta(days=day.weekday())


@cache
def _bank_holidays_for_year(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


def bank_holidays(start: date, end: date) -> frozenset[date]:
    """England bank holidays between ``start`` and ``end`` inclusive (from the ``holidays`` package)."""
    found: set[date] = set()
    for year in range(start.year, end.year + 1):
        found.update(d for d in _bank_holidays_for_year(year) if start <= d <= end)
    return frozenset(found)


def is_working_day(day: date) -> bool:
    """Monday to Friday and not an England bank holiday."""
    return day.weekday() < 5 and day not in _bank_holidays_for_year(day.year)


def working_days(start: date, end: date) -> int:
    """Working days from ``start`` to ``end`` inclusive."""
    return sum(1 for d in days_between(start, end) if is_working_day(d))


def add_working_days(day: date, n: int) -> date:
    """The date ``n`` working days after ``day`` (``day`` itself is not counted)."""
    current = day
    while n > 0:
        current += ONE_DAY
        if is_working_day(current):
            n -= 1
    return current


def calendar_days(start: date, end: date) -> int:
    """Calendar days from ``start`` to ``end`` inclusive."""
    return (end - start).days + 1


def add_calendar_days(day: date, n: int) -> date:
    return day + timedelta(days=n)


@dataclass(frozen=True)
class HalfTerm:
    name: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise CalendarError(f"half-term {self.name!r} ends ({self.end}) before it starts ({self.start})")

    @property
    def term(self) -> str:
        """The term a half-term belongs to: "Autumn 1" -> "Autumn"; other names are their own term."""
        head, _, tail = self.name.rpartition(" ")
        return head if head and tail in ("1", "2") else self.name

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


@dataclass(frozen=True)
class Term:
    name: str
    start: date
    end: date
    half_terms: tuple[HalfTerm, ...]


class CalendarError(ValueError):
    pass


@dataclass(frozen=True)
class SchoolCalendar:
    """A school's half-terms with their closures: the source of school days and school weeks.

    Usually one academic year of six half-terms (:meth:`england_default`), but any ordered,
    non-overlapping sequence of named half-terms is accepted, so one calendar may span years.
    ``extra_days`` are days made school days by a mark (e.g. a Saturday session). With
    ``weekday_rule`` off (a calendar inferred from marks alone), only ``extra_days`` are school days.
    """

    half_terms: tuple[HalfTerm, ...]
    inset_days: frozenset[date] = frozenset()
    closures: frozenset[date] = frozenset()
    extra_days: frozenset[date] = frozenset()
    bank_holidays: frozenset[date] = field(default=frozenset())
    weekday_rule: bool = True

    def __post_init__(self) -> None:
        if not self.half_terms:
            raise CalendarError("a calendar needs at least one half-term")
        ordered = tuple(sorted(self.half_terms, key=lambda h: h.start))
        for before, after in itertools.pairwise(ordered):
            if after.start <= before.end:
                raise CalendarError(f"half-terms {before.name!r} and {after.name!r} overlap")
        object.__setattr__(self, "half_terms", ordered)
        if not self.bank_holidays:
            object.__setattr__(self, "bank_holidays", bank_holidays(self.start, self.end))
        for day in self.extra_days:
            if self.half_term_of(day) is None:
                raise CalendarError(f"{day.isoformat()} is outside the calendar")

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def england_default(cls, academic_year: int) -> SchoolCalendar:
        """A typical England calendar: six half-terms, five INSET days, 190 pupil days.

        Autumn starts on the first Monday on or after 1 September with two INSET days; autumn
        half-term is the week of the last Monday of October; autumn ends on the last Friday on
        or before 22 December; spring starts on the first Monday on or after 2 January (an INSET
        day); spring half-term is the week of the third Monday of February; the Easter break is
        the week of Good Friday and the week of Easter Monday; summer 1 starts with an INSET
        day; summer half-term is the week of the spring bank holiday; the last day of summer 2
        is an INSET day and summer 2 ends when the year reaches 190 pupil days.
        """
        y = academic_year
        bank = bank_holidays(date(y, 8, 1), date(y + 1, 7, 31))
        next_year = holidays.country_holidays("GB", subdiv="ENG", years=y + 1)
        good_friday = next(d for d, name in next_year.items() if name == "Good Friday")
        spring_bank = max(d for d in bank if d.month == 5)

        aut1_start = _next_weekday(date(y, 9, 1), 0)
        october_last_monday = _previous_weekday(date(y, 10, 31), 0)
        aut2_end = _previous_weekday(date(y, 12, 22), 4)
        spr1_start = _next_weekday(date(y + 1, 1, 2), 0)
        feb_half_term = _next_weekday(date(y + 1, 2, 1), 0) + timedelta(weeks=2)
        easter_break = week_start(good_friday)
        summer_half_term = week_start(spring_bank)

        half_terms = [
            HalfTerm("Autumn 1", aut1_start, october_last_monday - timedelta(days=3)),
            HalfTerm("Autumn 2", october_last_monday + timedelta(weeks=1), aut2_end),
            HalfTerm("Spring 1", spr1_start, feb_half_term - timedelta(days=3)),
            HalfTerm("Spring 2", feb_half_term + timedelta(weeks=1), easter_break - timedelta(days=3)),
            HalfTerm("Summer 1", easter_break + timedelta(weeks=2), summer_half_term - timedelta(days=3)),
        ]
        summer2_start = summer_half_term + timedelta(weeks=1)
        inset = {aut1_start, aut1_start + ONE_DAY, spr1_start, half_terms[4].start}
        pupil_days = sum(
            1 for h in half_terms for d in days_between(h.start, h.end) if _weekday_open(d, bank, inset)
        )
        day = summer2_start - ONE_DAY
        while pupil_days < 190:
            day += ONE_DAY
            if _weekday_open(day, bank, inset):
                pupil_days += 1
        last = day + ONE_DAY
        while not _weekday_open(last, bank, inset):
            last += ONE_DAY
        inset.add(last)
        half_terms.append(HalfTerm("Summer 2", summer2_start, last))
        return cls(tuple(half_terms), inset_days=frozenset(inset), bank_holidays=bank)

    @classmethod
    def inferred(cls, marked_days: Iterable[date]) -> SchoolCalendar:
        """The calendar when none is given: school days are exactly the days with a mark.

        Half-terms are unknown, so each academic year covered is one period named "2024/25".
        """
        days = frozenset(marked_days)
        if not days:
            raise CalendarError("no marked days to infer a calendar from")
        years = range(academic_year_of(min(days)), academic_year_of(max(days)) + 1)
        half_terms = tuple(
            HalfTerm(academic_year_label(y), academic_year_start(y), academic_year_end(y)) for y in years
        )
        return cls(half_terms, extra_days=days, weekday_rule=False)

    @classmethod
    def from_csv(cls, text: str) -> SchoolCalendar:
        """Parse the CLI's calendar file: CSV with the header ``name,start,end`` (ISO dates).

        Raises :class:`CalendarError` naming every bad row.
        """
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if header[:3] != ["name", "start", "end"]:
            raise CalendarError("calendar file: the header must be name,start,end")
        problems: list[str] = []
        half_terms: list[HalfTerm] = []
        for row_number, row in enumerate(reader, start=2):
            values = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            name = values.get("name", "")
            if not name:
                problems.append(f"calendar file row {row_number}: name is empty")
                continue
            try:
                start = date.fromisoformat(values.get("start", ""))
                end = date.fromisoformat(values.get("end", ""))
                half_terms.append(HalfTerm(name, start, end))
            except CalendarError as exc:
                problems.append(f"calendar file row {row_number}: {exc}")
            except ValueError:
                problems.append(
                    f"calendar file row {row_number}: start and end must be ISO dates (YYYY-MM-DD)"
                )
        if not problems and not half_terms:
            problems.append("calendar file: no half-terms listed")
        if not problems:
            try:
                return cls(tuple(half_terms))
            except CalendarError as exc:
                problems.append(f"calendar file: {exc}")
        raise CalendarError("\n".join(problems))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["name", "start", "end"])
        for h in self.half_terms:
            writer.writerow([h.name, h.start.isoformat(), h.end.isoformat()])
        return out.getvalue()

    def with_marked_days(self, days: Iterable[date], closed: Iterable[date] = ()) -> SchoolCalendar:
        """This calendar where every day in ``days`` (inside a half-term) is a school day unless it
        is an INSET day or planned closure, and every day in ``closed`` (e.g. marked ``#`` for
        everyone) is a planned closure."""
        closures = self.closures | frozenset(closed)
        extra = frozenset(
            d for d in days if d not in closures and d not in self.inset_days and not self._weekday_rule(d)
        )
        return replace(self, extra_days=(self.extra_days - closures) | extra, closures=closures)

    # -- queries --------------------------------------------------------------------------------

    @property
    def start(self) -> date:
        return self.half_terms[0].start

    @property
    def end(self) -> date:
        return self.half_terms[-1].end

    @property
    def academic_year(self) -> int:
        return academic_year_of(self.start)

    @property
    def terms(self) -> tuple[Term, ...]:
        grouped: list[list[HalfTerm]] = []
        for h in self.half_terms:
            if grouped and grouped[-1][0].term == h.term and len(grouped[-1]) < 2:
                grouped[-1].append(h)
            else:
                grouped.append([h])
        return tuple(Term(g[0].term, g[0].start, g[-1].end, tuple(g)) for g in grouped)

    def half_term_of(self, day: date) -> HalfTerm | None:
        for h in self.half_terms:
            if h.start <= day <= h.end:
                return h
        return None

    def contains(self, day: date) -> bool:
        """Whether ``day`` is inside one of the calendar's half-terms."""
        return self.half_term_of(day) is not None

    def _weekday_rule(self, day: date) -> bool:
        return (
            self.weekday_rule
            and day.weekday() < 5
            and day not in self.bank_holidays
            and day not in self.inset_days
            and day not in self.closures
        )

    def is_school_day(self, day: date) -> bool:
        if self.half_term_of(day) is None:
            return False
        return (day in self.extra_days and day not in self.closures) or self._weekday_rule(day)

    def school_days(self, start: date, end: date) -> list[date]:
        return [d for d in days_between(max(start, self.start), min(end, self.end)) if self.is_school_day(d)]

    def sessions(self, start: date, end: date) -> int:
        """Sessions (registers) the school holds from ``start`` to ``end``: two per school day."""
        return 2 * len(self.school_days(start, end))

    def school_weeks(self, start: date, end: date) -> list[date]:
        """The Mondays of the weeks with at least one school day between ``start`` and ``end``."""
        return sorted({week_start(d) for d in self.school_days(start, end)})

    def open_mask(self, axis_start: date, ndays: int) -> np.ndarray:
        """Boolean per day from ``axis_start``: is it a school day."""
        in_calendar = self.half_term_index(axis_start, ndays) >= 0
        open_days = in_calendar.copy()
        if self.weekday_rule:
            weekday = (np.arange(ndays) + axis_start.weekday()) % 7
            open_days &= weekday < 5
            self._set(open_days, axis_start, self.bank_holidays | self.inset_days, value=False)
        else:
            open_days[:] = False
        self._set(open_days, axis_start, self.extra_days, value=True)
        self._set(open_days, axis_start, self.closures, value=False)
        return open_days & in_calendar

    def markable_mask(self, axis_start: date, ndays: int) -> np.ndarray:
        """Per day from ``axis_start``: would a mark make it a school day (inside a half-term, not
        an INSET day or planned closure)."""
        mask = self.half_term_index(axis_start, ndays) >= 0
        self._set(mask, axis_start, self.inset_days | self.closures, value=False)
        return mask

    @staticmethod
    def _set(mask: np.ndarray, axis_start: date, days: Iterable[date], *, value: bool) -> None:
        offsets = [(d - axis_start).days for d in days]
        inside = [o for o in offsets if 0 <= o < len(mask)]
        mask[inside] = value

    def half_term_index(self, axis_start: date, ndays: int) -> np.ndarray:
        """Per day from ``axis_start``: the index of its half-term in :attr:`half_terms`, or -1."""
        out = np.full(ndays, -1, dtype=np.int16)
        for i, h in enumerate(self.half_terms):
            lo = max((h.start - axis_start).days, 0)
            hi = min((h.end - axis_start).days + 1, ndays)
            if lo < hi:
                out[lo:hi] = i
        return out


def merge(calendars: Sequence[SchoolCalendar]) -> SchoolCalendar:
    """One calendar holding the half-terms and closures of several (e.g. consecutive years)."""
    return SchoolCalendar(
        tuple(h for c in calendars for h in c.half_terms),
        inset_days=frozenset().union(*(c.inset_days for c in calendars)),
        closures=frozenset().union(*(c.closures for c in calendars)),
        extra_days=frozenset().union(*(c.extra_days for c in calendars)),
        bank_holidays=frozenset().union(*(c.bank_holidays for c in calendars)),
    )


def _next_weekday(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def _previous_weekday(day: date, weekday: int) -> date:
    return day - timedelta(days=(day.weekday() - weekday) % 7)


def _weekday_open(day: date, bank: frozenset[date], inset: set[date]) -> bool:
    return day.weekday() < 5 and day not in bank and day not in inset
