"""The vectorised engine agrees with the plain reference on random marks and random calendars."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attendwise.attendance import metrics
from attendwise.attendance.calendar import HalfTerm, SchoolCalendar, days_between, week_start
from attendwise.attendance.codes import CODE_ORDER, CodeTable, StatClass, encode
from attendwise.attendance.metrics import MarkMatrix, Period, compute, penalty_windows

from .reference import reference_metrics

FLOAT_KEYS = ("attendance_pct", "absence_pct", "trend_since")
CURRENT_CODES = [c for c in CODE_ORDER if c not in ("H", "J", "Y")]


@st.composite
def calendars(draw: st.DrawFn, first_year: int) -> SchoolCalendar:
    """Either a default England year (or two) or random half-terms with gaps, INSET days and closures."""
    if draw(st.booleans()):
        years = [first_year] if draw(st.booleans()) else [first_year, first_year + 1]
        cals = [SchoolCalendar.england_default(y) for y in years]
        return SchoolCalendar(tuple(h for c in cals for h in c.half_terms), inset_days=cals[0].inset_days)
    start = date(first_year, 8, 1) + timedelta(days=draw(st.integers(0, 60)))
    half_terms = []
    for n in range(draw(st.integers(1, 8))):
        length = draw(st.integers(1, 70))
        half_terms.append(HalfTerm(f"Half {n + 1}", start, start + timedelta(days=length - 1)))
        start += timedelta(days=length + draw(st.integers(0, 21)))
    all_days = [d for h in half_terms for d in days_between(h.start, h.end)]
    inset = draw(st.sets(st.sampled_from(all_days), max_size=5))
    closures = set(draw(st.sets(st.sampled_from(all_days), max_size=5)))
    for day in draw(st.sets(st.sampled_from(all_days), max_size=2)):  # whole weeks closed
        closures.update(week_start(day) + timedelta(days=n) for n in range(5))
    return SchoolCalendar(tuple(half_terms), inset_days=frozenset(inset), closures=frozenset(closures))


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    first_year = draw(st.sampled_from([2023, 2024]))
    ncals = draw(st.integers(1, 2))
    cals = [draw(calendars(first_year)) for _ in range(ncals)]
    axis_start = date(first_year, 8, 1)
    ndays = draw(st.sampled_from([365, 366 + 365]))
    axis_end = axis_start + timedelta(days=ndays - 1)
    npupils = draw(st.integers(1, 5))
    # mostly school days, some any day; a small alphabet per pupil makes long runs and windows likely
    pupils = []
    for _ in range(npupils):
        alphabet = draw(st.lists(st.sampled_from(CURRENT_CODES), min_size=1, max_size=4))
        seed = draw(st.integers(0, 2**32 - 1))
        density = draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
        cal_index = draw(st.integers(0, ncals - 1))
        rng = random.Random(seed)
        marks = {}
        school = [d for d in days_between(axis_start, axis_end) if cals[cal_index].is_school_day(d)]
        for d in school:
            for s in ("AM", "PM"):
                if rng.random() < density:
                    marks[(d, s)] = rng.choice(alphabet)
        extra = draw(
            st.lists(
                st.tuples(
                    st.integers(0, ndays - 1), st.sampled_from(["AM", "PM"]), st.sampled_from(CURRENT_CODES)
                ),
                max_size=6,
            )
        )
        for offset, s, code in extra:
            marks[(axis_start + timedelta(days=offset), s)] = code
        # marks on days the calendar does not open (weekends, closures) inside its half-terms
        in_terms = [d for h in cals[cal_index].half_terms for d in days_between(h.start, h.end)]
        for day, s, code in draw(
            st.lists(
                st.tuples(
                    st.sampled_from(in_terms), st.sampled_from(["AM", "PM"]), st.sampled_from(CURRENT_CODES)
                ),
                max_size=3,
            )
        ):
            if axis_start <= day <= axis_end:
                marks[(day, s)] = code
        pupils.append((marks, cal_index))
    p_start = axis_start + timedelta(days=draw(st.integers(0, ndays - 1)))
    p_end = p_start + timedelta(days=draw(st.integers(0, ndays - 1)))
    p_end = min(p_end, axis_end)
    since = draw(st.none() | st.integers(-10, ndays).map(lambda n: axis_start + timedelta(days=n)))
    overrides = draw(
        st.sampled_from([{}, {"C": StatClass.UNAUTHORISED}, {"D": StatClass.AUTHORISED, "M": "present"}])
    )
    return {
        "calendars": cals,
        "axis_start": axis_start,
        "ndays": ndays,
        "pupils": pupils,
        "period": Period(p_start, p_end),
        "trend_weeks": draw(st.integers(1, 12)),
        "trend_since": since,
        "table": CodeTable(overrides),
        "block_rows": draw(st.sampled_from([1, 2, 8192])),
    }


def _matrix(sc: dict) -> MarkMatrix:
    codes = np.zeros((len(sc["pupils"]), 2 * sc["ndays"]), dtype=np.uint8)
    for row, (marks, _cal) in enumerate(sc["pupils"]):
        for (d, s), code in marks.items():
            codes[row, 2 * (d - sc["axis_start"]).days + (s == "PM")] = encode(code)
    cal_of = np.array([cal for _m, cal in sc["pupils"]], dtype=np.int32)
    return MarkMatrix(sc["axis_start"], codes, [f"p{i}" for i in range(len(sc["pupils"]))], cal_of)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios())
def test_every_metric_matches_the_reference(sc: dict) -> None:
    matrix = _matrix(sc)
    period = sc["period"]
    result = compute(
        matrix,
        sc["calendars"],
        period,
        table=sc["table"],
        trend_weeks=sc["trend_weeks"],
        trend_since=sc["trend_since"],
        block_rows=sc["block_rows"],
    )
    for row, (marks, cal_index) in enumerate(sc["pupils"]):
        expected = reference_metrics(
            marks,
            sc["calendars"][cal_index],
            period.start,
            period.end,
            table=sc["table"],
            trend_weeks=sc["trend_weeks"],
            trend_since=sc["trend_since"],
            marked_days=frozenset(
                d for m, c in sc["pupils"] if c == cal_index for (d, _s), code in m.items() if code != "#"
            ),
        )
        got = result.record(row)
        windows = expected.pop("windows")
        for key, value in expected.items():
            if key in FLOAT_KEYS or key.startswith("trend_last"):
                if value is None:
                    assert got[key] is None, key
                else:
                    assert got[key] is not None, key
                    assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-9), key
            else:
                assert got[key] == value, key
        listed = penalty_windows(matrix, sc["calendars"], period, row, table=sc["table"])
        assert [(w.start, w.end, w.sessions) for w in listed] == windows


@settings(max_examples=60, deadline=None)
@given(sc=scenarios(), labels=st.lists(st.sampled_from(["a", "b", "c"]), min_size=5, max_size=5))
def test_group_figures_are_sums_of_pupil_figures(sc: dict, labels: list[str]) -> None:
    matrix = _matrix(sc)
    result = compute(matrix, sc["calendars"], sc["period"], table=sc["table"])
    groups = labels[: len(sc["pupils"])]
    for summary in metrics.aggregate(result, groups):
        rows = [i for i, g in enumerate(groups) if g == summary.group]
        records = [result.record(i) for i in rows]
        assert summary.enrolments == len(rows)
        assert summary.possible == sum(r["possible_sessions"] for r in records)
        assert summary.unauthorised == sum(r["unauthorised"] for r in records)
        counted = [r for r in records if r["possible_sessions"]]
        assert summary.enrolments_with_possible == len(counted)
        assert summary.persistent_absentees == sum(r["persistent_absence"] for r in counted)
        if counted:
            assert summary.persistent_absence_rate == pytest.approx(
                100 * sum(r["persistent_absence"] for r in counted) / len(counted)
            )
        attended = sum(r["present"] + r["approved_activity"] for r in records)
        if summary.possible:
            assert summary.attendance_pct == pytest.approx(100 * attended / summary.possible)
        else:
            assert summary.attendance_pct is None
