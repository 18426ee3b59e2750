"""The stored figures agree with figures computed directly from the marks, on the demo."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from attendwise.attendance import metrics
from attendwise.attendance import queries as attendance_queries
from attendwise.attendance import services as attendance_services
from attendwise.attendance.calendar import academic_year_of
from attendwise.insights import services
from attendwise.insights.models import SchoolFigures, SchoolWeek
from attendwise.platform import tenancy
from tests.insights.conftest import DEMO_DAY


def _direct(session, school_id, start, end, mask=None):
    """Figures from the marks, computed for exactly the period, summed over pupils in Python."""
    traits = attendance_queries.pupil_traits(session, school_id)
    calendar = attendance_services.school_calendar(session, school_id, academic_year_of(start))
    result = attendance_queries.figures(session, school_id, calendar, metrics.Period(start, end), traits.ids)
    rows = [r for i, r in enumerate(result.records()) if mask is None or mask(traits, i)]
    counted = [r for r in rows if r["possible_sessions"] > 0]
    return {
        "pupils": len(counted),
        "possible": sum(r["possible_sessions"] for r in counted),
        "attended": sum(r["present"] + r["approved_activity"] for r in counted),
        "authorised": sum(r["authorised"] for r in counted),
        "unauthorised": sum(r["unauthorised"] for r in counted),
        "persistent": sum(r["persistent_absence"] for r in counted),
        "severe": sum(r["severe_absence"] for r in counted),
    }


def _stored(row):
    return {
        k: getattr(row, k)
        for k in ("pupils", "possible", "attended", "authorised", "unauthorised", "persistent", "severe")
    }


def test_every_stored_figure_of_the_demo_agrees_with_the_marks(db_session, demo_orgs):
    checked = 0
    for school in demo_orgs.schools:
        with tenancy.tenant_context(school.id):
            rows = db_session.scalars(
                select(SchoolFigures).where(SchoolFigures.period.in_(("ytd", "term", "half_term")))
            ).all()
            assert {r.period for r in rows} == {"ytd", "term", "half_term"}
            for row in rows:
                if row.breakdown == "all":
                    mask = None
                elif row.breakdown == "year":
                    mask = lambda t, i, g=row.group: t.year_group[i] == g  # noqa: E731
                else:
                    mask = lambda t, i, g=row.group: bool(t.flags[g][i])  # noqa: E731
                assert _stored(row) == _direct(
                    db_session, school.id, row.period_start, row.period_end, mask
                ), (
                    school.name,
                    row.period,
                    row.breakdown,
                    row.group,
                )
                checked += 1
    assert checked > 100


def test_demo_periods_are_this_half_term_term_and_year_to_date(db_session, demo_orgs):
    school = demo_orgs.schools[0]
    with tenancy.tenant_context(school.id):
        spans = {
            r.period: (r.period_start.isoformat(), r.period_end.isoformat())
            for r in db_session.scalars(select(SchoolFigures).where(SchoolFigures.breakdown == "all"))
        }
    assert spans["ytd"] == ("2026-09-01", DEMO_DAY.isoformat())
    assert spans["term"] == ("2026-09-01", DEMO_DAY.isoformat())
    assert spans["half_term"][0] > "2026-10-26"
    assert spans["half_term"][1] == DEMO_DAY.isoformat()
    assert spans["last_year"][0].startswith("2025-09")


def test_weekly_points_add_up_to_the_year_to_date(db_session, demo_orgs):
    for school in demo_orgs.schools:
        with tenancy.tenant_context(school.id):
            weeks = db_session.scalars(select(SchoolWeek).where(SchoolWeek.academic_year == 2026)).all()
            ytd = db_session.scalar(
                select(SchoolFigures).where(SchoolFigures.period == "ytd", SchoolFigures.breakdown == "all")
            )
        assert len(weeks) >= 10
        assert sum(w.possible for w in weeks) == ytd.possible
        assert sum(w.attended for w in weeks) == ytd.attended
        assert sum(w.unauthorised for w in weeks) == ytd.unauthorised
        assert all(w.week_start.weekday() == 0 for w in weeks)


def test_comparison_totals_are_the_sums_of_the_schools(db_session, demo_orgs):
    with tenancy.tenant_context(demo_orgs.la.id):
        comparison = services.comparison(db_session, demo_orgs.la.id, "ytd")
    assert [r.name for r in comparison.schools] == sorted(s.name for s in demo_orgs.schools)
    direct = []
    for school in demo_orgs.schools:
        with tenancy.tenant_context(school.id):
            direct.append(_direct(db_session, school.id, comparison.period_start, DEMO_DAY))
    assert comparison.total.possible == sum(d["possible"] for d in direct)
    assert comparison.total.persistent == sum(d["persistent"] for d in direct)
    expected = 100.0 * sum(d["attended"] for d in direct) / sum(d["possible"] for d in direct)
    assert np.isclose(comparison.total.attendance, expected)
