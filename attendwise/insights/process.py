"""Process measures: how well each school follows its own escalation process.

Per school, and in total for a trust's or an LA's schools, over a period:

* **days from trigger to first contact**: for each case opened in the period (the day a pupil
  first met a trigger of the school's policy), the calendar days until the first contact logged
  on the case (a call, email, text, visit or letter); the median, with how many cases are
  still waiting for a first contact;
* **tasks overdue**: open tasks past their due day, as of the end of the period;
* **letters per persistent absentee**: letters made in the period divided by the pupils
  persistently absent (10% or more of possible sessions missed) over the period;
* **referrals returned for more information**: referrals submitted in the period that the LA
  asked more information about, out of those submitted;
* **weeks from stage entry to improvement**: for each move up to a stage in the period, the
  weeks until the pupil's next move down (or off the ladder); the median over the entries that
  improved, with how many have not improved (yet).

The total pools the cases (a median over every case, not a median of school medians). The
arithmetic is in :func:`measure`, a pure function over :class:`SchoolActivity`; :func:`gather`
reads one school's activity through the casework, letters, referrals and attendance packages.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import academic_year_of
from attendwise.attendance.metrics import Period
from attendwise.casework import queries as casework_queries
from attendwise.casework.queries import CaseHistory
from attendwise.insights.exports import Table
from attendwise.insights.services import SUPPRESS_BELOW, SUPPRESSED, Comparison
from attendwise.letters import services as letter_services
from attendwise.platform import tenancy
from attendwise.referrals import queries as referral_queries


@dataclass(frozen=True)
class SchoolActivity:
    """What one school did in a period, as plain facts."""

    school_id: int
    school_name: str
    start: dt.date
    end: dt.date
    cases: Sequence[CaseHistory]
    tasks_overdue: int
    letters: int
    persistent_absentees: int
    referrals_submitted: int
    referrals_returned: int


@dataclass(frozen=True)
class ProcessMeasures:
    """The measures of one school (``school_id`` set) or of all of them (``None``)."""

    school_id: int | None
    name: str
    cases_opened: int
    days_to_first_contact: float | None
    awaiting_first_contact: int
    tasks_overdue: int
    letters: int
    persistent_absentees: int
    letters_per_persistent_absentee: float | None
    referrals_submitted: int
    referrals_returned: int
    stage_entries: int
    improved: int
    weeks_to_improvement: float | None


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _contact_days(activity: SchoolActivity) -> tuple[int, list[float], int]:
    """Cases opened in the period, days to their first contact, and those still waiting."""
    opened = [c for c in activity.cases if activity.start <= c.opened_on <= activity.end]
    days = [
        float((c.first_contact_on - c.opened_on).days)
        for c in opened
        if c.first_contact_on is not None and c.first_contact_on >= c.opened_on
    ]
    return len(opened), days, len(opened) - len(days)


def _improvement_weeks(activity: SchoolActivity) -> tuple[int, list[float]]:
    """Moves up to a stage in the period, and weeks from each to the next move down or off."""
    entries, weeks = 0, []
    for case in activity.cases:
        for i, (on, from_stage, to_stage, _name) in enumerate(case.moves):
            if to_stage <= from_stage or not activity.start <= on <= activity.end:
                continue
            entries += 1
            later = [m[0] for m in case.moves[i + 1 :] if m[2] < m[1]]
            improved_on = later[0] if later else case.closed_on
            if improved_on is not None and improved_on <= activity.end:
                weeks.append((improved_on - on).days / 7)
    return entries, weeks


def _measures(school_id: int | None, name: str, activities: Sequence[SchoolActivity]) -> ProcessMeasures:
    opened, days, waiting = 0, [], 0
    entries, weeks = 0, []
    for activity in activities:
        n, d, w = _contact_days(activity)
        opened, waiting = opened + n, waiting + w
        days += d
        e, wk = _improvement_weeks(activity)
        entries += e
        weeks += wk
    letters = sum(a.letters for a in activities)
    absentees = sum(a.persistent_absentees for a in activities)
    return ProcessMeasures(
        school_id=school_id,
        name=name,
        cases_opened=opened,
        days_to_first_contact=_median(days),
        awaiting_first_contact=waiting,
        tasks_overdue=sum(a.tasks_overdue for a in activities),
        letters=letters,
        persistent_absentees=absentees,
        letters_per_persistent_absentee=letters / absentees if absentees else None,
        referrals_submitted=sum(a.referrals_submitted for a in activities),
        referrals_returned=sum(a.referrals_returned for a in activities),
        stage_entries=entries,
        improved=len(weeks),
        weeks_to_improvement=_median(weeks),
    )


def measure(
    activities: Sequence[SchoolActivity], *, total_name: str = "All schools"
) -> list[ProcessMeasures]:
    """One row per school (in the order given), then the total over all of them."""
    rows = [_measures(a.school_id, a.school_name, [a]) for a in activities]
    return [*rows, _measures(None, total_name, activities)]


def gather(session: Session, school_id: int, school_name: str, period: Period) -> SchoolActivity:
    """Read one school's activity in ``period`` through the owning packages' read functions.

    Runs in the school's own tenant context (a trust or LA scope reads each member school in
    turn); only counts and dates leave this function, never a pupil's name or record.
    """
    with tenancy.tenant_context(school_id):
        cases = casework_queries.case_histories(session, period.start, period.end)
        overdue = casework_queries.overdue_task_count(session, period.end + dt.timedelta(days=1))
        letters = letter_services.letters_made(session, period.start, period.end)
        submitted, returned = referral_queries.referrals_returned(session, period.start, period.end)
        pupil_ids = attendance_queries.pupil_traits(session, school_id).ids
        absentees = 0
        if pupil_ids:
            calendar = attendance_services.school_calendar(session, school_id, academic_year_of(period.end))
            clipped = Period(
                max(period.start, calendar.start), max(min(period.end, calendar.end), calendar.start)
            )
            figures = attendance_queries.figures(session, school_id, calendar, clipped, pupil_ids)
            absentees = int(figures.persistent_absence.sum())
    return SchoolActivity(
        school_id=school_id,
        school_name=school_name,
        start=period.start,
        end=period.end,
        cases=cases,
        tasks_overdue=overdue,
        letters=letters,
        persistent_absentees=absentees,
        referrals_submitted=submitted,
        referrals_returned=returned,
    )


def table(rows: Sequence[ProcessMeasures], *, suppress: bool, title: str = "Process measures") -> Table:
    """The process-measures table as the page shows it.

    With ``suppress`` (figures shown outside the school), a count from 1 to 4 and a median or a
    ratio from fewer than :data:`SUPPRESS_BELOW` cases or pupils show as :data:`SUPPRESSED`.
    """

    def count(n: int) -> int | str:
        return SUPPRESSED if suppress and 0 < n < SUPPRESS_BELOW else n

    def based_on(value: float | None, n: int, digits: int) -> float | str | None:
        if value is None:
            return None
        return SUPPRESSED if suppress and n < SUPPRESS_BELOW else round(value, digits)

    out = [
        [
            r.name,
            count(r.cases_opened),
            based_on(r.days_to_first_contact, r.cases_opened - r.awaiting_first_contact, 1),
            count(r.awaiting_first_contact),
            count(r.tasks_overdue),
            count(r.letters),
            count(r.persistent_absentees),
            based_on(r.letters_per_persistent_absentee, r.persistent_absentees, 2),
            count(r.referrals_submitted),
            count(r.referrals_returned),
            count(r.stage_entries),
            count(r.improved),
            based_on(r.weeks_to_improvement, r.improved, 1),
        ]
        for r in rows
    ]
    return Table(
        title=title,
        columns=COLUMNS,
        rows=out,
        notes=[f"{SUPPRESSED}: from fewer than {SUPPRESS_BELOW} pupils, not shown outside the school."],
    )


COLUMNS = (
    "School",
    "Cases opened",
    "Median days from trigger to first contact",
    "Cases waiting for a first contact",
    "Tasks overdue",
    "Letters",
    "Persistent absentees",
    "Letters per persistent absentee",
    "Referrals submitted",
    "Referrals returned for more information",
    "Moves up a stage",
    "Of which improved",
    "Median weeks from stage entry to improvement",
)


def for_comparison(session: Session, comparison: Comparison) -> list[ProcessMeasures]:
    """The process measures of a comparison's schools over its period (none without figures)."""
    if comparison.period_start is None or comparison.period_end is None:
        return []
    period = Period(comparison.period_start, comparison.period_end, comparison.period_label)
    activities = [gather(session, s.school_id, s.name, period) for s in comparison.schools]
    return measure(activities, total_name=f"All schools of {comparison.scope_name}")
