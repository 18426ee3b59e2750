"""CSV and XLSX downloads of any table shown on the insights pages.

A :class:`Table` is what a page shows: a title, column headings and rows of plain values.
Both formats are safe to open in a spreadsheet: a text cell that a spreadsheet would read as a
formula (``=``, ``+``, ``-``, ``@``, tab or carriage return first, the OWASP CSV-injection list)
is written as text. In CSV it gets a leading apostrophe; in XLSX it is stored as a string cell
with the "quote prefix" style, so Excel and LibreOffice show it and never evaluate it. Numbers
stay numbers (a negative figure is not a formula).

:func:`comparison_tables` turns a dashboard's comparison into its tables (schools, groups,
weeks), so every table on the insights pages downloads the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, TYPE_STRING
from openpyxl.styles import Font

from attendwise.insights.services import SUPPRESS_BELOW, SUPPRESSED, Comparison, Count, Figures

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_MIME = "text/csv"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SHEET_UNSAFE = re.compile(r"[\\/*?:\[\]]")

Cell = str | int | float | dt.date | None


@dataclass(frozen=True)
class Table:
    """A table as shown on a page: every row has one value per column."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    notes: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for number, row in enumerate(self.rows, start=1):
            if len(row) != len(self.columns):
                width, got = len(self.columns), len(row)
                raise ValueError(f"table {self.title!r}: row {number} has {got} values for {width} columns")


def is_formula_like(text: str) -> bool:
    return text.startswith(FORMULA_STARTS)


def _missing(value: Cell) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def safe_text(value: Cell) -> str:
    """A cell as CSV text that no spreadsheet will run as a formula."""
    if _missing(value):
        return ""
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    return "'" + text if isinstance(value, str) and is_formula_like(text) else text


def filename(title: str, extension: str) -> str:
    """A download name from a table title: lower case, letters, digits and hyphens only."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "table"
    return f"{slug[:80]}.{extension}"


def to_csv(table: Table) -> bytes:
    """UTF-8 CSV with a byte-order mark (so Excel reads the encoding), headings first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_text(c) for c in table.columns])
    for row in table.rows:
        writer.writerow([safe_text(value) for value in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _set_text(cell: Any, text: str) -> None:
    """Store ``text`` as a string cell, never a formula or an error value."""
    cell.value = ILLEGAL_CHARACTERS_RE.sub("", text)
    cell.data_type = TYPE_STRING  # openpyxl would otherwise store "=..." as a formula
    if is_formula_like(text):
        cell.quotePrefix = True


def to_xlsx(table: Table) -> bytes:
    """One worksheet: bold headings, typed numbers and dates, text that is never a formula."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = (_SHEET_UNSAFE.sub(" ", table.title).strip() or "Table")[:31]
    rows: list[Sequence[Cell]] = [list(table.columns), *table.rows]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            if isinstance(value, str):
                _set_text(cell, value)
            elif not _missing(value):
                cell.value = value
                if isinstance(value, dt.date):
                    cell.number_format = "yyyy-mm-dd"
            if r == 1:
                cell.font = Font(bold=True)
    for offset, note in enumerate(table.notes, start=len(rows) + 2):
        _set_text(sheet.cell(row=offset, column=1), note)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# ---- the dashboards' tables ------------------------------------------------------------------------

FIGURE_COLUMNS = (
    "Pupils",
    "Attendance (%)",
    "Authorised absence (%)",
    "Unauthorised absence (%)",
    "Persistent absence (%)",
    "Severe absence (%)",
)


def _figures(figures: Figures | None) -> list[Cell]:
    """Pupils and each percentage (to 1 place); "x" where suppressed, empty where undefined."""
    if figures is None:
        return [None] * len(FIGURE_COLUMNS)
    if figures.suppressed:
        return [SUPPRESSED] * len(FIGURE_COLUMNS)
    rates = [
        figures.attendance,
        figures.authorised_rate,
        figures.unauthorised_rate,
        figures.persistent_rate,
        figures.severe_rate,
    ]
    return [figures.pupils, *(None if r is None else round(r, 1) for r in rates)]


def _count(count: Count) -> Cell:
    return SUPPRESSED if count.value is None else count.value


def comparison_tables(comparison: Comparison) -> dict[str, Table]:
    """The dashboard's tables (schools, groups, weeks) as :class:`Table` s, keyed by name."""
    note = [f"{SUPPRESSED}: from fewer than {SUPPRESS_BELOW} pupils, not shown outside the school."]
    period = f"{comparison.scope_name}, {comparison.period_label.lower()}"
    last = "Attendance same period last year (%)"
    schools = Table(
        title=f"Schools: {period}",
        columns=["School", "URN", "Phase", *FIGURE_COLUMNS, last, "Open cases", "Referrals this term"],
        rows=[
            [
                s.name,
                s.urn,
                s.phase,
                *_figures(s.figures),
                _figures(s.last_year)[1],
                _count(s.casework.open_cases),
                _count(s.casework.referrals),
            ]
            for s in comparison.schools
        ],
        notes=note,
    )
    groups = Table(
        title=f"Groups: {period}",
        columns=["Breakdown", "Group", *FIGURE_COLUMNS, last],
        rows=[
            [g.breakdown, g.label, *_figures(g.figures), _figures(g.last_year)[1]] for g in comparison.groups
        ],
        notes=note,
    )
    weeks = Table(
        title=f"Weeks: {comparison.scope_name}",
        columns=["Week beginning", *FIGURE_COLUMNS, "Same school week last year: attendance (%)"],
        rows=[[w.week_start, *_figures(w.figures), _figures(w.last_year)[1]] for w in comparison.weeks],
        notes=note,
    )
    return {"schools": schools, "groups": groups, "weeks": weeks}
