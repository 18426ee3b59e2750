"""``attendwise attendance ...``: attendance figures from files, with no database.

``summary_records`` is the same computation for callers that already hold parsed marks (the CTF
import's dry run, for instance).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import click
import numpy as np

from attendwise.attendance.calendar import CalendarError, SchoolCalendar
from attendwise.attendance.codes import CODE_INDEX, CODE_ORDER, DEFAULT_TABLE, PLANNED_CLOSURE, CodeTable
from attendwise.attendance.marks_file import MarksFileError, parse_marks
from attendwise.attendance.metrics import DEFAULT_TREND_WEEKS, MarkMatrix, Period, compute

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class Mark(Protocol):
    """What :func:`summary_records` needs of a mark (``marks_file.MarkRow`` has it)."""

    @property
    def upn(self) -> str: ...
    @property
    def date(self) -> date: ...
    @property
    def session(self) -> str: ...
    @property
    def code(self) -> str: ...


def school_calendar_for(marks: Sequence[Mark], calendar: SchoolCalendar | None) -> SchoolCalendar:
    """The calendar the figures use: any day with a mark is a school day unless the calendar says
    otherwise; a day on which every mark is ``#`` (planned closure) is not."""
    codes_by_day: dict[date, set[str]] = {}
    for m in marks:
        codes_by_day.setdefault(m.date, set()).add(m.code)
    closed = {d for d, codes in codes_by_day.items() if codes == {PLANNED_CLOSURE}}
    open_days = set(codes_by_day) - closed
    if calendar is None:
        return SchoolCalendar.inferred(open_days).with_marked_days((), closed)
    return calendar.with_marked_days(open_days, closed)


def summary_records(
    marks: Sequence[Mark],
    calendar: SchoolCalendar | None = None,
    start: date | None = None,
    end: date | None = None,
    *,
    table: CodeTable = DEFAULT_TABLE,
    trend_weeks: int = DEFAULT_TREND_WEEKS,
    trend_since: date | None = None,
) -> list[dict[str, Any]]:
    """One dict per pupil (in order of first appearance) with every metric over ``[start, end]``.

    ``marks`` must already be valid (see :func:`attendwise.attendance.marks_file.parse_marks`).
    The period defaults to the calendar's first and last day (the academic years of the marks
    when there is no calendar).
    """
    if not marks:
        return []
    cal = school_calendar_for(marks, calendar)
    period = Period(start or cal.start, end or cal.end)
    pupils: dict[str, int] = {}
    temporary: dict[str, bool] = {}
    for m in marks:
        pupils.setdefault(m.upn, len(pupils))
        temporary[m.upn] = bool(getattr(m, "temporary_upn", False))
    ndays = (period.end - period.start).days + 1
    inside = [m for m in marks if period.start <= m.date <= period.end]
    codes = np.zeros((len(pupils), 2 * ndays), dtype=np.uint8)
    if inside:
        rows = np.fromiter((pupils[m.upn] for m in inside), dtype=np.int64, count=len(inside))
        cols = np.fromiter(
            (2 * (m.date - period.start).days + (m.session == "PM") for m in inside),
            dtype=np.int64,
            count=len(inside),
        )
        codes[rows, cols] = np.fromiter(
            (CODE_INDEX[m.code] for m in inside), dtype=np.uint8, count=len(inside)
        )
    matrix = MarkMatrix(period.start, codes, list(pupils))
    metrics = compute(matrix, [cal], period, table=table, trend_weeks=trend_weeks, trend_since=trend_since)
    out = []
    for record in metrics.records():
        upn = record.pop("pupil")
        out.append({"upn": upn, "temporary_upn": temporary[upn], **record})
    return out


def csv_safe(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, neutralised with a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def records_to_csv(records: list[dict[str, Any]]) -> str:
    """Flat CSV: nested lates per half-term and counts by code become their own columns."""
    used_codes = [c for c in CODE_ORDER if any(c in r["counts_by_code"] for r in records)]
    half_terms: list[str] = []
    for r in records:
        half_terms.extend(h for h in r["lates_by_half_term"] if h not in half_terms)
    scalar = [k for k in (records[0] if records else {}) if k not in ("lates_by_half_term", "counts_by_code")]
    header = (
        scalar
        + [f"{kind} {h}" for h in half_terms for kind in ("late_before_close", "late_after_close")]
        + [f"sessions {c}" for c in used_codes]
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_safe(h) for h in header])
    for r in records:
        row: list[object] = ["" if r[k] is None else r[k] for k in scalar]
        for h in half_terms:
            lates = r["lates_by_half_term"].get(h, {})
            row += [lates.get("late_before_close", 0), lates.get("late_after_close", 0)]
        row += [r["counts_by_code"].get(c, 0) for c in used_codes]
        writer.writerow([csv_safe(v) for v in row])
    return out.getvalue()


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException(f"{what} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise click.ClickException(f"{what} {path}: {exc.strerror or exc}") from None


def _fail(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)


@click.group("attendance", help="Attendance figures computed the DfE way.")
def attendance() -> None:
    """The attendance command group."""


@attendance.command("summary")
@click.option("--marks", "marks_path", required=True, help="Marks CSV: upn,date,session,code[,minutes_late].")
@click.option("--calendar", "calendar_path", help="Calendar CSV of half-terms: name,start,end.")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First day of the period.")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the period.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option(
    "--trend-weeks",
    type=click.IntRange(min=1),
    default=DEFAULT_TREND_WEEKS,
    show_default=True,
    help="Trend: change in attendance % over the last N school weeks of the period.",
)
@click.option("--trend-since", type=click.DateTime(["%Y-%m-%d"]), help="Trend: change since this date.")
def summary(
    *,
    marks_path: str,
    calendar_path: str | None,
    start: Any,
    end: Any,
    fmt: str,
    trend_weeks: int,
    trend_since: Any,
) -> None:
    """Per-pupil attendance figures for a marks file; bad input is rejected with row numbers."""
    try:
        calendar = SchoolCalendar.from_csv(_read(calendar_path, "calendar file")) if calendar_path else None
    except CalendarError as exc:
        _fail(str(exc).splitlines())
        return
    try:
        marks = parse_marks(_read(marks_path, "marks file"), calendar)
    except MarksFileError as exc:
        _fail([f"marks file {marks_path}: {p}" for p in exc.problems])
        return
    try:
        records = summary_records(
            marks,
            calendar,
            start.date() if start else None,
            end.date() if end else None,
            trend_weeks=trend_weeks,
            trend_since=trend_since.date() if trend_since else None,
        )
    except ValueError as exc:
        _fail([f"--from/--to: {exc}"])
        return
    if fmt == "csv":
        click.echo(records_to_csv(records), nl=False)
    else:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False, allow_nan=False))


COMMANDS = (attendance,)
