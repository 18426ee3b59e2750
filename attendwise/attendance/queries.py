"""Read helpers for pupils, their figures, registers and households.

Figures come from ``attendwise.attendance.metrics``: a school's marks are stacked into one
``MarkMatrix`` (one row per pupil, straight from the stored bytes) and computed in one
vectorised pass; group figures are sums over those arrays, never a Python loop over marks.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from attendwise.attendance import marks_codec, metrics, services
from attendwise.attendance.calendar import (
    SchoolCalendar,
    academic_year_end,
    academic_year_label,
    academic_year_of,
    academic_year_start,
    week_start,
)
from attendwise.attendance.codes import CodeTable, StatClass, encode
from attendwise.attendance.models import (
    HouseholdKey,
    MarkChange,
    Pupil,
    PupilContact,
    PupilMarkYear,
    SenStatus,
)
from attendwise.platform import audit, tenancy
from attendwise.tenants.models import Organisation

LONDON = ZoneInfo("Europe/London")

FLAGS: dict[str, str] = {
    "persistent": "Persistent absence (10% or more)",
    "severe": "Severe absence (50% or more)",
    "sen_support": "SEN support",
    "ehcp": "Education, health and care plan",
    "fsm": "Free school meals",
    "eal": "English as an additional language",
    "looked_after": "Looked after",
    "child_in_need": "Child in need",
}
SORTS = ("name", "year_group", "attendance", "unauthorised", "possible")
PER_PAGE = 50
YEAR_ORDER = {y: i for i, y in enumerate(services.YEAR_GROUPS)}


def today() -> dt.date:
    return dt.datetime.now(LONDON).date()


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


# ---- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodChoice:
    key: str
    period: metrics.Period

    @property
    def label(self) -> str:
        return f"{self.period.name} ({_short(self.period.start)} to {_short(self.period.end)})"


def _short(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def period_choices(calendar: SchoolCalendar, on: dt.date) -> list[PeriodChoice]:
    """Year to date, this half-term, this term and the last 4 school weeks, as of ``on``."""
    end = min(max(on, calendar.start), calendar.end)
    choices = [PeriodChoice("ytd", metrics.Period.year_to_date(calendar, end))]
    half = calendar.half_term_of(end) or max(
        (h for h in calendar.half_terms if h.start <= end), key=lambda h: h.start, default=None
    )
    if half is not None:
        choices.append(PeriodChoice("half_term", metrics.Period(half.start, min(half.end, end), half.name)))
        term = next(t for t in calendar.terms if half in t.half_terms)
        choices.append(
            PeriodChoice("term", metrics.Period(term.start, min(term.end, end), f"{term.name} term"))
        )
    choices.append(PeriodChoice("last4", metrics.Period.last_school_weeks(calendar, 4, end)))
    return choices


# ---- stacking marks --------------------------------------------------------------------------


def marks_version(session: Session, org_id: int, academic_year: int) -> tuple[int, int, str]:
    """What identifies the state of a school's stored marks for one year: equal values mean no
    pupil's marks of that year were stored, changed or deleted in between (every write of a
    pupil's year raises its version and stamps ``updated_at``; a deletion lowers the count)."""
    rows, versions, updated = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(PupilMarkYear.version), 0),
            func.max(PupilMarkYear.updated_at),
        ).where(PupilMarkYear.org_id == org_id, PupilMarkYear.academic_year == academic_year)
    ).one()
    return int(rows), int(versions), updated.isoformat() if updated else ""


def mark_matrix(
    session: Session, org_id: int, academic_year: int, pupil_ids: Sequence[int]
) -> metrics.MarkMatrix:
    """One row per pupil (in ``pupil_ids`` order) of the year's stored bytes; zeros where none."""
    width = marks_codec.year_length(academic_year)
    codes = np.zeros((len(pupil_ids), width), dtype=np.uint8)
    if pupil_ids:
        row_of = {pid: i for i, pid in enumerate(pupil_ids)}
        stored = session.execute(
            select(PupilMarkYear.pupil_id, PupilMarkYear.codes).where(
                PupilMarkYear.org_id == org_id, PupilMarkYear.academic_year == academic_year
            )
        )
        for pupil_id, payload in stored:
            row = row_of.get(pupil_id)
            if row is not None:
                values = np.frombuffer(payload, dtype=np.uint8)[:width]
                codes[row, : values.size] = values
    return metrics.MarkMatrix(academic_year_start(academic_year), codes, list(pupil_ids))


def figures(
    session: Session,
    org_id: int,
    calendar: SchoolCalendar,
    period: metrics.Period,
    pupil_ids: Sequence[int],
    *,
    table: CodeTable | None = None,
) -> metrics.PupilMetrics:
    """Every metric for these pupils over ``period``, in one vectorised pass."""
    matrix = mark_matrix(session, org_id, calendar.academic_year, pupil_ids)
    return metrics.compute(matrix, [calendar], period, table=table or services.code_table(session))


# ---- the school pupil list -----------------------------------------------------------------------


@dataclass
class PupilFilters:
    q: str = ""
    year_group: str = ""
    flags: frozenset[str] = frozenset()
    period: str = "ytd"
    sort: str = "name"
    descending: bool = False
    page: int = 1
    academic_year: int | None = None  # None: the current one

    @classmethod
    def from_args(cls, args: Any) -> PupilFilters:
        try:
            page = max(1, int(args.get("page", "1")))
        except ValueError:
            page = 1
        sort = args.get("sort", "name")
        year = args.get("year_group", "")
        academic = args.get("year", "")
        return cls(
            q=(args.get("q") or "").strip()[:100],
            year_group=year if year in services.YEAR_GROUPS else "",
            flags=frozenset(f for f in args.getlist("flag") if f in FLAGS),
            period=args.get("period", "ytd"),
            sort=sort if sort in SORTS else "name",
            descending=args.get("order") == "desc",
            page=page,
            academic_year=int(academic) if academic.isdigit() and 2000 <= int(academic) <= 2100 else None,
        )

    def query_args(self, **changes: Any) -> dict[str, Any]:
        """The filters as URL arguments, with ``changes`` applied (for sort and page links)."""
        values: dict[str, Any] = {
            "q": self.q or None,
            "year_group": self.year_group or None,
            "flag": sorted(self.flags) or None,
            "period": self.period if self.period != "ytd" else None,
            "sort": self.sort if self.sort != "name" else None,
            "order": "desc" if self.descending else None,
            "page": self.page if self.page > 1 else None,
            "year": self.academic_year,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class PupilRow:
    pupil: Pupil
    figures: dict[str, Any]


@dataclass
class GroupFigures:
    label: str
    pupils: int
    possible: int
    attendance_pct: float | None
    authorised_pct: float | None
    unauthorised_pct: float | None
    persistent: int
    severe: int

    @property
    def persistent_pct(self) -> float | None:
        return 100.0 * self.persistent / self.pupils if self.pupils else None

    @property
    def severe_pct(self) -> float | None:
        return 100.0 * self.severe / self.pupils if self.pupils else None


@dataclass
class PupilList:
    rows: list[PupilRow]
    total: int
    page: int
    pages: int
    period: PeriodChoice
    periods: list[PeriodChoice]
    year_groups: list[str]
    groups: list[GroupFigures] = field(default_factory=list)
    academic_year: int = 0
    academic_years: list[int] = field(default_factory=list)  # years with marks, newest first

    @property
    def academic_year_label(self) -> str:
        return academic_year_label(self.academic_year)


def pupil_list(
    session: Session, org_id: int, filters: PupilFilters, *, on: dt.date | None = None, paged: bool = True
) -> PupilList:
    """The school's pupils with their figures for the chosen period, filtered, sorted and paged."""
    on = as_of(on or today(), filters.academic_year)
    year = academic_year_of(on)
    calendar = services.school_calendar(session, org_id, year)
    periods = period_choices(calendar, on)
    chosen = next((p for p in periods if p.key == filters.period), periods[0])
    pupils = session.scalars(
        select(Pupil)
        .where(Pupil.org_id == org_id)
        .order_by(Pupil.legal_surname, Pupil.legal_forename, Pupil.id)
    ).all()
    ids = [p.id for p in pupils]
    result = figures(session, org_id, calendar, chosen.period, ids)
    groups = group_figures(pupils, result)

    keep = np.ones(len(pupils), dtype=bool)
    if filters.q:
        needle = filters.q.casefold()
        keep &= np.array(
            [
                needle in f"{p.display_name} {p.legal_forename} {p.legal_surname} {p.upn}".casefold()
                for p in pupils
            ],
            dtype=bool,
        )
    if filters.year_group:
        keep &= np.array([p.year_group == filters.year_group for p in pupils], dtype=bool)
    if "persistent" in filters.flags:
        keep &= result.persistent_absence
    if "severe" in filters.flags:
        keep &= result.severe_absence
    for flag in filters.flags - {"persistent", "severe"}:
        keep &= _characteristic(pupils, flag)

    order = _sort_order(pupils, result, filters.sort)
    if filters.descending:
        order = order[::-1]
    order = order[keep[order]]
    total = len(order)
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(filters.page, pages)
    shown = order[(page - 1) * PER_PAGE : page * PER_PAGE] if paged else order
    return PupilList(
        rows=[PupilRow(pupils[i], result.record(int(i))) for i in shown],
        total=total,
        page=page,
        pages=pages,
        period=chosen,
        periods=periods,
        year_groups=sorted({p.year_group for p in pupils}, key=lambda y: YEAR_ORDER.get(y, 99)),
        groups=groups,
        academic_year=year,
        academic_years=years_with_marks(session, org_id, also=academic_year_of(today())),
    )


def as_of(on: dt.date, academic_year: int | None) -> dt.date:
    """The day figures are computed to: ``on``, or the last day of an earlier academic year."""
    if academic_year is None or academic_year >= academic_year_of(on):
        return on
    return academic_year_end(academic_year)


def years_with_marks(session: Session, org_id: int, *, also: int) -> list[int]:
    stored = session.scalars(
        select(PupilMarkYear.academic_year).where(PupilMarkYear.org_id == org_id).distinct()
    ).all()
    return sorted({also, *stored}, reverse=True)


def _characteristic(pupils: Sequence[Pupil], flag: str) -> np.ndarray:
    if flag == "sen_support":
        return np.array([p.sen_status is SenStatus.SEN_SUPPORT for p in pupils], dtype=bool)
    if flag == "ehcp":
        return np.array([p.sen_status is SenStatus.EHCP for p in pupils], dtype=bool)
    return np.array([bool(getattr(p, flag)) for p in pupils], dtype=bool)


def _sort_order(pupils: Sequence[Pupil], result: metrics.PupilMetrics, sort: str) -> np.ndarray:
    names = np.arange(len(pupils))  # pupils arrive sorted by surname, forename
    if sort == "year_group":
        return np.lexsort((names, np.array([YEAR_ORDER.get(p.year_group, 99) for p in pupils])))
    if sort == "attendance":
        return np.lexsort((names, np.nan_to_num(result.attendance_pct, nan=101.0)))
    if sort == "unauthorised":
        return np.lexsort((names, result.unauthorised))
    if sort == "possible":
        return np.lexsort((names, result.possible))
    return names


def group_figures(pupils: Sequence[Pupil], result: metrics.PupilMetrics) -> list[GroupFigures]:
    """The whole school, each year group and each pupil group, summed from the pupils' arrays."""
    groups: list[tuple[str, np.ndarray]] = [("Whole school", np.ones(len(pupils), dtype=bool))]
    years = sorted({p.year_group for p in pupils}, key=lambda y: YEAR_ORDER.get(y, 99))
    year_of = np.array([p.year_group for p in pupils], dtype=object)
    groups += [(f"Year {y}" if y.isdigit() else y, year_of == y) for y in years]
    groups += [(FLAGS[f], _characteristic(pupils, f)) for f in FLAGS if f not in ("persistent", "severe")]
    out = []
    counted = result.possible > 0
    for label, members in groups:
        mask = members & counted
        possible = int(result.possible[mask].sum())

        def pct(values: np.ndarray, mask: np.ndarray = mask, possible: int = possible) -> float | None:
            return 100.0 * float(values[mask].sum()) / possible if possible else None

        out.append(
            GroupFigures(
                label=label,
                pupils=int(mask.sum()),
                possible=possible,
                attendance_pct=pct(result.attended),
                authorised_pct=pct(result.authorised),
                unauthorised_pct=pct(result.unauthorised),
                persistent=int(result.persistent_absence[mask].sum()),
                severe=int(result.severe_absence[mask].sum()),
            )
        )
    return out


# ---- one pupil -------------------------------------------------------------------------------------


def get_pupil(session: Session, pupil_id: int) -> Pupil | None:
    """A pupil of the current tenant (``None`` for another school's: the caller answers 404)."""
    return session.scalar(
        select(Pupil)
        .where(Pupil.id == pupil_id)
        .options(
            selectinload(Pupil.enrolments), selectinload(Pupil.contact_links).joinedload(PupilContact.contact)
        )
    )


def get_pupil_by_upn(session: Session, upn: str) -> Pupil | None:
    return session.scalar(select(Pupil).where(Pupil.upn == upn.strip().upper()))


@dataclass(frozen=True)
class SessionMark:
    day: dt.date
    session: str
    code: str | None
    meaning: str
    stat_class: str  # a StatClass value, or "none"


@dataclass(frozen=True)
class CalendarDay:
    day: dt.date
    school_day: bool
    am: SessionMark
    pm: SessionMark


@dataclass(frozen=True)
class RegisterWeek:
    monday: dt.date
    days: tuple[CalendarDay, ...]  # Monday to Friday


@dataclass(frozen=True)
class RegisterHalfTerm:
    name: str
    weeks: tuple[RegisterWeek, ...]


@dataclass(frozen=True)
class TrendPoint:
    monday: dt.date
    possible: int
    attendance_pct: float | None
    cumulative_pct: float | None


@dataclass
class PupilPage:
    pupil: Pupil
    calendar: SchoolCalendar
    period: metrics.Period
    headline: dict[str, Any]
    register: list[RegisterHalfTerm]
    sessions: list[SessionMark]
    trend: list[TrendPoint]
    changes: list[MarkChange]
    siblings: list[Sibling]
    academic_year: int
    trend_weeks: int
    trend_change: float | None  # percentage points over the last ``trend_weeks`` school weeks
    academic_years: list[int] = field(default_factory=list)  # years with marks, newest first

    @property
    def academic_year_label(self) -> str:
        return academic_year_label(self.academic_year)


def _mark(table: CodeTable, day: dt.date, session_name: str, value: int) -> SessionMark:
    if not value:
        return SessionMark(day, session_name, None, "No mark", "none")
    code = table.by_index(value)
    return SessionMark(day, session_name, code.code, code.meaning, code.stat_class.value)


def register(
    calendar: SchoolCalendar, codes: np.ndarray, on: dt.date, table: CodeTable
) -> list[RegisterHalfTerm]:
    """The register as half-terms of Monday-to-Friday weeks, up to ``on``."""
    start = academic_year_start(calendar.academic_year)
    out = []
    for half in calendar.half_terms:
        if half.start > on:
            break
        weeks = []
        monday = week_start(half.start)
        while monday <= min(half.end, on):
            days = []
            for n in range(5):
                day = monday + dt.timedelta(days=n)
                i = (day - start).days
                in_range = half.start <= day <= min(half.end, on) and 0 <= i < codes.size // 2
                am = int(codes[2 * i]) if in_range else 0
                pm = int(codes[2 * i + 1]) if in_range else 0
                days.append(
                    CalendarDay(
                        day,
                        in_range and calendar.is_school_day(day),
                        _mark(table, day, "AM", am),
                        _mark(table, day, "PM", pm),
                    )
                )
            weeks.append(RegisterWeek(monday, tuple(days)))
            monday += dt.timedelta(weeks=1)
        out.append(RegisterHalfTerm(half.name, tuple(weeks)))
    return out


def weekly_trend(
    calendar: SchoolCalendar, codes: np.ndarray, on: dt.date, table: CodeTable
) -> list[TrendPoint]:
    """Attendance % for each school week up to ``on``, and cumulative to that week."""
    start = academic_year_start(calendar.academic_year)
    classes = table.class_lut[codes]
    attended_s = (classes == StatClass.PRESENT.number) | (classes == StatClass.APPROVED_ACTIVITY.number)
    possible_s = (classes >= 1) & (classes <= StatClass.UNAUTHORISED.number)
    per_day_att = attended_s.reshape(-1, 2).sum(axis=1)
    per_day_pos = possible_s.reshape(-1, 2).sum(axis=1)
    weeks = calendar.school_weeks(calendar.start, min(on, calendar.end))
    if not weeks:
        return []
    offsets = np.array([(w - start).days for w in weeks])
    ends = np.minimum(offsets + 7, per_day_pos.size)
    att_cum = np.concatenate(([0], np.cumsum(per_day_att)))
    pos_cum = np.concatenate(([0], np.cumsum(per_day_pos)))
    week_att = att_cum[ends] - att_cum[offsets]
    week_pos = pos_cum[ends] - pos_cum[offsets]
    run_att, run_pos = np.cumsum(week_att), np.cumsum(week_pos)
    return [
        TrendPoint(
            w,
            int(week_pos[i]),
            100.0 * week_att[i] / week_pos[i] if week_pos[i] else None,
            100.0 * run_att[i] / run_pos[i] if run_pos[i] else None,
        )
        for i, w in enumerate(weeks)
    ]


def pupil_page(
    session: Session,
    pupil: Pupil,
    *,
    viewer: Organisation,
    may_see_other_schools: bool,
    on: dt.date | None = None,
    academic_year: int | None = None,
) -> PupilPage:
    on = as_of(on or today(), academic_year)
    year = academic_year_of(on)
    calendar = services.school_calendar(session, pupil.org_id, year)
    period = period_choices(calendar, on)[0].period
    table = services.code_table(session)
    result = figures(session, pupil.org_id, calendar, period, [pupil.id], table=table)
    codes = mark_matrix(session, pupil.org_id, year, [pupil.id]).codes[0]
    sessions = [
        _mark(
            table,
            academic_year_start(year) + dt.timedelta(days=int(i) // 2),
            "PM" if i % 2 else "AM",
            int(codes[i]),
        )
        for i in np.flatnonzero(codes)
    ]
    changes = session.scalars(
        select(MarkChange)
        .where(MarkChange.pupil_id == pupil.id)
        .order_by(MarkChange.seen_at.desc(), MarkChange.id.desc())
    ).all()
    return PupilPage(
        pupil=pupil,
        calendar=calendar,
        period=period,
        headline=result.record(0),
        register=register(calendar, codes, on, table),
        sessions=sessions,
        trend=weekly_trend(calendar, codes, on, table),
        changes=list(changes),
        siblings=siblings(session, pupil, viewer=viewer, may_see_other_schools=may_see_other_schools, on=on),
        academic_year=year,
        trend_weeks=result.trend_weeks,
        trend_change=_number(result.trend_last_weeks[0]),
        academic_years=sorted(
            {
                academic_year_of(today()),
                *session.scalars(
                    select(PupilMarkYear.academic_year).where(PupilMarkYear.pupil_id == pupil.id)
                ),
            },
            reverse=True,
        ),
    )


def pupil_figures(session: Session, pupil: Pupil, *, on: dt.date | None = None) -> dict[str, Any]:
    """One pupil's year-to-date figures as a plain dict."""
    on = on or today()
    calendar = services.school_calendar(session, pupil.org_id, academic_year_of(on))
    period = period_choices(calendar, on)[0].period
    return figures(session, pupil.org_id, calendar, period, [pupil.id]).record(0)


def marks_known_at(session: Session, pupil: Pupil, academic_year: int, moment: dt.datetime) -> np.ndarray:
    """The pupil's year of marks as the platform knew them at ``moment`` (for evidence).

    Starts from the latest bytes and undoes, newest first, every change seen after
    ``moment``. Marks first recorded after ``moment`` are not undone: only changes of an
    already-stored mark are kept with when they were seen.
    """
    codes = mark_matrix(session, pupil.org_id, academic_year, [pupil.id]).codes[0].copy()
    start, end = academic_year_start(academic_year), academic_year_end(academic_year)
    later = session.execute(
        select(MarkChange.date, MarkChange.session, MarkChange.old_code)
        .where(
            MarkChange.pupil_id == pupil.id,
            MarkChange.seen_at > moment,
            MarkChange.date >= start,
            MarkChange.date <= end,
        )
        .order_by(MarkChange.seen_at.desc(), MarkChange.id.desc())
    ).all()
    for day, session_name, old_code in later:
        codes[marks_codec.slot(academic_year, day, session_name)] = encode(old_code) if old_code else 0
    return codes


def record_list_view(
    session: Session, org_id: int, listing: PupilList, *, via: str, filters: PupilFilters
) -> None:
    """Audit a list or export of pupils: which pupils were shown, and with which filters."""
    audit.record(
        session,
        org_id=org_id,
        action="pupils.export" if via == "csv" else "pupils.list",
        object_type="pupils",
        detail={
            "via": via,
            "rows": len(listing.rows),
            "filters": filters.query_args(page=None),
            "page": listing.page,
            "pupil_ids": [row.pupil.id for row in listing.rows],
        },
    )


def record_view(session: Session, pupil: Pupil, *, via: str) -> None:
    """Audit a view of a pupil record (the page, the API or an export), in the same transaction."""
    audit.record(
        session,
        org_id=pupil.org_id,
        action="pupil.view",
        object_type="pupils",
        object_id=pupil.id,
        pupil_id=pupil.id,
        detail={"via": via},
    )


# ---- households ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sibling:
    """A pupil sharing a contact with parental responsibility.

    At the same school the sibling is named and linked; at another school in the same LA or
    trust only its existence and headline attendance are shown (``pupil_id`` and ``name`` are None).
    """

    at_this_school: bool
    pupil_id: int | None
    name: str | None
    year_group: str | None
    attendance_pct: float | None
    persistent: bool
    severe: bool
    period_name: str


def _shares_scope(viewer: Organisation, other: Organisation) -> bool:
    same_la = viewer.la_id is not None and viewer.la_id == other.la_id
    same_trust = viewer.trust_id is not None and viewer.trust_id == other.trust_id
    return same_la or same_trust


def siblings(
    session: Session, pupil: Pupil, *, viewer: Organisation, may_see_other_schools: bool, on: dt.date
) -> list[Sibling]:
    keys = select(HouseholdKey.key).where(HouseholdKey.pupil_id == pupil.id).scalar_subquery()
    matches = session.execute(
        select(HouseholdKey.school_id, HouseholdKey.pupil_id)
        .where(HouseholdKey.key.in_(keys), HouseholdKey.pupil_id != pupil.id)
        .distinct()
        .order_by(HouseholdKey.school_id, HouseholdKey.pupil_id)
    ).all()
    if not matches:
        return []
    year = academic_year_of(on)
    out: list[Sibling] = []
    here = [pid for school_id, pid in matches if school_id == pupil.org_id]
    if here:
        calendar = services.school_calendar(session, pupil.org_id, year)
        period = period_choices(calendar, on)[0].period
        found = {p.id: p for p in session.scalars(select(Pupil).where(Pupil.id.in_(here)))}
        ids = [pid for pid in here if pid in found]
        result = figures(session, pupil.org_id, calendar, period, ids)
        for i, pid in enumerate(ids):
            out.append(
                Sibling(
                    True,
                    pid,
                    found[pid].display_name,
                    found[pid].year_group,
                    _number(result.attendance_pct[i]),
                    bool(result.persistent_absence[i]),
                    bool(result.severe_absence[i]),
                    period.name,
                )
            )
    if not may_see_other_schools:
        return out
    elsewhere = [(school_id, pid) for school_id, pid in matches if school_id != pupil.org_id]
    schools = {
        o.id: o
        for o in session.scalars(select(Organisation).where(Organisation.id.in_({s for s, _ in elsewhere})))
    }
    for school_id, pid in elsewhere:
        school = schools.get(school_id)
        if school is None or not school.active or not _shares_scope(viewer, school):
            continue
        out.append(_sibling_headline(session, school_id, pid, year, on, viewer_pupil=pupil))
    return out


def _sibling_headline(
    session: Session, school_id: int, sibling_id: int, year: int, on: dt.date, *, viewer_pupil: Pupil
) -> Sibling:
    """Headline attendance of a sibling at another school, read in an audited system context."""
    with tenancy.system_context(
        f"sibling headline for pupil {viewer_pupil.id} at school {viewer_pupil.org_id}"
    ):
        calendar = services.school_calendar(session, school_id, year)
        period = period_choices(calendar, on)[0].period
        result = figures(session, school_id, calendar, period, [sibling_id])
        audit.record(
            session,
            org_id=school_id,
            action="pupil.sibling_headline",
            object_type="pupils",
            object_id=sibling_id,
            pupil_id=sibling_id,
            detail={"viewed_from_org": viewer_pupil.org_id, "viewed_with_pupil": viewer_pupil.id},
        )
    return Sibling(
        False,
        None,
        None,
        None,
        _number(result.attendance_pct[0]),
        bool(result.persistent_absence[0]),
        bool(result.severe_absence[0]),
        period.name,
    )


# ---- pupil characteristics for aggregate figures -------------------------------------------------


@dataclass(frozen=True)
class PupilTraits:
    """The characteristics a school's figures are broken down by, one array entry per pupil."""

    ids: list[int]
    year_group: np.ndarray
    flags: dict[str, np.ndarray]
    """``sen_support``, ``ehcp``, ``fsm``, ``eal``, ``looked_after``: a boolean per pupil."""


def pupil_traits(session: Session, org_id: int) -> PupilTraits:
    """Every pupil of the school (by id) with the year group and characteristics insights group by."""
    rows = session.execute(
        select(Pupil.id, Pupil.year_group, Pupil.sen_status, Pupil.fsm, Pupil.eal, Pupil.looked_after)
        .where(Pupil.org_id == org_id)
        .order_by(Pupil.id)
    ).all()
    return PupilTraits(
        ids=[r.id for r in rows],
        year_group=np.array([r.year_group for r in rows], dtype=object),
        flags={
            "sen_support": np.array([r.sen_status is SenStatus.SEN_SUPPORT for r in rows], dtype=bool),
            "ehcp": np.array([r.sen_status is SenStatus.EHCP for r in rows], dtype=bool),
            "fsm": np.array([bool(r.fsm) for r in rows], dtype=bool),
            "eal": np.array([bool(r.eal) for r in rows], dtype=bool),
            "looked_after": np.array([bool(r.looked_after) for r in rows], dtype=bool),
        },
    )


# ---- weekly attendance of many pupils (insights' what-works) -----------------------------------


@dataclass(frozen=True)
class WeeklyMarks:
    """Sessions attended and possible in each school week, one row per pupil."""

    pupil_ids: list[int]
    weeks: list[dt.date]
    """The Monday of each school week of the year up to the day asked for."""
    attended: np.ndarray
    possible: np.ndarray


def weekly_marks(
    session: Session, org_id: int, calendar: SchoolCalendar, pupil_ids: Sequence[int], on: dt.date
) -> WeeklyMarks:
    """Every pupil's attended and possible sessions per school week up to ``on`` (as :func:`weekly_trend`)."""
    matrix = mark_matrix(session, org_id, calendar.academic_year, pupil_ids)
    weeks = calendar.school_weeks(calendar.start, min(on, calendar.end))
    classes = services.code_table(session).class_lut[matrix.codes]
    attended = (classes == StatClass.PRESENT.number) | (classes == StatClass.APPROVED_ACTIVITY.number)
    possible = (classes >= 1) & (classes <= StatClass.UNAUTHORISED.number)
    start = academic_year_start(calendar.academic_year)
    offsets = np.maximum(np.array([2 * (w - start).days for w in weeks], dtype=np.int64), 0)
    ends = np.minimum(offsets + 14, matrix.codes.shape[1])

    def per_week(flags: np.ndarray) -> np.ndarray:
        running = np.hstack([np.zeros((flags.shape[0], 1), dtype=np.int64), np.cumsum(flags, axis=1)])
        return running[:, ends] - running[:, offsets]

    return WeeklyMarks(list(pupil_ids), weeks, per_week(attended), per_week(possible))
