"""What works: attendance before and after each stage and action, against similar pupils.

For every kind of step (entering a stage of the school's policy, or an action such as a letter,
call or meeting being done) across a trust's or LA's schools, this compares

* the **treated group**: pupils the step happened to, with their attendance over the ``N``
  school weeks before the week of the step and the ``N`` school weeks after it; and
* the **comparison group**: pupils at the *same school* whose attendance over the same ``N``
  weeks before fell in the *same attendance band* (5-point bands by default), whose attendance
  in the school weeks before that fell in the same 10-point band, and who had not had that step
  by the end of the ``N`` weeks after (they may have it later: "not yet").

A *stratum* is one (school, week of the step, attendance bands). Within it the change in
attendance (after minus before, in percentage points) of the treated pupils is compared with the
change of the comparison pupils; the strata are combined weighting each by its number of treated
pupils. The result is a **difference in differences**: how much more (or less) the treated
pupils' attendance changed than that of similar pupils at the same time. Matching on the band
and the week takes out what everyone shares (the season, a school's own trend, pupils at a low
level drifting back towards their usual level).

**The confidence interval** is a 95% percentile interval from a Poisson bootstrap over *pupils*:
each replicate gives every pupil a random weight drawn from Poisson(1) and recomputes the whole
estimate with those weights. Resampling pupils, not rows, matters because one comparison pupil
serves many strata (many weeks) and one treated pupil's figures are not independent of their
school's: a pupil's weight moves all of their rows together, so the interval reflects that
reuse instead of counting each row as new evidence. A stratum left without a treated or a
comparison pupil in a replicate drops out of that replicate, as it would in a real sample.

**What it does not show.** Schools choose who gets a step, often because something else is
happening in the family, so pupils who had a step differ from the comparison pupils in ways the
marks cannot see. The wording says what happened to pupils ("pupils who had ... went on to
...") and never that the step caused it. Fewer than ``min_group`` pupils in either group gives a
plain warning.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import academic_year_of
from attendwise.casework import queries as casework_queries
from attendwise.insights import services as insights_services
from attendwise.insights.exports import Table
from attendwise.insights.models import WhatWorksResult
from attendwise.insights.services import SUPPRESS_BELOW, SUPPRESSED, Comparison
from attendwise.platform import audit, jobs, tenancy
from attendwise.platform.db import utcnow

DEFAULT_WEEKS = 6
DEFAULT_BAND = 5.0
HISTORY_BAND = 10.0
MIN_GROUP = 20
REPLICATES = 1000
BATCH_CELLS = 4_000_000
"""Replicates x rows per bootstrap batch (about 32 MB of weights)."""
TOO_FEW = "Too few pupils to rely on"
CAVEAT = (
    "This compares what happened to pupils; it does not show that the step caused the change. "
    "Schools choose who has each step, and those pupils may differ in ways attendance marks cannot show."
)


@dataclass(frozen=True)
class WeeklySeries:
    """One school's pupils by school weeks: sessions attended and possible in each week."""

    school_id: int
    pupil_ids: Sequence[int]
    weeks: Sequence[dt.date]
    """The Monday of each school week, ascending."""
    attended: np.ndarray
    possible: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.pupil_ids), len(self.weeks))
        for name in ("attended", "possible"):
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"school {self.school_id}: {name} has shape {getattr(self, name).shape}, expected {shape}"
                )
        if any(b <= a for a, b in zip(self.weeks, self.weeks[1:], strict=False)):
            raise ValueError(f"school {self.school_id}: school weeks must be in ascending order")


@dataclass(frozen=True)
class Step:
    """Something that happened to a pupil on a day: entering a stage, or an action done."""

    school_id: int
    pupil_id: int
    key: str
    """What kind of step, e.g. ``stage:2`` or ``action:letter``; steps with one key are pooled."""
    label: str
    on: dt.date


@dataclass(frozen=True)
class StepResult:
    key: str
    label: str
    weeks: int
    treated: int
    comparison: int
    unmatched: int
    """Pupils who had the step but had no similar pupil to compare with (left out)."""
    treated_before: float | None
    treated_after: float | None
    comparison_before: float | None
    comparison_after: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    warning: str | None

    @property
    def treated_change(self) -> float | None:
        return _minus(self.treated_after, self.treated_before)

    @property
    def comparison_change(self) -> float | None:
        return _minus(self.comparison_after, self.comparison_before)

    @property
    def summary(self) -> str:
        """What happened, in words that claim no cause."""
        if self.difference is None or self.ci_low is None or self.ci_high is None:
            return f"No pupil who had {_phrase(self.label)} could be compared with similar pupils."
        n = self.weeks
        said = (
            f"Pupils who had {_phrase(self.label)} ({self.treated}) went on to attend "
            f"{self.treated_after:.1f}% in the {n} school weeks after, against {self.treated_before:.1f}% "
            f"in the {n} before. Similar pupils at the same schools who had not (yet) had it "
            f"({self.comparison}) went from {self.comparison_before:.1f}% to {self.comparison_after:.1f}%. "
            f"The difference between the two changes is {self.difference:+.1f} percentage points "
            f"(95% confidence interval {self.ci_low:+.1f} to {self.ci_high:+.1f})."
        )
        if self.ci_low <= 0 <= self.ci_high:
            said += " The interval includes zero: these figures are consistent with no difference at all."
        return said


def _phrase(label: str) -> str:
    """A label inside a sentence: "Stage 2 (letter)" becomes "stage 2 (letter)", "EHCP review" stays."""
    return label[:1].lower() + label[1:] if label[1:2].islower() or label[1:2] == " " else label


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@dataclass
class _Rows:
    """One group's rows as array chunks: pupil index, stratum, before %, after %."""

    pupil: list[np.ndarray]
    stratum: list[np.ndarray]
    before: list[np.ndarray]
    after: list[np.ndarray]

    @classmethod
    def empty(cls) -> _Rows:
        return cls([], [], [], [])

    def add(self, pupil: np.ndarray, stratum: np.ndarray, before: np.ndarray, after: np.ndarray) -> None:
        self.pupil.append(pupil.astype(np.int64))
        self.stratum.append(stratum.astype(np.int64))
        self.before.append(before.astype(float))
        self.after.append(after.astype(float))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return (
            cat(self.pupil, np.int64),
            cat(self.stratum, np.int64),
            cat(self.before, float),
            cat(self.after, float),
        )


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _windows(weeks: Sequence[dt.date], on: dt.date, n: int) -> tuple[int, int] | None:
    """Week indexes ``(pre_end, post_start)``: before is ``[pre_end-n, pre_end)``, after ``[post_start, +n)``.

    The step's own week (when it is a school week) is in neither window.
    """
    monday = _monday(on)
    after = bisect.bisect_right(weeks, monday)
    pre_end = after - 1 if after and weeks[after - 1] == monday else after
    if pre_end - n < 0 or after + n > len(weeks):
        return None
    return pre_end, after


class _School:
    """Cumulative sums over weeks, so any window's attendance is two subtractions."""

    def __init__(self, series: WeeklySeries, n: int, offset: int) -> None:
        self.series = series
        self.n = n
        self.offset = offset
        """Where this school's pupils start in the analysis-wide pupil numbering."""
        zero = np.zeros((len(series.pupil_ids), 1))
        self.att = np.hstack([zero, np.cumsum(series.attended, axis=1, dtype=float)])
        self.pos = np.hstack([zero, np.cumsum(series.possible, axis=1, dtype=float)])
        self.row = {pid: i for i, pid in enumerate(series.pupil_ids)}

    def window(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Attendance % of every pupil over ``[start, start+n)`` and whether it is defined."""
        end = start + self.n
        possible = self.pos[:, end] - self.pos[:, start]
        attended = self.att[:, end] - self.att[:, start]
        ok = possible > 0
        return np.where(ok, 100.0 * attended / np.where(ok, possible, 1.0), np.nan), ok


def _band(pct: np.ndarray, width: float) -> np.ndarray:
    top = math.floor((100.0 - 1e-9) / width)
    return np.minimum(np.floor(np.nan_to_num(pct) / width), top).astype(np.int64)


def _history_band(school: _School, end: int) -> np.ndarray:
    """10-point band of attendance in the school weeks before the before-window (10: no such weeks).

    Matching on it as well keeps a pupil whose usual attendance is high but who had a bad few
    weeks from standing in for a pupil whose attendance is usually that low.
    """
    possible = school.pos[:, end]
    known = possible > 0
    pct = np.where(known, 100.0 * school.att[:, end] / np.where(known, possible, 1.0), np.nan)
    return np.where(known, _band(pct, HISTORY_BAND), 10)


def analyse(
    series: Sequence[WeeklySeries],
    steps: Sequence[Step],
    *,
    weeks: int = DEFAULT_WEEKS,
    band_width: float = DEFAULT_BAND,
    min_group: int = MIN_GROUP,
    replicates: int = REPLICATES,
    seed: int = 20261205,
) -> list[StepResult]:
    """One :class:`StepResult` per step key, in key order (see the module docstring for the method)."""
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, not {weeks}")
    if not 0 < band_width <= 100:
        raise ValueError(f"the attendance band width must be between 0 and 100 points, not {band_width}")
    if replicates < 100:
        raise ValueError(f"at least 100 bootstrap replicates are needed, not {replicates}")
    schools: dict[int, _School] = {}
    offset = 0
    for one in series:
        if one.school_id in schools:
            raise ValueError(f"school {one.school_id} has more than one weekly series")
        schools[one.school_id] = _School(one, weeks, offset)
        offset += len(one.pupil_ids)
    first: dict[str, dict[tuple[int, int], Step]] = defaultdict(dict)
    for step in sorted(steps, key=lambda s: s.on):
        first[step.key].setdefault((step.school_id, step.pupil_id), step)
    rng = np.random.default_rng(seed)
    settings = _Settings(weeks, band_width, min_group, replicates)
    return [_analyse_key(key, first[key], schools, settings, rng) for key in sorted(first)]


@dataclass(frozen=True)
class _Settings:
    weeks: int
    band_width: float
    min_group: int
    replicates: int


def _step_days(school: _School, steps: Sequence[Step]) -> np.ndarray:
    """Each pupil's first day of this step (``steps`` are the school's) as an ordinal, or a huge number."""
    days = np.full(len(school.series.pupil_ids), np.iinfo(np.int64).max, dtype=np.int64)
    for step in steps:
        row = school.row.get(step.pupil_id)
        if row is not None:
            days[row] = step.on.toordinal()
    return days


def _analyse_key(
    key: str,
    firsts: dict[tuple[int, int], Step],
    schools: dict[int, _School],
    settings: _Settings,
    rng: np.random.Generator,
) -> StepResult:
    label = next(iter(firsts.values())).label
    n = settings.weeks
    treated, comparison = _Rows.empty(), _Rows.empty()
    strata: dict[tuple[int, int, int, int], int] = {}
    by_span: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)
    for (school_id, pupil_id), step in firsts.items():
        school = schools.get(school_id)
        row = school.row.get(pupil_id) if school else None
        span = _windows(school.series.weeks, step.on, n) if school else None
        if row is not None and span is not None:
            by_span[(school_id, *span)].append((row, pupil_id))
    of_school: dict[int, list[Step]] = defaultdict(list)
    for step in firsts.values():
        of_school[step.school_id].append(step)
    step_days = {sid: _step_days(schools[sid], of_school[sid]) for sid in {k[0] for k in by_span}}
    for (school_id, pre_end, post_start), members in by_span.items():
        school = schools[school_id]
        before, ok_before = school.window(pre_end - n)
        after, ok_after = school.window(post_start)
        usable = ok_before & ok_after
        bands = _band(before, settings.band_width) * 100 + _history_band(school, pre_end - n)
        rows = np.array([r for r, _ in members], dtype=np.int64)
        rows = rows[usable[rows]]
        if not rows.size:
            continue
        ids = np.array(
            [strata.setdefault((school_id, pre_end, post_start, int(b)), len(strata)) for b in bands[rows]],
            dtype=np.int64,
        )
        treated.add(school.offset + rows, ids, before[rows], after[rows])
        horizon = school.series.weeks[post_start + n - 1] + dt.timedelta(days=6)
        others = np.flatnonzero(usable & (step_days[school_id] > horizon.toordinal()))
        wanted = {int(b): strata[(school_id, pre_end, post_start, int(b))] for b in set(bands[rows].tolist())}
        others = others[np.isin(bands[others], list(wanted))]
        if others.size:
            other_ids = np.array([wanted[int(b)] for b in bands[others]], dtype=np.int64)
            comparison.add(school.offset + others, other_ids, before[others], after[others])
    return _result(key, label, treated, comparison, len(strata), settings, rng)


def _result(
    key: str,
    label: str,
    treated: _Rows,
    comparison: _Rows,
    k: int,
    settings: _Settings,
    rng: np.random.Generator,
) -> StepResult:
    t_pupil, t_stratum, t_before, t_after = treated.arrays()
    c_pupil, c_stratum, c_before, c_after = comparison.arrays()
    has_c = np.bincount(c_stratum, minlength=k) > 0
    matched = has_c[t_stratum]
    unmatched = int((~matched).sum())
    n_treated = int(matched.sum())
    n_comparison = int(np.unique(c_pupil).size)
    warning = _warning(label, n_treated, n_comparison, settings.min_group)
    if n_treated == 0:
        return _empty(key, label, settings.weeks, n_comparison, unmatched, warning)
    t = (t_stratum, t_before, t_after)
    c = (c_stratum, c_before, c_after)
    tb, ta, cb, ca, diff = _estimate(*t, np.ones(t_pupil.size), *c, np.ones(c_pupil.size), k)
    boot = _bootstrap(
        t_pupil, t_stratum, t_after - t_before, c_pupil, c_stratum, c_after - c_before, k, settings, rng
    )
    boot = boot[~np.isnan(boot)]
    low, high = np.percentile(boot, [2.5, 97.5]).tolist() if boot.size else (None, None)
    return StepResult(
        key,
        label,
        settings.weeks,
        n_treated,
        n_comparison,
        unmatched,
        tb,
        ta,
        cb,
        ca,
        diff,
        low,
        high,
        warning,
    )


class _Grouped:
    """One group's rows sorted by stratum, so per-stratum sums are one ``np.add.reduceat``."""

    def __init__(self, pupil: np.ndarray, stratum: np.ndarray, change: np.ndarray) -> None:
        order = np.argsort(stratum, kind="stable")
        self.pupil, stratum, self.change = pupil[order], stratum[order], change[order]
        self.starts = np.flatnonzero(np.r_[True, stratum[1:] != stratum[:-1]]) if stratum.size else stratum
        self.strata = stratum[self.starts]

    def sums(self, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per replicate (rows of ``weights``) and stratum: the weight and the weighted change."""
        w = weights[:, self.pupil]
        total, weighted = np.zeros((w.shape[0], k)), np.zeros((w.shape[0], k))
        if self.starts.size:
            total[:, self.strata] = np.add.reduceat(w, self.starts, axis=1)
            weighted[:, self.strata] = np.add.reduceat(w * self.change, self.starts, axis=1)
        return total, weighted


def _bootstrap(
    t_pupil: np.ndarray,
    t_stratum: np.ndarray,
    t_change: np.ndarray,
    c_pupil: np.ndarray,
    c_stratum: np.ndarray,
    c_change: np.ndarray,
    k: int,
    settings: _Settings,
    rng: np.random.Generator,
) -> np.ndarray:
    """The difference in differences under Poisson(1) weights per pupil, for every replicate.

    Only the pupils in either group get weights (renumbered compactly), and replicates are
    computed in batches as matrices, so the cost is replicates x rows in numpy, not Python.
    """
    involved, inverse = np.unique(np.concatenate([t_pupil, c_pupil]), return_inverse=True)
    treated = _Grouped(inverse[: t_pupil.size], t_stratum, t_change)
    comparison = _Grouped(inverse[t_pupil.size :], c_stratum, c_change)
    out = np.empty(settings.replicates)
    rows = max(t_pupil.size + c_pupil.size, 1)
    batch = max(1, min(settings.replicates, BATCH_CELLS // rows))
    for first in range(0, settings.replicates, batch):
        size = min(batch, settings.replicates - first)
        weights = rng.poisson(1.0, (size, involved.size)).astype(float)
        wt, st = treated.sums(weights, k)
        wc, sc = comparison.sums(weights, k)
        valid = (wt > 0) & (wc > 0)
        diff = np.where(valid, st / np.where(valid, wt, 1.0) - sc / np.where(valid, wc, 1.0), 0.0)
        share = np.where(valid, wt, 0.0)
        total = share.sum(axis=1)
        out[first : first + size] = np.where(
            total > 0, (share * diff).sum(axis=1) / np.where(total > 0, total, 1.0), np.nan
        )
    return out


def _estimate(
    t_stratum: np.ndarray,
    t_before: np.ndarray,
    t_after: np.ndarray,
    t_weight: np.ndarray,
    c_stratum: np.ndarray,
    c_before: np.ndarray,
    c_after: np.ndarray,
    c_weight: np.ndarray,
    k: int,
) -> tuple[float, float, float, float, float]:
    """Treated before/after, comparison before/after (reweighted to the treated), and the DiD."""
    wt = np.bincount(t_stratum, t_weight, minlength=k)
    wc = np.bincount(c_stratum, c_weight, minlength=k)
    valid = (wt > 0) & (wc > 0)
    if not valid.any():
        return (math.nan,) * 5
    safe_t, safe_c = np.where(valid, wt, 1.0), np.where(valid, wc, 1.0)
    means = [
        np.bincount(t_stratum, t_weight * t_before, minlength=k) / safe_t,
        np.bincount(t_stratum, t_weight * t_after, minlength=k) / safe_t,
        np.bincount(c_stratum, c_weight * c_before, minlength=k) / safe_c,
        np.bincount(c_stratum, c_weight * c_after, minlength=k) / safe_c,
    ]
    share = np.where(valid, wt, 0.0) / wt[valid].sum()
    tb, ta, cb, ca = (float((share * m).sum()) for m in means)
    return tb, ta, cb, ca, (ta - tb) - (ca - cb)


def _empty(
    key: str, label: str, weeks: int, comparison: int, unmatched: int, warning: str | None
) -> StepResult:
    return StepResult(
        key, label, weeks, 0, comparison, unmatched, None, None, None, None, None, None, None, warning
    )


def _warning(label: str, treated: int, comparison: int, min_group: int) -> str | None:
    if treated >= min_group and comparison >= min_group:
        return None
    return (
        f"Too few pupils to rely on: {treated} had {_phrase(label)} and {comparison} similar pupils had not "
        f"(at least {min_group} in each group are needed). Treat this figure as an anecdote, not a finding."
    )


# ---- reading a school's steps and weeks ----------------------------------------------------------


def action_label(kind: str) -> str:
    return kind.replace("_", " ").capitalize()


def gather(session: Session, school_id: int, on: dt.date) -> tuple[WeeklySeries, list[Step]]:
    """One school's weekly attendance this academic year up to ``on``, and every step in it.

    Steps are moves up to a stage (keyed by stage number and name, so schools whose policies
    share a stage pool it) and tasks done (keyed by action kind). Runs in the school's own
    tenant context; only aggregates of what it returns leave :func:`analyse`.
    """
    with tenancy.tenant_context(school_id):
        calendar = attendance_services.school_calendar(session, school_id, academic_year_of(on))
        pupil_ids = attendance_queries.pupil_traits(session, school_id).ids
        marks = attendance_queries.weekly_marks(session, school_id, calendar, pupil_ids, on)
        cases = casework_queries.case_histories(session, calendar.start, on)
        actions = casework_queries.actions_done(session, calendar.start, on)
    steps = [
        Step(school_id, case.pupil_id, f"stage:{to_stage}:{name}", f"Stage {to_stage} ({name})", day)
        for case in cases
        for day, from_stage, to_stage, name in case.moves
        if to_stage > from_stage and calendar.start <= day <= on
    ]
    steps += [
        Step(school_id, pupil_id, f"action:{kind}", action_label(kind), day)
        for pupil_id, kind, day in actions
    ]
    series = WeeklySeries(school_id, marks.pupil_ids, marks.weeks, marks.attended, marks.possible)
    return series, steps


def is_small(result: StepResult) -> bool:
    """A result from 1 to 4 pupils in either group (suppressed outside the school)."""
    return 0 < result.treated < SUPPRESS_BELOW or 0 < result.comparison < SUPPRESS_BELOW


def table(results: Sequence[StepResult], *, suppress: bool, title: str = "What works") -> Table:
    """The what-works table as the page shows it; outside the school, a result from fewer than
    :data:`SUPPRESS_BELOW` pupils in either group shows only the counts band."""

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    rows = []
    for r in results:
        hidden = suppress and is_small(r)
        figures = [r.treated_before, r.treated_after, r.comparison_before, r.comparison_after]
        figures += [r.difference, r.ci_low, r.ci_high]
        rows.append(
            [
                r.label,
                SUPPRESSED if hidden and r.treated else r.treated,
                SUPPRESSED if hidden and r.comparison else r.comparison,
                *([SUPPRESSED] * len(figures) if hidden else [pct(v) for v in figures]),
                TOO_FEW if r.warning else "",
            ]
        )
    return Table(
        title=title,
        columns=[
            "Step",
            "Pupils who had it",
            "Similar pupils who had not (yet)",
            "Their attendance before (%)",
            "Their attendance after (%)",
            "Similar pupils before (%)",
            "Similar pupils after (%)",
            "Difference in change (points)",
            "95% interval from",
            "95% interval to",
            "Warning",
        ],
        rows=rows,
        notes=[CAVEAT, f"{SUPPRESSED}: fewer than {SUPPRESS_BELOW} pupils, not shown outside the school."],
    )


def for_comparison(
    session: Session, comparison: Comparison, *, weeks: int = DEFAULT_WEEKS
) -> list[StepResult]:
    """What works across a comparison's schools, this academic year up to its period's end."""
    if comparison.period_end is None:
        return []
    series, steps = [], []
    for school in comparison.schools:
        one, its_steps = gather(session, school.school_id, comparison.period_end)
        series.append(one)
        steps += its_steps
    return analyse(series, steps, weeks=weeks)


# ---- computed by a job, kept per organisation, period and window --------------------------------

QUEUED, DONE, FAILED = "queued", "done", "failed"
LOST_AFTER = dt.timedelta(hours=1)
"""A computation queued longer than this is taken as lost (its worker died) and may be queued again."""


def cached(session: Session, scope_id: int, period: str, weeks: int) -> WhatWorksResult | None:
    """The stored what-works result of an organisation for one period and window, if any."""
    return session.scalar(
        select(WhatWorksResult).where(
            WhatWorksResult.org_id == scope_id,
            WhatWorksResult.period == period,
            WhatWorksResult.weeks == weeks,
        )
    )


def lost(row: WhatWorksResult, now: dt.datetime | None = None) -> bool:
    requested = row.requested_at if row.requested_at.tzinfo else row.requested_at.replace(tzinfo=dt.UTC)
    return row.state == QUEUED and (now or utcnow()) - requested > LOST_AFTER


def request(session: Session, scope_id: int, period: str, weeks: int) -> WhatWorksResult:
    """Have what works computed for the organisation by a job (queued once the transaction
    commits). While a computation is queued, asking again queues nothing more; the last result
    stays stored and shown until the new one replaces it."""
    if period not in insights_services.PERIODS:
        raise insights_services.InsightsError(
            f"period {period!r} is not one of: {', '.join(insights_services.PERIODS)}"
        )
    row = cached(session, scope_id, period, weeks)
    if row is not None and row.state == QUEUED and not lost(row):
        return row
    if row is None:
        row = WhatWorksResult(org_id=scope_id, period=period, weeks=weeks)
        session.add(row)
    row.state, row.requested_at = QUEUED, utcnow()
    session.flush()
    jobs.enqueue("attendwise.insights.jobs.compute_what_works", scope_id, period, weeks, org_id=scope_id)
    return row


def compute(session: Session, scope_id: int, period: str, weeks: int) -> WhatWorksResult:
    """The job's work: compute what works across the organisation's schools and store it
    (audited in the organisation's log)."""
    comparison = insights_services.comparison(session, scope_id, period)
    results = for_comparison(session, comparison, weeks=weeks)
    row = cached(session, scope_id, period, weeks) or WhatWorksResult(
        org_id=scope_id, period=period, weeks=weeks
    )
    session.add(row)
    row.state, row.error = DONE, None
    row.results = json.dumps([dataclasses.asdict(r) for r in results])
    row.computed_at = utcnow()
    if row.requested_at is None:
        row.requested_at = row.computed_at
    session.flush()
    audit.record(
        session,
        org_id=scope_id,
        action="insights.what_works",
        object_type="organisation",
        object_id=scope_id,
        detail={"period": period, "weeks": weeks, "steps": len(results)},
    )
    return row


def fail(session: Session, scope_id: int, period: str, weeks: int, error: str) -> None:
    """Record that the computation failed, with why (the last result, if any, stays)."""
    row = cached(session, scope_id, period, weeks)
    if row is not None:
        row.state, row.error = FAILED, error[:1000]
        session.flush()


def stored_results(row: WhatWorksResult) -> list[StepResult] | None:
    """The results a row holds (``None`` before the first computation finished)."""
    if row.results is None:
        return None
    return [StepResult(**values) for values in json.loads(row.results)]
