"""The governors' termly report: a school's or a trust's figures as a PDF.

The report holds the attendance figures of the period against last year and the national
figures, a weekly trend and (for a trust or an LA) a school-by-school chart, each chart drawn
as inline SVG *and* followed by its data table, then the casework counts, the process measures
and the what-works table with its warnings. Everything is computed first into a plain context
(strings, numbers, lists and dicts only; :func:`context`), then rendered with the letters
package's sandboxed template engine and PDF renderer
(:func:`attendwise.letters.render.render_html` and :func:`~attendwise.letters.render.render_pdf`),
so the template never sees an ORM object and the render fetches nothing from outside.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from attendwise.insights import exports, process, what_works
from attendwise.insights import services as insights_services
from attendwise.insights.services import MEASURES, Comparison
from attendwise.letters import render
from attendwise.platform.web import format_datetime

TEMPLATE = Path(__file__).parent / "templates" / "insights" / "analysis" / "governors-report.html"
CHART_WIDTH = 640
BAR_HEIGHT = 18
TREND_HEIGHT = 180


def _pct(value: float | None) -> str:
    return "x" if value is None else f"{value:.1f}%"


def _figure_rows(comparison: Comparison) -> list[dict[str, str]]:
    total, last = comparison.total, comparison.total_last_year
    rows = []
    for key, label in MEASURES.items():
        national = comparison.national_value(key)
        if key == "attendance":
            absence = comparison.national_value("absence")
            national_text = f"{100 - absence.value:.1f}%" if absence else "not available"
        else:
            national_text = f"{national.value:.1f}%" if national else "not available"
        rows.append(
            {
                "measure": label,
                "value": _pct(total.measure(key)),
                "last_year": _pct(last.measure(key)) if last is not None else "not available",
                "national": national_text,
            }
        )
    return rows


def trend_chart(points: Sequence[tuple[str, float | None]]) -> dict[str, Any]:
    """A weekly attendance line as SVG coordinates (the y axis from the lowest value to 100%)."""
    known = [v for _label, v in points if v is not None]
    low = min([*known, 100.0]) if known else 90.0
    floor = max(0.0, (int(low) // 5) * 5 - 5.0)
    left, right, top, bottom = 60, CHART_WIDTH - 12, 12, TREND_HEIGHT - 28
    step = (right - left) / max(len(points) - 1, 1)

    def y(value: float) -> float:
        return round(bottom - (value - floor) / (100.0 - floor) * (bottom - top), 1)

    dots = [
        {"x": round(left + i * step, 1), "y": y(v), "label": label, "value": f"{v:.1f}%"}
        for i, (label, v) in enumerate(points)
        if v is not None
    ]
    ticks = [{"y": y(v), "label": f"{v:g}%"} for v in (floor, (floor + 100) / 2, 100.0)]
    return {
        "width": CHART_WIDTH,
        "height": TREND_HEIGHT,
        "left": left,
        "right": right,
        "bottom": bottom,
        "path": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "ticks": ticks,
        "first": points[0][0] if points else "",
        "last": points[-1][0] if points else "",
    }


def bar_chart(items: Sequence[tuple[str, float | None]]) -> dict[str, Any]:
    """Horizontal bars, one per school, on a 0 to 100% scale (a suppressed value has no bar)."""
    label_width, scale = 220, CHART_WIDTH - 220 - 60
    bars = [
        {
            "y": i * (BAR_HEIGHT + 6),
            "label": label,
            "width": round(scale * (value or 0.0) / 100.0, 1),
            "text": _pct(value),
        }
        for i, (label, value) in enumerate(items)
    ]
    return {
        "width": CHART_WIDTH,
        "height": max(len(items), 1) * (BAR_HEIGHT + 6),
        "label_width": label_width,
        "bar_height": BAR_HEIGHT,
        "bars": bars,
    }


def _table(table: exports.Table) -> dict[str, Any]:
    def cell(value: exports.Cell) -> str:
        if value is None:
            return "not available"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    return {
        "title": table.title,
        "columns": list(table.columns),
        "rows": [[cell(v) for v in row] for row in table.rows],
        "notes": list(table.notes),
    }


def _in_period(week_start: dt.date, comparison: Comparison) -> bool:
    start, end = comparison.period_start, comparison.period_end
    return start is not None and end is not None and start - dt.timedelta(days=6) <= week_start <= end


def context(
    session: Session, scope_org_id: int, *, period: str = "term", today: dt.date | None = None
) -> dict[str, Any]:
    """Everything the report shows, as plain values (see the module docstring)."""
    comparison = insights_services.comparison(session, scope_org_id, period)
    suppress = comparison.suppressed_outside_school
    measures = process.for_comparison(session, comparison)
    stored = what_works.cached(session, scope_org_id, period, what_works.DEFAULT_WEEKS)
    kept = what_works.stored_results(stored) if stored is not None else None
    results = kept if kept is not None else what_works.for_comparison(session, comparison)
    weeks = [
        (f"{w.week_start.day} {w.week_start:%b}", w.figures.attendance)
        for w in comparison.weeks
        if _in_period(w.week_start, comparison)
    ]
    casework = comparison.casework
    counts = [casework.open_cases, casework.letters, casework.meetings, casework.referrals]
    return {
        "title": f"Attendance report for governors: {comparison.scope_name}",
        "scope": {"name": comparison.scope_name, "kind": comparison.scope_kind},
        "period": {
            "label": comparison.period_label,
            "start": comparison.period_start.strftime("%-d %B %Y") if comparison.period_start else "",
            "end": comparison.period_end.strftime("%-d %B %Y") if comparison.period_end else "",
        },
        "generated_on": (today or dt.datetime.now(dt.UTC).date()).strftime("%-d %B %Y"),
        "suppressed": suppress,
        "pupils": "x" if comparison.total.pupil_count is None else str(comparison.total.pupil_count),
        "figures": _figure_rows(comparison),
        "trend": trend_chart(weeks),
        "trend_table": [{"week": label, "value": _pct(v)} for label, v in weeks],
        "schools": bar_chart([(s.name, s.figures.attendance) for s in comparison.schools])
        if len(comparison.schools) > 1
        else None,
        "school_table": [
            {
                "name": s.name,
                "attendance": _pct(s.figures.attendance),
                "persistent": _pct(s.figures.persistent_rate),
                "last_year": _pct(s.last_year.attendance if s.last_year else None),
            }
            for s in comparison.schools
        ],
        "casework": [{"label": c.label, "value": "x" if c.value is None else str(c.value)} for c in counts],
        "process": _table(process.table(measures, suppress=suppress)) if measures else None,
        "what_works": _table(what_works.table(results, suppress=suppress)),
        "what_works_summaries": [
            r.summary for r in results if r.treated and not (suppress and what_works.is_small(r))
        ],
        "what_works_computed": format_datetime(stored.computed_at) if kept is not None and stored else "",
        "caveat": what_works.CAVEAT,
        "weeks": what_works.DEFAULT_WEEKS,
    }


def render_pdf(
    session: Session, scope_org_id: int, *, period: str = "term", today: dt.date | None = None
) -> bytes:
    """The governors' report as PDF/A bytes (raises the letters renderer's errors on failure)."""
    merge = context(session, scope_org_id, period=period, today=today)
    return render.render_pdf(render.render_html(TEMPLATE.read_text(encoding="utf-8"), merge))
